"""The client's side of ``attach``: this process's stdio connected to a container's.

With a tty the terminal is put in raw mode (restored however it ends) and its size follows
SIGWINCH. Without one, signals this process gets are passed to the container (sig-proxy).
The detach keys (Docker's ``ctrl-p,ctrl-q`` by default) end the attachment, leaving the
container running; a prefix of them that turns out not to be them is passed on.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Iterator

from berth.errors import ContainerError, InvalidArgument
from berth.monitor import protocol

PROXIED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` -> b"\\x10\\x11"; a key is ``ctrl-<a-z@[\\\\]^_>`` or one character."""
    keys = bytearray()
    for key in text.split(","):
        lowered = key.lower()
        if len(key) == 1:
            keys.append(ord(key))
        elif lowered.startswith("ctrl-") and len(key) == 6:
            char = lowered[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL:
                keys.append(_CTRL[char])
            else:
                raise InvalidArgument(f"Invalid detach keys ({text}) provided")
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(keys)


class DetachMatcher:
    """Finds the detach sequence in what the user types, holding back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What to pass on, and whether the sequence was completed."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[: self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out), False


@contextlib.contextmanager
def _raw_terminal(fd: int, enabled: bool) -> Iterator[None]:
    if not enabled or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size_frame(fd: int) -> bytes | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return protocol.frame(protocol.RESIZE, f"{size.lines} {size.columns}".encode())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def proxy(
    sock: socket.socket,
    early: bytes,
    *,
    stdin: bool,
    tty: bool,
    container_tty: bool,
    detach_keys: bytes,
    sig_proxy: bool,
) -> int:
    """Copy until the container exits (its code) or the user detaches (0)."""
    reader = protocol.FrameReader()
    matcher = DetachMatcher(detach_keys)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pending_signals: list[int] = []
    handled: list[int] = [signal.SIGWINCH] if container_tty else []
    if sig_proxy and not container_tty:
        handled += PROXIED_SIGNALS
    old_handlers = {}

    def on_signal(signum: int, _frame: object) -> None:
        pending_signals.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_write, b"s")

    try:
        for signum in handled:
            with contextlib.suppress(ValueError, OSError):
                old_handlers[signum] = signal.signal(signum, on_signal)
        with _raw_terminal(0, tty and stdin):
            if container_tty:
                resize = _size_frame(1 if os.isatty(1) else 0)
                if resize:
                    sock.sendall(resize)
            reading_stdin = stdin
            pending = list(reader.feed(early))
            while True:
                for kind, payload in pending:
                    if kind in (protocol.STDOUT, protocol.STDERR):
                        _write_all(kind, payload)
                    elif kind == protocol.EXIT:
                        return int(payload or b"0")
                pending = []
                watched = [sock.fileno(), wake_read] + ([0] if reading_stdin else [])
                ready, _, _ = select.select(watched, [], [])
                if wake_read in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 64)
                    while pending_signals:
                        signum = pending_signals.pop(0)
                        if signum == signal.SIGWINCH:
                            resize = _size_frame(1 if os.isatty(1) else 0)
                            if resize:
                                sock.sendall(resize)
                        else:
                            sock.sendall(protocol.frame(protocol.SIGNAL, str(signum).encode()))
                if 0 in ready:
                    data = os.read(0, 32768)
                    if not data:
                        reading_stdin = False
                        sock.sendall(protocol.frame(protocol.EOF, b""))
                    else:
                        data, detached = matcher.feed(data)
                        if data:
                            sock.sendall(protocol.frame(protocol.STDIN, data))
                        if detached:
                            return 0
                if sock.fileno() in ready:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ContainerError("lost the connection to the supervisor while attached")
                    pending = reader.feed(chunk)
    finally:
        for signum, handler in old_handlers.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)
