"""Driving a command on a pseudo-terminal, as a person at a terminal would."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time


class Terminal:
    """Runs ``argv`` on a new pty; answers cursor-position queries as a terminal does."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execve(argv[0], argv, env)
        self.output = b""

    def resize(self, rows: int, columns: int) -> None:
        """Set the window size, as a terminal window does (the foreground job gets SIGWINCH)."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def read_for(self, seconds: float) -> bytes:
        start = len(self.output)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                break
            if b"\x1b[6n" in data:
                os.write(self.fd, b"\x1b[1;1R")
            self.output += data
        return self.output[start:]

    def wait_for(self, text: bytes, seconds: float = 10) -> None:
        end = time.monotonic() + seconds
        while text not in self.output and time.monotonic() < end:
            self.read_for(0.1)
        assert text in self.output, f"{text!r} never came; got {self.output[-300:]!r}"

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, seconds: float = 10) -> int:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read_for(0.1)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the command did not exit; output {self.output[-300:]!r}")
