"""Tar streams of a tree inside a root, and extraction of tar streams into a root: the
mechanism of ``berth cp``, ``get_archive`` and ``put_archive``.

Both sides take the fd of a *root* (a container's root filesystem, or a host directory) and
resolve every path inside it with :mod:`berth.store.safepath` (``openat2`` with
``RESOLVE_IN_ROOT``): an absolute symlink planted in the tree (``etc -> /``) means the root's
``/``, ``..`` stops at the root, and nothing outside the root is ever read or written, even
while processes in a running container rename and relink things under our feet. After the
source (or the destination directory) is resolved, the walk goes on with ``*at`` calls
relative to directory fds and ``O_NOFOLLOW``: a symlink met inside the tree is archived (or
created) as a symlink, never followed.

Writing (:func:`write_tree`): the entry for the source is named ``name`` (``"."`` for "the
contents of this directory"), children below it; PAX format, numeric owners, hardlinks
within the tree kept as hardlinks, sockets skipped, extended attributes of files and
directories as ``SCHILY.xattr.*`` records (not overlayfs' own ``trusted.overlay.*``).
Directories on ``skip_devices`` (procfs, sysfs... of a running container) are archived as
empty directories.

Extracting (:func:`extract`): entries land under ``dest``; a name that climbs out of it
(``../x``) is refused, missing parent directories are made (0755), an existing entry is
replaced except that a directory is never replaced by a non-directory or the other way round
(Docker's rule for ``cp``). Owners are the archive's or the ones given; extended attributes
are set where the filesystem takes them (as Docker, an ENOTSUP or EPERM skips one). Directory
times are set last, so adding children does not disturb them.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from berth.errors import ContainerError, CorruptArchive, InvalidArgument, PathNotFound
from berth.store import safepath

__all__ = ["ExtractOptions", "extract", "stat_in_root", "write_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_XATTR = "SCHILY.xattr."
_SKIPPED_XATTRS = ("trusted.overlay.",)  # overlayfs' bookkeeping, never content


# --------------------------------------------------------------------------------- reading


def stat_in_root(root_fd: int, path: str, *, follow: bool = False) -> os.stat_result:
    """lstat (or stat, with ``follow``) of ``path`` resolved inside the root."""
    flags = os.O_PATH | (0 if follow else os.O_NOFOLLOW)
    fd = safepath.open_in_root(root_fd, path, flags)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


class _Padded:
    """A file that yields exactly ``size`` bytes: a file that shrank while it was read is
    padded with zeros, one that grew is cut (a running container may be writing it)."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(want) or b""
        if len(data) < want:
            data += bytes(want - len(data))
        self.left -= len(data)
        return data


