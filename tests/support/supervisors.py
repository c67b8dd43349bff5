"""Finding and ending a test store's supervisor and anchor, by their PIDs.

A test that caused a supervisor must end it: the anchor is found by its executable (the copy
in the store's own run dir), the supervisor by its command line (``-m berth.monitor --root``
with the store's root); both are killed by PID, then the run dir goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

from berth.monitor.paths import MonitorPaths
from berth.store.paths import StorePaths


def processes_of(root: str) -> dict[str, list[int]]:
    """{"anchor": [...], "supervisor": [...]} of the store at ``root``."""
    paths = StorePaths.at(root)
    anchor_binary = MonitorPaths(paths.run_dir).anchor_binary
    found: dict[str, list[int]] = {"anchor": [], "supervisor": []}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe == anchor_binary:
            found["anchor"].append(pid)
        elif b"berth.monitor" in argv and paths.root.encode() in argv and b"--root" in argv:
            found["supervisor"].append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def end_supervisor(root: str) -> list[int]:
    """Kill the store's anchor, then its supervisor; remove their files from the run dir
    (and the run dir, if nothing else is left in it). The PIDs killed."""
    found = processes_of(root)
    kill_and_wait(found["anchor"])  # first, or it would start another supervisor
    kill_and_wait(found["supervisor"])
    paths = MonitorPaths(StorePaths.at(root).run_dir)
    shutil.rmtree(paths.containers, ignore_errors=True)
    for path in (
        paths.socket,
        paths.pid_file,
        paths.start_lock,
        paths.anchor_lock,
        paths.anchor_binary,
        paths.log,
        paths.log + ".1",
    ):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(paths.run_dir)
    return found["anchor"] + found["supervisor"]
