"""Resolving paths inside a root: openat2 and the user-space walk must agree, and stay inside."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.store import safepath


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "openat2" and not safepath.openat2_available():
        pytest.fail("this kernel lacks openat2 (Linux 5.6+); berth's tests need it")
    old = safepath.use_openat2(request.param == "openat2")
    try:
        yield request.param
    finally:
        safepath.use_openat2(old)


@pytest.fixture
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    path = tmp_path_factory.mktemp("berth-root")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield path, fd
    finally:
        os.close(fd)


def _where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_absolute_symlinks_and_dotdot_stay_inside(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    (path / "etc").mkdir()
    (path / "etc/passwd").write_text("inside\n")
    os.symlink("/etc", path / "abs")
    os.symlink("../../../../etc", path / "rel")
    os.symlink("/proc/self/root", path / "proc-root")
    for name in ("abs/passwd", "rel/passwd", "../../etc/passwd", "/etc/passwd"):
        assert _where(safepath.open_in_root(fd, name, os.O_RDONLY)) == f"{path}/etc/passwd"
    (path / "proc/self/root").mkdir(parents=True)
    assert _where(safepath.open_dir_in_root(fd, "proc-root/..")) == f"{path}/proc/self"


def test_create_dirs_through_a_dangling_symlink(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    os.symlink("/x/y", path / "a")
    new = safepath.open_dir_in_root(fd, "a/b/c", create=True, mode=0o750)
    assert _where(new) == f"{path}/x/y/b/c"
    assert stat.S_IMODE(os.stat(path / "x/y/b/c").st_mode) == 0o750  # exact, whatever the umask


def test_o_creat_through_a_dangling_final_symlink(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    (path / "d").mkdir()
    os.symlink("/d/target", path / "link")
    made = safepath.open_in_root(fd, "link", os.O_WRONLY | os.O_CREAT, 0o600)
    assert _where(made) == f"{path}/d/target"


def test_nofollow_final_component(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    os.symlink("/nowhere", path / "link")
    with pytest.raises(OSError) as caught:
        safepath.open_in_root(fd, "link", os.O_RDONLY | os.O_NOFOLLOW)
    assert caught.value.errno == errno.ELOOP
    link_fd = safepath.open_in_root(fd, "link", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert stat.S_ISLNK(os.fstat(link_fd).st_mode)
    finally:
        os.close(link_fd)


def test_symlink_loop_is_eloop(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    os.symlink("b", path / "a")
    os.symlink("a", path / "b")
    with pytest.raises(OSError) as caught:
        safepath.open_dir_in_root(fd, "a/x", create=True)
    assert caught.value.errno == errno.ELOOP


def test_magic_links_are_not_followed(resolver: str) -> None:
    """/proc/self/root is a magic link: openat2 refuses it, the walk reads it as text."""
    proc_self = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        if resolver == "openat2":
            with pytest.raises(OSError) as caught:
                safepath.open_dir_in_root(proc_self, "root/etc")
            assert caught.value.errno == errno.ELOOP
        else:
            # The link text "/" restarts at the given root, /proc/self: never the real /.
            found = _where(safepath.open_dir_in_root(proc_self, "root"))
            assert found == os.readlink(f"/proc/self/fd/{proc_self}")
    finally:
        os.close(proc_self)


def test_no_xdev_refuses_mount_points(resolver: str) -> None:
    top = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            safepath.open_dir_in_root(top, "proc/self", no_xdev=True)
        assert caught.value.errno == errno.EXDEV
        os.close(safepath.open_dir_in_root(top, "proc/self"))
    finally:
        os.close(top)


def test_no_symlinks(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    (path / "d").mkdir()
    os.symlink("d", path / "l")
    os.close(safepath.open_dir_in_root(fd, "d", no_symlinks=True))
    with pytest.raises(OSError) as caught:
        safepath.open_dir_in_root(fd, "l", no_symlinks=True)
    assert caught.value.errno == errno.ELOOP


def test_parent_and_name(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    os.symlink("/real", path / "via")
    parent, name = safepath.open_parent_in_root(fd, "via/sub/file/", create=True)
    assert name == "file"
    assert _where(parent) == f"{path}/real/sub"
    for bad in ("/", ".", "", "a/.."):
        with pytest.raises(OSError) as caught:
            safepath.open_parent_in_root(fd, bad)
        assert caught.value.errno == errno.EINVAL


def test_not_a_directory(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    (path / "f").write_text("")
    with pytest.raises(OSError) as caught:
        safepath.open_dir_in_root(fd, "f/x", create=True)
    assert caught.value.errno == errno.ENOTDIR


def test_missing_without_create(root: tuple[Path, int], resolver: str) -> None:
    _, fd = root
    with pytest.raises(FileNotFoundError):
        safepath.open_dir_in_root(fd, "missing/dir")


def test_no_fd_leaks(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    os.symlink("b", path / "a")
    os.symlink("a", path / "b")
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(OSError):
            safepath.open_dir_in_root(fd, "a/x/y", create=True)
        os.close(safepath.open_dir_in_root(fd, "new/dirs", create=True))
    assert sorted(os.listdir("/proc/self/fd")) == before


# A random forest of symlinks (absolute, relative, dotdot-laden, looping) and random paths:
# whatever resolves must resolve inside the root, and both resolvers must agree.
_parts = st.sampled_from(["a", "b", "c", "..", ".", "", "d/e", "/"])
_targets = st.lists(_parts, min_size=1, max_size=5).map("/".join).filter(bool)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    links=st.dictionaries(st.sampled_from(["a", "b", "c", "d/e", "d/f"]), _targets, max_size=5),
    path=_targets,
)
def test_random_symlink_forests(
    tmp_path_factory: pytest.TempPathFactory, links: dict[str, str], path: str
) -> None:
    base = tmp_path_factory.mktemp("berth-forest")
    (base / "root").mkdir()
    (base / "outside").mkdir()
    root = base / "root"
    (root / "d").mkdir()
    for name, target in links.items():
        if not os.path.lexists(root / name):
            os.symlink(target, root / name)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    results = {}
    old = safepath.use_openat2(True)
    try:
        for mode in ("openat2", "walk"):
            safepath.use_openat2(mode == "openat2")
            try:
                found = _where(safepath.open_dir_in_root(fd, path))
                assert found == str(root) or found.startswith(f"{root}/"), found
                results[mode] = found
            except OSError as exc:
                results[mode] = f"errno {exc.errno}"
    finally:
        safepath.use_openat2(old)
        os.close(fd)
    assert results["openat2"] == results["walk"]
    assert os.listdir(base / "outside") == []


def test_empty_path_is_the_root_and_nul_is_refused(root: tuple[Path, int], resolver: str) -> None:
    path, fd = root
    assert _where(safepath.open_in_root(fd, "", os.O_RDONLY | os.O_DIRECTORY)) == str(path)
    with pytest.raises(ValueError, match="null byte"):
        safepath.open_in_root(fd, "a\0b", os.O_RDONLY)
