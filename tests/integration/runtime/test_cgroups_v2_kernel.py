"""The cgroup v2 manager on a real pure-v2 host.

Marked ``cgroup2``: CI's machines are v1/v2 hybrids and deselect these. Run on a v2 host with
``pytest -m cgroup2``; on any other host they fail (they never skip) saying why.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.runtime.cgroups import V2Manager, detect_layout, open_manager, prune_parent
from tests.support.rootfs import require_busybox

pytestmark = [pytest.mark.root, pytest.mark.cgroup2]


@pytest.fixture
def managers() -> Iterator[tuple[str, list[V2Manager], list[int]]]:
    layout = detect_layout()
    if layout.mode != "v2":
        pytest.fail(f"this test needs a pure cgroup v2 host; this one is {layout.mode} "
                    "(deselect with -m 'not cgroup2')")
    name = f"berth-test-{secrets.token_hex(4)}"
    made: list[V2Manager] = []
    children: list[int] = []
    try:
        yield name, made, children
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for manager in made:
            manager.kill_all(signal.SIGKILL)
            manager.destroy()
        prune_parent(name)
    assert not any(name in str(p) for p in Path("/sys/fs/cgroup").glob(f"{name}*"))


def new(managers: tuple[str, list[V2Manager], list[int]], container: str = "c1") -> V2Manager:
    name, made, _ = managers
    manager = open_manager(None, container, parent=name)
    assert isinstance(manager, V2Manager)
    made.append(manager)
    return manager


def spawn(managers: tuple[str, list[V2Manager], list[int]], manager: V2Manager,
          argv: list[str]) -> int:
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.read(go_r, 1)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(go_r)
    managers[2].append(pid)
    try:
        manager.add_process(pid)
    finally:
        os.write(go_w, b"g")
        os.close(go_w)
    return pid


def reap(managers: tuple[str, list[V2Manager], list[int]], pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    managers[2].remove(pid)
    return status


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def read(manager: V2Manager, name: str) -> str:
    return Path(manager.directory, name).read_text().strip()


def test_limits_are_written(managers: tuple[str, list[V2Manager], list[int]]) -> None:
    manager = new(managers)
    manager.create({"memory": {"limit": 64 << 20, "swap": 64 << 20},
                    "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                    "pids": {"limit": 16}})
    assert read(manager, "memory.max") == str(64 << 20)
    assert read(manager, "cpu.max") == "50000 100000"
    assert read(manager, "cpu.weight") == "39"
    assert read(manager, "pids.max") == "16"
    if Path(manager.directory, "memory.swap.max").exists():
        assert read(manager, "memory.swap.max") == "0"


def test_oom(managers: tuple[str, list[V2Manager], list[int]]) -> None:
    manager = new(managers)
    manager.create({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    pid = spawn(managers, manager, [require_busybox(), "dd", "if=/dev/zero", "of=/dev/null",
                                    "bs=128M", "count=1"])
    status = reap(managers, pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert manager.oom_killed()


def test_freeze_thaw_and_kill(managers: tuple[str, list[V2Manager], list[int]]) -> None:
    manager = new(managers)
    manager.create(None)
    pid = spawn(managers, manager, [require_busybox(), "sh", "-c", "while :; do :; done"])
    manager.freeze()
    assert manager.freezer_state() == "FROZEN"
    manager.thaw()
    assert manager.freezer_state() == "THAWED"
    stats = manager.stats()
    assert stats["pids_stats"]["current"] >= 1
    manager.kill_all(signal.SIGKILL)
    assert os.WTERMSIG(reap(managers, pid)) == signal.SIGKILL
    wait_for(lambda: manager.pids() == [], "the cgroup to empty")
