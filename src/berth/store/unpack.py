"""Applying a layer tarball to a directory: safely, in one streaming pass, fast.

:func:`unpack_layer` reads an uncompressed tar stream once and writes what it describes under
``dest``, in one of two modes:

``"overlay"``
    ``dest`` is a fresh empty dir that becomes one overlayfs lower layer (the store's
    ``layers/<chain>/diff``). OCI whiteouts become overlayfs whiteouts: ``.wh.NAME`` is made a
    character device 0:0 named NAME, and ``DIR/.wh..wh..opq`` sets ``trusted.overlay.opaque=y``
    on DIR. When a whiteout and an entry of the same name meet in one layer, the entry stays
    (the spec says a whiteout only hides lower layers); if the entry is a directory it is made
    opaque, since what the lower layers had there is gone.
``"apply"``
    ``dest`` is an existing tree, the lower layers already applied (``docker export`` of an
    image). ``.wh.NAME`` deletes NAME with everything under it, and an opaque marker empties
    its directory of what the lower layers put there. Both spare what this same layer wrote,
    whichever order the entries come in, as the OCI image spec asks.

Every path is resolved inside ``dest`` (:mod:`berth.store.safepath`, ``openat2`` with
``RESOLVE_IN_ROOT``), and every change is made with ``*at`` calls on directory fds, the final
component never followed. Python's ``tarfile`` extraction is not used. The rules for hostile
entries, each pinned by a test in ``tests/unit/store/test_unpack_hostile.py``:

- A leading ``/`` is dropped, as Docker does: ``/etc/passwd`` is ``dest/etc/passwd``.
- ``..`` is resolved lexically (``a/../b`` is ``b``); one that would climb above the root
  (``../x``, ``/../x``, ``a/../../x``) is :class:`~berth.errors.UnsafeLayer`: no honest
  layer has one.
- Symlinks are created with their text as is (absolute ones too) and never followed while
  writing them. Later entries written *through* a symlink (``a -> /etc`` then ``a/passwd``)
  resolve it inside the root: the file lands at ``dest/etc/passwd``, and missing directories
  on the way are created there. The same holds for symlinks planted by a lower layer in apply
  mode. A symlink loop on the way, or a magic link (``/proc/self/...`` on a real procfs), is
  UnsafeLayer.
- A hardlink's target is cleaned like a name (leading ``/`` dropped, escaping ``..`` is
  UnsafeLayer) and resolved inside the root; its own final component is not followed (a link
  to a symlink links the symlink). A target that does not exist is
  :class:`~berth.errors.CorruptArchive`; in overlay mode that includes a link to a file of a
  lower layer, which one layer directory cannot hold (overlayfs copies such files up, so real
  layers never have them). A hardlink entry takes its metadata from its target's inode: its
  own mode, owner and times are ignored.
- Whiteouts are resolved the same way; one naming nothing (``.wh.``, ``.wh..``, ``.wh...``)
  is UnsafeLayer. ``.wh..wh.*`` entries other than the opaque marker are aufs bookkeeping and
  are skipped.
- An entry for the root itself (``.``, ``./``, ``/`` or an empty name) that is a directory sets
  the root's mode, owner, xattrs and times; any other type is UnsafeLayer.
- ``trusted.overlay.*`` and ``user.overlay.*`` xattrs from the archive are dropped with a
  warning: they are overlayfs' own bookkeeping (redirects, metacopy, opacity) and would let a
  layer steer the overlay mount. Other xattrs (``security.capability`` included) are set after
  the owner; those the filesystem refuses are skipped with a warning.
- Device nodes and fifos are created (as Docker does as root); where the kernel refuses
  (``EPERM``, unprivileged) they are skipped with a warning.
- An entry replacing an existing path of another type removes it first (recursively for a
  directory); a directory over a directory merges and takes the entry's attributes.
- A parent that exists but is not a directory is CorruptArchive, as with tar and Docker.

Owners are the numeric uid/gid of the header (names are ignored). Files get their mtime (and
atime, when the archive has one; otherwise the mtime) when written; directories get mode and
times at the end, after their content. When not running as root, owners that cannot be set are
left as they are, with one warning.

Speed: the tar is parsed by :class:`~berth.store.layertar.TarReader` (one 1 MiB buffer, file
data written straight from it); parent directory fds are cached by path (up to 128, fds only
closed once the entry using them is done), and the whole cache is dropped whenever a directory
or symlink is removed or replaced, since cached paths may resolve through it. A fresh file whose
mode the umask leaves alone is created with it (no ``fchmod``); in overlay mode files that
would get our own uid/gid are not chowned (no directory there is setgid before the end).

A damaged tar is CorruptArchive naming the offset and entry; no space left is
:class:`~berth.errors.StorageFull`. After a failure ``dest`` is half written: the caller
deletes it. No fd outlives the call.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Literal

from berth.errors import (
    BerthError,
    CorruptArchive,
    HostError,
    StorageFull,
    StoreError,
    UnsafeLayer,
)
from berth.store import safepath
from berth.store.layertar import (
    BLOCKDEV,
    CHARDEV,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarEntry,
    TarReader,
)

__all__ = ["UnpackResult", "unpack_layer"]

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_CACHED_DIRS = 128
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REFUSED_XATTR_ERRNOS = frozenset(
    {
        errno.ENOTSUP,
        errno.EOPNOTSUPP,
        errno.EPERM,
        errno.EACCES,
        errno.EINVAL,
        errno.ERANGE,
        errno.E2BIG,
    }
)


@dataclass(frozen=True, slots=True)
class UnpackResult:
    """What :func:`unpack_layer` wrote.

    ``size`` is the total bytes of regular file content (a sparse file counts its full size),
    ``entries`` the tar entries read (whiteouts and skipped ones included), ``warnings`` what
    was skipped because the host refused it (each also logged).
    """

    size: int
    entries: int
    warnings: tuple[str, ...] = ()


def unpack_layer(
    stream: BinaryIO, dest: str, *, mode: Literal["overlay", "apply"] = "overlay"
) -> UnpackResult:
    """Apply the uncompressed layer tar ``stream`` to the directory ``dest``.

    See the module docstring for the two modes and the rules for hostile entries. The stream
    is read once, sequentially, to its end.
    """
    if mode not in ("overlay", "apply"):
        raise ValueError(f"unknown unpack mode {mode!r}")
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    unpacker = _Unpacker(root_fd, dest, mode)
    try:
        reader = TarReader(stream)
        for entry in reader:
            unpacker.apply(entry, reader)
        unpacker.finish()
        reader.drain()
    except BerthError:
        raise
    except OSError as exc:
        raise _os_error(exc, dest, unpacker.current) from exc
    finally:
        unpacker.close()
        os.close(root_fd)
    return UnpackResult(unpacker.size, unpacker.entries, tuple(unpacker.warnings))


def _os_error(exc: OSError, dest: str, entry: TarEntry | None) -> BerthError:
    what = f"layer entry {entry.display_name!r}" if entry is not None else "a layer"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(
            f"no space left on the device of {dest} while unpacking {what}",
            hint="free some space (berth system prune) and try again",
        )
    if exc.errno == errno.ENAMETOOLONG:
        return CorruptArchive(f"{what} has a name too long for the filesystem")
    return StoreError(f"cannot unpack {what} into {dest}: {exc.strerror or exc}")


def _clean(name: bytes, what: str) -> bytes:
    """``name`` as a path relative to the root: no leading ``/``, ``.``, or empty parts.

    ``..`` is resolved lexically; one climbing above the root is UnsafeLayer.
    """
    if b"\0" in name:
        raise CorruptArchive(f"{what} {os.fsdecode(name)!r} has a NUL byte in its name")
    if not (name[:1] in (b"/", b".") or b"/." in name or b"//" in name):
        return name.rstrip(b"/")  # already clean: the common case
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part == b"" or part == b".":
            continue
        if part == b"..":
            if not parts:
                raise UnsafeLayer(
                    f"{what} {os.fsdecode(name)!r} points outside the layer with '..'",
                    hint="the layer is malicious or broken; it was not unpacked",
                )
            parts.pop()
            continue
        parts.append(part)
    return b"/".join(parts)


def _current_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@dataclass(slots=True)
class _PruneFrame:
    fd: int
    entries: list[os.DirEntry[str]]
    name: str  # in the parent frame's directory
    itself_kept: bool
    kept: bool = False  # something below was kept


class _Unpacker:
    """The state of one unpack: the root fd, cached parent dir fds, what to finish."""

    def __init__(self, root_fd: int, dest: str, mode: str) -> None:
        self.root = root_fd
        self.dest = dest
        self.overlay = mode == "overlay"
        self.dirs: dict[bytes, int] = {}  # cleaned path -> O_DIRECTORY fd
        # fds dropped from the cache, closed only once the current entry is done with them
        self.retired: list[int] = []
        # Directories made or merged, to get their mode and times at the end: ino, mode, times.
        self.dir_meta: dict[bytes, tuple[int, int, int, int]] = {}
        self.root_meta: tuple[int, int, int] | None = None
        self.layer_inodes: set[int] = set()  # apply mode: what this layer wrote
        self.warnings: list[str] = []
        self.size = 0
        self.entries = 0
        self.current: TarEntry | None = None
        self.umask = _current_umask()
        self.can_chown = True
        # Files made by us already have our owner; skipping chown for them is safe when no
        # directory can hand down its group (setgid), i.e. in a fresh overlay dir whose
        # directory modes are only set at the end.
        self.own_ids: tuple[int, int] | None = None
        if self.overlay and not os.fstat(root_fd).st_mode & stat.S_ISGID:
            self.own_ids = (os.geteuid(), os.getegid())

    # -- bookkeeping ----------------------------------------------------------------------

    def close(self) -> None:
        self._forget_dirs()
        self._close_retired()

    def _close_retired(self) -> None:
        while self.retired:
            os.close(self.retired.pop())

    def _forget_dirs(self) -> None:
        """Drop every cached dir fd: after a directory or symlink was removed or replaced."""
        self.retired.extend(self.dirs.values())
        self.dirs.clear()

    def _cache(self, path: bytes, fd: int) -> None:
        old = self.dirs.pop(path, None)
        if old is not None:
            self.retired.append(old)
        if len(self.dirs) >= _MAX_CACHED_DIRS:
            self._forget_dirs()
        self.dirs[path] = fd

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    def _unsafe(self, message: str) -> UnsafeLayer:
        name = self.current.display_name if self.current else "?"
        return UnsafeLayer(
            f"layer entry {name!r}: {message}",
            hint="the layer is malicious or broken; it was not unpacked",
        )

    def _broken(self, message: str) -> CorruptArchive:
        name = self.current.display_name if self.current else "?"
        return CorruptArchive(f"layer entry {name!r}: {message}")

    def _dir(self, path: bytes, *, create: bool = True) -> int:
        """The fd of directory ``path`` (cleaned) inside the root; cached, do not close."""
        if not path:
            return self.root
        fd = self.dirs.get(path)
        if fd is not None:
            return fd
        try:
            fd = safepath.open_dir_in_root(self.root, path, create=create, no_xdev=True)
        except OSError as exc:
            shown = os.fsdecode(path)
            if exc.errno == errno.ENOTDIR:
                raise self._broken(f"its parent {shown!r} is not a directory") from None
            if exc.errno == errno.ELOOP:
                raise self._unsafe(
                    f"the path {shown!r} goes through a symlink loop or a magic link"
                ) from None
            if exc.errno == errno.EXDEV:
                raise self._unsafe(f"the path {shown!r} crosses a mount point") from None
            raise
        self._cache(path, fd)
        return fd

    def _remove(self, parent_fd: int, name: bytes, st: os.stat_result | None = None) -> None:
        """Remove whatever ``name`` is (a directory with all it holds)."""
        if st is None:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _DIR_OPEN, dir_fd=parent_fd)
            try:
                self._prune(fd, frozenset())
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=parent_fd)
            self._forget_dirs()
        else:
            os.unlink(name, dir_fd=parent_fd)
            if stat.S_ISLNK(st.st_mode):
                self._forget_dirs()

    def _prune(self, top_fd: int, keep: set[int] | frozenset[int]) -> bool:
        """Delete everything under ``top_fd`` except inodes in ``keep`` (and their parents).

        Iterative, so a hostile, very deep tree cannot exhaust the recursion limit; never
        follows a symlink. Returns whether anything was kept.
        """
        with os.scandir(top_fd) as listing:
            top = _PruneFrame(top_fd, list(listing), "", False)
        stack = [top]
        try:
            while stack:
                frame = stack[-1]
                if not frame.entries:
                    stack.pop()
                    if not stack:
                        break
                    os.close(frame.fd)
                    parent = stack[-1]
                    if frame.kept or frame.itself_kept:
                        parent.kept = True
                    else:
                        os.rmdir(frame.name, dir_fd=parent.fd)
                    continue
                entry = frame.entries.pop()
                kept = bool(keep) and entry.stat(follow_symlinks=False).st_ino in keep
                if entry.is_dir(follow_symlinks=False):
                    sub = os.open(entry.name, _DIR_OPEN, dir_fd=frame.fd)
                    try:
                        with os.scandir(sub) as listing:
                            children = list(listing)
                    except BaseException:
                        os.close(sub)
                        raise
                    stack.append(_PruneFrame(sub, children, entry.name, kept))
                elif kept:
                    frame.kept = True
                else:
                    os.unlink(entry.name, dir_fd=frame.fd)
        finally:
            for frame in stack[1:]:
                os.close(frame.fd)
        return top.kept

    # -- entries ---------------------------------------------------------------------------

    def apply(self, entry: TarEntry, reader: TarReader) -> None:
        if self.retired:
            self._close_retired()
        self.current = entry
        self.entries += 1
        path = _clean(entry.name, "layer entry")
        parent, _, base = path.rpartition(b"/")
        kind = entry.kind
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, entry)
        elif not path:
            self._root_entry(entry)
        elif kind == REGULAR:
            self._regular(parent, base, entry, reader)
        elif kind == DIRECTORY:
            self._directory(path, parent, base, entry)
        elif kind == SYMLINK:
            self._symlink(parent, base, entry)
        elif kind == HARDLINK:
            self._hardlink(parent, base, entry)
        elif kind in (CHARDEV, BLOCKDEV, FIFO):
            self._node(parent, base, entry)
        else:
            raise self._broken(f"unsupported tar entry type {chr(kind)!r}")

    def _chown(
        self, entry: TarEntry, fd: int | None, parent_fd: int = -1, name: bytes = b""
    ) -> None:
        if not self.can_chown or (entry.uid, entry.gid) == self.own_ids:
            return
        try:
            if fd is not None:
                os.fchown(fd, entry.uid, entry.gid)
            else:
                os.chown(name, entry.uid, entry.gid, dir_fd=parent_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EINVAL) or os.geteuid() == 0:
                raise
            self.can_chown = False
            self._warn(f"not running as root: file owners in {self.dest} were not set")

    def _xattrs(
        self, entry: TarEntry, fd: int | None, parent_fd: int = -1, name: bytes = b""
    ) -> None:
        target: int | str = (
            fd if fd is not None else f"/proc/self/fd/{parent_fd}/{os.fsdecode(name)}"
        )
        for key, value in entry.xattrs.items():
            if key.startswith(("trusted.overlay.", "user.overlay.")):
                self._warn(f"{entry.display_name}: dropped overlayfs xattr {key!r} from the layer")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _REFUSED_XATTR_ERRNOS and exc.errno != errno.ENOENT:
                    raise
                self._warn(f"{entry.display_name}: xattr {key!r} not set: {exc.strerror}")

    def _regular(self, parent: bytes, base: bytes, entry: TarEntry, reader: TarReader) -> None:
        parent_fd = self._dir(parent)
        perm = entry.mode
        direct = perm <= 0o777 and not perm & self.umask
        create_mode = perm if direct else 0o600
        try:
            fd = os.open(base, _FILE_CREATE, create_mode, dir_fd=parent_fd)
        except FileExistsError:
            self._remove(parent_fd, base)
            parent_fd = self._dir(parent)
            fd = os.open(base, _FILE_CREATE, create_mode, dir_fd=parent_fd)
        try:
            if entry.size or entry.sparse is not None:
                self.size += reader.copy_data(fd)
            self._chown(entry, fd)
            if not direct:
                os.fchmod(fd, perm)
            if entry.xattrs:
                self._xattrs(entry, fd)
            mtime = entry.mtime_ns
            atime = entry.atime_ns
            os.utime(fd, ns=(mtime if atime is None else atime, mtime))
            if not self.overlay:
                self.layer_inodes.add(os.fstat(fd).st_ino)
        finally:
            os.close(fd)

    def _directory(self, path: bytes, parent: bytes, base: bytes, entry: TarEntry) -> None:
        parent_fd = self._dir(parent)
        make_opaque = False
        try:
            os.mkdir(base, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                # In overlay mode a 0:0 char device here is a whiteout of this same layer:
                # the new directory replaces what lower layers had, so it is opaque.
                make_opaque = self.overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
                self._remove(parent_fd, base, st)
                parent_fd = self._dir(parent)
                os.mkdir(base, 0o700, dir_fd=parent_fd)
        fd = os.open(base, _DIR_OPEN, dir_fd=parent_fd)
        self._cache(path, fd)
        self._chown(entry, fd)
        if entry.xattrs:
            self._xattrs(entry, fd)
        if make_opaque:
            self._set_opaque(fd, path)
        ino = os.fstat(fd).st_ino
        mtime = entry.mtime_ns
        atime = mtime if entry.atime_ns is None else entry.atime_ns
        self.dir_meta[path] = (ino, entry.mode, atime, mtime)
        if not self.overlay:
            self.layer_inodes.add(ino)

    def _root_entry(self, entry: TarEntry) -> None:
        if entry.kind != DIRECTORY:
            raise self._unsafe("an entry that is not a directory would replace the layer root")
        self._chown(entry, self.root)
        if entry.xattrs:
            self._xattrs(entry, self.root)
        mtime = entry.mtime_ns
        self.root_meta = (entry.mode, mtime if entry.atime_ns is None else entry.atime_ns, mtime)

    def _symlink(self, parent: bytes, base: bytes, entry: TarEntry) -> None:
        if not entry.linkname:
            raise self._broken("a symlink with an empty target")
        if b"\0" in entry.linkname:
            raise self._broken("a symlink target with a NUL byte")
        parent_fd = self._dir(parent)
        try:
            os.symlink(entry.linkname, base, dir_fd=parent_fd)
        except FileExistsError:
            self._remove(parent_fd, base)
            parent_fd = self._dir(parent)
            os.symlink(entry.linkname, base, dir_fd=parent_fd)
        self._finish_node(parent_fd, base, entry, chmod=False)

    def _node(self, parent: bytes, base: bytes, entry: TarEntry) -> None:
        parent_fd = self._dir(parent)
        for attempt in (1, 2):
            try:
                if entry.kind == FIFO:
                    os.mkfifo(base, 0o600, dir_fd=parent_fd)
                else:
                    kind = stat.S_IFCHR if entry.kind == CHARDEV else stat.S_IFBLK
                    device = os.makedev(entry.devmajor, entry.devminor)
                    os.mknod(base, kind | 0o600, device, dir_fd=parent_fd)
                break
            except FileExistsError:
                if attempt == 2:
                    raise
                self._remove(parent_fd, base)
                parent_fd = self._dir(parent)
            except PermissionError:
                if os.geteuid() == 0:
                    raise
                self._warn(f"{entry.display_name}: device node skipped (not running as root)")
                return
        self._finish_node(parent_fd, base, entry, chmod=True)

    def _finish_node(self, parent_fd: int, base: bytes, entry: TarEntry, *, chmod: bool) -> None:
        """Owner, mode, xattrs and times of a just-made symlink, device, fifo or whiteout."""
        self._chown(entry, None, parent_fd, base)
        if chmod:
            os.chmod(base, entry.mode, dir_fd=parent_fd)  # just made here: not a symlink
        if entry.xattrs:
            self._xattrs(entry, None, parent_fd, base)
        mtime = entry.mtime_ns
        atime = mtime if entry.atime_ns is None else entry.atime_ns
        os.utime(base, ns=(atime, mtime), dir_fd=parent_fd, follow_symlinks=False)
        if not self.overlay:
            self.layer_inodes.add(os.stat(base, dir_fd=parent_fd, follow_symlinks=False).st_ino)

    def _hardlink(self, parent: bytes, base: bytes, entry: TarEntry) -> None:
        target = _clean(entry.linkname, "hardlink target of")
        if not target:
            raise self._unsafe("a hardlink to the layer root")
        target_parent, _, target_base = target.rpartition(b"/")
        for attempt in (1, 2):
            try:
                target_fd = self._dir(target_parent, create=False)
            except FileNotFoundError:
                raise self._missing_target(target) from None
            parent_fd = self._dir(parent)
            try:
                os.link(
                    target_base,
                    base,
                    src_dir_fd=target_fd,
                    dst_dir_fd=parent_fd,
                    follow_symlinks=False,
                )
                break
            except FileExistsError:
                if attempt == 2:
                    raise
                target_st = os.stat(target_base, dir_fd=target_fd, follow_symlinks=False)
                st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (target_st.st_dev, target_st.st_ino):
                    break  # already that very file
                self._remove(parent_fd, base, st)
            except FileNotFoundError:
                raise self._missing_target(target) from None
            except PermissionError:
                raise self._broken(
                    f"hardlink to {os.fsdecode(target)!r}, which is a directory"
                ) from None
        if not self.overlay:
            self.layer_inodes.add(os.stat(base, dir_fd=parent_fd, follow_symlinks=False).st_ino)

    def _missing_target(self, target: bytes) -> CorruptArchive:
        shown = os.fsdecode(target)
        if self.overlay:
            return self._broken(
                f"hardlink to {shown!r}, which is not in this layer (a link to a file of a "
                "lower layer cannot be stored in a layer directory)"
            )
        return self._broken(f"hardlink to {shown!r}, which does not exist")

    # -- whiteouts -------------------------------------------------------------------------

    def _whiteout(self, parent: bytes, base: bytes, entry: TarEntry) -> None:
        if base == OPAQUE_MARKER:
            self._opaque(parent)
            return
        if base.startswith(b".wh..wh."):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        name = base[len(WHITEOUT_PREFIX) :]
        if name in (b"", b".", b".."):
            raise self._unsafe("a whiteout that names no entry")
        if self.overlay:
            self._overlay_whiteout(parent, name, entry)
        else:
            self._apply_whiteout(parent, name)

    def _overlay_whiteout(self, parent: bytes, name: bytes, entry: TarEntry) -> None:
        parent_fd = self._dir(parent)
        try:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent_fd)
        except FileExistsError:
            # This layer already has NAME: it stays. A directory of ours hides lower content.
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                path = parent + b"/" + name if parent else name
                self._set_opaque(self._dir(path), path)
            return
        except PermissionError:
            raise HostError(
                f"cannot create the overlay whiteout for {entry.display_name!r} in {self.dest}",
                hint="unpacking layers for overlayfs needs root (CAP_MKNOD)",
            ) from None
        self._finish_node(parent_fd, name, entry, chmod=bool(entry.mode))

    def _set_opaque(self, fd: int, path: bytes) -> None:
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        except PermissionError:
            raise HostError(
                f"cannot mark {os.fsdecode(path) or '/'!r} in {self.dest} opaque",
                hint="setting trusted.* xattrs for overlayfs needs root (CAP_SYS_ADMIN)",
            ) from None

    def _opaque(self, parent: bytes) -> None:
        fd = self._dir(parent)
        if self.overlay:
            self._set_opaque(fd, parent)
            return
        self._prune(fd, self.layer_inodes)
        self._forget_dirs()

    def _apply_whiteout(self, parent: bytes, name: bytes) -> None:
        try:
            parent_fd = self._dir(parent, create=False)
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except (FileNotFoundError, CorruptArchive):
            return  # nothing there to delete
        kept = st.st_ino in self.layer_inodes
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _DIR_OPEN, dir_fd=parent_fd)
            try:
                kept = self._prune(fd, self.layer_inodes) or kept
            finally:
                os.close(fd)
            if not kept:
                os.rmdir(name, dir_fd=parent_fd)
            self._forget_dirs()
        elif not kept:
            os.unlink(name, dir_fd=parent_fd)
            if stat.S_ISLNK(st.st_mode):
                self._forget_dirs()

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> None:
        """Modes and times of directories, now that nothing more is written into them."""
        self.current = None
        self._close_retired()
        for path, (ino, mode, atime, mtime) in self.dir_meta.items():
            fd = self.dirs.pop(path, None)
            if fd is None:
                try:
                    fd = safepath.open_in_root(self.root, path, _DIR_OPEN, no_xdev=True)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        continue  # replaced or removed by a later entry
                    raise
            try:
                if os.fstat(fd).st_ino == ino:
                    os.fchmod(fd, mode)
                    os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
        if self.root_meta is not None:
            mode, atime, mtime = self.root_meta
            os.fchmod(self.root, mode)
            os.utime(self.root, ns=(atime, mtime))
