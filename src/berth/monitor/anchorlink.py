"""The supervisor's side of its channel to the anchor (see anchor/anchor.c).

The anchor keeps file descriptors that must outlive the supervisor (``keep``/``drop``),
reports the exits of the processes it reaped (``X`` records), and at start hands a new
supervisor what it kept and what it reaped while no supervisor ran (then ``R``).
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import time
from collections.abc import Callable

from berth.errors import HostError
from berth.monitor.loop import Loop, log
from berth.monitor.procs import ExitRecord

MAX_MESSAGE = 256


class AnchorLink:
    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)
        self.sock = socket.socket(fileno=fd)
        self._on_exit: Callable[[ExitRecord], None] | None = None

    def handshake(self, timeout: float = 10.0) -> tuple[dict[str, int], list[ExitRecord]]:
        """What the anchor kept for us (tag -> fd) and the exits it saw before we ran."""
        kept: dict[str, int] = {}
        exits: list[ExitRecord] = []
        deadline = time.monotonic() + timeout
        self.sock.setblocking(True)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostError("the anchor did not hand over its state in time")
            self.sock.settimeout(remaining)
            kind, text, fds = self._receive()
            if kind == "":
                raise HostError("the anchor closed its channel")
            if kind == "F" and fds:
                kept[text] = fds.pop(0)
            elif kind == "X":
                with contextlib.suppress(ValueError):
                    exits.append(ExitRecord.parse(text))
            elif kind == "R":
                break
            for fd in fds:
                os.close(fd)
        self.sock.setblocking(False)
        return kept, exits

    def listen(
        self, loop: Loop, on_exit: Callable[[ExitRecord], None], on_lost: Callable[[], None]
    ) -> None:
        def readable() -> None:
            while True:
                try:
                    kind, text, fds = self._receive()
                except BlockingIOError:
                    return
                for fd in fds:
                    os.close(fd)
                if kind == "":
                    loop.forget_fd(self.sock.fileno())
                    on_lost()
                    return
                if kind == "X":
                    try:
                        record = ExitRecord.parse(text)
                    except ValueError:
                        log(f"the anchor sent a bad exit record: {text!r}")
                        continue
                    on_exit(record)

        loop.add_reader(self.sock.fileno(), readable)

    def _receive(self) -> tuple[str, str, list[int]]:
        data, ancillary, _flags, _addr = self.sock.recvmsg(
            MAX_MESSAGE, socket.CMSG_SPACE(4 * array.array("i").itemsize)
        )
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(array.array("i", payload[:usable]))
        for fd in fds:
            os.set_inheritable(fd, False)
        if not data:
            return "", "", fds
        text = data.decode(errors="replace")
        return text[0], text[1:].strip(), fds

    def keep(self, tag: str, fd: int) -> None:
        """Have the anchor hold a copy of ``fd`` under ``tag`` (replacing an older one)."""
        self._send(b"S" + tag.encode(), fd)

    def drop(self, tag: str) -> None:
        self._send(b"D" + tag.encode())

    def quit_with_supervisor(self) -> None:
        self._send(b"Q")

    def _send(self, message: bytes, fd: int | None = None) -> None:
        ancillary = []
        if fd is not None:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
        try:
            self.sock.sendmsg([message], ancillary)
        except BlockingIOError:
            # the anchor reads at once; a full socket means it is stuck: wait a little
            self.sock.settimeout(1.0)
            try:
                self.sock.sendmsg([message], ancillary)
            except OSError as exc:
                log(f"cannot reach the anchor: {exc}")
            finally:
                self.sock.setblocking(False)
        except OSError as exc:
            log(f"cannot reach the anchor: {exc}")
