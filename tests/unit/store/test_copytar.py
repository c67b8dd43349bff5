"""copytar: tar streams of a tree in a root and their extraction, safe against hostile
symlinks and hostile archives (no root needed: owners are the caller's)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import BerthError, CorruptArchive, InvalidArgument, PathNotFound
from berth.store import copytar
from berth.store.safepath import use_openat2

ME = (os.geteuid(), os.getegid())


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs with openat2 and with the user-space walk."""
    old = use_openat2(request.param == "openat2")
    try:
        yield str(request.param)
    finally:
        use_openat2(old)


def _fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _tree(root: Path) -> None:
    (root / "app" / "sub").mkdir(parents=True)
    (root / "app" / "a.txt").write_text("alpha")
    (root / "app" / "sub" / "b.txt").write_text("beta")
    os.chmod(root / "app" / "sub" / "b.txt", 0o640)
    os.link(root / "app" / "a.txt", root / "app" / "hard.txt")
    os.symlink("/etc/passwd", root / "app" / "abs-link")
    os.symlink("../a.txt", root / "app" / "sub" / "rel-link")


def _copy(
    src_root: Path, path: str, name: str, dest_root: Path, dest: str = "/", follow: bool = False
) -> None:
    out = io.BytesIO()
    src_fd, dest_fd = _fd(src_root), _fd(dest_root)
    try:
        copytar.write_tree(src_fd, path, name, out, follow=follow)
        out.seek(0)
        copytar.extract(dest_fd, dest, out, copytar.ExtractOptions(owner=ME))
    finally:
        os.close(src_fd)
        os.close(dest_fd)


def test_round_trip_keeps_files_links_and_modes(tmp_path: Path, resolver: str) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    _tree(src)
    _copy(src, "/app", "copy", dest)
    copy = dest / "copy"
    assert (copy / "a.txt").read_text() == "alpha"
    assert (copy / "sub" / "b.txt").read_text() == "beta"
    assert oct((copy / "sub" / "b.txt").stat().st_mode & 0o777) == oct(0o640)
    assert os.readlink(copy / "abs-link") == "/etc/passwd"  # a link, not the host's file
    assert os.readlink(copy / "sub" / "rel-link") == "../a.txt"
    assert (copy / "hard.txt").stat().st_ino == (copy / "a.txt").stat().st_ino


def test_contents_mode_and_a_single_file(tmp_path: Path, resolver: str) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    _tree(src)
    _copy(src, "/app", ".", dest)
    assert sorted(os.listdir(dest)) == ["a.txt", "abs-link", "hard.txt", "sub"]
    _copy(src, "/app/sub/b.txt", "renamed", dest)
    assert (dest / "renamed").read_text() == "beta"


def test_an_absolute_symlink_in_the_source_never_leads_to_the_host(
    tmp_path: Path, resolver: str
) -> None:
    root, outside, dest = tmp_path / "root", tmp_path / "outside", tmp_path / "dest"
    for d in (root, outside, dest):
        d.mkdir()
    (outside / "secret").write_text("host secret")
    os.symlink("/", root / "evil")
    os.symlink("../../../../../../../../", root / "up")
    for path in (f"/evil{outside}/secret", f"/up{outside}/secret"):
        with pytest.raises(PathNotFound):
            _copy(root, path, "x", dest)
    # following the link (-L) copies the link's target inside the root: the root itself
    (root / "inside.txt").write_text("in root")
    _copy(root, "/evil", "followed", dest, follow=True)
    assert (dest / "followed" / "inside.txt").read_text() == "in root"
    assert not (dest / "followed" / "secret").exists()


def _tar(*members: tuple[str, str, bytes | str]) -> io.BytesIO:
    """(kind, name, data or link target) -> a tar stream."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            tar.addfile(info)
    out.seek(0)
    return out


def _extract(root: Path, dest: str, stream: io.BytesIO) -> None:
    fd = _fd(root)
    try:
        copytar.extract(fd, dest, stream, copytar.ExtractOptions(owner=ME))
    finally:
        os.close(fd)


def test_hostile_archives_stay_inside_the_root(tmp_path: Path, resolver: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dest").mkdir(parents=True)
    outside.mkdir()
    with pytest.raises(CorruptArchive, match="outside the destination"):
        _extract(root, "/dest", _tar(("file", "../escape", b"x")))
    with pytest.raises(CorruptArchive, match="outside the destination"):
        _extract(root, "/dest", _tar(("hardlink", "h", "../../etc/passwd")))
    # a symlink to / then a file through it: lands in the root, not on the host
    _extract(root, "/dest", _tar(("symlink", "l", "/"), ("file", f"l{outside}/planted", b"x")))
    assert not (outside / "planted").exists()
    assert (root / str(outside).lstrip("/") / "planted").read_bytes() == b"x"
    # a relative climb through a link is clamped at the root too
    _extract(
        root,
        "/dest",
        _tar(("symlink", "up", "../../../../../.."), ("file", f"up{outside}/planted2", b"y")),
    )
    assert not (outside / "planted2").exists()
    # an absolute hardlink target is inside the destination, never the host's file
    with pytest.raises(BerthError):
        _extract(root, "/dest", _tar(("hardlink", "h2", str(outside / "x"))))


def test_a_directory_is_not_replaced_by_a_file_or_the_other_way(
    tmp_path: Path, resolver: str
) -> None:
    root = tmp_path / "root"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        _extract(root, "/d", _tar(("file", "sub", b"x")))
    with pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        _extract(root, "/d", _tar(("dir", "file", b"")))
    _extract(root, "/d", _tar(("file", "file", b"new"), ("dir", "sub", b"")))
    assert (root / "d" / "file").read_text() == "new"


def test_an_existing_symlink_is_replaced_not_written_through(tmp_path: Path, resolver: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "target").write_text("keep")
    os.symlink(str(outside / "target"), root / "d" / "link")
    _extract(root, "/d", _tar(("file", "link", b"replaced")))
    assert (outside / "target").read_text() == "keep"
    assert (root / "d" / "link").read_text() == "replaced"
    assert not (root / "d" / "link").is_symlink()


def test_compressed_archives_and_missing_destinations(tmp_path: Path, resolver: str) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    plain = _tar(("file", "x/y.txt", b"deep"))
    import gzip

    _extract(root, "/d", io.BytesIO(gzip.compress(plain.getvalue())))
    assert (root / "d" / "x" / "y.txt").read_text() == "deep"
    with pytest.raises(PathNotFound):
        _extract(root, "/missing", _tar(("file", "a", b"")))
    with pytest.raises(CorruptArchive):
        _extract(root, "/d", io.BytesIO(b"this is not a tar archive" * 40))
