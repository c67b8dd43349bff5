"""Build output as BuildKit's ``--progress plain`` prints it.

One block per step ("vertex"), numbered in the order steps start::

    #5 [2/4] RUN apk add x
    #5 0.215 fetch https://...          <- the step's output, seconds since it started
    #5 DONE 1.3s

    #6 [3/4] COPY . /app
    #6 CACHED

A failing step ends with ``#N ERROR: <why>``, and :meth:`Progress.failure` prints BuildKit's
summary: the step, the last lines of its output, and the Dockerfile lines around it. Output
goes to a callback (the CLI writes it to stderr, the engine collects it for docker-py's
``logs``); :class:`Progress` is safe to use from several threads (parallel stages).
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Progress", "Vertex"]

_TAIL_LINES = 20


class Progress:
    """Numbered vertices written through ``write`` (nothing at all when ``quiet``)."""

    def __init__(self, write: Callable[[str], None] | None, *, quiet: bool = False) -> None:
        self._write = write
        self.quiet = quiet or write is None
        self._lock = threading.Lock()
        self._next = 1
        self.warnings: list[str] = []
        self.failed: Vertex | None = None
        self.names: list[str] = []

    def emit(self, text: str) -> None:
        if self.quiet or self._write is None:
            return
        with self._lock:
            self._write(text)

    def vertex(self, name: str) -> Vertex:
        with self._lock:
            number = self._next
            self._next += 1
            self.names.append(name)
        vertex = Vertex(self, number, name)
        self.emit(f"#{number} {name}\n")
        return vertex

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.emit(f"WARNING: {message}\n")

    def failure(
        self,
        vertex: Vertex | None,
        dockerfile_lines: Sequence[str],
        filename: str,
        start: int,
        end: int,
    ) -> None:
        """BuildKit's error summary: the step, its last output lines, the Dockerfile lines."""
        if self.quiet and vertex is not None:
            # quiet builds showed nothing yet: the output is what the user needs most
            text = "".join(vertex.tail())
            if text and self._write is not None:
                with self._lock:
                    self._write(text if text.endswith("\n") else text + "\n")
        lines = ["------\n"]
        if vertex is not None:
            lines.append(f" > {vertex.name}:\n")
            lines += vertex.tail()
        lines.append("------\n")
        if start > 0 and dockerfile_lines:
            lines.append(f"{filename}:{start}" + (f"-{end}" if end > start else "") + "\n")
            lines.append("--------------------\n")
            first = max(1, start - 2)
            last = min(len(dockerfile_lines), end + 2)
            width = len(str(last))
            for number in range(first, last + 1):
                mark = ">>>" if start <= number <= end else "   "
                text = dockerfile_lines[number - 1].rstrip("\n")
                lines.append(f" {number:>{width}} | {mark} {text}\n")
            lines.append("--------------------\n")
        self.emit("".join(lines))


class Vertex:
    """One step's block of output."""

    def __init__(self, progress: Progress, number: int, name: str) -> None:
        self.progress = progress
        self.number = number
        self.name = name
        self.started = time.monotonic()
        self._partial = b""
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._lock = threading.Lock()

    def log(self, data: bytes) -> None:
        """Output of the step: whole lines are printed as they complete."""
        with self._lock:
            data = self._partial + data
            *lines, self._partial = data.split(b"\n")
            out = [self._line(line) for line in lines]
        if out:
            self.progress.emit("".join(out))

    def _line(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        line = f"#{self.number} {time.monotonic() - self.started:.3f} {text}\n"
        self._tail.append(line)
        return line

    def flush(self) -> None:
        with self._lock:
            rest, self._partial = self._partial, b""
            line = self._line(rest) if rest else ""
        if line:
            self.progress.emit(line)

    def detail(self, text: str) -> None:
        self.progress.emit(f"#{self.number} {text}\n")

    def tail(self) -> list[str]:
        return list(self._tail)

    def cached(self) -> None:
        self.progress.emit(f"#{self.number} CACHED\n\n")

    def done(self) -> None:
        self.flush()
        elapsed = time.monotonic() - self.started
        self.progress.emit(f"#{self.number} DONE {elapsed:.1f}s\n\n")

    def error(self, message: str) -> None:
        self.progress.failed = self
        self.flush()
        self.progress.emit(f"#{self.number} ERROR: {message}\n")
