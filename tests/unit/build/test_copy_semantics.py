"""Planning ADD/COPY: where each source lands, with BuildKit's directory and slash rules."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile
import tempfile
from collections.abc import Iterator

import pytest
import zstandard

from berth.build.context import BuildContext, SourceMatch, resolve_sources, select_tree
from berth.build.copy_semantics import (
    CopyContents,
    CopyFile,
    CopyStep,
    MakeDirs,
    UnpackArchive,
    is_archive,
    plan_copy,
    split_parents,
    url_filename,
)
from berth.errors import BuildError


@pytest.fixture
def ctx() -> Iterator[BuildContext]:
    with tempfile.TemporaryDirectory(prefix="berth-test-copy-") as root:
        for rel in ["a.txt", "b.txt", "dir/x", "dir/sub/y", "other/z", "tar/archive.tar"]:
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(rel)
        yield BuildContext(root)


IMAGE = {
    "/": "dir",
    "/etc": "dir",
    "/etc/passwd": "file",
    "/existing": "dir",
    "/file": "file",
    "/existing/clash": "dir",
    "/clash": "dir",
    "/clash/a.txt": "dir",
}


def kind_at(path: str) -> str | None:
    return IMAGE.get(path)


def plan(ctx: BuildContext, sources: list[str], dest: str, **kw: object) -> list[tuple[str, ...]]:
    matches = resolve_sources(ctx, sources)
    steps = plan_copy(matches, dest, kind_at, **kw)  # type: ignore[arg-type]
    return [describe(step) for step in steps]


def describe(step: CopyStep) -> tuple[str, ...]:
    if isinstance(step, MakeDirs):
        return ("mkdir", step.path)
    if isinstance(step, CopyFile):
        return ("file", step.source.path, step.dest)
    if isinstance(step, CopyContents):
        return ("contents", step.source.path, step.dest)
    return ("unpack", step.source.path, step.dest)


def test_single_file_to_new_path_is_renamed(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt"], "/new/name") == [("mkdir", "/new"), ("file", "a.txt", "/new/name")]


def test_file_to_trailing_slash_goes_inside(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt"], "/new/dir/") == [
        ("mkdir", "/new/dir"),
        ("file", "a.txt", "/new/dir/a.txt"),
    ]


def test_file_to_existing_directory_goes_inside(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt"], "/existing") == [("file", "a.txt", "/existing/a.txt")]


def test_file_over_existing_file_replaces_it(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt"], "/file") == [("file", "a.txt", "/file")]


def test_directory_contents_are_copied_not_the_directory(ctx: BuildContext) -> None:
    assert plan(ctx, ["dir"], "/app") == [("mkdir", "/app"), ("contents", "dir", "/app")]
    assert plan(ctx, ["dir/"], "/existing") == [("contents", "dir", "/existing")]
    assert plan(ctx, ["."], "/") == [("contents", "", "/")]


def test_several_sources_into_a_directory(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt", "b.txt", "dir"], "/d/") == [
        ("mkdir", "/d"),
        ("file", "a.txt", "/d/a.txt"),
        ("file", "b.txt", "/d/b.txt"),
        ("contents", "dir", "/d"),
    ]


def test_several_files_without_slash_overwrite_like_buildkit(ctx: BuildContext) -> None:
    assert plan(ctx, ["*.txt"], "/one") == [("file", "a.txt", "/one"), ("file", "b.txt", "/one")]


def test_classic_rules_require_the_slash(ctx: BuildContext) -> None:
    with pytest.raises(BuildError, match="the destination must be a directory and end with a /"):
        plan(ctx, ["a.txt", "b.txt"], "/one", classic_rules=True)
    assert plan(ctx, ["a.txt"], "/one", classic_rules=True) == [("file", "a.txt", "/one")]


def test_a_later_source_sees_what_an_earlier_one_made(ctx: BuildContext) -> None:
    # the first directory copy creates /t, so the file then goes inside it
    assert plan(ctx, ["dir", "a.txt"], "/t") == [
        ("mkdir", "/t"),
        ("contents", "dir", "/t"),
        ("file", "a.txt", "/t/a.txt"),
    ]


def test_contents_lookup_lets_later_sources_see_nested_paths(ctx: BuildContext) -> None:
    def contents(match: SourceMatch) -> list[tuple[str, str]]:
        return [(rel, e.kind) for rel, e in select_tree(ctx, match)]

    [a] = resolve_sources(ctx, ["a.txt"])
    [d] = resolve_sources(ctx, ["dir"])
    steps = plan_copy([d, a], "/t/", kind_at, contents=contents)
    assert [describe(s) for s in steps][-1] == ("file", "a.txt", "/t/a.txt")
    with pytest.raises(BuildError, match="cannot replace to directory /t/sub with file"):
        fake = SourceMatch("sub", "sub", a.entry)
        plan_copy([d, fake], "/t/", kind_at, contents=contents)


def test_errors(ctx: BuildContext) -> None:
    with pytest.raises(BuildError, match="cannot copy to non-directory: /file"):
        plan(ctx, ["dir"], "/file")
    with pytest.raises(BuildError, match=r"cannot replace to directory /clash/a\.txt with file"):
        plan(ctx, ["a.txt"], "/clash")
    with pytest.raises(BuildError, match="/file is not a directory"):
        plan(ctx, ["a.txt"], "/file/inside")
    with pytest.raises(ValueError):
        plan(ctx, ["a.txt"], "relative")


def test_slash_dot_destination(ctx: BuildContext) -> None:
    assert plan(ctx, ["a.txt"], "/n/.") == [("mkdir", "/n"), ("file", "a.txt", "/n/a.txt")]


def test_excludes_are_carried_to_directory_copies(ctx: BuildContext) -> None:
    [d] = resolve_sources(ctx, ["dir"])
    [step] = [s for s in plan_copy([d], "/existing", kind_at, exclude=["sub"])]
    assert isinstance(step, CopyContents) and step.exclude == ("sub",)


def test_parents_copy_is_a_filtered_copy_of_the_part_before_slash_dot(ctx: BuildContext) -> None:
    parent, pattern, required = split_parents("./dir/./sub/y")
    assert (parent, pattern, required) == ("/dir", "sub/y", "/dir/sub/y")
    matches = resolve_sources(ctx, [parent])
    [step] = plan_copy(matches, "/parents/", kind_at, include=[pattern])[1:]
    assert isinstance(step, CopyContents)
    assert (step.dest, step.include) == ("/parents", ("sub/y",))
    kept = [rel for rel, _ in select_tree(ctx, step.source, include=step.include)]
    assert kept == ["", "sub", "sub/y"]


def test_add_unpacks_archives_into_the_destination(ctx: BuildContext) -> None:
    matches = resolve_sources(ctx, ["tar/archive.tar", "a.txt"])
    steps = plan_copy(matches, "/opt/x", kind_at, unpack=lambda m: m.path.endswith(".tar"))
    assert [describe(s) for s in steps] == [
        ("mkdir", "/opt"),
        ("mkdir", "/opt/x"),
        ("unpack", "tar/archive.tar", "/opt/x"),
        ("file", "a.txt", "/opt/x/a.txt"),
    ]
    assert isinstance(steps[2], UnpackArchive)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x/a.txt", ("/", "x/a.txt", "/x/a.txt")),
        ("./x/./y/*.txt", ("/x", "y/*.txt", None)),
        ("/abs/./rel/f", ("/abs", "rel/f", "/abs/rel/f")),
        ("src/**/*.txt", ("/", "src/**/*.txt", None)),
        ("../up/./f", ("/up", "f", "/up/f")),
    ],
)
def test_split_parents(source: str, expected: tuple[str, str, str | None]) -> None:
    assert split_parents(source) == expected


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://e.com/path/file.tar.gz", "file.tar.gz"),
        ("https://e.com/", "__unnamed__"),
        ("https://e.com", "__unnamed__"),
        ("https://e.com/dir/?q=1", "dir"),
    ],
)
def test_url_filename(url: str, name: str) -> None:
    assert url_filename(url) == name


def tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "archive"),
    [
        (tar_bytes(), True),
        (gzip.compress(tar_bytes()), True),
        (lzma.compress(tar_bytes()), True),
        (__import__("bz2").compress(tar_bytes()), True),
        (zstandard.ZstdCompressor().compress(tar_bytes()), True),
        (b"plain text file\n" * 100, False),
        (gzip.compress(b"gzip but not a tar" * 100), False),
        (b"", False),
    ],
)
def test_is_archive(data: bytes, archive: bool) -> None:
    f = io.BytesIO(data)
    assert is_archive(f) is archive
    assert f.tell() == 0
