"""Terminals: the container's pty, the ``--console-socket`` protocol, and a foreground proxy.

When ``process.terminal`` is true, the container's init (or the ``exec``'d process) opens a
pty in the container's own devpts (after ``pivot_root``), binds the pty's peer on
``/dev/console``, makes the peer its controlling terminal and stdio, and hands the pty's
master to whoever asked for it, as runc does: over a unix socket (``--console-socket``), one
message whose ancillary data carries the fd (``SCM_RIGHTS``) and whose bytes are the peer's
path. Without a console socket, a foreground ``run``/``exec`` receives the master itself over
a socketpair and copies between it and its own stdio (:class:`TtyProxy`).

:mod:`socket` is imported only when a terminal is involved (it costs about 8 ms).
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from berth.errors import ContainerError, InvalidArgument
from berth.runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket as socket_module
    from typing import Any

_WINSIZE = "HHHH"


def socket_module_loaded() -> Any:
    """Import :mod:`socket` (do it before forking: nothing can be imported in the container)."""
    import socket

    return socket


def connect_console_socket(path: str) -> socket_module.socket:
    socket = socket_module_loaded()
    sock: socket_module.socket = socket.socket(
        socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC
    )
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(
            f"cannot connect to the console socket {path}: {exc.strerror}",
            hint="--console-socket must name a listening unix socket",
        ) from None
    return sock


def console_socketpair() -> tuple[socket_module.socket, socket_module.socket]:
    socket = socket_module_loaded()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    return a, b


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack(_WINSIZE, rows, cols, 0, 0))


def get_window_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack(
            _WINSIZE, fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        )
    except OSError:
        return None
    return rows, cols


def proxied_size(stdin: int, stdout: int) -> tuple[int, int] | None:
    """The size of the terminal a foreground container's pty is proxied to: its stdin's, or
    its stdout's when stdin is not a terminal."""
    return get_window_size(stdin) or get_window_size(stdout)


def setup_container_console(
    sock: socket_module.socket, size: dict[str, int] | None, bind_dev_console: bool
) -> None:
    """In the container (after pivot_root): a pty from the container's devpts, its peer as
    controlling terminal and stdio (and on /dev/console), the master sent over ``sock``."""
    try:
        master, peer = os.openpty()
    except OSError as exc:
        raise ContainerError(
            f"cannot open a pty in the container: {exc.strerror}",
            hint="a terminal needs a devpts mount on /dev/pts and /dev/ptmx in the container",
        ) from None
    try:
        name = os.ttyname(peer)
        if size:
            set_window_size(master, int(size.get("height", 0)), int(size.get("width", 0)))
        if bind_dev_console:
            _bind_dev_console(name)
        send_fd(sock, master, name)
    finally:
        os.close(master)
        sock.close()
    os.setsid()
    fcntl.ioctl(peer, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(peer, target)
    os.close(peer)


def _bind_dev_console(name: str) -> None:
    try:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        syscalls.mount(name, "/dev/console", None, syscalls.MS_BIND, None)
    except OSError as exc:
        raise ContainerError(f"cannot bind {name} on /dev/console: {exc.strerror}") from None


def send_fd(sock: socket_module.socket, fd: int, name: str) -> None:
    socket = socket_module_loaded()
    try:
        socket.send_fds(sock, [name.encode()], [fd])
    except OSError as exc:
        raise ContainerError(f"cannot send the pty over the console socket: {exc}") from None


def receive_fd(sock: socket_module.socket) -> tuple[int, str]:
    """The fd (and the name sent with it) of one console-socket message."""
    socket = socket_module_loaded()
    data, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise ContainerError("the container sent no pty over the console socket")
    os.set_inheritable(fds[0], False)
    return fds[0], data.decode(errors="replace")


class TtyProxy:
    """Copy the host's stdin to the pty master and the master to stdout; the host terminal in
    raw mode meanwhile, its window size passed on."""

    __slots__ = ("_saved", "master", "stdin", "stdout")

    def __init__(self, master: int, stdin: int = 0, stdout: int = 1) -> None:
        self.master = master
        self.stdin = stdin
        self.stdout = stdout
        self._saved: list[Any] | None = None

    def start(self) -> None:
        if os.isatty(self.stdin):
            import tty

            self._saved = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin)
        self.resize()

    def resize(self) -> None:
        size = proxied_size(self.stdin, self.stdout)
        if size:
            set_window_size(self.master, *size)

    def stop(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.stdin, termios.TCSADRAIN, self._saved)
            self._saved = None

    def from_master(self) -> bool:
        """Copy what the pty has to stdout; False once the pty is closed."""
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        if not data:
            return False
        _write_all(self.stdout, data)
        return True

    def from_stdin(self) -> bool:
        """Copy what stdin has to the pty; False at end-of-file."""
        try:
            data = os.read(self.stdin, 65536)
        except OSError:
            return False
        if not data:
            return False
        try:
            _write_all(self.master, data)
        except OSError:
            return False
        return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
