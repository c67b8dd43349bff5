"""Hostile layers: nothing outside the destination is ever created, modified or deleted.

Each fixture of ``tests/fixtures/hostile_layers`` is unpacked into ``sandbox/dest`` next to
``sandbox/sentinel``, in both modes and with both path resolvers (openat2 and the user-space
walk). Every test checks the invariant (the sandbox outside ``dest``, its parent's listing and
a few host paths unchanged; no fd leaked) and pins the outcome: an error class, or what
``dest`` holds.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import BerthError, CorruptArchive, UnsafeLayer
from berth.store import safepath
from berth.store.unpack import unpack_layer
from tests.fixtures.hostile_layers import make_fixtures as mf
from tests.fixtures.hostile_layers.trees import diff, snapshot

FIXTURE_DIR = Path(mf.HERE)
HOST_PATHS = [
    "/berth-escaped",
    "/berth-pwned",
    "/berth-top",
    "/etc/berth-hostile",
    "/etc/berth-pwned",
    "/tmp/berth-escaped",
    "/tmp/berth-pwned",
]

# Fixtures refused outright, in both modes.
REFUSED: dict[str, type[BerthError]] = {
    "dotdot_relative": UnsafeLayer,
    "dotdot_nested": UnsafeLayer,
    "dotdot_absolute": UnsafeLayer,
    "symlink_self_etc": UnsafeLayer,
    "symlink_loop": UnsafeLayer,
    "hardlink_relative_out": UnsafeLayer,
    "hardlink_absolute_out": CorruptArchive,
    "hardlink_through_symlink": CorruptArchive,
    "whiteout_relative_out": UnsafeLayer,
    "whiteout_nested_out": UnsafeLayer,
    "whiteout_dot": UnsafeLayer,
    "whiteout_dotdot": UnsafeLayer,
    "root_as_file": UnsafeLayer,
    "root_as_empty_name": UnsafeLayer,
    "gnu_longname_out": UnsafeLayer,
    "gnu_longlink_out": UnsafeLayer,
    "pax_path_out": UnsafeLayer,
}

FILE = stat.S_IFREG
LINK = stat.S_IFLNK
DIR = stat.S_IFDIR

# What dest holds afterwards (path -> type, or (type, content or link text)); both modes.
RESULTS: dict[str, dict[str, object]] = {
    "absolute_paths": {"etc": DIR, "etc/berth-hostile": (FILE, b"abs\n"), "berth-top": FILE},
    "symlink_relative_write_through": {
        "escape": (LINK, "../sentinel"),
        "sentinel": DIR,
        "sentinel/pwned": (FILE, b"pwned\n"),
    },
    "symlink_absolute_write_through": {
        "hostetc": (LINK, "/etc"),
        "etc": DIR,
        "etc/berth-pwned": (FILE, b"pwned\n"),
    },
    "symlink_dotdot_chain": {
        "up": (LINK, ".."),
        "up2": (LINK, "up/.."),
        "berth-pwned": (FILE, b"pwned\n"),
    },
    "symlink_chain_out": {
        "a": (LINK, "b"),
        "b": (LINK, "c"),
        "c": (LINK, "../../../../.."),
        "berth-pwned": (FILE, b"pwned\n"),
    },
    "proc_self_root": {
        "p": (LINK, "/proc/self/root"),
        "proc": DIR,
        "proc/self": DIR,
        "proc/self/root": DIR,
        "proc/self/root/etc": DIR,
        "proc/self/root/etc/berth-pwned": (FILE, b"pwned\n"),
    },
    "symlink_then_file": {"f": (FILE, b"replaced\n")},
    "dir_replaced_by_symlink": {
        "d": (LINK, "../sentinel"),
        "sentinel": DIR,
        "sentinel/pwned": (FILE, b"pwned\n"),
    },
    "hardlink_to_outward_symlink": {
        "s": (LINK, "/etc/shadow"),
        "g": (LINK, "/etc/shadow"),
        "h": (FILE, b"over\n"),
    },
    "root_dir_entry": {"ok": (FILE, b"ok\n")},
    "overlay_xattrs": {"d": DIR, "d/x": (FILE, b"x\n")},
}
MODE_RESULTS: dict[tuple[str, str], dict[str, object]] = {
    ("whiteout_through_symlink", "overlay"): {
        "s": (LINK, "../sentinel"),
        "sentinel": DIR,
        "sentinel/file": stat.S_IFCHR,
    },
    ("whiteout_through_symlink", "apply"): {"s": (LINK, "../sentinel")},
}

ROOT_ONLY = {"devices"}  # mknod of real devices needs CAP_MKNOD


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test with openat2, then with the user-space fallback walk."""
    if request.param == "openat2" and not safepath.openat2_available():
        pytest.fail("this kernel lacks openat2 (Linux 5.6+); berth's tests need it")
    old = safepath.use_openat2(request.param == "openat2")
    try:
        yield request.param
    finally:
        safepath.use_openat2(old)


