"""One client connection to the supervisor: a request line in, a reply line out, or (attach)
a stream of frames both ways. Non-blocking, driven by the loop."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from berth.monitor import protocol
from berth.monitor.loop import Loop

HIGH_WATER = 1 << 20  # unsent bytes beyond which a stream's producer pauses


class Connection:
    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        on_request: Callable[[Connection, dict[str, Any]], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self._in = bytearray()
        self._out = bytearray()
        self._on_request = on_request
        self._stream_handler: Callable[[bytes], None] | None = None
        self._early = b""
        self._close_when_sent = False
        self.on_close: list[Callable[[], None]] = []
        self.on_drained: Callable[[], None] | None = None
        sock.setblocking(False)
        loop.add_reader(self.fd, self._readable)

    # ------------------------------------------------------------------ reading

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self._stream_handler is not None:
            self._stream_handler(data)
            return
        self._in += data
        newline = self._in.find(b"\n")
        if newline < 0:
            if len(self._in) > protocol.MAX_REQUEST:
                self.close()
            return
        line, self._early = bytes(self._in[:newline]), bytes(self._in[newline + 1 :])
        self._in.clear()
        # one request per connection; what follows is ignored (unless the request is a
        # stream), but reading goes on so that a client that leaves is noticed
        self._stream_handler = _ignore
        try:
            request = protocol.decode(line)
        except ValueError:
            self.reply({"ok": False, "error": "InvalidArgument", "message": "bad request"})
            return
        self._on_request(self, request)

    def stream(self, handler: Callable[[bytes], None]) -> None:
        """From now on, bytes from the client go to ``handler`` (attach)."""
        self._stream_handler = handler
        early, self._early = self._early, b""
        if early:
            handler(early)

    def pause_reading(self, paused: bool) -> None:
        if self.closed or self._stream_handler is None:
            return
        if paused:
            self.loop.remove_reader(self.fd)
        else:
            self.loop.add_reader(self.fd, self._readable)

    # ------------------------------------------------------------------ writing

    def reply(self, message: dict[str, Any], *, keep_open: bool = False) -> None:
        self.send(protocol.encode(message))
        if not keep_open:
            self.close_when_sent()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self._out += data
        self._flush()

    @property
    def unsent(self) -> int:
        return len(self._out)

    def close_when_sent(self) -> None:
        self._close_when_sent = True
        if not self._out:
            self.close()

    def _flush(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            del self._out[:sent]
        if self._out:
            self.loop.add_writer(self.fd, self._flush)
            return
        self.loop.remove_writer(self.fd)
        if self._close_when_sent:
            self.close()
        elif self.on_drained is not None:
            self.on_drained()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget_fd(self.fd)
        self.sock.close()
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback()


def _ignore(data: bytes) -> None:
    pass
