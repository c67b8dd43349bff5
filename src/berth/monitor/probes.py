"""Running one container's healthcheck on schedule (the rules are in :mod:`.health`).

A probe is started detached through the launcher's exec, with a pipe as its stdout and
stderr; its end is seen like a container's (pidfd, or the anchor's record) and a timeout kills
it. Each result is written to the record's State.Health at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from berth.errors import BerthError
from berth.monitor.backend import Backend
from berth.monitor.health import (
    UNHEALTHY,
    HealthConfig,
    HealthState,
    LimitedOutput,
    timeout_message,
)
from berth.monitor.loop import Loop, Timer, log
from berth.monitor.procs import ExitWatcher, start_time


class HealthRunner:
    def __init__(
        self,
        loop: Loop,
        exits: ExitWatcher,
        backend: Backend,
        container_id: str,
        config: HealthConfig,
        state: HealthState,
        started_wall: float,
    ) -> None:
        self.loop = loop
        self.exits = exits
        self.backend = backend
        self.container_id = container_id
        self.config = config
        self.state = state
        self.started_wall = started_wall
        self._timer: Timer | None = None
        self._probe: _Probe | None = None
        self._stopped = False

    def begin(self) -> None:
        self._save()
        self._schedule()

    def _schedule(self) -> None:
        if self._stopped:
            return
        since_start = time.time() - self.started_wall
        delay = self.config.next_interval(since_start, self.state.status)
        self._timer = self.loop.call_later(delay, self._run_probe)

    def _run_probe(self) -> None:
        self._timer = None
        if self._stopped:
            return
        self._probe = _Probe(self)
        self._probe.start()

    def probe_done(self, probe: _Probe, exit_code: int, output: str) -> None:
        if probe is not self._probe or self._stopped:
            return
        self._probe = None
        from berth.units import format_rfc3339_nano

        result = {
            "Start": format_rfc3339_nano(probe.start_ns),
            "End": format_rfc3339_nano(time.time_ns()),
            "ExitCode": exit_code,
            "Output": output,
        }
        self.state.record(self.config, result, probe.start_ns / 1e9 - self.started_wall)
        self._save()
        self._schedule()

    def stop(self) -> None:
        """The container stopped: no more probes; the status is ``unhealthy``."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._probe is not None:
            self._probe.abandon()
            self._probe = None
        self.state.status = UNHEALTHY
        self._save()

    def _save(self) -> None:
        try:
            self.backend.update_state(self.container_id, Health=self.state.document())
        except BerthError as exc:
            log(f"cannot record the health of {self.container_id[:12]}: {exc}")


class _Probe:
    def __init__(self, runner: HealthRunner) -> None:
        self.runner = runner
        self.start_ns = time.time_ns()
        self.output = LimitedOutput()
        self.pid = 0
        self.read_fd = -1
        self.timer: Timer | None = None
        self.finished = False

    def start(self) -> None:
        runner = self.runner
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.pid = runner.backend.exec_probe(
                runner.container_id, runner.config.argv, (devnull, write_fd, write_fd)
            )
        except BerthError as exc:
            os.close(read_fd)
            message = str(exc)
            runner.loop.call_soon(lambda: self._done(-1, message))
            return
        finally:
            os.close(write_fd)
            os.close(devnull)
        self.read_fd = read_fd
        os.set_blocking(read_fd, False)
        runner.loop.add_reader(read_fd, self._read)
        runner.exits.watch(self.pid, start_time(self.pid), self._exited)
        self.timer = runner.loop.call_later(runner.config.timeout, self._timed_out)

    def _read(self) -> None:
        try:
            data = os.read(self.read_fd, 65536)
        except BlockingIOError:
            return
        if data:
            self.output.add(data)
        else:
            self._close_pipe()

    def _drain(self) -> None:
        while self.read_fd >= 0:
            try:
                data = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self._close_pipe()
                return
            self.output.add(data)

    def _close_pipe(self) -> None:
        if self.read_fd >= 0:
            self.runner.loop.forget_fd(self.read_fd)
            os.close(self.read_fd)
            self.read_fd = -1

    def _exited(self, code: int, known: bool) -> None:
        if self.finished:  # timed out or abandoned: it has been reaped now, that is all
            return
        self._drain()
        self._done(code, self.output.text())

    def _timed_out(self) -> None:
        """Kill it; its exit is still watched, so that it is reaped."""
        self.timer = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._done(-1, timeout_message(self.runner.config))

    def _done(self, code: int, output: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        self._close_pipe()
        self.runner.probe_done(self, code, output)

    def abandon(self) -> None:
        """The container stopped (the probe ends with it; its exit is still reaped)."""
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        self._close_pipe()
