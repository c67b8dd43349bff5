"""The pipe pair the runtime and a child it forked talk over while the child sets up.

Each message is a 4-byte big-endian length and a JSON object with a ``"t"`` (type) key. The
child's ends are close-on-exec, so the parent reads end-of-file when the child either execs the
container's program or dies: that is how a successful start is seen without a message.
"""

from __future__ import annotations

import os

from berth import errors, jsonio
from berth.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Message = dict[str, Any]

# message types
MSG_GO = "go"  # parent -> child: carry on
MSG_USERNS = "userns"  # child -> parent: write my uid/gid maps
MSG_PID = "pid"  # intermediate child -> parent: the container's pid
MSG_HOOKS = "hooks"  # child -> parent: run the runtime-namespace hooks now
MSG_READY = "ready"  # child -> parent: set up, waiting to be started
MSG_ERROR = "error"  # child -> parent: setup failed (kind, message)


class ChannelClosed(ContainerError):
    """The other side closed its end (exited or exec'd) before sending what was expected."""


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class Channel:
    """One side of the pipe pair: reads from ``rfd``, writes to ``wfd``."""

    __slots__ = ("rfd", "wfd")

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def send(self, msg_type: str, **fields: Any) -> None:
        fields["t"] = msg_type
        body = jsonio.dumps(fields).encode()
        data = len(body).to_bytes(4, "big") + body
        while data:
            written = os.write(self.wfd, data)
            data = data[written:]

    def recv(self) -> Message | None:
        """The next message, or None at end-of-file."""
        header = _read_exact(self.rfd, 4)
        if len(header) < 4:
            return None
        size = int.from_bytes(header, "big")
        body = _read_exact(self.rfd, size)
        if len(body) < size:
            return None
        message: Message = jsonio.loads(body)
        return message

    def expect(self, kind: str, during: str) -> Message:
        """The next message, which must be of type ``kind`` (errors from the child re-raised)."""
        message = self.recv()
        if message is None:
            raise ChannelClosed(f"the container process exited during {during}")
        if message["t"] == MSG_ERROR:
            raise error_from_message(message)
        if message["t"] != kind:
            raise ContainerError(
                f"unexpected message {message['t']!r} from the container process during {during}"
            )
        return message

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1


class ChannelPair:
    """Two pipes, made before the fork; each side keeps its ends with :meth:`parent_side` or
    :meth:`child_side`."""

    __slots__ = ("_c2p", "_p2c")

    def __init__(self) -> None:
        self._p2c = os.pipe2(os.O_CLOEXEC)
        self._c2p = os.pipe2(os.O_CLOEXEC)

    def parent_side(self) -> Channel:
        os.close(self._p2c[0])
        os.close(self._c2p[1])
        return Channel(self._c2p[0], self._p2c[1])

    def child_side(self) -> Channel:
        os.close(self._p2c[1])
        os.close(self._c2p[0])
        return Channel(self._p2c[0], self._c2p[1])

    def child_fds(self) -> tuple[int, int]:
        return self._p2c[0], self._c2p[1]


def error_message(exc: BaseException) -> Message:
    """What the child sends for ``exc`` (a berth error keeps its class name and hint)."""
    if isinstance(exc, errors.BerthError):
        return {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    if isinstance(exc, OSError):
        return {"kind": "ContainerError", "message": str(exc), "hint": None}
    return {"kind": "ContainerError", "message": f"{type(exc).__name__}: {exc}", "hint": None}


def error_from_message(message: Message) -> Exception:
    cls = getattr(errors, str(message.get("kind")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.BerthError)):
        cls = ContainerError
    return cls(str(message.get("message")), hint=message.get("hint"))
