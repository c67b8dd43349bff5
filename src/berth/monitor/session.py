"""An attached client: the container's output goes to it as frames, its stdin, terminal size
and signals come back (see :mod:`.protocol`)."""

from __future__ import annotations

import contextlib
import fcntl
import struct
import termios
from typing import TYPE_CHECKING

from berth.errors import BerthError
from berth.monitor import protocol
from berth.monitor.connection import HIGH_WATER, Connection
from berth.monitor.loop import log

if TYPE_CHECKING:
    from berth.monitor.supervised import Supervised
    from berth.monitor.supervisor import Supervisor


class AttachSession:
    def __init__(
        self,
        supervisor: Supervisor,
        supervised: Supervised,
        conn: Connection,
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> None:
        self.supervisor = supervisor
        self.supervised = supervised
        self.conn = conn
        self.stdin = stdin
        self.streams = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        self._frames = protocol.FrameReader()
        conn.on_close.append(self._closed)
        conn.on_drained = supervisor.resume_output_if_drained

    def begin(self) -> None:
        self.conn.stream(self._on_bytes)

    def output(self, stream: str, data: bytes) -> None:
        if stream in self.streams:
            self.conn.send(protocol.frame(protocol.STREAM_NUMBERS[stream], data))

    @property
    def congested(self) -> bool:
        return self.conn.unsent > HIGH_WATER

    def exited(self, code: int) -> None:
        self.conn.send(protocol.frame(protocol.EXIT, str(code).encode()))
        self.conn.close_when_sent()

    def _on_bytes(self, data: bytes) -> None:
        try:
            frames = self._frames.feed(data)
        except ValueError as exc:
            log(f"attach to {self.supervised.id[:12]}: {exc}; closing")
            self.conn.close()
            return
        for kind, payload in frames:
            if kind == protocol.STDIN and self.stdin:
                self.supervisor.write_stdin(self.supervised, payload, self.conn)
            elif kind == protocol.EOF and self.stdin:
                if self.supervised.stdin_once:
                    self.supervisor.close_stdin(self.supervised)
            elif kind == protocol.RESIZE:
                self._resize(payload)
            elif kind == protocol.SIGNAL:
                with contextlib.suppress(BerthError, ValueError):
                    self.supervisor.backend.kill(self.supervised.id, int(payload))

    def _resize(self, payload: bytes) -> None:
        master = self.supervised.master
        if master is None:
            return
        try:
            rows, cols = (int(x) for x in payload.split())
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except (ValueError, OSError):
            pass

    def _closed(self) -> None:
        with contextlib.suppress(ValueError):
            self.supervised.sessions.remove(self)
        self.supervisor.resume_output_if_drained()
