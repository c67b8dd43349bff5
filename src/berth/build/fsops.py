"""File operations inside an image's root filesystem during a build, never leaving it.

Everything here works on a directory fd of the (mounted) root and resolves every path inside
it with :mod:`berth.store.safepath` (``openat2`` ``RESOLVE_IN_ROOT``): an absolute symlink in
the image means a path in the image, ``..`` stops at its root. Names are looked up in the
image's own ``/etc/passwd`` and ``/etc/group`` (read inside the root, never the host's).

- :func:`lookup_user` (RUN's and WORKDIR's ``USER``) and :func:`lookup_chown` (``--chown``):
  BuildKit's rules. A name is looked up in ``/etc/passwd`` (its primary group comes with it),
  a number is taken as is; ``--chown=UID`` without a group uses UID as the GID too; a name
  that is not there is an error.
- :class:`Copier` carries out a :func:`berth.build.copy_semantics.plan_copy` plan: files keep
  their permission bits (or take ``--chmod``) and modification times, are owned by root (or
  ``--chown``; sources from another stage or image keep theirs), symlinks are copied as links,
  hard links within one copy stay hard links, directories get their times after their
  contents are written.
"""

from __future__ import annotations

import errno
import os
import stat

from berth.basics import suppress
from berth.build.chmod import octal_chmod, parse_chmod
from berth.build.context import select_tree
from berth.errors import BuildError
from berth.store import safepath
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO

    from berth.build.chmod import ModeChange
    from berth.build.context import BuildContext, ContextEntry, SourceMatch

__all__ = [
    "Copier",
    "Identity",
    "kind_at",
    "lookup_chown",
    "lookup_user",
    "make_dirs",
    "octal_chmod",
    "parse_chmod",
    "read_file_in_root",
]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHUNK = 1 << 20


class Identity(FrozenValue):
    __slots__ = ("additional_gids", "gid", "uid")
    uid: int
    gid: int
    additional_gids: tuple[int, ...]

    def __init__(self, uid: int, gid: int, additional_gids: tuple[int, ...] = ()) -> None:
        init_fields(self, uid=uid, gid=gid, additional_gids=additional_gids)


# -- users -----------------------------------------------------------------------------------


def read_file_in_root(root_fd: int, path: str, limit: int = 16 << 20) -> str | None:
    """A text file of the image (``/etc/passwd``), or None if it does not exist."""
    try:
        fd = safepath.open_in_root(root_fd, path, os.O_RDONLY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit).decode("utf-8", "surrogateescape")


def _records(text: str | None, fields: int) -> Iterator[list[str]]:
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            yield parts


def _number(text: str) -> int | None:
    if text.isdigit() and text.isascii():
        value = int(text)
        return value if value < 2**32 else None
    return None


def _find_user(root_fd: int, name: str) -> tuple[int, int, str] | None:
    """(uid, gid, name) of a passwd entry matched by name, or by uid when ``name`` is a number."""
    wanted = _number(name)
    for parts in _records(read_file_in_root(root_fd, "/etc/passwd"), 4):
        uid, gid = _number(parts[2]), _number(parts[3])
        if uid is None or gid is None:
            continue
        if parts[0] == name or (wanted is not None and uid == wanted):
            return uid, gid, parts[0]
    return None


def _find_group(root_fd: int, name: str) -> int | None:
    wanted = _number(name)
    if wanted is not None:
        return wanted
    for parts in _records(read_file_in_root(root_fd, "/etc/group"), 3):
        gid = _number(parts[2])
        if parts[0] == name and gid is not None:
            return gid
    return None


def lookup_user(root_fd: int, spec: str) -> Identity:
    """``USER`` as a RUN (and WORKDIR's ownership) gets it: ``name``, ``uid``, ``u:g``."""
    if not spec:
        return Identity(0, 0)
    user, _, group = spec.partition(":")
    found = _find_user(root_fd, user)
    if found is None:
        uid = _number(user)
        if uid is None:
            raise BuildError(
                f"unable to find user {user}: no matching entries in passwd file",
                hint="create the user first (RUN adduser ...) or use a numeric uid",
            )
        gid, name = 0, ""
    else:
        uid, gid, name = found
    if group:
        found_gid = _find_group(root_fd, group)
        if found_gid is None:
            raise BuildError(
                f"unable to find group {group}: no matching entries in group file",
                hint="create the group first or use a numeric gid",
            )
        gid = found_gid
    extra: list[int] = []
    if name and not group:
        for parts in _records(read_file_in_root(root_fd, "/etc/group"), 4):
            members = parts[3].split(",") if len(parts) > 3 else []
            gid_value = _number(parts[2])
            if name in members and gid_value is not None and gid_value != gid:
                extra.append(gid_value)
    return Identity(uid, gid, tuple(dict.fromkeys(extra)))


