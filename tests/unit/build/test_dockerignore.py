""".dockerignore reading and matching with moby/patternmatcher's rules."""

from __future__ import annotations

import os
import tempfile

import pytest

from berth import pathmatch
from berth.build.dockerignore import (
    IgnoreMatcher,
    MatchInfo,
    find_ignore_file,
    go_clean,
    read_ignore_file,
)
from berth.errors import InvalidArgument


def test_reading_the_file() -> None:
    text = (
        "\ufeff# comment\n  # not a comment: leading space\n\n   \n  *.log  \n!  keep.log\n"
        "/abs/path/\n./rel/../other//x\n!\n/\n!/leading\n"
    )
    assert read_ignore_file(text) == [
        "# not a comment: leading space",
        "*.log",
        "!keep.log",
        "abs/path",
        "other/x",
        "!",
        "/",
        "!leading",
    ]


def test_crlf_lines() -> None:
    assert read_ignore_file("a\r\nb\r\n") == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("", "."),
        ("a/b/", "a/b"),
        ("./a", "a"),
        ("a/../..", ".."),
        ("/../a", "/a"),
        ("a//b/./c", "a/b/c"),
    ],
)
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("*", "abc", True),
        ("*", "a/b", False),
        ("a*/b", "abc/b", True),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b?c*x", "abxbbxdbxebxczzx", True),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[e-g]", "abc", False),
        ("ab[^c]", "abc", False),
        ("ab[^e-g]", "abc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "ab", False),
        ("a?b", "a☺b", True),
        ("a[^a]b", "a☺b", True),
        ("a???b", "a☺b", False),
        ("*x", "xxx", True),
        ("[\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("a/*", "a/", True),
    ],
)
def test_filepath_match_like_go(pattern: str, name: str, matched: bool) -> None:
    assert pathmatch.match(pattern, name) is matched


@pytest.mark.parametrize(
    "pattern", ["[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[a-b-c]", "a\\"]
)
def test_filepath_match_bad_patterns(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        pathmatch.match(pattern, "a")


def test_bad_pattern_is_reported_even_when_an_earlier_chunk_fails() -> None:
    with pytest.raises(InvalidArgument):
        pathmatch.match("x*[", "abc")


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "dir/a.log", False),
        (["**/*.log"], "dir/sub/a.log", True),
        (["**/*.log"], "a.log", True),
        (["**"], "anything/at/all", True),
        (["dir"], "dir/sub/file", True),
        (["dir/"], "dir/file", True),
        (["dir/**"], "dir/file", True),
        (["dir/**"], "dir", False),
        (["dir/**/x"], "dir/x", True),
        (["dir/**/x"], "dir/a/b/x", True),
        (["**/node_modules"], "a/node_modules/b", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["\\*"], "*", True),
        (["\\*"], "x", False),
        (["*", "!keep"], "keep", False),
        (["*", "!keep"], "drop", True),
        (["*", "!keep", "keep"], "keep", True),
        (["logs", "!logs/keep.log"], "logs/keep.log", False),
        (["logs", "!logs/keep.log"], "logs/other.log", True),
        (["/abs"], "abs", False),
        ([".git"], ".git/HEAD", True),
        (["a.b"], "axb", False),
        (["a+b(c)"], "a+b(c)", True),
        (["foo**"], "foobar/baz", True),
        (["**foo"], "xfoo", True),
        (["  spaced  "], "spaced", True),
        (["./dir/../other"], "other/file", True),
    ],
)
def test_excluded(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).excluded(path) is excluded


def test_match_with_parents_agrees_along_a_walk() -> None:
    matcher = IgnoreMatcher(["dir", "!dir/keep*", "**/*.tmp", "other/*/x"])
    parent_info: dict[str, MatchInfo] = {}
    for path in [
        "dir",
        "dir/keep.txt",
        "dir/drop.txt",
        "dir/keep.tmp",
        "other",
        "other/a",
        "other/a/x",
        "other/a/y",
    ]:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        excluded, info = matcher.match_with_parents(path, parent_info.get(parent))
        parent_info[path] = info
        assert excluded is matcher.excluded(path), path


def test_can_skip_dir() -> None:
    assert IgnoreMatcher(["build"]).can_skip_dir("build")
    prefix = IgnoreMatcher(["build", "!build/keep", "!other/**"])
    assert not prefix.can_skip_dir("build")
    assert prefix.can_skip_dir("cache")
    assert not IgnoreMatcher(["*", "!**/*.py"]).can_skip_dir("anything")


def test_bad_patterns_are_reported() -> None:
    with pytest.raises(InvalidArgument, match='illegal exclusion pattern: "!"'):
        IgnoreMatcher(["!"])
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        IgnoreMatcher(["[unclosed"])


def test_empty_matcher_excludes_nothing() -> None:
    matcher = IgnoreMatcher(["", "   "])
    assert not matcher
    assert not matcher.excluded("x")


def test_find_ignore_file_prefers_the_dockerfile_specific_one() -> None:
    with tempfile.TemporaryDirectory(prefix="berth-test-") as root:
        assert find_ignore_file(root) is None
        general = os.path.join(root, ".dockerignore")
        with open(general, "w") as f:
            f.write("x\n")
        dockerfile = os.path.join(root, "app.Dockerfile")
        assert find_ignore_file(root, dockerfile) == general
        specific = dockerfile + ".dockerignore"
        with open(specific, "w") as f:
            f.write("y\n")
        assert find_ignore_file(root, dockerfile) == specific
