"""unpack_layer on honest layers: every entry type, whiteouts in both modes, round trips."""

from __future__ import annotations

import gc
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.errors import CorruptArchive
from berth.store.compression import compressing_writer, open_decompressed
from berth.store.layertar import write_layer_tar
from berth.store.unpack import UnpackResult, unpack_layer
from tests.fixtures.hostile_layers.make_fixtures import Entry, tar_bytes
from tests.fixtures.hostile_layers.trees import diff, snapshot, without

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep
T0 = 1_650_000_000


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("berth-unpack")


@pytest.fixture(autouse=True)
def no_fd_leaks() -> Iterator[None]:
    # Only descriptors this test opened and left open count: earlier tests' objects may be
    # collected (and their descriptors closed) while this one runs.
    gc.collect()
    before = _open_fds()
    yield
    gc.collect()
    leaked = {fd: target for fd, target in _open_fds().items() if before.get(fd) != target}
    assert not leaked


def _open_fds() -> dict[str, str]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            continue
    return fds


def _unpack(data: bytes, dest: Path, mode: str = "overlay") -> UnpackResult:
    dest.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(data), str(dest), mode=mode)  # type: ignore[arg-type]


def _layer(tree: Path) -> bytes:
    out = io.BytesIO()
    write_layer_tar(str(tree), out, whiteouts="none")
    return out.getvalue()


def _touch_all(root: Path, when: int = T0) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, (when, when), follow_symlinks=False)


def _rich_tree(root: Path) -> None:
    """Every kind of entry, with the attributes that are easy to lose."""
    root.mkdir()
    (root / "bin").mkdir()
    (root / "bin/ping").write_bytes(b"\x7fELF" + os.urandom(5000))
    os.chown(root / "bin/ping", 0, 0)
    os.setxattr(root / "bin/ping", "security.capability", CAPABILITY)
    (root / "bin/su").write_bytes(b"\x7fELF su")
    os.chmod(root / "bin/su", 0o4755)
    (root / "bin/wall").write_bytes(b"\x7fELF wall")
    os.chown(root / "bin/wall", 0, 5)
    os.chmod(root / "bin/wall", 0o2755)
    (root / "tmp").mkdir(mode=0o777)
    os.chmod(root / "tmp", 0o1777)
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o2775)
    (root / "home/user").mkdir(parents=True)
    (root / "home/user/.profile").write_text("export A=1\n")
    os.chown(root / "home/user/.profile", 1000, 1000)
    os.chown(root / "home/user", 1000, 1000)
    os.chmod(root / "home/user", 0o700)
    (root / "home/user/empty").mkdir()
    (root / "etc").mkdir()
    (root / "etc/big").write_bytes(os.urandom(3 << 20) + bytes(1 << 20))
    (root / "etc/empty").write_bytes(b"")
    os.setxattr(root / "etc", "user.comment", b"\x00binary\xff")
    os.link(root / "etc/big", root / "etc/big-link")
    os.link(root / "etc/big", root / "bin/big-link2")
    os.symlink("/etc/big", root / "abs-link")
    os.symlink("../etc/big", root / "bin/rel-link")
    os.symlink("dangling/nowhere", root / "dangling")
    os.link(root / "abs-link", root / "abs-link-hard")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
    os.mkfifo(root / "fifo", 0o600)
    long_dir = root / ("l" * 120) / ("m" * 120)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 200)).write_bytes(b"long")
    (root / os.fsdecode(b"latin-\xe9")).write_bytes(b"not utf-8")
    os.chown(root / "null", 4_000_000, 4_000_001)  # needs a PAX uid/gid
    _touch_all(root)
    os.utime(root / "etc/big", (T0 - 5000, T0 - 10_000))


