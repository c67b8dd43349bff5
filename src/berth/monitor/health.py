"""Healthchecks with Docker's rules: the schedule, the states, and what is recorded.

Config.Healthcheck (the image's HEALTHCHECK merged with ``--health-*``; durations in ns)::

    {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30e9, "Timeout": 30e9,
     "StartPeriod": 0, "StartInterval": 5e9, "Retries": 3}

- The first probe runs one interval after the start; each next one an interval after the
  previous one finished. During the start period, while the status is still ``starting``,
  the interval is the start interval.
- A probe that exits 0 makes the container ``healthy`` and resets the failing streak. Any
  other result (an exit code, a timeout, an exec that fails) adds to the streak, except while
  the container is ``starting`` and within its start period; ``retries`` failures in a row make
  it ``unhealthy``.
- State.Health = {Status, FailingStreak, Log}: Log holds the last five results {Start, End,
  ExitCode, Output}; Output is at most 4096 bytes of the probe's stdout and stderr, with
  "..." after it when there was more. A probe that runs out of time has ExitCode -1 and the
  output "Health check exceeded timeout (30s)".
- When the container stops, its status becomes ``unhealthy`` (as Docker does); a new start
  begins at ``starting`` with the old log kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def _seconds(ns: Any, default: float) -> float:
    value = int(ns or 0)
    return value / 1e9 if value > 0 else default


@dataclass(frozen=True, slots=True)
class HealthConfig:
    argv: list[str]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int
    timeout_ns: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> HealthConfig | None:
        """The container's healthcheck, or None when it has none (or ``NONE``)."""
        check = config.get("Healthcheck") or {}
        test = list(check.get("Test") or [])
        if not test or test[0] == "NONE":
            return None
        if test[0] == "CMD":
            argv = test[1:]
        elif test[0] == "CMD-SHELL":
            argv = [*(config.get("Shell") or ["/bin/sh", "-c"]), *test[1:]]
        else:
            return None  # Docker runs no monitor for a test type it does not know
        if not argv:
            return None
        timeout = _seconds(check.get("Timeout"), DEFAULT_TIMEOUT)
        retries = int(check.get("Retries") or 0)
        return cls(
            argv=argv,
            interval=_seconds(check.get("Interval"), DEFAULT_INTERVAL),
            timeout=timeout,
            start_period=_seconds(check.get("StartPeriod"), DEFAULT_START_PERIOD),
            start_interval=_seconds(check.get("StartInterval"), DEFAULT_START_INTERVAL),
            retries=retries if retries > 0 else DEFAULT_RETRIES,
            timeout_ns=int(timeout * 1e9),
        )

    def next_interval(self, since_start: float, status: str) -> float:
        if since_start < self.start_period and status == STARTING:
            return self.start_interval
        return self.interval


class LimitedOutput:
    """A probe's output: the first 4096 bytes, and whether there was more."""

    __slots__ = ("data", "truncated")

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = MAX_OUTPUT - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        out = self.data.decode("utf-8", "replace")
        return out + "..." if self.truncated else out


@dataclass(slots=True)
class HealthState:
    status: str = STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def restarted(cls, previous: dict[str, Any] | None) -> HealthState:
        """The state at a (re)start: ``starting``, the earlier results kept."""
        return cls(STARTING, 0, list((previous or {}).get("Log") or [])[-MAX_LOG_ENTRIES:])

    @classmethod
    def resumed(cls, previous: dict[str, Any] | None) -> HealthState:
        """The state a re-adopted container had."""
        previous = previous or {}
        return cls(
            str(previous.get("Status") or STARTING),
            int(previous.get("FailingStreak") or 0),
            list(previous.get("Log") or [])[-MAX_LOG_ENTRIES:],
        )

    def record(
        self, config: HealthConfig, result: dict[str, Any], since_start_at_probe: float
    ) -> None:
        """Apply one probe result (``since_start_at_probe``: seconds from the container's
        start to the probe's)."""
        self.log = [*self.log, result][-MAX_LOG_ENTRIES:]
        if result["ExitCode"] == 0:
            self.failing_streak = 0
            self.status = HEALTHY
            return
        if self.status == STARTING and since_start_at_probe < config.start_period:
            return  # failures during the start period do not count yet
        self.failing_streak += 1
        if self.failing_streak >= config.retries:
            self.status = UNHEALTHY

    def document(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": self.log}


def timeout_message(config: HealthConfig) -> str:
    from berth.units import format_duration

    return f"Health check exceeded timeout ({format_duration(config.timeout_ns)})"
