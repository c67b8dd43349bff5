"""docker cp's path rules and argument forms, without a container."""

from __future__ import annotations

import pytest

from berth.cli.container_extra import split_copy_argument
from berth.engine.container_archive import container_path, copy_target, go_file_mode
from berth.errors import InvalidArgument, PathNotFound


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web:/etc/hosts", ("web", "/etc/hosts")),
        ("web:relative", ("web", "relative")),
        ("/abs/a:b", (None, "/abs/a:b")),
        ("./a:b", (None, "./a:b")),
        ("plain", (None, "plain")),
        ("-", (None, "-")),
        (":x", (None, ":x")),
    ],
)
def test_split_copy_argument(text: str, expected: tuple[str | None, str]) -> None:
    assert split_copy_argument(text) == expected


@pytest.mark.parametrize(
    ("src", "src_is_dir", "dest", "dest_kind", "expected"),
    [
        ("/etc/hosts", False, "/tmp", "dir", ("/tmp", "hosts")),
        ("/etc/hosts", False, "/tmp/out", None, ("/tmp", "out")),
        ("/etc/hosts", False, "/tmp/old", "file", ("/tmp", "old")),
        ("/etc", True, "/tmp", "dir", ("/tmp", "etc")),
        ("/etc/", True, "/tmp", "dir", ("/tmp", "etc")),
        ("/etc/.", True, "/tmp", "dir", ("/tmp", ".")),
        ("/etc", True, "/tmp/new", None, ("/tmp", "new")),
        ("/etc/.", True, "/tmp/new", None, ("/tmp", "new")),
        ("/", True, "/tmp", "dir", ("/tmp", ".")),
    ],
)
def test_copy_targets_follow_dockers_rules(
    src: str, src_is_dir: bool, dest: str, dest_kind: str | None, expected: tuple[str, str]
) -> None:
    assert copy_target(container_path(src), src_is_dir, container_path(dest), dest_kind) == (
        expected
    )


def test_a_directory_onto_a_file_and_a_missing_directory_are_errors() -> None:
    with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
        copy_target(container_path("/etc"), True, container_path("/tmp/f"), "file")
    with pytest.raises(PathNotFound, match="does not exist"):
        copy_target(container_path("/etc/hosts"), False, container_path("/tmp/new/"), None)


def test_container_paths_are_relative_to_the_root() -> None:
    assert container_path("etc/hosts").path == "/etc/hosts"
    assert container_path("etc/.").contents
    assert not container_path("/etc").contents


def test_go_file_modes() -> None:
    assert go_file_mode(0o040755) == (1 << 31) | 0o755
    assert go_file_mode(0o120777) == (1 << 27) | 0o777
    assert go_file_mode(0o104755) == (1 << 23) | 0o755
    assert go_file_mode(0o020666) == (1 << 26) | (1 << 21) | 0o666