@pytest.mark.root
@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_round_trip_of_every_entry_type(work: Path, mode: str) -> None:
    src = work / "src"
    _rich_tree(src)
    result = _unpack(_layer(src), work / "dest", mode)
    want = snapshot(str(src), mtime_ns=False)
    got = snapshot(str(work / "dest"), mtime_ns=False)
    assert diff(want, got) == []
    assert result.warnings == ()
    assert result.size == sum(
        n["size"] for p, n in want.items() if "size" in n and n["link_group"] == p
    )
    assert os.lstat(work / "dest/etc/big").st_nlink == 3
    assert os.getxattr(work / "dest/bin/ping", "security.capability") == CAPABILITY


def test_round_trip_as_an_ordinary_user_could(work: Path) -> None:
    """Files, dirs, symlinks, hardlinks, modes, user xattrs: nothing needing privileges."""
    src = work / "src"
    (src / "a/b").mkdir(parents=True)
    (src / "a/b/f").write_bytes(b"x" * 70_000)
    os.chmod(src / "a/b/f", 0o640)
    os.link(src / "a/b/f", src / "a/h")
    os.symlink("b/f", src / "a/s")
    os.setxattr(src / "a/b/f", "user.k", b"v")
    os.chmod(src / "a/b", 0o555)
    _touch_all(src)
    _unpack(_layer(src), work / "dest", "apply")
    assert (
        diff(snapshot(str(src), mtime_ns=False), snapshot(str(work / "dest"), mtime_ns=False)) == []
    )


_names = st.sampled_from(["a", "b", "c", "d.txt", "E", "f-g", "h_i"])


@st.composite
def _trees(draw: st.DrawFn) -> list[tuple[str, str, int, int, str]]:
    """(path, kind, mode, mtime, payload-or-target) entries of a random tree."""
    entries: list[tuple[str, str, int, int, str]] = []
    dirs = [""]
    for _ in range(draw(st.integers(1, 25))):
        parent = draw(st.sampled_from(dirs))
        path = f"{parent}/{draw(_names)}".lstrip("/")
        if any(e[0] == path for e in entries):
            continue
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink", "hardlink"]))
        files = [e[0] for e in entries if e[1] == "file"]
        if kind == "hardlink" and not files:
            kind = "file"
        mode = draw(st.sampled_from([0o644, 0o600, 0o755, 0o4755, 0o2750, 0o1777, 0o400]))
        mtime = draw(st.integers(0, 2**33))
        if kind == "dir":
            dirs.append(path)
            payload = ""
        elif kind == "symlink":
            payload = draw(st.sampled_from(["/etc/passwd", "../x", "a", "./b/c", "/"]))
        elif kind == "hardlink":
            payload = draw(st.sampled_from(files))
        else:
            payload = draw(st.text(max_size=3000))
        entries.append((path, kind, mode, mtime, payload))
    return entries


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees())
def test_random_trees_round_trip(work: Path, tree: list[tuple[str, str, int, int, str]]) -> None:
    base = work / f"t{len(os.listdir(work))}"
    src = base / "src"
    src.mkdir(parents=True)
    for path, kind, mode, _, payload in tree:
        target = src / path
        if kind == "dir":
            target.mkdir()
        elif kind == "symlink":
            os.symlink(payload, target)
        elif kind == "hardlink":
            os.link(src / payload, target)
        else:
            target.write_text(payload)
        if kind in ("dir", "file"):
            os.chmod(target, mode)
    for path, _kind, _, mtime, _ in sorted(tree, key=lambda e: -e[0].count("/")):
        os.utime(src / path, ns=(mtime * 10**9, mtime * 10**9), follow_symlinks=False)
    layer = _layer(src)
    for mode in ("overlay", "apply"):
        dest = base / mode
        _unpack(layer, dest, mode)
        assert diff(snapshot(str(src), mtime_ns=False), snapshot(str(dest), mtime_ns=False)) == []
        again = io.BytesIO()
        write_layer_tar(str(dest), again, whiteouts="none")
        assert again.getvalue() == layer  # unpack then write gives the very same bytes


