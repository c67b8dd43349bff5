"""The tar reader (every header flavour real layers use) and the layer tar writer."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from berth.errors import CorruptArchive, StoreError
from berth.store.layertar import (
    BLOCKDEV,
    CHARDEV,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarEntry,
    TarReader,
    write_layer_tar,
)


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("berth-layertar")


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 1_600_000_000
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def _read_all(data: bytes) -> list[tuple[TarEntry, bytes]]:
    reader = TarReader(io.BytesIO(data))
    found = []
    for entry in reader:
        found.append((entry, reader.read_data()))
    reader.drain()
    return found


class ReadOnly:
    """A pipe-like stream: read() only, short reads, no seek, no readinto."""

    def __init__(self, data: bytes, step: int = 777) -> None:
        self.data = memoryview(data)
        self.step = step

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else len(self.data), self.step)
        chunk, self.data = bytes(self.data[:n]), self.data[n:]
        return chunk


# -- reading -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_reads_every_entry_type(fmt: int) -> None:
    long_dir = "d" * 90 + "/" + "e" * 60  # > 100: ustar prefix, GNU long name or PAX path
    members = [
        (_info("dir", tarfile.DIRTYPE, mode=0o755), b""),
        (_info("dir/file", mode=0o4755, uid=1000, gid=2000), b"hello\n"),
        (_info("dir/link", tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
        (_info("dir/hard", tarfile.LNKTYPE, linkname="dir/file"), b""),
        (_info("dir/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
        (_info("dir/sda", tarfile.BLKTYPE, devmajor=8, devminor=1), b""),
        (_info("dir/fifo", tarfile.FIFOTYPE), b""),
        (_info(long_dir, tarfile.DIRTYPE), b""),
        (_info(long_dir + "/f", mode=0o600), b"x" * 1000),
    ]
    found = _read_all(_tar(members, fmt))
    names = [e.name for e, _ in found]
    assert names == [
        b"dir/",
        b"dir/file",
        b"dir/link",
        b"dir/hard",
        b"dir/null",
        b"dir/sda",
        b"dir/fifo",
        long_dir.encode() + b"/",
        long_dir.encode() + b"/f",
    ]
    kinds = [e.kind for e, _ in found]
    assert kinds == [
        DIRECTORY,
        REGULAR,
        SYMLINK,
        HARDLINK,
        CHARDEV,
        BLOCKDEV,
        FIFO,
        DIRECTORY,
        REGULAR,
    ]
    file_entry, data = found[1]
    assert data == b"hello\n"
    assert (file_entry.mode, file_entry.uid, file_entry.gid) == (0o4755, 1000, 2000)
    assert file_entry.mtime_ns == 1_600_000_000 * 10**9
    assert found[2][0].linkname == b"/etc/passwd"
    assert found[3][0].linkname == b"dir/file" and found[3][0].size == 0
    assert (found[4][0].devmajor, found[4][0].devminor) == (1, 3)
    assert (found[5][0].devmajor, found[5][0].devminor) == (8, 1)
    assert found[8][1] == b"x" * 1000


def test_long_link_names_and_non_utf8_names() -> None:
    target = "t" * 300
    raw_name = b"caf\xe9-latin1"
    members = [
        (_info("l", tarfile.SYMTYPE, linkname=target), b""),
        (_info(os.fsdecode(raw_name)), b"x"),
    ]
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        found = _read_all(_tar(members, fmt))
        assert found[0][0].linkname == target.encode()
        assert found[1][0].name == raw_name


def test_pax_overrides_and_xattrs() -> None:
    capability = bytes.fromhex("0100000200200000000000000000000000000000")
    info = _info("short", uid=5, gid=6)
    info.pax_headers = {
        "path": "a/much/better/name",
        "uid": "3000000000",
        "gid": "4000000000",
        "mtime": "1234567890.5",
        "atime": "1234567891.000000001",
        "SCHILY.xattr.security.capability": capability.decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.user.note": "hi",
        "LIBARCHIVE.xattr.user.enc%3Dname": base64.b64encode(b"\x00\x01").decode().rstrip("="),
    }
    ((entry, data),) = _read_all(_tar([(info, b"data")]))
    assert entry.name == b"a/much/better/name"
    assert (entry.uid, entry.gid) == (3_000_000_000, 4_000_000_000)
    assert entry.mtime_ns == 1_234_567_890_500_000_000
    assert entry.atime_ns == 1_234_567_891_000_000_001
    assert entry.xattrs == {
        "security.capability": capability,
        "user.note": b"hi",
        "user.enc=name": b"\x00\x01",
    }
    assert data == b"data"


def test_global_pax_header_applies_to_later_entries() -> None:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "777"}
    ) as tf:
        tf.addfile(_info("a"))
        tf.addfile(_info("b"))
    found = _read_all(out.getvalue())
    assert [(e.name, e.uid) for e, _ in found] == [(b"a", 777), (b"b", 777)]


def test_base256_numbers() -> None:
    ((entry, _),) = _read_all(_tar([(_info("big", uid=2**40, gid=2**33), b"")], tarfile.GNU_FORMAT))
    assert (entry.uid, entry.gid) == (2**40, 2**33)


def test_negative_mtime_in_base256() -> None:
    ((entry, _),) = _read_all(_tar([(_info("old", mtime=-(2**40)), b"")], tarfile.GNU_FORMAT))
    assert entry.mtime_ns == -(2**40) * 10**9


@pytest.mark.parametrize("sparse_format", ["gnu", "pax-1.0", "pax-0.1", "pax-0.0"])
def test_gnu_tar_sparse_files(work: Path, sparse_format: str) -> None:
    sparse = work / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(8 << 20)
        f.seek(3_000_000)
        f.write(b"hello")
        f.seek((8 << 20) - 3)
        f.write(b"end")
    fmt, _, version = sparse_format.partition("-")
    args = ["tar", "--sparse", f"--format={fmt}", "-C", str(work), "-cf", "-", "sparse"]
    if version:
        args.insert(2, f"--sparse-version={version}")
    data = subprocess.run(args, check=True, capture_output=True).stdout
    reader = TarReader(io.BytesIO(data))
    (entry,) = list(reader)[:1]
    assert entry.name == b"sparse" and entry.sparse and entry.realsize == 8 << 20
    assert entry.size < 64 << 10
    out = work / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        reader = TarReader(io.BytesIO(data))
        next(iter(reader))
        assert reader.copy_data(fd) == 8 << 20
    finally:
        os.close(fd)
    assert out.read_bytes() == sparse.read_bytes()
    assert os.stat(out).st_blocks * 512 < 1 << 20  # the holes stayed holes


def test_reads_from_a_pipe_like_stream() -> None:
    members = [(_info(f"f{i}"), os.urandom(i * 37)) for i in range(50)]
    data = _tar(members)
    reader = TarReader(ReadOnly(data))  # type: ignore[arg-type]
    got = []
    for entry in reader:
        got.append((entry.name, reader.read_data()))
    assert got == [(f"f{i}".encode(), m[1]) for i, m in enumerate(members)]
    assert reader.drain() >= 0


def test_unread_data_is_skipped() -> None:
    data = _tar([(_info("a"), b"A" * 5000), (_info("b"), b"B" * 10)])
    reader = TarReader(io.BytesIO(data), chunk_size=1024)
    assert [e.name for e in reader] == [b"a", b"b"]


def test_empty_stream_and_missing_end_marker() -> None:
    assert _read_all(b"") == []
    data = _tar([(_info("a"), b"x")])
    assert [e.name for e, _ in _read_all(data[:1024])] == [b"a"]  # header + data, no marker


def test_drain_reads_trailing_bytes() -> None:
    data = _tar([(_info("a"), b"x")]) + bytes(20000)
    stream = io.BytesIO(data)
    reader = TarReader(stream, chunk_size=4096)
    list(reader)
    reader.drain()
    assert stream.tell() == len(data)


def _resum(data: bytes) -> bytes:
    """The first header's checksum made right again after editing it."""
    header = bytearray(data[:512])
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data[512:]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:700], "ends in the middle of file data"),
        (lambda d: d[:300], "ends in the middle of a header"),
        (lambda d: _resum(d[:100] + b"9999999\0" + d[108:]), "bad number field"),
        (lambda d: d[:148] + b"0000000\0" + d[156:], "checksum mismatch"),
        (lambda d: b"\x89PNG\r\n" + bytes(600), "checksum mismatch"),
    ],
)
def test_damaged_archives(damage: object, message: str) -> None:
    data = _tar([(_info("file"), b"y" * 1000)], tarfile.USTAR_FORMAT)
    with pytest.raises(CorruptArchive, match=message):
        _read_all(damage(data))  # type: ignore[operator]


