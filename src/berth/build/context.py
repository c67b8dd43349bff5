"""The build context: a directory seen through ``.dockerignore``, never read outside its root.

:class:`BuildContext` is a read-only view of a context directory (a tarball or stdin tar is
first unpacked safely with :func:`extract_context_tar`):

- paths are relative to the root, slash-separated; ``..`` and a leading ``/`` are clamped to
  the root, as BuildKit cleans ``COPY ../x`` to ``x``;
- symbolic links are resolved as if the root were ``/`` (a chroot): an absolute target
  starts again at the root, ``..`` stops at the root, so nothing outside is ever reached;
- a path the ignore patterns exclude does not exist; an excluded directory still appears
  when an ``!`` exception re-includes something below it (as the BuildKit client sends it).

:func:`resolve_sources` finds what ``ADD``/``COPY`` sources name, with Go's
``filepath.Match`` wildcards applied per path component (``*`` ``?`` ``[...]``; a matched
directory is taken whole, not searched further). A wildcard that matches nothing is not an
error (BuildKit), a missing plain path is.

:func:`checksum` digests what a set of sources would copy (relative paths, types, permission
bits, owners as the copy will set them, symlink targets, file contents; never times),
reading files in chunks and remembering file digests in a :class:`DigestCache` keyed by
``(dev, inode, size, mtime_ns, ctime_ns)``, so an unchanged context is not read again.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time

from berth import pathmatch
from berth.build.dockerignore import (
    IgnoreMatcher,
    MatchInfo,
    find_ignore_file,
    go_clean,
    read_ignore_file,
)
from berth.errors import BuildError, CorruptArchive, InvalidArgument
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib
    import tarfile
    from collections.abc import Iterator, Sequence
    from typing import IO

__all__ = [
    "BuildContext",
    "ContextEntry",
    "DigestCache",
    "SourceMatch",
    "checksum",
    "clamp",
    "extract_context_tar",
    "has_wildcards",
    "resolve_sources",
    "select_tree",
]

_MAX_SYMLINKS = 255
_CHUNK = 1 << 20


def clamp(path: str) -> str:
    """A context path cleaned and clamped to the root: ``../a/./b/`` is ``a/b``; root is ``""``."""
    cleaned = go_clean("/" + path)
    return cleaned.lstrip("/")


def has_wildcards(component: str) -> bool:
    """Whether a path component has an unescaped ``*``, ``?`` or ``[``."""
    i = 0
    while i < len(component):
        ch = component[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


class ContextEntry(FrozenValue):
    """One file, directory, symlink or special file of the context, from ``lstat``."""

    __slots__ = (
        "ctime_ns",
        "dev",
        "gid",
        "host_path",
        "ino",
        "link_target",
        "mode",
        "mtime_ns",
        "nlink",
        "path",
        "size",
        "uid",
    )
    path: str  # relative to the root; "" is the root itself
    host_path: str
    mode: int  # st_mode: type and permission bits
    size: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    nlink: int
    link_target: str

    def __init__(
        self,
        path: str,
        host_path: str,
        mode: int,
        size: int,
        uid: int,
        gid: int,
        mtime_ns: int,
        ctime_ns: int,
        dev: int,
        ino: int,
        nlink: int,
        link_target: str = "",
    ) -> None:
        init_fields(
            self,
            path=path,
            host_path=host_path,
            mode=mode,
            size=size,
            uid=uid,
            gid=gid,
            mtime_ns=mtime_ns,
            ctime_ns=ctime_ns,
            dev=dev,
            ino=ino,
            nlink=nlink,
            link_target=link_target,
        )

    @property
    def kind(self) -> str:
        if stat.S_ISDIR(self.mode):
            return "dir"
        if stat.S_ISREG(self.mode):
            return "file"
        if stat.S_ISLNK(self.mode):
            return "symlink"
        return "other"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class BuildContext:
    """A context directory and its ignore patterns."""

    def __init__(self, root: str, ignore_patterns: Sequence[str] = ()) -> None:
        if not os.path.isdir(root):
            raise InvalidArgument(
                f"build context {root!r} is not a directory", hint="pass a directory or a tar"
            )
        self.root = os.path.realpath(root)
        self.ignore = IgnoreMatcher(ignore_patterns)
        self._info: dict[str, tuple[bool, MatchInfo]] = {}
        self._has_visible: dict[str, bool] = {}

    @classmethod
    def from_directory(cls, root: str, dockerfile: str | None = None) -> BuildContext:
        """A context with the ignore file that applies (see dockerignore.find_ignore_file)."""
        ignore_file = find_ignore_file(root, dockerfile)
        patterns: list[str] = []
        if ignore_file is not None:
            with open(ignore_file, encoding="utf-8", errors="surrogateescape") as f:
                patterns = read_ignore_file(f.read())
        return cls(root, patterns)

    def host_path(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    # -- visibility --------------------------------------------------------------------------
    def _match(self, path: str) -> tuple[bool, MatchInfo]:
        cached = self._info.get(path)
        if cached is None:
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            parent_info = self._match(parent)[1] if parent else None
            cached = self.ignore.match_with_parents(path, parent_info)
            self._info[path] = cached
        return cached

    def _skipped_below(self, path: str) -> bool:
        """Whether an excluded ancestor of ``path`` hides its whole subtree."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            ancestor = "/".join(parts[:i])
            if self._match(ancestor)[0] and self.ignore.can_skip_dir(ancestor):
                return True
        return False

    def visible(self, path: str, st: os.stat_result | None = None) -> bool:
        """Whether ``path`` (clean, relative) is part of the context the builder sees."""
        if not path or not self.ignore:
            return True
        if self._skipped_below(path):
            return False
        if not self._match(path)[0]:
            return True
        if st is None:
            try:
                st = os.lstat(self.host_path(path))
            except OSError:
                return False
        if not stat.S_ISDIR(st.st_mode) or self.ignore.can_skip_dir(path):
            return False
        return self._any_visible_below(path)

    def _any_visible_below(self, path: str) -> bool:
        known = self._has_visible.get(path)
        if known is None:
            known = any(True for _ in self._walk_dir(path, []))
            self._has_visible[path] = known
        return known

    # -- lookups -----------------------------------------------------------------------------
    def entry(self, path: str) -> ContextEntry | None:
        """The entry at ``path`` (not following a final symlink), or None if absent/ignored."""
        path = clamp(path)
        try:
            st = os.lstat(self.host_path(path))
        except OSError:
            return None
        if not self.visible(path, st):
            return None
        return self._entry(path, st)

    def _entry(self, path: str, st: os.stat_result) -> ContextEntry:
        host = self.host_path(path)
        target = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
        return ContextEntry(
            path=path, host_path=host, mode=st.st_mode, size=st.st_size, uid=st.st_uid,
            gid=st.st_gid, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, dev=st.st_dev,
            ino=st.st_ino, nlink=st.st_nlink, link_target=target,
        )  # fmt: skip

    def resolve(self, path: str, *, follow_final: bool = True) -> str:
        """``path`` with symlinks resolved inside the root (as continuity's ``RootPath``)."""
        pending = [p for p in clamp(path).split("/") if p]
        done: list[str] = []
        links = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            if not pending and not follow_final:
                done.append(part)
                break
            entry = self.entry(candidate)
            if entry is None or entry.kind != "symlink":
                done.append(part)
                continue
            links += 1
            if links > _MAX_SYMLINKS:
                raise BuildError(
                    f"too many levels of symbolic links resolving {path!r} in the build context"
                )
            target = entry.link_target
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
        return "/".join(done)

    # -- walking -----------------------------------------------------------------------------
    def walk(self, path: str = "") -> Iterator[ContextEntry]:
        """Visible entries at and below ``path`` (not following symlinks), parents first,
        names in byte order; excluded directories appear only above something included."""
        path = clamp(path)
        top = self.entry(path)
        if top is None:
            return
        yield top
        if top.kind == "dir":
            yield from self._walk_dir(path, [])

    def _walk_dir(
        self, path: str, pending: list[tuple[str, os.stat_result]]
    ) -> Iterator[ContextEntry]:
        """Children of ``path``; ``pending`` holds excluded directories not yet emitted."""
        try:
            names = sorted(os.listdir(self.host_path(path)), key=os.fsencode)
        except OSError:
            return
        for name in names:
            child = f"{path}/{name}" if path else name
            try:
                st = os.lstat(self.host_path(child))
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            excluded = bool(self.ignore) and self._match(child)[0]
            if excluded:
                if not is_dir or self.ignore.can_skip_dir(child):
                    continue
                pending.append((child, st))
                yield from self._walk_dir(child, pending)
                if pending and pending[-1][0] == child:
                    pending.pop()
                continue
            for parent, parent_st in pending:
                yield self._entry(parent, parent_st)
            pending.clear()
            yield self._entry(child, st)
            if is_dir:
                yield from self._walk_dir(child, pending)

    def open(self, entry: ContextEntry) -> IO[bytes]:
        """Open a regular file of the context for reading, refusing to follow symlinks."""
        fd = os.open(entry.host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return os.fdopen(fd, "rb")


class SourceMatch(FrozenValue):
    """One thing an ADD/COPY source names.

    ``path`` is the matched path as named (its last component gives the name at the
    destination); ``entry`` is what is copied: the symlink-resolved entry.
    """

    __slots__ = ("entry", "path", "source")
    source: str
    path: str
    entry: ContextEntry

    def __init__(self, source: str, path: str, entry: ContextEntry) -> None:
        init_fields(self, source=source, path=path, entry=entry)


def resolve_sources(
    context: BuildContext,
    sources: Sequence[str],
    *,
    follow_links: bool = True,
    classic_rules: bool = False,
) -> list[SourceMatch]:
    """What each ADD/COPY source names, in order; raises BuildError for a missing path.

    Wildcards matching nothing are fine (BuildKit); with ``classic_rules`` (the classic
    builder) nothing matched at all is the error "no source files were specified".
    """
    matches: list[SourceMatch] = []
    for source in sources:
        matches += _resolve_one(context, source, follow_links)
    if classic_rules and not matches:
        raise BuildError(
            "COPY failed: no source files were specified",
            hint=f"no file in the build context matches {', '.join(map(repr, sources))}",
        )
    return matches


def _resolve_one(context: BuildContext, source: str, follow_links: bool) -> list[SourceMatch]:
    path = clamp(source)
    parts = path.split("/") if path else []
    first_wild = next((i for i, p in enumerate(parts) if has_wildcards(p)), None)
    if first_wild is None:
        return [_plain(context, source, path, follow_links)]
    base = context.resolve("/".join(parts[:first_wild]))
    base_entry = context.entry(base)
    if base_entry is None or base_entry.kind != "dir":
        raise _not_found(context, source, "/".join(parts[:first_wild]))
    pattern = "/".join(parts[first_wild:])
    found = []
    for rel, entry in _wildcard_walk(context, base, pattern):
        if follow_links and entry.kind == "symlink":
            resolved = context.entry(context.resolve(entry.path))
            if resolved is None:
                raise _not_found(context, source, entry.path)
            entry = resolved
        found.append(SourceMatch(source, rel, entry))
    return found


def _wildcard_walk(
    context: BuildContext, base: str, pattern: str
) -> Iterator[tuple[str, ContextEntry]]:
    """Entries below ``base`` whose path relative to it matches ``pattern`` (Go Walk order)."""
    skip: str | None = None
    for entry in context.walk(base):
        if entry.path == base:
            continue
        if skip is not None and entry.path.startswith(skip):
            continue
        rel = entry.path[len(base) + 1 :] if base else entry.path
        try:
            matched = pathmatch.match(pattern, rel)
        except InvalidArgument:
            matched = False
        if matched:
            yield entry.path, entry
            if entry.kind == "dir":
                skip = entry.path + "/"


def _plain(context: BuildContext, source: str, path: str, follow_links: bool) -> SourceMatch:
    resolved = context.resolve(path, follow_final=follow_links)
    entry = context.entry(resolved)
    if entry is None:
        raise _not_found(context, source, path)
    return SourceMatch(source, path, entry)


def _not_found(context: BuildContext, source: str, path: str) -> BuildError:
    hint = f"paths are relative to the build context {context.root}"
    if os.path.lexists(context.host_path(path)) and not context.visible(path):
        hint = f"{path!r} is excluded by .dockerignore; remove it from there to copy it"
    return BuildError(f'failed to compute cache key: "/{path}": not found (source {source!r})',
                      hint=hint)  # fmt: skip


def select_tree(
    context: BuildContext,
    match: SourceMatch,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[tuple[str, ContextEntry]]:
    """What copying ``match`` takes: ``(path relative to the source, entry)``, parents first.

    The source itself comes first with the relative path ``""``. ``include`` (the pattern of
    ``COPY --parents``) and ``exclude`` (``--exclude``) apply to paths below the source, with
    .dockerignore's matching rules; a directory leading to an included path is kept.
    """
    root = match.entry
    yield "", root
    if root.kind != "dir":
        return
    includer = IgnoreMatcher(include) if include else None
    excluder = IgnoreMatcher(exclude) if exclude else None
    infos: dict[str, tuple[MatchInfo | None, MatchInfo | None]] = {"": (None, None)}
    held: list[tuple[str, ContextEntry]] = []
    prefix = root.path + "/" if root.path else ""
    for entry in context.walk(root.path):
        if entry.path == root.path:
            continue
        rel = entry.path[len(prefix) :]
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if parent not in infos:
            continue  # below a skipped directory
        inc_info, exc_info = infos[parent]
        while held and not rel.startswith(held[-1][0] + "/"):
            held.pop()
        keep = True
        if includer is not None:
            keep, inc_info = includer.match_with_parents(rel, inc_info)
        if excluder is not None:
            excluded, exc_info = excluder.match_with_parents(rel, exc_info)
            if excluded:
                keep = False
                if entry.kind == "dir" and excluder.can_skip_dir(rel):
                    continue
        if entry.kind == "dir":
            infos[rel] = (inc_info, exc_info)
        if not keep:
            if entry.kind == "dir":
                held.append((rel, entry))
            continue
        yield from held
        held.clear()
        yield rel, entry


# -- digests -------------------------------------------------------------------------------------


class DigestCache:
    """File content digests remembered by ``(dev, ino, size, mtime_ns, ctime_ns)`` in SQLite.

    The caller chooses the location (a database file, or a directory to hold one). A file
    changed within the last ``racy_window_ns`` (two seconds) is not remembered: its time
    stamps may not yet show a second change made within the same clock tick.
    """

    def __init__(self, location: str, *, racy_window_ns: int = 2_000_000_000) -> None:
        self.racy_window_ns = racy_window_ns
        if os.path.isdir(location):
            location = os.path.join(location, "context-digests.db")
        self.path = location
        self._db = sqlite3.connect(location, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS digests (dev INTEGER, ino INTEGER, size INTEGER, "
            "mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, PRIMARY KEY (dev, ino))"
        )
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, entry: ContextEntry) -> str | None:
        row = self._db.execute(
            "SELECT digest FROM digests WHERE dev=? AND ino=? AND size=? AND mtime_ns=? "
            "AND ctime_ns=?",
            (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns),
        ).fetchone()
        return str(row[0]) if row else None

    def store(self, entry: ContextEntry, digest: str) -> None:
        if time.time_ns() - max(entry.mtime_ns, entry.ctime_ns) < self.racy_window_ns:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)",
            (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns, digest),
        )


def file_digest(context: BuildContext, entry: ContextEntry, cache: DigestCache | None) -> str:
    """sha256 of a regular file's content, read in chunks (or remembered by ``cache``)."""
    if cache is not None:
        known = cache.lookup(entry)
        if known is not None:
            cache.hits += 1
            return known
        cache.misses += 1
    import hashlib  # only to read a file: OpenSSL's sha256 is the fastest on big files

    h = hashlib.sha256()
    try:
        with context.open(entry) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
            st = os.fstat(f.fileno())
    except OSError as exc:
        raise BuildError(
            f"cannot read {entry.path!r} from the build context: {exc.strerror}",
            hint="a file changed or vanished during the build; run the build again",
        ) from None
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (entry.size, entry.mtime_ns, entry.ino):
        raise BuildError(
            f"{entry.path!r} changed while the build context was read",
            hint="stop whatever writes to the context, then build again",
        )
    digest = "sha256:" + h.hexdigest()
    if cache is not None:
        cache.store(entry, digest)
    return digest


def checksum(
    context: BuildContext,
    matches: Sequence[SourceMatch],
    *,
    owner: tuple[int, int] | None = (0, 0),
    mode: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cache: DigestCache | None = None,
) -> str:
    """A digest of everything copying ``matches`` would write, for cache keys.

    Covers each source's name, and below it every relative path, type, permission bits
    (``mode`` replaces them, as ``--chmod`` will), owner (``owner`` as ``--chown`` or the
    context's default root owner will set it; None keeps the files' own), symlink target and
    file content. Times are left out, so touching a file changes nothing.
    """
    h = _small_sha256()
    for match in matches:
        _feed(h, "source", match.source, match.path.rsplit("/", 1)[-1])
        for rel, entry in select_tree(context, match, include=include, exclude=exclude):
            perm = stat.S_IMODE(entry.mode) if mode is None else mode
            uid, gid = owner if owner is not None else (entry.uid, entry.gid)
            if entry.kind == "file":
                content = file_digest(context, entry, cache)
            elif entry.kind == "symlink":
                content = entry.link_target
            elif entry.kind == "other":
                content = f"{stat.S_IFMT(entry.mode):o}"
            else:
                content = ""
            _feed(h, entry.kind, rel, f"{perm:o}", str(uid), str(gid), content)
    return "sha256:" + h.hexdigest()


def _small_sha256() -> hashlib._Hash:
    """A sha256 for a few small updates, from the interpreter's own module: the same digest as
    hashlib's, without loading OpenSSL (milliseconds at every start)."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:  # pragma: no cover - Python 3.12 renamed it
        from _sha2 import sha256  # type: ignore[import-not-found]
    hasher: hashlib._Hash = sha256()
    return hasher


def _feed(h: hashlib._Hash, *fields: str) -> None:
    for value in fields:
        data = value.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)


# -- tar contexts --------------------------------------------------------------------------------


def extract_context_tar(fileobj: IO[bytes], dest: str) -> None:
    """Unpack a context tarball (plain or compressed, may be a stream) into empty ``dest``.

    Member names are clamped to ``dest`` and no member is written through a symlink, so a
    hostile archive cannot write outside ``dest``. Devices are skipped.
    """
    import tarfile

    try:
        archive = tarfile.open(fileobj=fileobj, mode="r|*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise CorruptArchive(
            f"the build context is not a tar archive: {exc}", hint="send a tar, tar.gz or a dir"
        ) from None
    root = os.path.realpath(dest)
    dir_modes: dict[str, int] = {}
    with archive:
        try:
            for member in archive:
                _extract_member(archive, member, root, dir_modes)
        except tarfile.TarError as exc:
            raise CorruptArchive(f"the build context archive is damaged: {exc}") from None
    for path in sorted(dir_modes, reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, dir_modes[path])


def _extract_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: str, dir_modes: dict[str, int]
) -> None:
    rel = clamp(member.name)
    if not rel:
        return
    parent = os.path.dirname(rel)
    _make_dirs(root, parent)
    target = os.path.join(root, rel)
    if member.isdir():
        if not os.path.isdir(target) or os.path.islink(target):
            _remove(target)
            os.mkdir(target, 0o700)
        dir_modes[target] = member.mode & 0o7777
        return
    _remove(target)
    if member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        source = os.path.join(root, clamp(member.linkname))
        if os.path.islink(source) or not os.path.isfile(source):
            raise CorruptArchive(f"hard link {member.name!r} points to a missing file")
        os.link(source, target)
    elif member.isfile():
        extracted = archive.extractfile(member)
        assert extracted is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := extracted.read(_CHUNK):
                out.write(chunk)
        os.chmod(target, member.mode & 0o7777)
    elif member.isfifo():
        os.mkfifo(target, member.mode & 0o777)
    if not member.issym():
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def _make_dirs(root: str, rel: str) -> None:
    current = root
    for part in [p for p in rel.split("/") if p]:
        current = os.path.join(current, part)
        if os.path.islink(current) or (os.path.lexists(current) and not os.path.isdir(current)):
            _remove(current)
        if not os.path.exists(current):
            os.mkdir(current, 0o755)


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        for name in os.listdir(path):
            _remove(os.path.join(path, name))
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)