def test_a_real_tree_made_by_gnu_tar(work: Path) -> None:
    """/usr/share/doc of this host, archived by GNU tar, unpacked: the same tree."""
    source = "/usr/share/doc"
    data = subprocess.run(
        ["tar", "--format=gnu", "-C", source, "-cf", "-", "."], check=True, capture_output=True
    ).stdout
    result = _unpack(data, work / "dest", "apply")
    want = without(snapshot(source, mtime_ns=False), "xattrs")
    got = without(snapshot(str(work / "dest"), mtime_ns=False), "xattrs")
    assert diff(want, got) == []
    assert result.entries == len(want) + 1  # "./" too


@pytest.mark.root
def test_overlay_whiteouts_and_opaque_dirs(work: Path) -> None:
    layer = tar_bytes(
        [
            Entry("etc", "dir"),
            Entry("etc/.wh.passwd"),
            Entry("usr/lib", "dir"),
            Entry("usr/lib/.wh..wh..opq"),
            Entry("usr/lib/new", data=b"new\n"),
            Entry(".wh.gone-dir"),
            Entry("var/.wh..wh.plnk", data=b""),  # aufs bookkeeping: skipped
        ]
    )
    result = _unpack(layer, work / "dest")
    dest = work / "dest"
    passwd = os.lstat(dest / "etc/passwd")
    assert stat.S_ISCHR(passwd.st_mode) and passwd.st_rdev == 0
    assert stat.S_ISCHR(os.lstat(dest / "gone-dir").st_mode)
    assert os.getxattr(dest / "usr/lib", "trusted.overlay.opaque") == b"y"
    assert (dest / "usr/lib/new").read_bytes() == b"new\n"
    assert not os.path.lexists(dest / "var/.wh..wh.plnk")
    assert result.entries == 7 and result.size == 4


@pytest.mark.root
@pytest.mark.parametrize("whiteout_first", [True, False])
def test_overlay_whiteout_and_entry_of_the_same_layer(work: Path, whiteout_first: bool) -> None:
    whiteouts = [Entry(".wh.f"), Entry(".wh.d")]
    entries = [Entry("f", data=b"kept\n"), Entry("d", "dir"), Entry("d/x", data=b"x")]
    layer = tar_bytes(whiteouts + entries if whiteout_first else entries + whiteouts)
    _unpack(layer, work / "dest")
    dest = work / "dest"
    assert (dest / "f").read_bytes() == b"kept\n"
    assert (dest / "d/x").read_bytes() == b"x"
    assert os.getxattr(dest / "d", "trusted.overlay.opaque") == b"y"


def _lower(dest: Path) -> None:
    """The base layer of the OCI spec's whiteout example, plus a few more things."""
    (dest / "a/b/c").mkdir(parents=True)
    (dest / "a/b/c/bar").write_text("bar")
    (dest / "a/keep").write_text("keep")
    (dest / "bin/tools").mkdir(parents=True)
    (dest / "bin/my-app-binary").write_text("bin")
    (dest / "bin/tools/tool-one").write_text("one")
    (dest / "etc").mkdir()
    (dest / "etc/my-app-config").write_text("cfg")


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("marker_last", [False, True])
def test_apply_opaque_spares_the_same_layer(work: Path, marker_last: bool) -> None:
    """The spec's example: the opaque marker applies first wherever it sits in the layer."""
    dest = work / "dest"
    dest.mkdir()
    _lower(dest)
    entries = [
        Entry("a", "dir"),
        Entry("a/b", "dir"),
        Entry("a/b/c", "dir"),
        Entry("a/b/c/foo", data=b"foo"),
    ]
    marker = [Entry("a/.wh..wh..opq")]
    _unpack(tar_bytes(entries + marker if marker_last else marker[:1] + entries), dest, "apply")
    assert _listing(dest / "a") == ["b", "b/c", "b/c/foo"]
    assert (dest / "bin/my-app-binary").exists()


