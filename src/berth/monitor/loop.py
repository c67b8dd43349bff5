"""The supervisor's event loop: one thread, ``epoll``, timers, and signals through a pipe.

Everything the supervisor does runs here, one callback at a time, so its state needs no
locks and nothing it forks (container inits, probes) is forked while another thread holds a
lock. A callback that raises is logged and the loop goes on: one container's failure never
stops the others' supervision.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import TextIO

Callback = Callable[[], None]

# Where log lines go: the supervisor's stderr unless set (a supervisor served in a thread,
# as the unit tests do, logs here so its lines never mix with a container's output).
LOG_STREAM: TextIO | None = None


def log(message: str) -> None:
    """A line in the supervisor's log (its stderr)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    stream = LOG_STREAM or sys.stderr
    stream.write(f"{stamp} berth-supervisor[{os.getpid()}]: {message}\n")
    stream.flush()


def log_exception(what: str) -> None:
    log(f"{what}: {traceback.format_exc().rstrip()}")


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self) -> None:
        self._selector = selectors.EpollSelector()
        self._handlers: dict[int, tuple[Callback | None, Callback | None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._stopped = False
        self._signal_handlers: dict[int, Callback] = {}
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.add_reader(self._wake_read, self._on_signal_bytes)

    # ------------------------------------------------------------------------- fds

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._set(fd, 0, callback)

    def remove_reader(self, fd: int) -> None:
        self._set(fd, 0, None)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._set(fd, 1, callback)

    def remove_writer(self, fd: int) -> None:
        self._set(fd, 1, None)

    def _set(self, fd: int, which: int, callback: Callback | None) -> None:
        current = list(self._handlers.get(fd, (None, None)))
        current[which] = callback
        reader, writer = current
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        if fd in self._handlers:
            if events:
                self._selector.modify(fd, events)
            else:
                self._selector.unregister(fd)
        elif events:
            self._selector.register(fd, events)
        if events:
            self._handlers[fd] = (reader, writer)
        else:
            self._handlers.pop(fd, None)

    def forget_fd(self, fd: int) -> None:
        """Stop watching ``fd`` at all (call before closing it)."""
        if fd in self._handlers:
            del self._handlers[fd]
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    # ---------------------------------------------------------------------- timers

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    def call_soon(self, callback: Callback) -> Timer:
        return self.call_later(0, callback)

    # --------------------------------------------------------------------- signals

    def on_signal(self, signum: int, callback: Callback) -> None:
        """Run ``callback`` in the loop when ``signum`` arrives."""
        if not self._signal_handlers:
            signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        self._signal_handlers[signum] = callback
        signal.signal(signum, lambda _n, _f: None)

    def _on_signal_bytes(self) -> None:
        try:
            data = os.read(self._wake_read, 512)
        except BlockingIOError:
            return
        for signum in data:
            callback = self._signal_handlers.get(signum)
            if callback is not None:
                self._run(callback, f"the handler of signal {signum}")

    # ------------------------------------------------------------------------ run

    def stop(self) -> None:
        self._stopped = True

    def run(self) -> None:
        while not self._stopped:
            self.run_once()

    def run_once(self, max_wait: float | None = None) -> None:
        timeout = max_wait
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            until_next = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = until_next if timeout is None else min(timeout, until_next)
        for key, mask in self._selector.select(timeout):
            reader, writer = self._handlers.get(key.fd, (None, None))
            if mask & selectors.EVENT_READ and reader is not None:
                self._run(reader, f"reading fd {key.fd}")
            if mask & selectors.EVENT_WRITE and writer is not None:
                # the reader may have replaced or removed the writer
                writer = self._handlers.get(key.fd, (None, None))[1]
                if writer is not None:
                    self._run(writer, f"writing fd {key.fd}")
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                self._run(timer.callback, "a timer")

    def _run(self, callback: Callback, what: str) -> None:
        try:
            callback()
        except Exception:
            log_exception(f"error in {what}")

    def close(self) -> None:
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