def test_truncated_pax_header_and_bad_pax_records() -> None:
    info = _info("a")
    info.pax_headers = {"path": "x" * 2000}
    data = _tar([(info, b"")])
    with pytest.raises(CorruptArchive, match="PAX header"):
        _read_all(data[:1000])
    bad = bytearray(data)
    start = bad.index(b" path=")
    bad[start - 4 : start] = b"9999"
    with pytest.raises(CorruptArchive, match="PAX record"):
        _read_all(bytes(bad))


def test_unbelievable_pax_size() -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 1 << 30
    header = info.tobuf(tarfile.USTAR_FORMAT)
    with pytest.raises(CorruptArchive, match="not believable"):
        _read_all(header + bytes(4096))


def test_error_names_offset_and_entry() -> None:
    data = _tar([(_info("first"), b"1"), (_info("second"), b"2" * 2000)], tarfile.USTAR_FORMAT)
    with pytest.raises(CorruptArchive, match=r"at byte \d+"):
        _read_all(data[:2000])


# -- writing -----------------------------------------------------------------------------


def _make_tree(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"\x7fELF" + bytes(3000))
    os.chmod(root / "bin/tool", 0o755)
    os.link(root / "bin/tool", root / "bin/alias")
    os.symlink("tool", root / "bin/sym")
    os.symlink("/" + "x" * 150, root / "long-link")
    deep = root / ("n" * 80) / ("m" * 80)
    deep.mkdir(parents=True)
    (deep / "file").write_bytes(b"deep")
    os.mkfifo(root / "fifo", 0o600)
    (root / os.fsdecode(b"caf\xe9")).write_bytes(b"latin")
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)