def test_apply_opaque_keeps_same_layer_files_in_lower_dirs(work: Path) -> None:
    dest = work / "dest"
    dest.mkdir()
    _lower(dest)
    layer = tar_bytes([Entry("bin/tools/new", data=b"n"), Entry("bin/.wh..wh..opq")])
    _unpack(layer, dest, "apply")
    assert _listing(dest / "bin") == ["tools", "tools/new"]


@pytest.mark.parametrize("whiteout_last", [False, True])
def test_apply_whiteouts(work: Path, whiteout_last: bool) -> None:
    dest = work / "dest"
    dest.mkdir()
    _lower(dest)
    whiteouts = [
        Entry("etc/.wh.my-app-config"),
        Entry("bin/.wh.tools"),
        Entry(".wh.missing"),
        Entry("nowhere/.wh.x"),
        Entry("a/.wh.keep"),
    ]
    same_layer = [
        Entry("etc/my-app.d", "dir"),
        Entry("etc/my-app.d/default.cfg", data=b"d"),
        Entry("a/keep", data=b"new keep"),
    ]
    layer = same_layer + whiteouts if whiteout_last else whiteouts + same_layer
    _unpack(tar_bytes(layer), dest, "apply")
    assert not (dest / "etc/my-app-config").exists()
    assert not (dest / "bin/tools").exists()
    assert (dest / "etc/my-app.d/default.cfg").read_bytes() == b"d"
    assert (dest / "a/keep").read_bytes() == b"new keep"  # same layer: survives the whiteout
    assert not (dest / "nowhere").exists()


def test_apply_replaces_across_types(work: Path) -> None:
    dest = work / "dest"
    dest.mkdir()
    (dest / "was-dir/sub").mkdir(parents=True)
    (dest / "was-dir/sub/f").write_text("f")
    (dest / "was-file").write_text("f")
    (dest / "was-link-to-dir").symlink_to("was-dir")
    (dest / "merge").mkdir(mode=0o700)
    (dest / "merge/old").write_text("old")
    layer = tar_bytes(
        [
            Entry("was-dir", data=b"now a file"),
            Entry("was-file", "dir", mode=0o750),
            Entry("was-link-to-dir", "dir"),
            Entry("was-link-to-dir/x", data=b"x"),
            Entry("merge", "dir", mode=0o751),
            Entry("merge/new", data=b"new"),
        ]
    )
    _unpack(layer, dest, "apply")
    assert (dest / "was-dir").read_bytes() == b"now a file"
    assert stat.S_IMODE(os.lstat(dest / "was-file").st_mode) == 0o750
    assert (dest / "was-link-to-dir").is_dir() and not (dest / "was-link-to-dir").is_symlink()
    assert _listing(dest / "merge") == ["new", "old"]
    assert stat.S_IMODE(os.lstat(dest / "merge").st_mode) == 0o751


def test_directory_times_are_set_after_their_content(work: Path) -> None:
    layer = tar_bytes(
        [
            Entry("./", "dir"),
            Entry("d", "dir"),
            Entry("d/e", "dir"),
            Entry("d/e/f", data=b"f"),
            Entry("d/g", data=b"g"),
        ]
    )
    _unpack(layer, work / "dest")
    for path in ("", "d", "d/e"):
        assert os.lstat(work / "dest" / path).st_mtime == 1_700_000_000


def test_duplicates_last_one_wins(work: Path) -> None:
    layer = tar_bytes(
        [
            Entry("f", data=b"one"),
            Entry("f", data=b"two"),
            Entry("h", "hardlink", link="f"),
            Entry("h", "hardlink", link="f"),
            Entry("d", "dir", mode=0o700),
            Entry("d", "dir", mode=0o711),
        ]
    )
    _unpack(layer, work / "dest")
    assert (work / "dest/f").read_bytes() == b"two"
    assert os.lstat(work / "dest/h").st_ino == os.lstat(work / "dest/f").st_ino
    assert stat.S_IMODE(os.lstat(work / "dest/d").st_mode) == 0o711


