"""Where ADD and COPY put things: a pure plan, computed the way BuildKit's copy does it.

Given the resolved sources (:func:`berth.build.context.resolve_sources`), the destination
made absolute (``StageScope.apply`` gives it: relative destinations are under WORKDIR; a
trailing ``/`` is kept) and a callback saying what already exists in the image,
:func:`plan_copy` lists the steps, in order. The rules (BuildKit's, one source at a time,
each seeing what the previous ones wrote):

- The destination's directory is created first, missing parents included (``mkdir -p``,
  mode 0755 or the ``--chmod`` mode): the destination itself when it ends in ``/`` (or
  ``/.``), else its parent.
- A file (or symlink, or special file) goes *into* the destination when that is an
  existing directory, keeping its name; otherwise it *becomes* the destination (renamed).
  Copying a file where a directory of that name exists is an error.
- A directory's *contents* are copied, merged into the destination directory, which is
  created when missing; the directory itself is never nested (``COPY src /app`` fills
  ``/app``). Copying a directory onto an existing file is an error.
- Several sources with a destination lacking the trailing ``/`` are not an error in
  BuildKit (each source is copied in turn; the last file wins, moby/buildkit#1853); pass
  ``classic_rules=True`` for the classic builder's error instead.
- ``ADD`` of a local tar archive (plain, gzip, bzip2, xz or zstd) unpacks it into the
  destination, as a directory; remote files are never unpacked.
- ``COPY --parents``: see :func:`split_parents`; the copy is then a directory copy of the
  part before ``/./`` (the context root when there is none) filtered by the pattern.
"""

from __future__ import annotations

import posixpath

from berth.build.context import has_wildcards
from berth.build.dockerignore import go_clean
from berth.errors import BuildError
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import IO

    from berth.build.context import SourceMatch

    # kind_at(path) -> "dir", "file" (anything that is not a directory) or None (absent), with
    # symlinks in the image followed inside its root, as the copy's stat does.
    KindLookup = Callable[[str], str | None]
    # contents(match) -> (relative path, kind) of everything a directory source copies.
    ContentsLookup = Callable[[SourceMatch], Iterable[tuple[str, str]]]

__all__ = [
    "CopyContents",
    "CopyFile",
    "CopyStep",
    "MakeDirs",
    "UnpackArchive",
    "is_archive",
    "plan_copy",
    "split_parents",
    "url_filename",
]


class MakeDirs(FrozenValue):
    """Create ``path`` and missing parents (mode 0755, or ``--chmod``; ``--chown`` owner)."""

    __slots__ = ("path",)
    path: str

    def __init__(self, path: str) -> None:
        init_fields(self, path=path)


class CopyFile(FrozenValue):
    """Write the (non-directory) source at ``dest``, replacing a non-directory there."""

    __slots__ = ("dest", "source")
    source: SourceMatch
    dest: str

    def __init__(self, source: SourceMatch, dest: str) -> None:
        init_fields(self, source=source, dest=dest)


class CopyContents(FrozenValue):
    """Merge the contents of directory ``source`` into directory ``dest``.

    ``dest`` keeps its own metadata if it existed; subdirectories that exist take the
    source's mode and owner; ``include``/``exclude`` filter paths below the source.
    """

    __slots__ = ("dest", "exclude", "include", "source")
    source: SourceMatch
    dest: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def __init__(
        self,
        source: SourceMatch,
        dest: str,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
    ) -> None:
        init_fields(self, source=source, dest=dest, include=include, exclude=exclude)


class UnpackArchive(FrozenValue):
    """Extract the tar archive ``source`` into directory ``dest`` (ADD only)."""

    __slots__ = ("dest", "source")
    source: SourceMatch
    dest: str

    def __init__(self, source: SourceMatch, dest: str) -> None:
        init_fields(self, source=source, dest=dest)


CopyStep = MakeDirs | CopyFile | CopyContents | UnpackArchive


class _Image:
    """The image as the plan changes it: the caller's view plus what earlier steps wrote."""

    def __init__(self, kind_at: KindLookup) -> None:
        self.kind_at = kind_at
        self.written: dict[str, str] = {}
        self.fresh_dirs: set[str] = set()

    def kind(self, path: str) -> str | None:
        if path in self.written:
            return self.written[path]
        parent = path
        while parent not in ("/", ""):
            parent = posixpath.dirname(parent)
            if parent in self.written:
                if self.written[parent] != "dir" or parent in self.fresh_dirs:
                    return None
                break
        return self.kind_at(path)

    def make_dirs(self, path: str, steps: list[CopyStep]) -> None:
        missing = []
        current = path
        while current != "/":
            kind = self.kind(current)
            if kind == "dir":
                break
            if kind is not None:
                raise BuildError(
                    f"cannot create directory {path}: {current} is not a directory",
                    hint="choose a destination that is a directory, or remove the file first",
                )
            missing.append(current)
            current = posixpath.dirname(current)
        if missing:
            steps.append(MakeDirs(path))
        for created in missing:
            self.written[created] = "dir"
            self.fresh_dirs.add(created)

    def add_tree(self, dest: str, entries: Iterable[tuple[str, str]]) -> None:
        for rel, kind in entries:
            if rel:
                self.written[posixpath.join(dest, rel)] = "dir" if kind == "dir" else "file"


