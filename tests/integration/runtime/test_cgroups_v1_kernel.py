"""The cgroup v1 manager on the real kernel (this CI host is a v1/v2 hybrid).

Every test works under its own parent cgroup (``berth-test-<random>``); the fixture kills
whatever is left in it and checks that nothing named after it remains in /sys/fs/cgroup.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from berth.errors import ContainerError
from berth.runtime.cgroups import (
    CgroupManager,
    V1Manager,
    detect_layout,
    open_manager,
    prune_parent,
)
from berth.runtime.defaults import default_device_rules
from tests.support.rootfs import require_busybox

pytestmark = pytest.mark.root

CGROUP_ROOT = "/sys/fs/cgroup"


def leftovers(name: str) -> list[str]:
    found = subprocess.run(["find", CGROUP_ROOT, "-name", f"*{name}*"],
                           capture_output=True, text=True, check=False)
    return found.stdout.split()


@dataclass
class Parent:
    """A parent cgroup for one test, and the managers and children made under it."""

    name: str
    managers: list[CgroupManager] = field(default_factory=list)
    children: list[int] = field(default_factory=list)

    def manager(self, container: str = "c1") -> V1Manager:
        manager = open_manager(None, container, parent=self.name)
        assert isinstance(manager, V1Manager)
        self.managers.append(manager)
        return manager

    def spawn(self, manager: CgroupManager, argv: list[str]) -> tuple[int, int]:
        """Fork a child that joins ``manager``'s cgroup before it execs ``argv``.

        Returns (pid, fd of its combined stdout and stderr).
        """
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_w)
                os.close(out_r)
                os.read(go_r, 1)  # wait until the parent has moved us into the cgroup
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(out_w)
        self.children.append(pid)
        try:
            manager.add_process(pid)
        finally:
            os.write(go_w, b"g")
            os.close(go_w)
        return pid, out_r

    def reap(self, pid: int) -> int:
        _, status = os.waitpid(pid, 0)
        self.children.remove(pid)
        return status


@pytest.fixture
def parent() -> Iterator[Parent]:
    layout = detect_layout()
    if layout.mode == "v2":
        pytest.skip("needs cgroup v1 controllers; this host is pure cgroup v2 "
                    "(tests/integration/runtime/test_cgroups_v2_kernel.py covers it)")
    p = Parent(f"berth-test-{secrets.token_hex(4)}")
    try:
        yield p
    finally:
        for pid in p.children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for manager in p.managers:
            try:
                manager.kill_all(signal.SIGKILL)
            except Exception:
                pass
            manager.destroy()
        prune_parent(p.name)
    assert leftovers(p.name) == []


def read(manager: V1Manager, controller: str, name: str) -> str:
    return Path(manager.dirs[controller], name).read_text().strip()


def drain(fd: int) -> str:
    with os.fdopen(fd, "rb") as f:
        return f.read().decode(errors="replace")


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (never asserts a time: the limit only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def test_memory_limit_gets_a_hog_oom_killed(parent: Parent) -> None:
    manager = parent.manager()
    limit = 32 << 20
    manager.create({"memory": {"limit": limit, "swap": limit}})
    assert read(manager, "memory", "memory.limit_in_bytes") == str(limit)
    assert not manager.oom_killed()
    pid, out = parent.spawn(manager, [require_busybox(), "dd", "if=/dev/zero",
                                      "of=/dev/null", "bs=128M", "count=1"])
    drain(out)
    status = parent.reap(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert manager.oom_killed()
    stats = manager.stats()["memory_stats"]
    assert stats["limit"] == limit
    assert 0 < stats["max_usage"] <= limit


def test_a_normal_process_is_not_oom_killed(parent: Parent) -> None:
    manager = parent.manager()
    manager.create({"memory": {"limit": 64 << 20}})
    pid, out = parent.spawn(manager, [require_busybox(), "true"])
    drain(out)
    assert os.waitstatus_to_exitcode(parent.reap(pid)) == 0
    assert not manager.oom_killed()


def test_pids_limit_stops_a_bounded_fork_bomb(parent: Parent) -> None:
    manager = parent.manager()
    manager.create({"pids": {"limit": 8}})
    assert read(manager, "pids", "pids.max") == "8"
    script = "for i in " + " ".join(str(n) for n in range(20)) + "; do sleep 2 & done; wait"
    pid, out = parent.spawn(manager, [require_busybox(), "sh", "-c", script])
    output = drain(out)  # EOF once the shell and every sleep it started are gone
    parent.reap(pid)
    assert "can't fork" in output or "Resource temporarily unavailable" in output
    events = dict(line.split() for line in read(manager, "pids", "pids.events").splitlines())
    assert int(events["max"]) > 0
    assert manager.stats()["pids_stats"]["limit"] == 8


def test_cpu_shares_quota_and_cpuset(parent: Parent) -> None:
    manager = parent.manager()
    manager.create({"cpu": {"shares": 512, "quota": 20000, "period": 100000,
                            "cpus": "0", "mems": "0"}})
    assert read(manager, "cpu", "cpu.shares") == "512"
    assert read(manager, "cpu", "cpu.cfs_quota_us") == "20000"
    assert read(manager, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(manager, "cpuset", "cpuset.cpus") == "0"
    pid, out = parent.spawn(manager, [require_busybox(), "grep", "Cpus_allowed_list",
                                      "/proc/self/status"])
    output = drain(out)
    parent.reap(pid)
    assert output.split() == ["Cpus_allowed_list:", "0"]
    manager.update({"cpu": {"quota": -1}})
    assert read(manager, "cpu", "cpu.cfs_quota_us") == "-1"


def _cpu_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def test_freezer_stops_and_resumes_a_running_process(parent: Parent) -> None:
    manager = parent.manager()
    manager.create(None)
    pid, out = parent.spawn(manager, [require_busybox(), "sh", "-c", "while :; do :; done"])
    start = _cpu_time(pid)
    wait_for(lambda: _cpu_time(pid) > start, "the loop to run")
    manager.freeze()
    assert manager.freezer_state() == "FROZEN"
    frozen_at = _cpu_time(pid)
    time.sleep(0.2)
    assert _cpu_time(pid) == frozen_at  # no progress while frozen
    manager.thaw()
    assert manager.freezer_state() == "THAWED"
    wait_for(lambda: _cpu_time(pid) > frozen_at, "the loop to run again")
    manager.kill_all(signal.SIGKILL)
    assert os.WTERMSIG(parent.reap(pid)) == signal.SIGKILL
    os.close(out)


def test_stats_are_sane(parent: Parent) -> None:
    manager = parent.manager()
    manager.create({"memory": {"limit": 256 << 20}, "pids": {"limit": 50}})
    script = ("x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ready; "
              "while :; do :; done")
    pid, out = parent.spawn(manager, [require_busybox(), "sh", "-c", script])
    assert os.read(out, 100).startswith(b"ready")

    def loaded() -> bool:
        stats = manager.stats()
        return bool(stats["memory_stats"]["usage"] >= 4_000_000
                    and stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0)

    wait_for(loaded, "memory and CPU use to show")
    stats = manager.stats()
    memory = stats["memory_stats"]
    assert memory["limit"] == 256 << 20
    assert memory["usage"] <= memory["max_usage"] <= 256 << 20
    assert "rss" in memory["stats"] and "cache" in memory
    usage = stats["cpu_stats"]["cpu_usage"]
    assert len(usage["percpu_usage"]) >= (os.cpu_count() or 1)
    assert 0 < usage["total_usage"] >= sum(usage["percpu_usage"]) * 0.9
    assert usage["usage_in_usermode"] + usage["usage_in_kernelmode"] > 0
    assert set(stats["cpu_stats"]["throttling_data"]) == {"periods", "throttled_periods",
                                                          "throttled_time"}
    assert stats["pids_stats"]["current"] == 1
    assert stats["pids_stats"]["limit"] == 50
    assert manager.pids() and pid in manager.pids()
    manager.kill_all(signal.SIGKILL)
    parent.reap(pid)
    os.close(out)


def test_kill_all_reaches_every_process(parent: Parent) -> None:
    manager = parent.manager()
    manager.create(None)
    pid, out = parent.spawn(manager, [require_busybox(), "sh", "-c",
                                      "sleep 100 & sleep 100 & sleep 100 & wait"])
    wait_for(lambda: len(manager.pids()) == 4, "four processes")
    manager.kill_all(signal.SIGKILL)
    assert os.WTERMSIG(parent.reap(pid)) == signal.SIGKILL
    wait_for(lambda: manager.pids() == [], "the cgroup to empty")
    os.close(out)


def test_device_rules(parent: Parent) -> None:
    manager = parent.manager()
    manager.create({"devices": default_device_rules()})
    allowed = read(manager, "devices", "devices.list").splitlines()
    assert "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed
    assert "a *:* rwm" not in allowed
    script = ("echo x > /dev/null && echo null-ok; "
              "(exec 3</dev/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-denied")
    pid, out = parent.spawn(manager, [require_busybox(), "sh", "-c", script])
    output = drain(out)
    parent.reap(pid)
    assert "null-ok" in output
    assert "kmsg-denied" in output


def test_add_process_of_a_gone_process(parent: Parent) -> None:
    manager = parent.manager()
    manager.create(None)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(ContainerError, match=str(pid)):
        manager.add_process(pid)


def test_destroy_leaves_nothing(parent: Parent) -> None:
    first, second = parent.manager("c1"), parent.manager("c2")
    first.create({"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    second.create(None)
    pid, out = parent.spawn(first, [require_busybox(), "sleep", "100"])
    first.kill_all(signal.SIGKILL)
    parent.reap(pid)
    os.close(out)
    first.destroy()
    assert not any("/c1" in path for path in leftovers(parent.name))
    assert leftovers(parent.name)  # c2 keeps the parent
    second.destroy()
    prune_parent(parent.name)
    assert leftovers(parent.name) == []
