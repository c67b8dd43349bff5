"""Persistent network namespaces, bound to a file, made without a new process.

A network namespace lives as long as a process is in it or a file is bound to it. berth makes
one for each container before the container exists: a short-lived *thread* unshares its own
network namespace (a thread can, even in a multi-threaded program), opens a netlink socket
there, and bind-mounts ``/proc/thread-self/ns/net`` onto ``<run_dir>/netns/<container-id>``.
The thread then ends; the namespace stays, held by the mount, and the socket goes on configuring
it from the caller's thread. The runtime joins the namespace through the OCI spec's
``linux.namespaces[{"type": "network", "path": ...}]``.

The same trick with ``setns`` opens a netlink socket inside an existing namespace (to connect a
running container to another network, or to look inside one in a test).
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py adds enums, ~3 ms to import
import ctypes
import errno
import fcntl
import os
import threading
from collections.abc import Callable

from berth.errors import HostError, NetworkError
from berth.network import netlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
NS_GET_NSTYPE = 0xB703

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _in_thread(func: Callable[[], T]) -> T:
    """Run ``func`` in a new OS thread (its namespace changes die with the thread)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="berth-netns")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def create(path: str) -> netlink.RtNetlink:
    """Make a new network namespace bound at ``path``; returns a netlink socket inside it.

    The namespace's loopback is set up before returning. Fails with NetworkError when ``path``
    exists already.
    """
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        raise NetworkError(
            f"a network namespace already exists at {path}",
            hint="remove the container's network first (berth rm -f), or run "
            "`berth system check --repair`",
        ) from None

    def make() -> socket.socket:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        sock = netlink.open_socket()
        try:
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None),
                   f"bind mount of the network namespace on {path}")
        except BaseException:
            sock.close()
            raise
        return sock

    try:
        sock = _in_thread(make)
    except OSError as exc:
        _unlink(path)
        if exc.errno == errno.EPERM:
            raise HostError(
                "cannot create a network namespace: permission denied",
                hint="run berth as root",
            ) from None
        raise NetworkError(f"cannot create a network namespace at {path}: {exc}") from None
    rtnl = netlink.RtNetlink(sock)
    try:
        rtnl.run([netlink.set_up(1, "lo")])  # lo is always index 1 in a new namespace
    except BaseException:
        rtnl.close()
        remove(path)
        raise
    return rtnl


def open_netlink(path: str) -> netlink.RtNetlink:
    """A netlink socket inside the namespace bound at ``path`` (or ``/proc/PID/ns/net``)."""
    fd = open_fd(path)

    def enter() -> socket.socket:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns({path})")
        return netlink.open_socket()

    try:
        return netlink.RtNetlink(_in_thread(enter))
    finally:
        os.close(fd)


def open_fd(path: str) -> int:
    """An fd of the network namespace at ``path``; NetworkError when it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open the network namespace {path}: {exc.strerror}") from None
    if not _is_netns_fd(fd):
        os.close(fd)
        raise NetworkError(f"{path} is not a network namespace (nothing is bound to it)")
    return fd


def _is_netns_fd(fd: int) -> bool:
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False


def exists(path: str) -> bool:
    """Whether a network namespace is bound at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _is_netns_fd(fd)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Unbind and delete the namespace file at ``path``; nothing to do when it is gone.

    The namespace itself ends when no process is left in it.
    """
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point
            raise NetworkError(f"cannot unmount the network namespace {path}: "
                               f"{os.strerror(code)}")
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