def test_writes_a_deterministic_sorted_tar(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    _make_tree(src)
    first, second = io.BytesIO(), io.BytesIO()
    result = write_layer_tar(str(src), first)
    assert write_layer_tar(str(src), second) == result
    data = first.getvalue()
    assert data == second.getvalue()
    assert result.size == len(data)
    assert result.diff_id.hex == hashlib.sha256(data).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert result.entries == len(members)
    assert names[:5] == ["bin", "bin/alias", "bin/sym", "bin/tool", "caf\udce9"]
    assert names.index("etc") < names.index("etc/passwd")
    by_name = {m.name: m for m in members}
    assert by_name["bin/tool"].islnk() and by_name["bin/tool"].linkname == "bin/alias"
    assert by_name["bin/alias"].mode == 0o755 and by_name["bin/alias"].size == 3004
    assert by_name["bin/sym"].issym() and by_name["bin/sym"].linkname == "tool"
    assert by_name["long-link"].linkname == "/" + "x" * 150
    assert by_name["fifo"].isfifo()
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert all(m.mtime == 1_600_000_000 for m in members)
    assert ("n" * 80 + "/" + "m" * 80 + "/file") in by_name


def test_gnu_tar_reads_what_we_write(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    _make_tree(src)
    out = io.BytesIO()
    write_layer_tar(str(src), out)
    listing = subprocess.run(
        ["tar", "-tvf", "-"], input=out.getvalue(), capture_output=True, check=True
    )
    assert listing.stderr == b""
    assert b"bin/alias" in listing.stdout and b"link to bin/alias" in listing.stdout


def test_reproducible_mtime_clamps_later_times(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    (src / "old").write_bytes(b"")
    (src / "new").write_bytes(b"")
    os.utime(src / "old", (1000, 1000))
    os.utime(src / "new", (2_000_000_000, 2_000_000_000))
    out = io.BytesIO()
    write_layer_tar(str(src), out, reproducible_mtime=1_500_000_000)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        assert {m.name: m.mtime for m in tf} == {"new": 1_500_000_000, "old": 1000}


def test_sockets_are_skipped(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "sock"))
        out = io.BytesIO()
        write_layer_tar(str(src), out)
    finally:
        sock.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        assert tf.getnames() == ["a"]


def test_user_xattrs_are_written_sorted(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    (src / "f").write_bytes(b"f")
    os.setxattr(src / "f", "user.zz", b"last")
    os.setxattr(src / "f", "user.aa", b"\x00\xff")
    out = io.BytesIO()
    write_layer_tar(str(src), out)
    ((entry, _),) = _read_all(out.getvalue())
    assert list(entry.xattrs.items()) == [("user.aa", b"\x00\xff"), ("user.zz", b"last")]


@pytest.mark.root
def test_overlay_upper_dir_translation(work: Path) -> None:
    upper = work / "upper"
    (upper / "etc/opaque").mkdir(parents=True)
    (upper / "etc/opaque/new").write_bytes(b"new")
    os.setxattr(upper / "etc/opaque", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "etc/gone", stat.S_IFCHR, 0)
    os.link(upper / "etc/gone", upper / "etc/also-gone")  # overlayfs shares whiteout inodes
    os.mknod(upper / "etc/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(upper / "etc", "trusted.overlay.origin", b"\x00")
    os.setxattr(upper / "etc", "user.kept", b"1")
    (upper / "etc/ping").write_bytes(b"\x7fELF")
    capability = bytes.fromhex("0100000200200000000000000000000000000000")
    os.setxattr(upper / "etc/ping", "security.capability", capability)
    out = io.BytesIO()
    write_layer_tar(str(upper), out)
    found = [(e.name, e.kind, e.xattrs) for e, _ in _read_all(out.getvalue())]
    assert found == [
        (b"etc/", DIRECTORY, {"user.kept": b"1"}),
        (b"etc/.wh.also-gone", REGULAR, {}),
        (b"etc/.wh.gone", REGULAR, {}),
        (b"etc/null", CHARDEV, {}),
        (b"etc/opaque/", DIRECTORY, {}),
        (b"etc/opaque/.wh..wh..opq", REGULAR, {}),
        (b"etc/opaque/new", REGULAR, {}),
        (b"etc/ping", REGULAR, {"security.capability": capability}),
    ]
    plain = io.BytesIO()
    write_layer_tar(str(upper), plain, whiteouts="none")
    kinds = {e.name: (e.kind, e.xattrs) for e, _ in _read_all(plain.getvalue())}
    assert kinds[b"etc/also-gone"][0] == CHARDEV
    assert kinds[b"etc/gone"][0] == HARDLINK
    assert kinds[b"etc/opaque/"][1] == {"trusted.overlay.opaque": b"y"}


@pytest.mark.root
@pytest.mark.parametrize("xattr", ["trusted.overlay.redirect", "trusted.overlay.metacopy"])
def test_redirect_and_metacopy_are_refused(work: Path, xattr: str) -> None:
    upper = work / "upper"
    (upper / "d").mkdir(parents=True)
    os.setxattr(upper / "d", xattr, b"/elsewhere")
    with pytest.raises(StoreError, match="redirect_dir or metacopy"):
        write_layer_tar(str(upper), io.BytesIO())


def test_missing_source_dir_is_an_oserror(work: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_layer_tar(str(work / "nope"), io.BytesIO())