def lookup_chown(root_fd: int, spec: str) -> tuple[int, int]:
    """``--chown=user[:group]``: names from the image's files, ``UID`` alone means UID:UID."""
    user, sep, group = spec.partition(":")
    if not user:
        raise BuildError(f"invalid --chown value {spec!r}", hint="write --chown=user[:group]")
    uid = _number(user)
    gid: int | None = uid
    if uid is None:
        found = _find_user(root_fd, user)
        if found is None:
            raise BuildError(
                f"unable to convert uid/gid chown string to host mapping: can't find uid for "
                f"user {user}: no such user: {user}",
                hint="the name must exist in the image's /etc/passwd (or use numbers)",
            )
        uid, gid, _ = found
    if sep and group:
        gid = _find_group(root_fd, group)
        if gid is None:
            raise BuildError(
                f"unable to convert uid/gid chown string to host mapping: can't find gid for "
                f"group {group}: no such group: {group}",
                hint="the group must exist in the image's /etc/group (or use numbers)",
            )
    assert gid is not None
    return uid, gid


# -- looking and making ----------------------------------------------------------------------


def kind_at(root_fd: int, path: str) -> str | None:
    """``"dir"``, ``"file"`` (anything else) or None, following symlinks inside the root."""
    try:
        fd = safepath.open_in_root(root_fd, path, os.O_PATH)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    try:
        return "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
    finally:
        os.close(fd)


def make_dirs(
    root_fd: int, path: str, *, mode: int = 0o755, owner: tuple[int, int] = (0, 0)
) -> list[str]:
    """``mkdir -p`` inside the root; the dirs made get ``mode`` and ``owner``. Returns them."""
    parts = [p for p in path.split("/") if p and p != "."]
    created: list[str] = []
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        try:
            os.close(safepath.open_dir_in_root(root_fd, prefix))
            continue
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise BuildError(
                f"cannot create directory {path}: {prefix} is not a directory"
            ) from None
        parent_fd, name = safepath.open_parent_in_root(root_fd, prefix)
        try:
            try:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            except FileExistsError:
                pass  # a dangling symlink: resolve it on the next round
            else:
                fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd)
                try:
                    os.fchown(fd, *owner)
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)
                created.append(prefix)
                continue
        finally:
            os.close(parent_fd)
        fd = safepath.open_dir_in_root(root_fd, prefix, create=True, mode=mode)
        os.close(fd)
    return created


# -- copying ---------------------------------------------------------------------------------


