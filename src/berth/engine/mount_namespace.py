"""Running a piece of work in a child process with a mount namespace of its own, where a
stopped container's volumes and bind mounts are mounted over its root filesystem as they are
when it runs: ``cp`` into or out of a stopped container then sees them, and the host never
does (the namespace, and every mount in it, goes away with the child, however it ends).

Each destination is resolved inside the root (``openat2`` with ``RESOLVE_IN_ROOT``) and
mounted onto through ``/proc/self/fd``: a symlink the container planted at a mount point
cannot send a volume anywhere outside it.

The work gets the fd of the root in the child's namespace and returns something JSON can
carry (a count, a dict); a :class:`~berth.errors.BerthError` it raises is raised again in
the caller, with its class and message.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from berth import errors, jsonio
from berth.store import safepath

T = TypeVar("T")

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    )
    libc.unshare.argtypes = (ctypes.c_int,)
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_namespace(libc: Any) -> None:
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")


def _bind(libc: Any, root_fd: int, source: str, destination: str, readonly: bool) -> None:
    try:
        target = safepath.open_in_root(root_fd, destination, os.O_PATH)
    except FileNotFoundError:
        return  # not in the root filesystem: nothing to mount over
    try:
        where = f"/proc/self/fd/{target}".encode()
        _check(libc.mount(os.fsencode(source), where, None, MS_BIND | MS_REC, None), "bind")
    finally:
        os.close(target)
    if readonly:  # through the new mount's own root, resolved again inside the root
        mounted = safepath.open_in_root(root_fd, destination, os.O_PATH)
        try:
            flags = MS_BIND | MS_REMOUNT | MS_RDONLY
            where = f"/proc/self/fd/{mounted}".encode()
            _check(libc.mount(None, where, None, flags, None), "read-only remount")
        finally:
            os.close(mounted)


def run_with_binds(
    root: str, binds: Sequence[tuple[str, str, bool]], work: Callable[[int], T]
) -> T:
    """``work(root_fd)`` in a child whose mount namespace has ``binds`` (host source,
    destination in the root, read-only) mounted under ``root``."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (exercised by the integration tests)
        os.close(read_end)
        _child(root, binds, work, write_end)
    os.close(write_end)
    try:
        with open(read_end, "rb") as reply:
            data = reply.read()
    finally:
        os.waitpid(pid, 0)
    return _result(data)  # type: ignore[no-any-return]


def _child(
    root: str, binds: Sequence[tuple[str, str, bool]], work: Callable[[int], Any], out: int
) -> None:
    payload: dict[str, Any]
    try:
        libc = _libc()
        _private_namespace(libc)
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for source, destination, readonly in binds:
            try:
                _bind(libc, root_fd, source, destination, readonly)
            except OSError as exc:
                raise errors.ContainerError(
                    f"cannot mount {source} at {destination} for the copy: {exc.strerror}"
                ) from None
        payload = {"result": work(root_fd)}
    except errors.BerthError as exc:
        payload = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    except BaseException as exc:
        payload = {"error": "ContainerError", "message": f"{type(exc).__name__}: {exc}"}
    try:
        sys.stdout.flush()
        os.write(out, jsonio.dumps(payload).encode())
    finally:
        os._exit(0)


def _result(data: bytes) -> Any:
    if not data:
        raise errors.ContainerError("the process that mounted the container's volumes died")
    payload = jsonio.loads(data)
    if "error" in payload:
        cls = getattr(errors, str(payload["error"]), errors.ContainerError)
        if not (isinstance(cls, type) and issubclass(cls, errors.BerthError)):
            cls = errors.ContainerError
        try:
            error = cls(str(payload["message"]), hint=payload.get("hint"))
        except TypeError:  # a class that needs more than a message
            error = errors.ContainerError(str(payload["message"]), hint=payload.get("hint"))
        raise error
    return payload["result"]
