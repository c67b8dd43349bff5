"""Opt-in timing checkpoints on the start path: where ``berth run``'s time goes.

With ``BERTH_TRACE=1`` in the environment, each :func:`mark` writes one line to stderr::

    berth-trace 81234.567890    3.21 ms  mounted

the absolute ``time.perf_counter()`` (CLOCK_MONOTONIC, so a parent process can line it up
with its own clock, as ``bench/bench_run.py`` does), the time since the previous mark, and the
checkpoint's name. Off (the default), :func:`mark` is a global lookup and a return, and this
module imports nothing that is not already loaded when Python starts.
"""

from __future__ import annotations

import os
import time

ENABLED = bool(os.environ.get("BERTH_TRACE"))
_previous = 0.0


def restart(enabled: bool) -> None:
    """Turn tracing on or off and start counting afresh (a process forked from one that had
    other settings: a fork server's worker)."""
    global ENABLED, _previous
    ENABLED = enabled
    _previous = 0.0


def mark(name: str) -> None:
    """Record that the checkpoint ``name`` is reached (only when tracing is on)."""
    if not ENABLED:
        return
    global _previous
    now = time.perf_counter()
    delta = (now - _previous) * 1000 if _previous else 0.0
    _previous = now
    os.write(2, f"berth-trace {now:.6f} {delta:7.2f} ms  {name}\n".encode())