class Copier(Value):
    """Copies sources of one ADD/COPY into the root, with its owner and mode options.

    ``owner`` None keeps the sources' owners (``COPY --from`` without ``--chown``).
    """

    __slots__ = ("_links", "created_dirs", "mode", "owner", "root_fd")

    def __init__(
        self,
        root_fd: int,
        owner: tuple[int, int] | None = (0, 0),
        mode: ModeChange | None = None,
    ) -> None:
        self.root_fd = root_fd
        self.owner = owner
        self.mode = mode
        self.created_dirs: set[str] = set()
        self._links: dict[tuple[int, int], str] = {}

    def make_dirs(self, path: str) -> None:
        owner = self.owner if self.owner is not None else (0, 0)
        mode = self.mode(0o755, True) if self.mode is not None else 0o755
        self.created_dirs.update(make_dirs(self.root_fd, path, mode=mode, owner=owner))

    def _owner_of(self, entry: ContextEntry) -> tuple[int, int]:
        return self.owner if self.owner is not None else (entry.uid, entry.gid)

    def _mode_of(self, entry: ContextEntry) -> int:
        current = stat.S_IMODE(entry.mode)
        if self.mode is None:
            return current
        return self.mode(current, stat.S_ISDIR(entry.mode))

    def copy_file(self, context: BuildContext, entry: ContextEntry, dest: str) -> None:
        """Write a non-directory source at ``dest`` (an absolute path in the image)."""
        parent_fd, name = safepath.open_parent_in_root(self.root_fd, dest, create=True)
        try:
            self._write_entry(context, entry, parent_fd, name, dest)
        finally:
            os.close(parent_fd)

    def copy_tree(
        self,
        context: BuildContext,
        match: SourceMatch,
        dest: str,
        *,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        take_root_metadata: bool = False,
    ) -> None:
        """Merge the contents of directory ``match`` into the existing directory ``dest``."""
        top = safepath.open_dir_in_root(self.root_fd, dest)
        fds: dict[str, int] = {"": top}
        dirs: list[tuple[str, ContextEntry]] = []
        try:
            for rel, entry in select_tree(context, match, include=include, exclude=exclude):
                if not rel:
                    if take_root_metadata:
                        dirs.append(("", entry))
                    continue
                parent, _, name = rel.rpartition("/")
                parent_fd = fds.get(parent)
                if parent_fd is None:
                    continue
                target = f"{dest.rstrip('/')}/{rel}"
                if entry.kind == "dir":
                    fds[rel] = self._enter_dir(parent_fd, name, target)
                    dirs.append((rel, entry))
                else:
                    self._write_entry(context, entry, parent_fd, name, target)
            for rel, entry in reversed(dirs):
                self._set_dir_metadata(fds[rel], entry)
        finally:
            for fd in fds.values():
                os.close(fd)

    def _enter_dir(self, parent_fd: int, name: str, target: str) -> int:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                # an existing symlink to a directory is followed, inside the root
                with suppress(OSError):
                    return safepath.open_dir_in_root(self.root_fd, target)
            os.unlink(name, dir_fd=parent_fd)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd)

    def _set_dir_metadata(self, fd: int, entry: ContextEntry) -> None:
        os.fchown(fd, *self._owner_of(entry))
        os.fchmod(fd, self._mode_of(entry))
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def _write_entry(
        self, context: BuildContext, entry: ContextEntry, parent_fd: int, name: str, target: str
    ) -> None:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise BuildError(
                    f"cannot replace to directory {target} with file",
                    hint="remove the directory first or copy to another path",
                )
            os.unlink(name, dir_fd=parent_fd)
        owner = self._owner_of(entry)
        if entry.nlink > 1 and entry.kind != "dir":
            first = self._links.get((entry.dev, entry.ino))
            if first is not None and self._link(first, parent_fd, name):
                return
            self._links[(entry.dev, entry.ino)] = target
        kind = entry.kind
        if kind == "file":
            self._write_file(context, entry, parent_fd, name, owner)
        elif kind == "symlink":
            os.symlink(entry.link_target, name, dir_fd=parent_fd)
            os.chown(name, *owner, dir_fd=parent_fd, follow_symlinks=False)
            os.utime(
                name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent_fd, follow_symlinks=False
            )
        else:
            fmt = stat.S_IFMT(entry.mode)
            if fmt == stat.S_IFSOCK:
                return
            rdev = os.lstat(entry.host_path).st_rdev if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0
            os.mknod(name, fmt | 0o600, rdev, dir_fd=parent_fd)
            os.chown(name, *owner, dir_fd=parent_fd, follow_symlinks=False)
            os.chmod(name, self._mode_of(entry), dir_fd=parent_fd, follow_symlinks=False)
            os.utime(
                name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent_fd, follow_symlinks=False
            )

    def _link(self, first: str, parent_fd: int, name: str) -> bool:
        try:
            src_parent, src_name = safepath.open_parent_in_root(self.root_fd, first)
        except OSError:
            return False
        try:
            os.link(
                src_name, name, src_dir_fd=src_parent, dst_dir_fd=parent_fd, follow_symlinks=False
            )
            return True
        except OSError:
            return False
        finally:
            os.close(src_parent)

    def _write_file(
        self,
        context: BuildContext,
        entry: ContextEntry,
        parent_fd: int,
        name: str,
        owner: tuple[int, int],
    ) -> None:
        try:
            source = context.open(entry)
        except OSError as exc:
            raise _vanished(entry, exc) from None
        with source:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=parent_fd,
            )
            try:
                copy_data(source, fd)
                st = os.fstat(source.fileno())
                if st.st_ino != entry.ino or st.st_size != entry.size:
                    raise BuildError(
                        f"{entry.path!r} changed while it was copied from the build context",
                        hint="stop whatever writes to the context, then build again",
                    )
                os.fchown(fd, *owner)
                os.fchmod(fd, self._mode_of(entry))
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)


def copy_data(source: IO[bytes], fd: int) -> int:
    """Copy a whole file into ``fd`` in the kernel (``sendfile``), else through a buffer."""
    in_fd = source.fileno()
    total = 0
    try:
        while True:
            sent = os.sendfile(fd, in_fd, None, 1 << 30)
            if sent == 0:
                return total
            total += sent
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or total:
            raise
    while chunk := source.read(_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        total += len(chunk)
    return total


def _vanished(entry: ContextEntry, exc: OSError) -> BuildError:
    return BuildError(
        f"cannot read {entry.path!r} from the build context: {exc.strerror or exc}",
        hint="a file changed or vanished during the build; run the build again",
    )
