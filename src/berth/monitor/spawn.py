"""Starting a store's supervisor (through its anchor) exactly once, whoever asks.

Any number of CLIs may find no supervisor at the same moment. ``start.lock`` lets one of them
at a time go on; it looks again, and if there is still none it takes ``anchor.lock``,
which a live anchor (and its supervisor) always holds, and hands that very lock to the anchor
it starts: no moment exists in which a second anchor could think it is the only one. Then it
waits until the supervisor answers on its socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Sequence

from berth.errors import HostError
from berth.monitor.paths import MonitorPaths
from berth.store.paths import StorePaths

START_TIMEOUT = 30.0
LOG_LIMIT = 1 << 20
ANCHOR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "anchor")


def can_connect(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def anchor_alive(paths: MonitorPaths) -> bool:
    """Whether an anchor (or the supervisor it started) holds the store's anchor lock."""
    try:
        fd = os.open(paths.anchor_lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def start_supervisor(
    store: StorePaths, *, extra_args: Sequence[str] = (), timeout: float = START_TIMEOUT
) -> None:
    """Make sure the store's supervisor runs; return once it answers."""
    paths = MonitorPaths(store.run_dir)
    try:
        os.makedirs(paths.run_dir, mode=0o711, exist_ok=True)
        lock = os.open(paths.start_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except PermissionError:
        raise HostError(
            f"cannot create {paths.run_dir}: permission denied",
            hint="detached containers need the supervisor, which runs as root",
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        deadline = time.monotonic() + timeout
        spawned = False
        while not can_connect(paths.socket):
            if not spawned:
                spawned = _spawn_unless_alive(store, paths, extra_args)
            elif not anchor_alive(paths):
                raise HostError(
                    f"the supervisor of {store.root} exited at once: {_log_tail(paths)}",
                    hint=f"see {paths.log}",
                )
            if time.monotonic() > deadline:
                raise HostError(
                    f"the supervisor of {store.root} did not answer within {timeout:.0f} s",
                    hint=f"see {paths.log}",
                )
            time.sleep(0.01)
    finally:
        os.close(lock)


def _spawn_unless_alive(store: StorePaths, paths: MonitorPaths, extra: Sequence[str]) -> bool:
    """Start an anchor unless one lives (then its supervisor is on its way); True if one
    was started."""
    fd = os.open(paths.anchor_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        _spawn(store, paths, fd, extra)
        return True
    finally:
        os.close(fd)  # the anchor holds the lock through its own copy


def _spawn(store: StorePaths, paths: MonitorPaths, lock_fd: int, extra: Sequence[str]) -> None:
    binary = install_anchor(paths)
    argv = [
        binary,
        sys.executable,
        "-m",
        "berth.monitor",
        "--root",
        store.root,
        "--lock-fd",
        str(lock_fd),
        *extra,
    ]
    _rotate_log(paths.log)
    log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.set_inheritable(lock_fd, True)
    try:
        pid = os.posix_spawn(
            binary,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
        )
        _, status = os.waitpid(pid, 0)  # the anchor detaches itself at once
    finally:
        os.set_inheritable(lock_fd, False)
        os.close(log_fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise HostError(f"cannot start the anchor of {store.root}", hint=f"see {paths.log}")


def install_anchor(paths: MonitorPaths) -> str:
    """Copy the anchor binary for this machine into the run dir (once per version)."""
    machine = os.uname().machine
    source = os.path.join(ANCHOR_DIR, f"anchor.{machine}.bin")
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise HostError(
            f"berth has no supervisor anchor for {machine}",
            hint="build it: python src/berth/monitor/anchor/build.py",
        ) from None
    target = paths.anchor_binary
    with contextlib.suppress(OSError), open(target, "rb") as f:
        if f.read() == data:
            return target
    tmp = f"{target}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, target)
    return target


def _rotate_log(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.getsize(path) > LOG_LIMIT:
            os.replace(path, f"{path}.1")


def _log_tail(paths: MonitorPaths) -> str:
    try:
        with open(paths.log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"