def test_hardlink_to_a_lower_layer_file(work: Path) -> None:
    layer = tar_bytes([Entry("h", "hardlink", link="usr/bin/lower")])
    with pytest.raises(CorruptArchive, match="not in this layer"):
        _unpack(layer, work / "overlay")
    dest = work / "apply"
    (dest / "usr/bin").mkdir(parents=True)
    (dest / "usr/bin/lower").write_text("lower")
    _unpack(layer, dest, "apply")
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "usr/bin/lower").st_ino


def test_hardlink_to_a_directory(work: Path) -> None:
    layer = tar_bytes([Entry("d", "dir"), Entry("h", "hardlink", link="d")])
    with pytest.raises(CorruptArchive, match="is a directory"):
        _unpack(layer, work / "dest")


def test_atime_from_pax(work: Path) -> None:
    layer = tar_bytes([Entry("f", data=b"f", pax={"atime": "1000000000.25"})])
    _unpack(layer, work / "dest")
    st_f = os.lstat(work / "dest/f")
    assert st_f.st_atime_ns == 1_000_000_000_250_000_000
    assert st_f.st_mtime_ns == 1_700_000_000 * 10**9


def test_sparse_files(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.truncate(16 << 20)
        f.seek(9 << 20)
        f.write(b"data")
    data = subprocess.run(
        ["tar", "--sparse", "-C", str(src), "-cf", "-", "sparse"], check=True, capture_output=True
    ).stdout
    result = _unpack(data, work / "dest")
    assert (work / "dest/sparse").read_bytes() == (src / "sparse").read_bytes()
    assert os.stat(work / "dest/sparse").st_blocks * 512 < 1 << 20
    assert result.size == 16 << 20


def test_unknown_entry_type(work: Path) -> None:
    info = tarfile.TarInfo("weird")
    info.type = b"Z"
    with pytest.raises(CorruptArchive, match="unsupported tar entry type 'Z'"):
        _unpack(info.tobuf(tarfile.USTAR_FORMAT) + bytes(1024), work / "dest")


@pytest.mark.parametrize("cut", [100, 700, 1600])
def test_truncated_layer(work: Path, cut: int) -> None:
    layer = tar_bytes([Entry("a", data=b"a" * 1000), Entry("b", data=b"b" * 1000)])
    with pytest.raises(CorruptArchive, match="tar stream is corrupt"):
        _unpack(layer[:cut], work / "dest")


def test_garbage_is_not_a_layer(work: Path) -> None:
    with pytest.raises(CorruptArchive, match="not a tar header"):
        _unpack(os.urandom(4096), work / "dest")


def test_compressed_layer_through_a_pipe(work: Path) -> None:
    src = work / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_bytes(os.urandom(100_000))
    packed = io.BytesIO()
    with compressing_writer(packed, "zstd") as writer:
        writer.write(_layer(src))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read_fd)
        os.write(write_fd, packed.getvalue())
        os._exit(0)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            stream = open_decompressed(pipe)  # type: ignore[arg-type]
            (work / "dest").mkdir()
            unpack_layer(stream, str(work / "dest"))
            stream.close()
    finally:
        os.waitpid(pid, 0)
    assert (work / "dest/d/f").read_bytes() == (src / "d/f").read_bytes()


def test_stream_is_read_to_its_end(work: Path) -> None:
    stream = io.BytesIO(tar_bytes([Entry("a", data=b"a")]) + bytes(8192))
    _unpack(b"", work / "empty")
    (work / "dest").mkdir()
    unpack_layer(stream, str(work / "dest"))
    assert stream.read() == b""


def test_unknown_mode(work: Path) -> None:
    with pytest.raises(ValueError, match="unknown unpack mode"):
        unpack_layer(io.BytesIO(b""), str(work), mode="merge")  # type: ignore[arg-type]
