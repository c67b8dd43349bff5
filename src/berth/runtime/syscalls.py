"""Thin ctypes wrappers for the Linux system calls Python 3.11's ``os`` lacks.

Every wrapper raises :class:`OSError` with the errno and the path or operation involved; the
callers turn that into a :mod:`berth.errors` class with the container context. Nothing here
knows about containers.

``ctypes`` is imported once, when this module is, and every function resolves its symbol then:
the container's init calls these after ``pivot_root``, when no shared library or module can be
loaded any more.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# clone(2) / unshare(2) / setns(2) flags
CLONE_NEWTIME = 0x00000080
CLONE_PARENT = 0x00008000
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# close_range(2) flags
CLOSE_RANGE_CLOEXEC = 0x4

AT_EMPTY_PATH = 0x1000
SIGCHLD = 17

# socket(2)
AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000

_SYSCALL_NUMBERS = {
    # name: (x86_64, aarch64)
    "clone": (56, 220),
    "pivot_root": (155, 41),
    "close_range": (436, 436),
    "openat2": (437, 437),
    "execveat": (322, 281),
    "keyctl": (250, 219),
}
_MACHINE = os.uname().machine
_ARCH_INDEX = {"x86_64": 0, "aarch64": 1}.get(_MACHINE, -1)


def _number(name: str) -> int:
    if _ARCH_INDEX < 0:
        raise OSError(0, f"berth's runtime does not support the {_MACHINE} architecture")
    return _SYSCALL_NUMBERS[name][_ARCH_INDEX]


# PyDLL keeps the GIL held across calls: the raw clone below must not release it, and none of
# these calls blocks for long.
_libc = ctypes.PyDLL(None, use_errno=True)
_c_long = ctypes.c_long
_c_ulong = ctypes.c_ulong
_c_int = ctypes.c_int
_c_char_p = ctypes.c_char_p
_c_void_p = ctypes.c_void_p

_syscall = _libc.syscall
_syscall.restype = _c_long

_unshare = _libc.unshare
_unshare.argtypes = [_c_int]
_unshare.restype = _c_int

_setns = _libc.setns
_setns.argtypes = [_c_int, _c_int]
_setns.restype = _c_int

_mount = _libc.mount
_mount.argtypes = [_c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p]
_mount.restype = _c_int

_umount2 = _libc.umount2
_umount2.argtypes = [_c_char_p, _c_int]
_umount2.restype = _c_int

_prctl = _libc.prctl
_prctl.argtypes = [_c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong]
_prctl.restype = _c_int

_sethostname = _libc.sethostname
_sethostname.argtypes = [_c_char_p, ctypes.c_size_t]
_sethostname.restype = _c_int

_setdomainname = _libc.setdomainname
_setdomainname.argtypes = [_c_char_p, ctypes.c_size_t]
_setdomainname.restype = _c_int

_socket = _libc.socket
_socket.argtypes = [_c_int, _c_int, _c_int]
_socket.restype = _c_int


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _fail(what: str, path: str | None = None) -> NoReturn:
    err = ctypes.get_errno()
    if path is None:
        raise OSError(err, f"{what}: {os.strerror(err)}")
    raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    if _unshare(flags) != 0:
        _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    if _setns(fd, nstype) != 0:
        _fail(f"setns({nstype:#x})")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    if _mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        _fail(f"mount {source or fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    if _umount2(_b(target), flags) != 0:
        _fail(f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _syscall(_c_long(_number("pivot_root")), _b(new_root), _b(put_old)) != 0:
        _fail("pivot_root", new_root)


_madvise = _libc.madvise
_madvise.argtypes = [_c_void_p, ctypes.c_size_t, _c_int]
_madvise.restype = _c_int
MADV_POPULATE_WRITE = 23


def madvise(address: int, length: int, advice: int) -> None:
    if _madvise(address, length, advice) != 0:
        _fail(f"madvise({advice})")


_inotify_init1 = _libc.inotify_init1
_inotify_init1.argtypes = [_c_int]
_inotify_init1.restype = _c_int
_inotify_add_watch = _libc.inotify_add_watch
_inotify_add_watch.argtypes = [_c_int, _c_char_p, ctypes.c_uint32]
_inotify_add_watch.restype = _c_int
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init1(flags: int) -> int:
    fd: int = _inotify_init1(flags)
    if fd < 0:
        _fail("inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    wd: int = _inotify_add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        _fail("inotify_add_watch", path)
    return wd


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result: int = _prctl(option, arg2, arg3, arg4, arg5)
    if result < 0:
        _fail(f"prctl({option})")
    return result


def sethostname(name: str) -> None:
    raw = name.encode()
    if _sethostname(raw, len(raw)) != 0:
        _fail(f"sethostname {name!r}")


def socket_fd(family: int, kind: int) -> int:
    """``socket(2)``: a bare socket fd, for an ``ioctl`` (:mod:`socket` costs milliseconds to
    import, and the container's init must not import anything)."""
    fd: int = _socket(family, kind | SOCK_CLOEXEC, 0)
    if fd < 0:
        _fail(f"socket({family}, {kind})")
    return fd


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _setdomainname(raw, len(raw)) != 0:
        _fail(f"setdomainname {name!r}")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """``openat2(2)``: open ``path`` relative to ``dirfd`` under the ``RESOLVE_*`` rules."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd: int = _syscall(
        _c_long(_number("openat2")),
        _c_int(dirfd),
        _b(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        _fail(f"open {path}", path)
    return fd


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    if first > last:
        return
    if _syscall(_c_long(_number("close_range")), _c_ulong(first), _c_ulong(last), _c_int(flags)):
        _fail("close_range")


def clone_parent() -> int:
    """Fork with ``CLONE_PARENT``: the child is a sibling of the caller (a child of its parent).

    Only for a single-threaded caller (a freshly forked child): like ``fork()`` without the
    C library's fork handlers, which a single-threaded process does not need. Returns 0 in the
    child and the child's pid (in the caller's pid namespace) in the caller.
    """
    pid: int = _syscall(
        _c_long(_number("clone")), _c_ulong(CLONE_PARENT | SIGCHLD), None, None, None, None
    )
    if pid < 0:
        _fail("clone")
    return pid


def _string_array(items: list[str]) -> ctypes.Array[ctypes.c_char_p]:
    array = (ctypes.c_char_p * (len(items) + 1))()
    for i, item in enumerate(items):
        array[i] = os.fsencode(item)
    array[len(items)] = None
    return array


def execveat(fd: int, argv: list[str], envp: list[str]) -> NoReturn:
    """``execveat(fd, "", argv, envp, AT_EMPTY_PATH)``: execute the file open as ``fd``.

    The environment is passed exactly as given (a list of ``NAME=value`` strings), which
    :func:`os.execve` cannot do (it wants a mapping)."""
    _syscall(
        _c_long(_number("execveat")),
        _c_int(fd),
        b"",
        _string_array(argv),
        _string_array(envp),
        _c_int(AT_EMPTY_PATH),
    )
    _fail("execveat")


KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str | None) -> None:
    """A new session keyring for the container (as runc makes one, so containers do not share
    the host's)."""
    if _syscall(_c_long(_number("keyctl")), _c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name)) < 0:
        _fail("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