def plan_copy(
    sources: Sequence[SourceMatch],
    dest: str,
    kind_at: KindLookup,
    *,
    contents: ContentsLookup | None = None,
    unpack: Callable[[SourceMatch], bool] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    classic_rules: bool = False,
    instruction: str = "COPY",
) -> list[CopyStep]:
    """The steps copying ``sources`` to absolute ``dest`` takes, in order.

    ``contents`` lets the plan know what directory sources write (so a later source sees
    it); ``unpack`` says which sources are archives ADD extracts; ``include`` is the
    ``--parents`` pattern (plan each ``--parents`` source on its own) and ``exclude`` the
    ``--exclude`` patterns, both handed to the directory copies.
    """
    if not dest.startswith("/"):
        raise ValueError(f"destination must be absolute, not {dest!r}")
    if classic_rules and len(sources) > 1 and not dest.endswith("/"):
        raise BuildError(
            f"When using {instruction} with more than one source file, the destination must "
            "be a directory and end with a /",
            hint=f"write the destination as {dest}/",
        )
    image = _Image(kind_at)
    steps: list[CopyStep] = []
    for source in sources:
        _plan_one(source, dest, image, steps, contents, unpack, (tuple(include), tuple(exclude)))
    return steps


def _plan_one(
    source: SourceMatch,
    dest: str,
    image: _Image,
    steps: list[CopyStep],
    contents: ContentsLookup | None,
    unpack: Callable[[SourceMatch], bool] | None,
    filters: tuple[tuple[str, ...], tuple[str, ...]],
) -> None:
    head, tail = posixpath.split(dest)
    image.make_dirs(go_clean(dest if tail in ("", ".") else head), steps)
    target = go_clean(dest)
    if unpack is not None and source.entry.kind == "file" and unpack(source):
        image.make_dirs(target, steps)
        steps.append(UnpackArchive(source, target))
        return
    target_kind = image.kind(target)
    if source.entry.kind == "dir":
        if target_kind is None:
            image.make_dirs(target, steps)
        elif target_kind != "dir":
            raise BuildError(
                f"cannot copy to non-directory: {target}",
                hint=f"{source.source!r} is a directory; copy it to a directory path",
            )
        steps.append(CopyContents(source, target, *filters))
        image.written.setdefault(target, "dir")
        if contents is not None:
            image.add_tree(target, contents(source))
        return
    if target_kind == "dir":
        target = posixpath.join(target, posixpath.basename(source.path) or source.entry.name)
    image.make_dirs(posixpath.dirname(target), steps)
    if image.kind(target) == "dir":
        raise BuildError(
            f"cannot replace to directory {target} with file",
            hint="remove the directory first or copy to another path",
        )
    steps.append(CopyFile(source, target))
    image.written[target] = "file"


def split_parents(source: str) -> tuple[str, str, str | None]:
    """``COPY --parents`` source to ``(directory, include pattern, required path)``.

    Everything after ``/./`` keeps its directories at the destination; without ``/./`` the
    whole path does (the directory is the context root). The required path is what must
    exist when there are no wildcards.
    """
    parent, sep, pattern = source.partition("/./")
    if not sep:
        parent, pattern = "/", source
    pattern = go_clean("/" + pattern).lstrip("/")
    parent = go_clean("/" + parent)
    required = None
    if not has_wildcards_path(parent) and not has_wildcards_path(pattern):
        required = go_clean(posixpath.join(parent, pattern))
    return parent, pattern, required


def has_wildcards_path(path: str) -> bool:
    return any(has_wildcards(part) for part in path.split("/"))


def url_filename(url: str) -> str:
    """The file name ADD gives a downloaded URL: its path's last element or ``__unnamed__``."""
    try:
        import urllib.parse

        path = urllib.parse.urlsplit(url).path
    except ValueError:
        return "__unnamed__"
    base = posixpath.basename(path.rstrip("/")) if path not in ("", "/") else ""
    return base if base not in ("", ".", "/") else "__unnamed__"


def is_archive(fileobj: IO[bytes]) -> bool:
    """Whether a file is a tar archive ADD unpacks (plain, gzip, bzip2, xz or zstd)."""
    import tarfile

    try:
        with tarfile.open(fileobj=_decompressed(fileobj), mode="r|") as archive:
            return archive.next() is not None
    except Exception:  # any decompression or tar error: not an archive, copy it as a file
        return False
    finally:
        fileobj.seek(0)


def _decompressed(fileobj: IO[bytes]) -> IO[bytes]:
    head = fileobj.read(6)
    fileobj.seek(0)
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=fileobj)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(fileobj)
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(fileobj)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(fileobj)
        return reader
    return fileobj
