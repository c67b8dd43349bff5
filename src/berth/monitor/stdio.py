"""A supervised container's stdio: FIFOs that outlive the supervisor, or a pty.

Without a tty, stdout and stderr are FIFOs in the container's run dir. The container gets
each one opened read-write, so a reader always exists while it lives: when no supervisor
reads, its writes wait once the pipe is full, and never fail with EPIPE or SIGPIPE. The
supervisor reads them non-blocking, and a new supervisor opens them again by path.

stdin, for ``-i`` containers, is a FIFO the container opens read-only; the supervisor holds
the write end and gives the anchor a copy, so it stays open (no end-of-file) whatever happens
to the supervisor, until an attached client's stdin ends and the container asked for that
(``StdinOnce``). Without ``-i`` the container's stdin is /dev/null.

With a tty, the runtime sends the pty's master over a console socket; the anchor keeps a copy
too, so the terminal never hangs up under the container.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
from dataclasses import dataclass, field

from berth.errors import ContainerError
from berth.monitor.paths import MonitorPaths

STREAMS = ("stdout", "stderr")


@dataclass(slots=True)
class PreparedStdio:
    """What a container is started with, and the supervisor's ends."""

    container: tuple[int, int, int]  # the container's 0, 1, 2 (closed here once it runs)
    outputs: dict[int, str] = field(default_factory=dict)  # our read ends -> stream name
    stdin: int | None = None  # our write end of the stdin FIFO
    console: socket.socket | None = None
    console_path: str | None = None

    def close_container_ends(self) -> None:
        for fd in set(self.container):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.container = (-1, -1, -1)

    def abandon(self) -> None:
        """Undo everything (the start failed)."""
        self.close_container_ends()
        for fd in [*self.outputs, *([self.stdin] if self.stdin is not None else [])]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.outputs.clear()
        self.stdin = None
        self.close_console()

    def close_console(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.console_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.console_path)


def fifo_path(paths: MonitorPaths, container_id: str, name: str) -> str:
    return os.path.join(paths.container(container_id), name)


def _fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass


def prepare(
    paths: MonitorPaths, container_id: str, *, tty: bool, open_stdin: bool
) -> PreparedStdio:
    directory = paths.container(container_id)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    prepared = PreparedStdio((devnull, devnull, devnull))
    try:
        if tty:
            path = paths.console_socket(container_id)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(path)
            console.listen(1)
            prepared.console, prepared.console_path = console, path
            return prepared
        ends = []
        for name in STREAMS:
            path = fifo_path(paths, container_id, name)
            _fifo(path)
            prepared.outputs[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = name
            ends.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        stdin = devnull
        if open_stdin:
            path = fifo_path(paths, container_id, "stdin")
            _fifo(path)
            stdin = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            flags = fcntl.fcntl(stdin, fcntl.F_GETFL)
            fcntl.fcntl(stdin, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            prepared.stdin = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        prepared.container = (stdin, ends[0], ends[1])
        if stdin != devnull:
            os.close(devnull)
    except BaseException:
        prepared.abandon()
        raise
    return prepared


def receive_pty(console: socket.socket, container_id: str, timeout: float = 10.0) -> int:
    """The pty master the runtime sent to the console socket."""
    console.settimeout(timeout)
    try:
        conn, _ = console.accept()
    except TimeoutError:
        raise ContainerError(
            f"container {container_id[:12]} has a tty, but its runtime sent no terminal"
        ) from None
    with conn:
        conn.settimeout(timeout)
        fds = array.array("i")
        _, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise ContainerError(f"container {container_id[:12]}: no terminal came over the socket")
    for extra in fds[1:]:
        os.close(extra)
    master = fds[0]
    os.set_inheritable(master, False)
    os.set_blocking(master, False)
    return master


def reopen_outputs(paths: MonitorPaths, container_id: str) -> dict[int, str]:
    """A re-adopted container's FIFOs, opened again for reading."""
    outputs = {}
    for name in STREAMS:
        try:
            fd = os.open(
                fifo_path(paths, container_id, name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
            )
        except FileNotFoundError:
            continue
        outputs[fd] = name
    return outputs