class Sandbox:
    """``root/dest`` to unpack into, ``root/sentinel`` beside it, and the invariant check."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dest = root / "dest"
        self.dest.mkdir()
        sentinel = root / "sentinel"
        (sentinel / "sub").mkdir(parents=True)
        (sentinel / "file").write_bytes(b"sentinel\n")
        (sentinel / "sub" / "deep").write_bytes(b"deep\n")
        self.before = self._outside()
        self.fds = self._fds()

    def _outside(self) -> tuple[object, ...]:
        host = tuple((p, os.path.lexists(p)) for p in HOST_PATHS)
        parent = tuple(sorted(os.listdir(self.root.parent)))
        return snapshot(str(self.root), exclude=frozenset({"dest"})), parent, host

    @staticmethod
    def _fds() -> list[str]:
        return sorted(os.listdir("/proc/self/fd"))

    def check_invariant(self) -> None:
        inside, parent, host = self._outside()
        before_inside, before_parent, before_host = self.before
        assert diff(before_inside, inside) == []  # type: ignore[arg-type]
        assert parent == before_parent
        assert host == before_host
        assert self._fds() == self.fds, "an fd leaked"

    def unpack(self, name: str, mode: str) -> list[BaseException | None]:
        """Unpack every layer of fixture ``name``; the error of each layer (or None)."""
        fixture = mf.BY_NAME[name]
        outcomes: list[BaseException | None] = []
        for index, file_name in enumerate(fixture.files):
            dest = self.dest
            if mode == "overlay" and len(fixture.files) > 1:
                dest = self.dest / f"layer{index}"
                dest.mkdir()
            try:
                with open(FIXTURE_DIR / file_name, "rb") as f:
                    unpack_layer(f, str(dest), mode=mode)  # type: ignore[arg-type]
                outcomes.append(None)
            except BerthError as exc:
                outcomes.append(exc)
                break
        self.check_invariant()
        return outcomes


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("berth-sandbox"))


def _check_results(dest: Path, expected: dict[str, object]) -> None:
    found = {}
    for path in snapshot(str(dest)):
        found[path] = path
    assert sorted(found) == sorted(expected), f"dest holds {sorted(found)}"
    for path, want in expected.items():
        st = os.lstat(dest / path)
        kind, detail = want if isinstance(want, tuple) else (want, None)
        assert stat.S_IFMT(st.st_mode) == kind, path
        if isinstance(detail, bytes):
            assert (dest / path).read_bytes() == detail
        elif isinstance(detail, str):
            assert os.readlink(dest / path) == detail


def test_committed_fixtures_match_the_generator() -> None:
    for file_name, data in mf.generate().items():
        assert (FIXTURE_DIR / file_name).read_bytes() == data, f"regenerate {file_name}"
    committed = {p.name for p in FIXTURE_DIR.glob("*.tar")}
    assert committed == set(mf.generate())


def test_every_fixture_has_an_expectation() -> None:
    singles = {f.name for f in mf.FIXTURES if len(f.layers) == 1}
    pinned = set(REFUSED) | set(RESULTS) | {n for n, _ in MODE_RESULTS} | ROOT_ONLY
    assert singles == pinned


def _single(names: set[str]) -> list[str]:
    return sorted(n for n in names if len(mf.BY_NAME[n].layers) == 1)


@pytest.mark.parametrize("mode", ["overlay", "apply"])
@pytest.mark.parametrize("name", _single(set(REFUSED)))
def test_refused(sandbox: Sandbox, resolver: str, name: str, mode: str) -> None:
    (outcome,) = sandbox.unpack(name, mode)
    assert type(outcome) is REFUSED[name], outcome
    assert "layer" in str(outcome)


@pytest.mark.parametrize("mode", ["overlay", "apply"])
@pytest.mark.parametrize("name", sorted(RESULTS) + sorted({n for n, _ in MODE_RESULTS}))
def test_contained(sandbox: Sandbox, resolver: str, name: str, mode: str) -> None:
    if name == "overlay_xattrs" and mode == "overlay" and os.geteuid() != 0:
        pytest.fail("needs root (trusted.* xattrs)")
    assert sandbox.unpack(name, mode) == [None]
    _check_results(sandbox.dest, MODE_RESULTS.get((name, mode), RESULTS.get(name, {})))


def test_root_dir_entry_sets_the_root_mode(sandbox: Sandbox) -> None:
    sandbox.unpack("root_dir_entry", "overlay")
    assert stat.S_IMODE(os.lstat(sandbox.dest).st_mode) == 0o750
    assert int(os.lstat(sandbox.dest).st_mtime) == mf.MTIME


def test_hardlinked_symlinks_share_the_inode(sandbox: Sandbox) -> None:
    sandbox.unpack("hardlink_to_outward_symlink", "overlay")
    s, g = os.lstat(sandbox.dest / "s"), os.lstat(sandbox.dest / "g")
    assert (s.st_ino, s.st_nlink) == (g.st_ino, 2)


@pytest.mark.root
@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_overlay_xattrs_are_dropped(sandbox: Sandbox, mode: str) -> None:
    layer = mf.tar_bytes(mf.BY_NAME["overlay_xattrs"].layers[0])
    result = unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode=mode)  # type: ignore[arg-type]
    sandbox.check_invariant()
    assert os.listxattr(sandbox.dest / "d") == []
    assert os.listxattr(sandbox.dest / "d" / "x") == ["user.berth"]
    assert any("trusted.overlay.redirect" in w for w in result.warnings)
    assert any("trusted.overlay.opaque" in w for w in result.warnings)


@pytest.mark.root
@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_devices_are_made_inside(sandbox: Sandbox, resolver: str, mode: str) -> None:
    assert sandbox.unpack("devices", mode) == [None]
    null = os.lstat(sandbox.dest / "dev/berth-null")
    sda = os.lstat(sandbox.dest / "dev/berth-sda")
    fifo = os.lstat(sandbox.dest / "dev/berth-fifo")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3 and stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(sda.st_mode) and (os.major(sda.st_rdev), os.minor(sda.st_rdev)) == (8, 0)
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o600


TWO_LAYER_APPLY: dict[str, type[BerthError] | dict[str, object]] = {
    "two_layer_symlink_out": {
        "lnk": (LINK, "../sentinel"),
        "sentinel": DIR,
        "sentinel/pwned": (FILE, b"pwned\n"),
    },
    "two_layer_etc": UnsafeLayer,
    "two_layer_hostetc": {"hostetc": (LINK, "/etc"), "etc": DIR, "etc/passwd": (FILE, b"pwned\n")},
    "two_layer_whiteout_through": {"lnk": (LINK, "../sentinel")},
    "two_layer_opaque_through": {
        "keep": (FILE, b"keep\n"),
        "lnk": (LINK, "../sentinel"),
        "sentinel": DIR,
    },
    "two_layer_hardlink_through": CorruptArchive,
}


def test_every_two_layer_fixture_has_an_expectation() -> None:
    assert {f.name for f in mf.FIXTURES if len(f.layers) == 2} == set(TWO_LAYER_APPLY)


@pytest.mark.parametrize("name", sorted(TWO_LAYER_APPLY))
def test_two_layers_applied_into_one_dir(sandbox: Sandbox, resolver: str, name: str) -> None:
    outcomes = sandbox.unpack(name, "apply")
    expected = TWO_LAYER_APPLY[name]
    if isinstance(expected, dict):
        assert outcomes == [None, None]
        _check_results(sandbox.dest, expected)
    else:
        assert outcomes[0] is None
        assert type(outcomes[1]) is expected


@pytest.mark.root
@pytest.mark.parametrize("name", sorted(TWO_LAYER_APPLY))
def test_two_layers_in_overlay_dirs(sandbox: Sandbox, name: str) -> None:
    outcomes = sandbox.unpack(name, "overlay")
    # Layer 2 sees a fresh dir: only a link to a file it does not hold can fail.
    if name == "two_layer_hardlink_through":
        assert outcomes[0] is None and type(outcomes[1]) is CorruptArchive
    else:
        assert outcomes == [None, None]


def test_absolute_symlink_to_the_real_sentinel(sandbox: Sandbox, resolver: str) -> None:
    """Links naming the sentinel by its real host path resolve inside dest."""
    sentinel = str(sandbox.root / "sentinel")
    layer = mf.tar_bytes(
        [
            mf.Entry("abs", "symlink", link=sentinel),
            mf.Entry("abs/pwned", data=b"pwned\n"),
            mf.Entry("abs/sub/deep", data=b"overwritten\n"),
        ]
    )
    unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode="apply")
    sandbox.check_invariant()
    inside = sandbox.dest / sentinel.lstrip("/")
    assert (inside / "pwned").read_bytes() == b"pwned\n"
    assert (inside / "sub" / "deep").read_bytes() == b"overwritten\n"


def test_absolute_hardlink_to_the_real_sentinel(sandbox: Sandbox, resolver: str) -> None:
    layer = mf.tar_bytes([mf.Entry("h", "hardlink", link=str(sandbox.root / "sentinel/file"))])
    with pytest.raises(CorruptArchive, match="does not exist"):
        unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode="apply")
    sandbox.check_invariant()


def test_whiteout_of_the_real_sentinel_through_a_lower_symlink(
    sandbox: Sandbox, resolver: str
) -> None:
    os.symlink(str(sandbox.root / "sentinel"), sandbox.dest / "lnk")
    os.symlink("../sentinel", sandbox.dest / "rel")
    layer = mf.tar_bytes(
        [
            mf.Entry("lnk/.wh.file"),
            mf.Entry("lnk/.wh.sub"),
            mf.Entry("rel/.wh.file"),
            mf.Entry("rel/.wh..wh..opq"),
        ]
    )
    unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode="apply")
    sandbox.check_invariant()


def test_planted_symlink_replaced_not_followed(sandbox: Sandbox, resolver: str) -> None:
    """A lower layer's symlink to outside is replaced by a file of the same name."""
    os.symlink(str(sandbox.root / "sentinel/file"), sandbox.dest / "f")
    os.symlink(str(sandbox.root / "sentinel"), sandbox.dest / "d")
    layer = mf.tar_bytes(
        [mf.Entry("f", data=b"new\n"), mf.Entry("d", "dir"), mf.Entry("d/x", data=b"x\n")]
    )
    unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode="apply")
    sandbox.check_invariant()
    assert (sandbox.dest / "f").read_bytes() == b"new\n"
    assert not (sandbox.dest / "d").is_symlink()
    assert (sandbox.dest / "d" / "x").read_bytes() == b"x\n"


def test_very_deep_tree_is_removed_without_recursion(sandbox: Sandbox) -> None:
    """A lower layer's 1500-deep tree whited out: no RecursionError, nothing outside."""
    fd = os.open(sandbox.dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1500):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.symlink(str(sandbox.root / "sentinel"), "out", dir_fd=fd)
    finally:
        os.close(fd)
    layer = mf.tar_bytes([mf.Entry(".wh.d")])
    unpack_layer(io.BytesIO(layer), str(sandbox.dest), mode="apply")
    sandbox.check_invariant()
    assert os.listdir(sandbox.dest) == []
