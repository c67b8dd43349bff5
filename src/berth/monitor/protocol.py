"""What CLIs and the supervisor say to each other over ``supervisor.sock``.

A request is one JSON object on one line (``{"op": "start", "id": "..."}``); the answer is
one JSON line too: ``{"ok": true, ...}`` or ``{"ok": false, "error": "ContainerError",
"message": "...", "hint": "..."}``, which the client raises again as the same
:mod:`berth.errors` class with the same message. One request per connection.

``attach`` turns its connection into a stream of frames after the answer, both ways. A frame
is Docker's multiplexed-stream header (stream byte, three zero bytes, big-endian 32-bit
length) and its payload; berth adds a few stream numbers of its own for control::

    0 STDIN   client -> supervisor   bytes for the container's stdin
    1 STDOUT  supervisor -> client   output (a tty container's only stream)
    2 STDERR  supervisor -> client
    16 EOF    client -> supervisor   the client's stdin ended
    17 RESIZE client -> supervisor   "ROWS COLS" (tty)
    18 SIGNAL client -> supervisor   "SIGNUM" (sig-proxy)
    19 EXIT   supervisor -> client   "CODE": the container exited; the stream ends
"""

from __future__ import annotations

import json
import struct
from typing import Any

from berth import errors
from berth.errors import BerthError

STDIN, STDOUT, STDERR = 0, 1, 2
EOF, RESIZE, SIGNAL, EXIT = 16, 17, 18, 19
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
STREAM_NUMBERS = {"stdout": STDOUT, "stderr": STDERR}

HEADER = struct.Struct(">BxxxI")
MAX_FRAME = 1 << 20
MAX_REQUEST = 1 << 16


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


class FrameReader:
    """Cuts a byte stream into ``(stream, payload)`` frames."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            stream, size = HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes is too large")
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def error_reply(exc: BerthError) -> dict[str, Any]:
    return {"ok": False, "error": type(exc).__name__, "message": exc.message, "hint": exc.hint}


def raise_error(reply: dict[str, Any]) -> None:
    """Raise what an ``ok: false`` reply describes, as the class the supervisor raised."""
    message = str(reply.get("message") or "the supervisor failed")
    hint = reply.get("hint")
    cls = getattr(errors, str(reply.get("error")), None)
    error: BerthError = errors.ContainerError(message, hint=hint)
    if isinstance(cls, type) and issubclass(cls, BerthError):
        try:
            error = cls(message, hint=hint)
        except TypeError:  # a class that needs more than a message
            pass
    raise error