class _TreeTar:
    def __init__(self, out: IO[bytes], skip_devices: Collection[int]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.skip = frozenset(skip_devices)
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def _info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        return info

    def entry(self, dir_fd: int, entry_name: str, name: str, fd: int | None = None) -> None:
        """Archive ``entry_name`` of ``dir_fd`` (or the open ``fd`` of it) as ``name``."""
        st = (
            os.fstat(fd)
            if fd is not None
            else os.stat(entry_name, dir_fd=dir_fd, follow_symlinks=False)
        )
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        info = self._info(name, st)
        if stat.S_ISDIR(mode):
            self._directory(dir_fd, entry_name, name, info, st, fd)
            return
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self.tar.addfile(info)
                return
            self.links[key] = name
        if stat.S_ISREG(mode):
            own = fd if fd is not None else _open_regular(dir_fd, entry_name)
            if own is None:
                return  # swapped for something else since the stat: leave it out
            try:
                info.size = os.fstat(own).st_size
                _add_xattrs(info, own)
                with open(os.dup(own), "rb", buffering=_CHUNK) as file:
                    self.tar.addfile(info, _Padded(file, info.size))
            finally:
                if fd is None:
                    os.close(own)
            return
        if stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(entry_name, dir_fd=dir_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return
        self.tar.addfile(info)

    def _directory(
        self,
        dir_fd: int,
        entry_name: str,
        name: str,
        info: tarfile.TarInfo,
        st: os.stat_result,
        fd: int | None,
    ) -> None:
        info.type = tarfile.DIRTYPE
        own = fd if fd is not None else os.open(entry_name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            if name != ".":
                _add_xattrs(info, own)
                self.tar.addfile(info)
            if st.st_dev in self.skip:
                return
            prefix = "" if name == "." else name + "/"
            for child in sorted(os.listdir(own)):
                try:
                    self.entry(own, child, prefix + child)
                except FileNotFoundError:
                    continue  # removed while we walked (a running container)
        finally:
            if fd is None:
                os.close(own)


def _open_regular(dir_fd: int, name: str) -> int | None:
    """Open a regular file for reading; None if it is no longer one. O_NONBLOCK: a fifo
    swapped in since the stat must not block the copy (it has no effect on files)."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # now a symlink
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _add_xattrs(info: tarfile.TarInfo, fd: int) -> None:
    """The extended attributes of the open file ``fd`` into ``info``'s PAX records."""
    try:
        names = os.listxattr(fd)
    except OSError:
        return  # a filesystem without xattrs
    records = dict(info.pax_headers)
    for key in names:
        if key.startswith(_SKIPPED_XATTRS):
            continue
        try:
            value = os.getxattr(fd, key)
        except OSError:
            continue  # removed since the listing
        records[_XATTR + key] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = records


def _set_xattrs(fd: int, member: tarfile.TarInfo) -> None:
    for record, text in member.pax_headers.items():
        if not record.startswith(_XATTR):
            continue
        key = record[len(_XATTR):]
        if key.startswith(_SKIPPED_XATTRS):
            continue
        try:
            os.setxattr(fd, key, text.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def write_tree(
    root_fd: int,
    path: str,
    name: str,
    out: IO[bytes],
    *,
    follow: bool = False,
    skip_devices: Collection[int] = (),
) -> None:
    """Write ``path`` (resolved in the root) to ``out`` as a tar whose top entry is ``name``.

    ``follow`` follows a symlink at ``path`` itself (``cp -L``); symlinks below it are always
    archived as links. ``name`` ``"."`` archives a directory's contents without an entry for
    the directory itself.
    """
    try:
        _write_tree(root_fd, path, name, out, follow, frozenset(skip_devices))
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise ContainerError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_tree(
    root_fd: int, path: str, name: str, out: IO[bytes], follow: bool, skip_devices: frozenset[int]
) -> None:
    flags = os.O_PATH | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = safepath.open_in_root(root_fd, path, flags)
    except FileNotFoundError:
        raise PathNotFound(f"{path}: no such file or directory") from None
    try:
        st = os.fstat(fd)
        if st.st_dev in skip_devices and path.strip("/"):
            raise InvalidArgument(
                f"cannot copy {path}: it is on a kernel filesystem (proc, sysfs...)"
            )
        parent, base = _split(path)
        parent_fd = safepath.open_dir_in_root(root_fd, parent)
        try:
            opened = None
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                kind = os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0
                opened = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | kind)
            writer = _TreeTar(out, skip_devices)
            try:  # a device or fifo that -L reached is archived as the link to it
                writer.entry(parent_fd, base or ".", name, fd=opened)
            finally:
                if opened is not None:
                    os.close(opened)
                writer.close()
        finally:
            os.close(parent_fd)
    finally:
        os.close(fd)


def _split(path: str) -> tuple[str, str]:
    clean = posixpath.normpath("/" + path)
    if clean == "/":
        return "/", ""
    parent, base = posixpath.split(clean)
    return parent, base


# ------------------------------------------------------------------------------ extracting


@dataclass
class ExtractOptions:
    """``owner``: (uid, gid) for every entry (None: the archive's own, ``cp -a``);
    ``no_overwrite_dir_non_dir``: Docker's cp rule (a directory is never replaced by a file
    or the other way round); ``skip_devices``: filesystems never written (procfs...)."""

    owner: tuple[int, int] | None = None
    no_overwrite_dir_non_dir: bool = True
    skip_devices: Collection[int] = ()
    dir_times: list[tuple[str, int]] = field(default_factory=list)


def extract(root_fd: int, dest: str, stream: IO[bytes], options: ExtractOptions) -> int:
    """Extract the tar ``stream`` (plain, gzip, bzip2 or xz) under ``dest`` (a directory
    resolved in the root). Returns the number of bytes of file content written."""
    try:
        dest_fd = safepath.open_dir_in_root(root_fd, dest)
    except FileNotFoundError:
        raise PathNotFound(f"{dest}: no such directory") from None
    except NotADirectoryError:
        raise InvalidArgument(f'destination "{dest}" must be a directory') from None
    try:
        if os.fstat(dest_fd).st_dev in options.skip_devices:
            raise InvalidArgument(f"cannot copy into {dest}: it is on a kernel filesystem")
    finally:
        os.close(dest_fd)
    written = 0
    base = posixpath.normpath("/" + dest.lstrip("/"))
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                written += _extract_member(root_fd, base, tar, member, options)
    except tarfile.TarError as exc:
        raise CorruptArchive(f"the archive to copy is not a valid tar stream: {exc}") from None
    for path, mtime in reversed(options.dir_times):
        _set_dir_time(root_fd, path, mtime)
    return written


def _member_path(name: str) -> str:
    """The entry's path below the destination; refuses names that climb out of it."""
    clean = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if clean == ".." or clean.startswith("../"):
        raise CorruptArchive(f"the archive entry {name!r} points outside the destination")
    return clean


def _extract_member(
    root_fd: int,
    base: str,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    options: ExtractOptions,
) -> int:
    relative = _member_path(member.name)
    if relative == ".":
        return 0  # the destination itself: keep its owner, mode and times
    path = posixpath.join(base, relative)
    try:
        parent_fd, name = safepath.open_parent_in_root(root_fd, path, create=True)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        existing = _lstat_or_none(parent_fd, name)
        if existing is not None:
            if not _replace(parent_fd, name, existing, member, options, path):
                _apply_metadata(parent_fd, name, member, options, is_dir=True)
                options.dir_times.append((path, int(member.mtime)))
                return 0
        return _create(root_fd, base, parent_fd, name, tar, member, options, path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        os.close(parent_fd)


def _lstat_or_none(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _replace(
    parent_fd: int,
    name: str,
    existing: os.stat_result,
    member: tarfile.TarInfo,
    options: ExtractOptions,
    path: str,
) -> bool:
    """Make room for ``member``; False when it is a directory onto an existing one (kept)."""
    was_dir = stat.S_ISDIR(existing.st_mode)
    if was_dir and member.isdir():
        return False
    if options.no_overwrite_dir_non_dir and was_dir != member.isdir():
        what = "directory" if was_dir else "non-directory"
        other = "non-directory" if was_dir else "directory"
        raise InvalidArgument(f"cannot overwrite {what} {path!r} with {other}")
    if was_dir:
        _remove_tree_at(parent_fd, name)
    else:
        os.unlink(name, dir_fd=parent_fd)
    return True


def _remove_tree_at(parent_fd: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _remove_tree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def _create(
    root_fd: int,
    base: str,
    parent_fd: int,
    name: str,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    options: ExtractOptions,
    path: str,
) -> int:
    mode = member.mode & 0o7777
    if member.isreg():
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent_fd,
        )
        with open(fd, "wb", buffering=_CHUNK) as out:
            source = tar.extractfile(member)
            if source is not None:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
        _apply_metadata(parent_fd, name, member, options)
        return member.size
    if member.isdir():
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        _apply_metadata(parent_fd, name, member, options, is_dir=True)
        options.dir_times.append((path, int(member.mtime)))
        return 0
    if member.issym():
        os.symlink(member.linkname, name, dir_fd=parent_fd)
    elif member.islnk():
        _hardlink(root_fd, base, parent_fd, name, member)
        return 0
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | mode, os.makedev(member.devmajor, member.devminor), dir_fd=parent_fd)
    elif member.isfifo():
        os.mkfifo(name, mode, dir_fd=parent_fd)
    else:
        return 0
    _apply_metadata(parent_fd, name, member, options)
    return 0


def _hardlink(root_fd: int, base: str, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
    target = posixpath.join(base, _member_path(member.linkname))
    fd = safepath.open_in_root(root_fd, target, os.O_PATH | os.O_NOFOLLOW)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise CorruptArchive(f"the archive hardlinks {member.name!r} to a directory")
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=parent_fd, follow_symlinks=True)
    finally:
        os.close(fd)


def _apply_metadata(
    parent_fd: int,
    name: str,
    member: tarfile.TarInfo,
    options: ExtractOptions,
    *,
    is_dir: bool = False,
) -> None:
    uid, gid = options.owner if options.owner is not None else (member.uid, member.gid)
    link = member.issym()
    os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    if not link:  # chmod after chown: chown clears setuid bits
        _chmod_at(parent_fd, name, member.mode & 0o7777)
    if (member.isreg() or member.isdir()) and any(r.startswith(_XATTR) for r in member.pax_headers):
        # after chown too, which drops security.capability
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
        fd = os.open(name, flags, dir_fd=parent_fd)
        try:
            _set_xattrs(fd, member)
        finally:
            os.close(fd)
    if not is_dir:
        mtime = int(member.mtime)
        os.utime(name, (mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)


def _chmod_at(parent_fd: int, name: str, mode: int) -> None:
    """chmod an entry that is not a symlink without following one (opened O_PATH, then
    changed through /proc/self/fd, which names the inode itself)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def _set_dir_time(root_fd: int, path: str, mtime: int) -> None:
    try:
        fd = safepath.open_in_root(root_fd, path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def _write_error(path: str, exc: OSError) -> Exception:
    if exc.errno == errno.EROFS:
        return ContainerError(f"cannot write {path}: read-only file system")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        from berth.errors import StorageFull

        return StorageFull(f"no space left to write {path}")
    if exc.errno == errno.ELOOP:
        return InvalidArgument(f"cannot write {path}: too many levels of symbolic links")
    if exc.errno == errno.ENOTDIR:
        return InvalidArgument(f"cannot write {path}: a parent is not a directory")
    return ContainerError(f"cannot write {path}: {exc.strerror or exc}")
