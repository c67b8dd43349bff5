"""list_changes: what `docker diff` shows, from an overlay upper dir and its lower dirs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from berth.store.changes import Change, list_changes


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("berth-changes")


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, 0)


def _files(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)


@pytest.fixture
def layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("berth-changes")
    upper, top, bottom = base / "upper", base / "lower-top", base / "lower-bottom"
    for d in (upper, top, bottom):
        d.mkdir()
    _files(
        bottom,
        "etc/passwd",
        "etc/gone",
        "etc/shadow",
        "var/cache/a",
        "var/cache/b/c",
        "var/cache/kept",
        "usr/bin/old",
        "deleted-below",
    )
    _files(top, "etc/hosts", "var/cache/d", "usr/bin/")
    _whiteout(top / "deleted-below")
    return upper, top, bottom


def test_added_changed_deleted(layers: tuple[Path, Path, Path]) -> None:
    upper, top, bottom = layers
    _files(upper, "etc/passwd", "etc/hosts", "etc/new", "opt/app/x", "deleted-below")
    _whiteout(upper / "etc/gone")
    _whiteout(upper / "usr-never-existed")
    changes = list_changes(str(upper), [str(top), str(bottom)])
    assert changes == [
        Change("A", "/deleted-below"),  # whited out in a lower: new again
        Change("C", "/etc"),
        Change("D", "/etc/gone"),
        Change("C", "/etc/hosts"),
        Change("A", "/etc/new"),
        Change("C", "/etc/passwd"),
        Change("A", "/opt"),
        Change("A", "/opt/app"),
        Change("A", "/opt/app/x"),
        Change("D", "/usr-never-existed"),
    ]


@pytest.mark.root
def test_opaque_directory(layers: tuple[Path, Path, Path]) -> None:
    upper, top, bottom = layers
    _files(upper, "var/cache/kept", "var/cache/fresh")
    os.setxattr(upper / "var/cache", "trusted.overlay.opaque", b"y")
    assert list_changes(str(upper), [str(top), str(bottom)]) == [
        Change("C", "/var"),
        Change("C", "/var/cache"),
        Change("D", "/var/cache/a"),
        Change("D", "/var/cache/b"),
        Change("D", "/var/cache/d"),
        Change("A", "/var/cache/fresh"),
        Change("C", "/var/cache/kept"),
    ]


def test_no_lowers_everything_is_added(work: Path) -> None:
    upper = work / "upper"
    _files(upper, "a/b", "c")
    assert list_changes(str(upper)) == [Change("A", "/a"), Change("A", "/a/b"), Change("A", "/c")]


def test_symlinks_in_lowers_are_not_followed(work: Path) -> None:
    upper, lower, outside = work / "upper", work / "lower", work / "outside"
    _files(outside, "etc/passwd")
    lower.mkdir()
    os.symlink(str(outside / "etc"), lower / "etc")
    _files(upper, "etc/passwd")
    assert list_changes(str(upper), [str(lower)]) == [
        Change("C", "/etc"),
        Change("A", "/etc/passwd"),
    ]


def test_empty_upper(work: Path) -> None:
    (work / "upper").mkdir()
    assert list_changes(str(work / "upper"), []) == []
