"""Resolving paths inside a root directory, the way a chroot would, without a chroot.

Everything that writes into an image layer, a container's root filesystem or a volume from
data it does not trust (layer tarballs, ``berth cp``, ``COPY`` in a build) must resolve paths
*inside* that root: an absolute symlink ``etc -> /etc`` planted in the tree means
``<root>/etc``, ``..`` stops at the root, and nothing ever lands outside it. This module does
that with ``openat2(2)`` and ``RESOLVE_IN_ROOT`` (Linux 5.6+), and with an equivalent walk in
user space (one component at a time, ``O_NOFOLLOW``, symlinks read and resolved by hand,
``..`` clamped at the root) on kernels or sandboxes without ``openat2``.

The functions return plain file descriptors (close them); callers then act on entries with the
``*at`` calls (``os`` functions with ``dir_fd=`` and ``follow_symlinks=False``), never by
joining path strings. Failures are ``OSError`` with the kernel's errno, as ``open(2)`` would
give; callers translate them into :mod:`berth.errors` with their own context. ``ELOOP`` means
a symlink loop, or a magic link such as ``/proc/self/root`` on a mounted procfs, which is
never followed.

``no_xdev=True`` refuses to cross mount points (``EXDEV``): right for a layer being unpacked,
wrong for a container root with volumes. The user-space walk can only compare device numbers
(a bind mount of the same filesystem is not noticed there); ``openat2`` checks mounts exactly.
``no_symlinks=True`` refuses every symlink on the way (``ELOOP``), as overlayfs lookups in a
lower layer do.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections import deque

__all__ = [
    "open_dir_in_root",
    "open_in_root",
    "open_parent_in_root",
    "openat2_available",
    "use_openat2",
]

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437, "riscv64": 437, "ppc64le": 437}
_MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class _State:
    """Whether openat2 is used: probed once, switchable for tests."""

    enabled: bool | None = None  # None: not probed yet
    libc: ctypes.CDLL | None = None
    number: int | None = _SYS_OPENAT2.get(os.uname().machine)  # platform.machine(), unimported


def _raw_openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    libc = _State.libc
    if libc is None:
        libc = _State.libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(flags, mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0, resolve)
    while True:
        fd: int = libc.syscall(
            ctypes.c_long(_State.number or -1),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        # EAGAIN: a concurrent rename raced with ".." resolution; the kernel asks to retry.
        if err not in (errno.EINTR, errno.EAGAIN):
            raise OSError(err, os.strerror(err), os.fsdecode(path))


def openat2_available() -> bool:
    """True when the kernel (and any seccomp filter around us) lets openat2 run."""
    if _State.enabled is None:
        if _State.number is None:
            _State.enabled = False
        else:
            try:
                os.close(_raw_openat2(-100, b"/", os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT))
                _State.enabled = True
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                    raise
                _State.enabled = False
    return _State.enabled


def use_openat2(enabled: bool) -> bool:
    """Switch openat2 off (forcing the user-space walk) or back on; returns the old setting.

    Meant for tests of the fallback. Turning it on where the kernel lacks it has no effect.
    """
    old = openat2_available()
    _State.enabled = None if enabled else False
    openat2_available()
    return old


def _as_bytes(path: str | bytes) -> bytes:
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"embedded null byte in path {path!r}")
    return raw


def _resolve_flags(no_xdev: bool, no_symlinks: bool) -> int:
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    if no_xdev:
        resolve |= RESOLVE_NO_XDEV
    if no_symlinks:
        resolve |= RESOLVE_NO_SYMLINKS
    return resolve


def open_in_root(
    root_fd: int,
    path: str | bytes,
    flags: int,
    mode: int = 0,
    *,
    no_xdev: bool = False,
    no_symlinks: bool = False,
) -> int:
    """``openat(root_fd, path, flags, mode)`` with ``path`` resolved inside ``root_fd``.

    Absolute paths and absolute symlinks start at the root; ``..`` never goes above it. The
    final component is followed when it is a symlink unless ``flags`` has ``O_NOFOLLOW`` (then
    ``ELOOP``, or the link itself with ``O_PATH``). ``O_CLOEXEC`` is always added.
    """
    raw = _as_bytes(path) or b"."
    flags |= os.O_CLOEXEC
    if openat2_available():
        return _raw_openat2(root_fd, raw, flags, mode, _resolve_flags(no_xdev, no_symlinks))
    return _Walk(root_fd, no_xdev, no_symlinks).open(raw, flags, mode)


def open_dir_in_root(
    root_fd: int,
    path: str | bytes,
    *,
    create: bool = False,
    mode: int = 0o755,
    no_xdev: bool = False,
    no_symlinks: bool = False,
) -> int:
    """An ``O_RDONLY|O_DIRECTORY`` fd of the directory ``path`` resolved inside the root.

    With ``create``, missing directories are made one component at a time (``mkdirat`` then
    an ``O_NOFOLLOW`` open), with ``mode`` exactly (the umask is undone), owned by the caller.
    A dangling symlink on the way is resolved inside the root and its target created, so
    ``a -> /x/y`` then ``a/b`` makes ``<root>/x/y/b``. ``""``, ``"."`` and ``"/"`` give a new
    fd of the root itself.
    """
    raw = _as_bytes(path)
    if openat2_available():
        try:
            return _raw_openat2(
                root_fd, raw or b".", _DIR_FLAGS, 0, _resolve_flags(no_xdev, no_symlinks)
            )
        except FileNotFoundError:
            if not create:
                raise
    return _Walk(root_fd, no_xdev, no_symlinks).open_dir(raw, create, mode)


def open_parent_in_root(
    root_fd: int,
    path: str | bytes,
    *,
    create: bool = False,
    mode: int = 0o755,
    no_xdev: bool = False,
    no_symlinks: bool = False,
) -> tuple[int, str]:
    """The parent directory of ``path`` resolved inside the root, and the final name.

    The final component is not resolved at all: act on it with ``*at`` calls and
    ``follow_symlinks=False``. ``create`` makes missing parents as :func:`open_dir_in_root`
    does. A path without a final name (``/``, ``.``, ``a/..``) is ``EINVAL``.
    """
    raw = _as_bytes(path).rstrip(b"/")
    parent, _, name = raw.rpartition(b"/")
    if name in (b"", b".", b".."):
        raise OSError(errno.EINVAL, "path has no final name to act on", os.fsdecode(path))
    fd = open_dir_in_root(
        root_fd, parent, create=create, mode=mode, no_xdev=no_xdev, no_symlinks=no_symlinks
    )
    return fd, os.fsdecode(name)


class _Walk:
    """The user-space equivalent of ``RESOLVE_IN_ROOT``: one component at a time.

    ``stack`` holds fds of the directories below the root on the way to the current one, so
    ``..`` pops back to the physical parent (clamped at the root) exactly as the kernel does.
    No component is ever opened following a symlink: links are read and their text is pushed
    back onto the components still to walk (an absolute one restarts at the root).
    """

    def __init__(self, root_fd: int, no_xdev: bool, no_symlinks: bool) -> None:
        self.root_fd = root_fd
        self.no_xdev = no_xdev
        self.no_symlinks = no_symlinks
        self.root_dev = os.fstat(root_fd).st_dev if no_xdev else 0
        self.stack: list[int] = []
        self.links = 0

    @property
    def current(self) -> int:
        return self.stack[-1] if self.stack else self.root_fd

    def _close_all(self) -> None:
        while self.stack:
            os.close(self.stack.pop())

    def _follow(self, comps: deque[bytes], target: bytes, path: bytes) -> None:
        self.links += 1
        if self.no_symlinks or self.links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fsdecode(path))
        if target.startswith(b"/"):
            self._close_all()
        comps.extendleft(reversed(target.split(b"/")))

    def _readlink(self, name: bytes) -> bytes | None:
        try:
            return os.readlink(name, dir_fd=self.current)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return None
            raise

    def _push_dir(self, name: bytes, path: bytes) -> None:
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.current)
        if self.no_xdev and os.fstat(fd).st_dev != self.root_dev:
            os.close(fd)
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fsdecode(path))
        self.stack.append(fd)

    def _step_dir(
        self, comps: deque[bytes], name: bytes, path: bytes, create: bool, mode: int
    ) -> None:
        """Enter directory ``name`` of the current one, following or creating as needed."""
        try:
            self._push_dir(name, path)
            return
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                target = self._readlink(name)
                if target is None:
                    raise OSError(
                        errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fsdecode(path)
                    ) from None
                self._follow(comps, target, path)
                return
            if exc.errno != errno.ENOENT or not create:
                raise
        try:
            os.mkdir(name, 0o700, dir_fd=self.current)
        except FileExistsError:
            comps.appendleft(name)  # raced with someone else: look again at what is there now
            return
        # Set the mode through an O_NOFOLLOW fd: never by name, which could be swapped.
        self._push_dir(name, path)
        os.fchmod(self.stack[-1], mode)

    def _walk_dirs(self, comps: deque[bytes], path: bytes, create: bool, mode: int) -> None:
        while comps:
            name = comps.popleft()
            if name in (b"", b"."):
                continue
            if name == b"..":
                if self.stack:
                    os.close(self.stack.pop())
                continue
            self._step_dir(comps, name, path, create, mode)

    def open_dir(self, path: bytes, create: bool, mode: int) -> int:
        try:
            self._walk_dirs(deque(path.split(b"/")), path, create, mode)
            if not self.stack:
                return os.dup(self.root_fd)
            return self.stack.pop()
        finally:
            self._close_all()

    def open(self, path: bytes, flags: int, mode: int) -> int:
        comps = deque(path.split(b"/"))
        if path.endswith(b"/"):
            flags |= os.O_DIRECTORY
        try:
            while True:
                # Walk all but the last real component as directories.
                while comps and (len(comps) > 1 or comps[0] in (b"", b".", b"..")):
                    name = comps.popleft()
                    if name in (b"", b"."):
                        continue
                    if name == b"..":
                        if self.stack:
                            os.close(self.stack.pop())
                        continue
                    self._step_dir(comps, name, path, False, 0)
                if not comps:
                    return os.open(".", flags & ~(os.O_CREAT | os.O_EXCL), dir_fd=self.current)
                name = comps.popleft()
                if not flags & os.O_NOFOLLOW and not (flags & os.O_CREAT and flags & os.O_EXCL):
                    target = self._readlink(name)
                    if target is not None:
                        self._follow(comps, target, path)
                        continue
                fd = os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=self.current)
                if self.no_xdev and os.fstat(fd).st_dev != self.root_dev:
                    os.close(fd)
                    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fsdecode(path))
                return fd
        finally:
            self._close_all()
