"""What the supervisor holds for each container it runs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth.monitor.loop import Timer

if TYPE_CHECKING:
    from berth.containers.logs import LogWriter
    from berth.monitor.probes import HealthRunner
    from berth.monitor.session import AttachSession

RUN_STATE = "supervised.json"


@dataclass(eq=False)
class Supervised:
    id: str
    pid: int
    pid_start: int
    tty: bool
    started: float  # time.monotonic() of the start (for the restart backoff)
    started_wall: float  # time.time() of the start (for the health start period)
    outputs: dict[int, str] = field(default_factory=dict)  # fd -> "stdout"/"stderr"
    stdin: int | None = None
    stdin_once: bool = False
    stdin_buffer: bytearray = field(default_factory=bytearray)
    log: LogWriter | None = None
    sessions: list[AttachSession] = field(default_factory=list)
    health: HealthRunner | None = None
    exit_on_next: bool = False  # stopped or killed by a user: no restart after this exit
    stop_timer: Timer | None = None
    on_exit: list[Callable[[], None]] = field(default_factory=list)  # answers to stop etc.
    output_paused: bool = False
    log_failing: bool = False
    kept_tags: list[str] = field(default_factory=list)  # what the anchor keeps for it

    @property
    def master(self) -> int | None:
        """The pty master of a tty container."""
        return next(iter(self.outputs), None) if self.tty else None

    @property
    def input_fd(self) -> int | None:
        """Where an attached client's keystrokes go: the pty, or the stdin FIFO."""
        return self.master if self.tty else self.stdin

    def save(self, directory: str) -> None:
        """Write what a new supervisor needs to re-adopt the container."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        doc = {
            "pid": self.pid,
            "pid_start": self.pid_start,
            "tty": self.tty,
            "stdin": self.stdin is not None,
            "stdin_once": self.stdin_once,
            "started_at": self.started_wall,
        }
        tmp = os.path.join(directory, f".{RUN_STATE}.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(directory, RUN_STATE))


def load_run_state(directory: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory, RUN_STATE)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "pid" in doc else None


def monotonic_of(wall: float) -> float:
    """The monotonic clock's reading at the wall-clock time ``wall``."""
    return time.monotonic() - (time.time() - wall)
