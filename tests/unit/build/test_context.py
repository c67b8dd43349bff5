"""The build context: ignore rules, chroot-like symlinks, COPY sources, content checksums."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator

import pytest

from berth.build.context import (
    BuildContext,
    DigestCache,
    checksum,
    clamp,
    extract_context_tar,
    has_wildcards,
    resolve_sources,
    select_tree,
)
from berth.errors import BuildError, CorruptArchive


@pytest.fixture
def root() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="berth-test-context-") as path:
        yield path


def write(root: str, rel: str, data: str = "x", mode: int = 0o644) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def tree(root: str) -> None:
    for rel in [
        "a.txt",
        "b.txt",
        "c.log",
        "src/main.py",
        "src/util.py",
        "src/deep/x.py",
        "src/deep/y.txt",
        "logs/1.log",
        "logs/keep.log",
        "docs/readme.md",
    ]:
        write(root, rel, rel)


def paths(ctx: BuildContext, start: str = "") -> list[str]:
    return [e.path for e in ctx.walk(start)]


def test_clamp_and_wildcards() -> None:
    assert clamp("../../a/./b/") == "a/b"
    assert clamp("/") == "" and clamp(".") == "" and clamp("..") == ""
    assert has_wildcards("*.py") and has_wildcards("a[b]") and has_wildcards("?")
    assert not has_wildcards("a\\*b") and not has_wildcards("plain")


def test_walk_order_and_ignore(root: str) -> None:
    tree(root)
    ctx = BuildContext(root, ["*.log", "logs", "!logs/keep.log", "src/deep"])
    assert paths(ctx) == [
        "",
        "a.txt",
        "b.txt",
        "docs",
        "docs/readme.md",
        "logs",
        "logs/keep.log",
        "src",
        "src/main.py",
        "src/util.py",
    ]
    assert ctx.entry("c.log") is None
    assert ctx.entry("logs") is not None  # re-included through an exception below it
    assert ctx.entry("logs/1.log") is None
    assert ctx.entry("src/deep/x.py") is None


def test_glob_exceptions_reach_into_excluded_directories(root: str) -> None:
    tree(root)
    ctx = BuildContext(root, ["*", "!**/*.py"])
    assert paths(ctx) == ["", "src", "src/deep", "src/deep/x.py", "src/main.py", "src/util.py"]


def test_entries_describe_files(root: str) -> None:
    write(root, "f", "hello", 0o755)
    os.symlink("f", os.path.join(root, "link"))
    os.mkfifo(os.path.join(root, "fifo"))
    ctx = BuildContext(root)
    f, link, fifo = ctx.entry("f"), ctx.entry("link"), ctx.entry("fifo")
    assert f is not None and link is not None and fifo is not None
    assert (f.kind, f.size, f.mode & 0o777) == ("file", 5, 0o755)
    assert (link.kind, link.link_target) == ("symlink", "f")
    assert fifo.kind == "other"
    assert ctx.entry("missing") is None


def test_symlinks_resolve_inside_the_root(root: str) -> None:
    write(root, "etc/passwd", "inside")
    write(root, "real/file", "content")
    os.symlink("/etc/passwd", os.path.join(root, "abs"))
    os.symlink("../../../../etc/passwd", os.path.join(root, "dotdot"))
    os.symlink("real", os.path.join(root, "dirlink"))
    os.symlink("/real/../real/file", os.path.join(root, "chain"))
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("loop1", os.path.join(root, "loop2"))
    ctx = BuildContext(root)
    assert ctx.resolve("abs") == "etc/passwd"
    assert ctx.resolve("dotdot") == "etc/passwd"
    assert ctx.resolve("dirlink/file") == "real/file"
    assert ctx.resolve("chain") == "real/file"
    assert ctx.resolve("abs", follow_final=False) == "abs"
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        ctx.resolve("loop1")


def test_symlink_to_host_file_is_never_followed_out(root: str) -> None:
    os.symlink("/etc/hostname", os.path.join(root, "escape"))
    ctx = BuildContext(root)
    with pytest.raises(BuildError, match="not found"):
        resolve_sources(ctx, ["escape"])


def test_plain_sources(root: str) -> None:
    tree(root)
    ctx = BuildContext(root)
    [m] = resolve_sources(ctx, ["src/main.py"])
    assert (m.path, m.entry.kind) == ("src/main.py", "file")
    [d] = resolve_sources(ctx, ["src/"])
    assert (d.path, d.entry.kind) == ("src", "dir")
    [r] = resolve_sources(ctx, ["."])
    assert (r.path, r.entry.path) == ("", "")
    [clamped] = resolve_sources(ctx, ["../../a.txt"])
    assert clamped.path == "a.txt"
    [absolute] = resolve_sources(ctx, ["/b.txt"])
    assert absolute.path == "b.txt"


def test_symlink_sources_are_followed_but_keep_their_name(root: str) -> None:
    write(root, "target.txt", "t")
    write(root, "dir/inner", "i")
    os.symlink("target.txt", os.path.join(root, "alias.txt"))
    os.symlink("dir", os.path.join(root, "dirlink"))
    ctx = BuildContext(root)
    [f] = resolve_sources(ctx, ["alias.txt"])
    assert (f.path, f.entry.path, f.entry.kind) == ("alias.txt", "target.txt", "file")
    [d] = resolve_sources(ctx, ["dirlink"])
    assert (d.path, d.entry.kind) == ("dirlink", "dir")
    [w] = resolve_sources(ctx, ["ali*"])
    assert (w.path, w.entry.path) == ("alias.txt", "target.txt")


def test_wildcards(root: str) -> None:
    tree(root)
    ctx = BuildContext(root)

    def names(*sources: str) -> list[str]:
        return [m.path for m in resolve_sources(ctx, list(sources))]

    assert names("*.txt") == ["a.txt", "b.txt"]
    assert names("?.txt", "c.*") == ["a.txt", "b.txt", "c.log"]
    assert names("src/*.py") == ["src/main.py", "src/util.py"]
    assert names("*/deep") == ["src/deep"]
    assert names("s*") == ["src"]  # a matched directory is taken whole
    assert names("src/*/[x-y].*") == ["src/deep/x.py", "src/deep/y.txt"]
    assert names("*.none") == []


def test_wildcard_special_names(root: str) -> None:
    write(root, "arr[0].txt", "a")
    ctx = BuildContext(root)
    assert [m.path for m in resolve_sources(ctx, ["arr[[]0].txt"])] == ["arr[0].txt"]


def test_missing_sources(root: str) -> None:
    tree(root)
    ctx = BuildContext(root, ["c.log"])
    with pytest.raises(BuildError, match=r'"/nope.txt": not found') as info:
        resolve_sources(ctx, ["nope.txt"])
    assert "relative to the build context" in str(info.value)
    with pytest.raises(BuildError, match=r"excluded by \.dockerignore"):
        resolve_sources(ctx, ["c.log"])
    with pytest.raises(BuildError, match=r'"/nodir": not found'):
        resolve_sources(ctx, ["nodir/*.txt"])
    assert resolve_sources(ctx, ["*.none", "*.nada"]) == []
    with pytest.raises(BuildError, match="no source files were specified"):
        resolve_sources(ctx, ["*.none", "*.nada"], classic_rules=True)


def test_ignore_file_is_read_from_the_context(root: str) -> None:
    tree(root)
    write(root, ".dockerignore", "# comment\n*.log\n!c.log\ndocs\n")
    ctx = BuildContext.from_directory(root)
    assert ctx.entry("c.log") is not None
    assert ctx.entry("docs/readme.md") is None
    write(root, "Dockerfile.dockerignore", "a.txt\n")
    specific = BuildContext.from_directory(root, os.path.join(root, "Dockerfile"))
    assert specific.entry("a.txt") is None and specific.entry("docs") is not None


def test_not_a_directory(root: str) -> None:
    with pytest.raises(Exception, match="not a directory"):
        BuildContext(write(root, "f"))


def test_select_tree_include_and_exclude(root: str) -> None:
    tree(root)
    ctx = BuildContext(root)
    [src] = resolve_sources(ctx, ["src"])
    # patterns match whole relative paths: *.txt is not deep/y.txt
    assert [rel for rel, _ in select_tree(ctx, src, exclude=["*.txt", "deep/x.py"])] == [
        "",
        "deep",
        "deep/y.txt",
        "main.py",
        "util.py",
    ]
    assert [rel for rel, _ in select_tree(ctx, src, exclude=["**/*.txt", "*/x.py"])] == [
        "",
        "deep",
        "main.py",
        "util.py",
    ]
    assert [rel for rel, _ in select_tree(ctx, src, exclude=["deep"])] == ["", "main.py", "util.py"]
    [top] = resolve_sources(ctx, ["."])
    assert [rel for rel, _ in select_tree(ctx, top, include=["src/deep/*.py"])] == [
        "",
        "src",
        "src/deep",
        "src/deep/x.py",
    ]
    [f] = resolve_sources(ctx, ["a.txt"])
    assert [rel for rel, _ in select_tree(ctx, f, exclude=["*"])] == [""]


# -- checksums ---------------------------------------------------------------------------------


def digest(ctx: BuildContext, *sources: str, **kw: object) -> str:
    return checksum(ctx, resolve_sources(ctx, list(sources)), **kw)  # type: ignore[arg-type]


def test_checksum_covers_content_metadata_and_names_not_times(root: str) -> None:
    tree(root)
    ctx = BuildContext(root)
    base = digest(ctx, "src", "a.txt")
    assert digest(ctx, "src", "a.txt") == base
    os.utime(os.path.join(root, "src/main.py"), (1, 1))
    assert digest(ctx, "src", "a.txt") == base
    write(root, "src/main.py", "changed")
    changed = digest(ctx, "src", "a.txt")
    assert changed != base
    os.chmod(os.path.join(root, "src/main.py"), 0o600)
    assert digest(ctx, "src", "a.txt") != changed
    assert digest(ctx, "a.txt", "src") != digest(ctx, "src", "a.txt")
    os.rename(os.path.join(root, "src/util.py"), os.path.join(root, "src/util2.py"))
    assert digest(ctx, "src") != digest(ctx, "src", "a.txt")


def test_checksum_owner_mode_and_symlinks(root: str) -> None:
    write(root, "f", "x")
    os.symlink("f", os.path.join(root, "l"))
    ctx = BuildContext(root)
    assert digest(ctx, "f") != digest(ctx, "f", owner=(1000, 1000))
    assert digest(ctx, "f", owner=None) == digest(ctx, "f", owner=(os.getuid(), os.getgid()))
    assert digest(ctx, "f") != digest(ctx, "f", mode=0o600)
    d1 = checksum(ctx, resolve_sources(ctx, ["."]))
    os.remove(os.path.join(root, "l"))
    os.symlink("g", os.path.join(root, "l"))
    assert checksum(ctx, resolve_sources(ctx, ["."])) != d1


def test_ignored_files_do_not_change_the_checksum(root: str) -> None:
    tree(root)
    ctx = BuildContext(root, ["*.log", "logs"])
    before = digest(ctx, ".")
    write(root, "logs/new.log", "noise")
    write(root, "c.log", "more noise")
    assert digest(ctx, ".") == before


def test_digest_cache_avoids_rereading(root: str) -> None:
    tree(root)
    ctx = BuildContext(root)
    with DigestCache(root + "-digests.db", racy_window_ns=0) as cache:
        first = digest(ctx, ".", cache=cache)
        assert (cache.hits, cache.misses) == (0, 10)
        assert digest(ctx, ".", cache=cache) == first
        assert (cache.hits, cache.misses) == (10, 10)
        write(root, "a.txt", "edited")
        assert digest(ctx, ".", cache=cache) != first
        assert cache.misses == 11
    os.remove(root + "-digests.db")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(root + "-digests.db" + suffix):
            os.remove(root + "-digests.db" + suffix)


def test_digest_cache_skips_racy_files(root: str) -> None:
    write(root, "fresh", "x")
    ctx = BuildContext(root)
    with DigestCache(root) as cache:  # a directory: the database goes inside it
        digest(ctx, "fresh", cache=cache)
        digest(ctx, "fresh", cache=cache)
        assert cache.hits == 0 and cache.misses == 2
        assert os.path.exists(os.path.join(root, "context-digests.db"))


def test_a_vanished_file_is_reported(root: str) -> None:
    write(root, "gone", "x")
    ctx = BuildContext(root)
    matches = resolve_sources(ctx, ["gone"])
    os.remove(os.path.join(root, "gone"))
    with pytest.raises(BuildError, match="cannot read 'gone' from the build context"):
        checksum(ctx, matches)


def test_checksum_streams_large_files(root: str) -> None:
    path = os.path.join(root, "big")
    with open(path, "wb") as f:
        f.truncate(64 << 20)  # sparse: cheap on disk, still read in full
    ctx = BuildContext(root)
    tracemalloc.start()
    try:
        digest(ctx, "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


# -- tar contexts ------------------------------------------------------------------------------


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def member(
    name: str,
    data: bytes | None = None,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
    mode: int = 0o644,
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    if data is not None:
        info.size = len(data)
    return info, data


def test_extract_context_tar(root: str) -> None:
    buf = make_tar(
        [
            member("Dockerfile", b"FROM a\n"),
            member("dir", kind=tarfile.DIRTYPE, mode=0o750),
            member("dir/file", b"data", mode=0o600),
            member("link", kind=tarfile.SYMTYPE, link="dir/file"),
            member("hard", kind=tarfile.LNKTYPE, link="dir/file"),
        ],
        mode="w:gz",
    )
    extract_context_tar(buf, root)
    ctx = BuildContext(root)
    assert paths(ctx) == ["", "Dockerfile", "dir", "dir/file", "hard", "link"]
    entry = ctx.entry("dir")
    assert entry is not None and entry.mode & 0o777 == 0o750
    assert os.readlink(os.path.join(root, "link")) == "dir/file"


def test_hostile_tar_stays_inside(root: str) -> None:
    outside = root + "-outside"
    os.mkdir(outside)
    try:
        buf = make_tar(
            [
                member("../escape", b"no"),
                member("/abs", b"clamped"),
                member("out", kind=tarfile.SYMTYPE, link=outside),
                member("out/through-link", b"no"),
            ]
        )
        extract_context_tar(buf, root)
        assert os.listdir(outside) == []
        assert sorted(os.listdir(root)) == ["abs", "escape", "out"]
        assert os.path.isdir(os.path.join(root, "out")) and not os.path.islink(
            os.path.join(root, "out")
        )
    finally:
        os.rmdir(outside)


def test_not_a_tar(root: str) -> None:
    with pytest.raises(CorruptArchive, match="not a tar archive"):
        extract_context_tar(io.BytesIO(b"this is not a tarball at all" * 40), root)
