"""What a pull or push reports while it works: one event per status change of a layer.

The statuses are Docker's, word for word, so a user (or a program reading the Engine API's JSON
progress stream) sees what ``docker pull`` and ``docker push`` show. An event with an empty
``id`` is a message about the whole image ("latest: Pulling from library/busybox",
"Digest: sha256:...", "Status: ..."); an event with an ``id`` (the layer digest's first 12 hex
digits) updates that layer's line, with byte counts while bytes move.

A :data:`ProgressSink` is any callable taking an event. Pull and push call it from several
threads, but never at the same time: they serialise their calls, so a sink need not lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Per-layer statuses of a pull, in the order a layer goes through them.
PULLING_FS_LAYER = "Pulling fs layer"
WAITING = "Waiting"
DOWNLOADING = "Downloading"
VERIFYING_CHECKSUM = "Verifying Checksum"
DOWNLOAD_COMPLETE = "Download complete"
EXTRACTING = "Extracting"
PULL_COMPLETE = "Pull complete"
ALREADY_EXISTS = "Already exists"
RETRYING = "Retrying"

# Per-layer statuses of a push.
PREPARING = "Preparing"
PUSHING = "Pushing"
LAYER_ALREADY_EXISTS = "Layer already exists"
MOUNTED_FROM = "Mounted from"  # the event's status is "Mounted from library/x"
PUSHED = "Pushed"

BYTE_STATUSES = frozenset({DOWNLOADING, EXTRACTING, PUSHING})
DONE_STATUSES = frozenset({PULL_COMPLETE, ALREADY_EXISTS, LAYER_ALREADY_EXISTS, PUSHED})


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One line of progress: ``id`` names a layer ("" for the whole image)."""

    id: str
    status: str
    current: int | None = None
    total: int | None = None

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES or self.status.startswith(MOUNTED_FROM)

    def to_json(self) -> dict[str, Any]:
        """The Engine API's JSON message (``{"status", "id", "progressDetail"}``)."""
        out: dict[str, Any] = {"status": self.status}
        if self.id:
            out["id"] = self.id
        if self.current is not None:
            detail: dict[str, int] = {"current": self.current}
            if self.total is not None:
                detail["total"] = self.total
            out["progressDetail"] = detail
        elif self.id:
            out["progressDetail"] = {}
        return out

    def plain(self) -> str:
        """The line a non-terminal shows: ``3f4d90098f5b: Pull complete``."""
        return f"{self.id}: {self.status}" if self.id else self.status


ProgressSink = Callable[[ProgressEvent], None]


def layer_id(digest: object) -> str:
    """The 12 hex digits Docker shows for a layer (``sha256:3f4d...`` -> ``3f4d90098f5b``)."""
    text = str(digest)
    return text.split(":", 1)[-1][:12]


class Reporter:
    """Serialises a sink's calls and thins out byte counts (at most one per layer per 0.1 s).

    Status changes always go through; ``Downloading``/``Pushing`` updates of the same layer are
    dropped when the previous one was less than ``interval`` seconds ago, except the last one
    (``current == total``).
    """

    def __init__(self, sink: ProgressSink | None, *, interval: float = 0.1) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._interval = interval
        self._last: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def message(self, text: str) -> None:
        self.emit(ProgressEvent("", text))

    def status(self, ident: str, status: str) -> None:
        self.emit(ProgressEvent(ident, status))

    def bytes(self, ident: str, status: str, current: int, total: int | None) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        last = self._last.get(ident)
        if current != total and last is not None and now - last < self._interval:
            return
        self._last[ident] = now
        self.emit(ProgressEvent(ident, status, current, total))

    def emit(self, event: ProgressEvent) -> None:
        if self._sink is None:
            return
        with self._lock:
            self._sink(event)


def collecting_sink() -> tuple[list[ProgressEvent], ProgressSink]:
    """A sink that keeps every event in a list (handy for tests and the API)."""
    events: list[ProgressEvent] = []
    return events, events.append
