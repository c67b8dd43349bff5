"""How watched processes end: a pidfd tells when; the wait status comes from whoever reaps.

A container's init is the supervisor's own child (berth's runtime forks it) or the anchor's
(runc and crun leave it to the nearest subreaper; a supervisor that restarted has adopted
containers its predecessor started). For its own children the supervisor waits on the pidfd;
for the anchor's it gets "pid start status time" records from the anchor
(:class:`~berth.monitor.anchorlink.AnchorLink`). Either way the callback gets the shell's
exit code (128 + N when killed by signal N).

Pids are reused, so a process is named by its pid *and* its start time (field 22 of
/proc/PID/stat), as the runtime and the leases do.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from berth.monitor.loop import Loop, Timer, log

UNKNOWN_EXIT = 255  # Docker's code when a container's end was not seen
RECORD_WAIT_SECONDS = 5.0  # how long an exit waits for the anchor's record of it
RECENT_RECORDS = 512

ExitCallback = Callable[[int, bool], None]  # (exit code, whether it is known)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def exit_code_of_status(status: int) -> int:
    """A shell's exit code for a raw wait status."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


@dataclass(frozen=True, slots=True)
class ExitRecord:
    pid: int
    start: int
    status: int
    time: float

    @property
    def exit_code(self) -> int:
        return exit_code_of_status(self.status)

    @classmethod
    def parse(cls, text: str) -> ExitRecord:
        """``pid start status sec nsec`` as the anchor sends it (after its "X").
        Raises ValueError."""
        pid, start, status, sec, nsec = (int(field) for field in text.split())
        return cls(pid, start, status, sec + nsec / 1e9)


class _Watch:
    __slots__ = ("callback", "done", "pid", "pidfd", "start", "timer")

    def __init__(self, pid: int, start: int | None, callback: ExitCallback) -> None:
        self.pid = pid
        self.start = start
        self.callback = callback
        self.pidfd = -1
        self.timer: Timer | None = None
        self.done = False


class ExitWatcher:
    """Calls back once per watched process when it has ended, with its exit code."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self._awaiting_record: dict[int, _Watch] = {}
        self._recent: OrderedDict[int, ExitRecord] = OrderedDict()
        self._watches: dict[int, _Watch] = {}

    def watch(self, pid: int, start: int | None, callback: ExitCallback) -> None:
        """Watch ``pid`` (whose start time is ``start``, if known) until it ends."""
        watch = _Watch(pid, start, callback)
        self._watches[pid] = watch
        try:
            watch.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._await_record(watch)  # already reaped, by the anchor
            return
        now_start = start_time(pid)
        if start is not None and now_start is not None and now_start != start:
            os.close(watch.pidfd)  # the pid is someone else's now: ours ended long ago
            watch.pidfd = -1
            self._await_record(watch)
            return
        self.loop.add_reader(watch.pidfd, lambda: self._on_pidfd(watch))

    def forget(self, pid: int) -> None:
        """Stop watching ``pid`` without a callback."""
        watch = self._watches.pop(pid, None)
        if watch is not None:
            watch.done = True
            self._close(watch)
            self._awaiting_record.pop(pid, None)

    def _on_pidfd(self, watch: _Watch) -> None:
        self.loop.forget_fd(watch.pidfd)
        try:
            result = os.waitid(os.P_PIDFD, watch.pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            result = None
            self._close(watch)
            self._await_record(watch)  # not our child: the anchor reaps it
            return
        if result is None:  # readable but not yet waitable: look again shortly
            self.loop.call_later(0.01, lambda: self._on_pidfd(watch))
            return
        self._close(watch)
        if result.si_code == os.CLD_EXITED:
            code = result.si_status
        else:
            code = 128 + result.si_status
        self._finish(watch, code, True)

    def _await_record(self, watch: _Watch) -> None:
        record = self._recent.get(watch.pid)
        if record is not None and (watch.start is None or record.start == watch.start):
            del self._recent[watch.pid]
            self._finish(watch, record.exit_code, True)
            return
        self._awaiting_record[watch.pid] = watch
        watch.timer = self.loop.call_later(RECORD_WAIT_SECONDS, lambda: self._give_up(watch))

    def _give_up(self, watch: _Watch) -> None:
        if self._awaiting_record.get(watch.pid) is watch:
            del self._awaiting_record[watch.pid]
            log(f"no exit status for process {watch.pid}: it ended while nothing watched it")
            self._finish(watch, UNKNOWN_EXIT, False)

    def on_exit_record(self, record: ExitRecord) -> None:
        """The anchor reaped ``record.pid``."""
        watch = self._awaiting_record.get(record.pid)
        if watch is not None and (watch.start is None or watch.start == record.start):
            del self._awaiting_record[record.pid]
            if watch.timer is not None:
                watch.timer.cancel()
            self._finish(watch, record.exit_code, True)
            return
        self._recent[record.pid] = record  # its pidfd may not have fired yet
        while len(self._recent) > RECENT_RECORDS:
            self._recent.popitem(last=False)

    def _finish(self, watch: _Watch, code: int, known: bool) -> None:
        if watch.done:
            return
        watch.done = True
        if self._watches.get(watch.pid) is watch:
            del self._watches[watch.pid]
        watch.callback(code, known)

    def _close(self, watch: _Watch) -> None:
        if watch.pidfd >= 0:
            self.loop.forget_fd(watch.pidfd)
            os.close(watch.pidfd)
            watch.pidfd = -1
        if watch.timer is not None:
            watch.timer.cancel()
