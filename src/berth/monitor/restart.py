"""Restart policies with Docker's semantics.

- ``no``: never. ``always``: after every exit. ``unless-stopped``: the same, except after the
  user stopped it. ``on-failure[:N]``: after a non-zero exit, at most N times (0: no limit).
- Stopping (``stop``, or ``kill`` with SIGKILL or the stop signal) prevents the restart that
  would follow; a user's start resets the restart count.
- The delay before a restart starts at 100 ms and doubles after each restart, up to a
  minute; it starts over when the container had run for at least 10 s.
- After a reboot (``berth system boot``), ``always`` containers come back even if the user had
  stopped them, ``unless-stopped`` ones only if the user had not (Docker's daemon start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0
POLICIES = ("no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def of(cls, host_config: dict[str, Any]) -> RestartPolicy:
        policy = host_config.get("RestartPolicy") or {}
        name = str(policy.get("Name") or "no")
        return cls(name if name in POLICIES else "no", int(policy.get("MaximumRetryCount") or 0))

    def wants_restart(self, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
        if self.name == "always":
            return True
        if self.name == "unless-stopped":
            return not manually_stopped
        if self.name == "on-failure":
            limit = self.maximum_retry_count
            return exit_code != 0 and (limit <= 0 or restart_count < limit)
        return False

    def starts_at_boot(self, manually_stopped: bool) -> bool:
        return self.name == "always" or (self.name == "unless-stopped" and not manually_stopped)


class Backoff:
    """The delay before the next restart of one container."""

    __slots__ = ("delay",)

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self, ran_for: float) -> float:
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        return self.delay
