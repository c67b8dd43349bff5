"""The cgroup v2 manager against a tree of plain files that behaves like cgroup2.

The fake follows the kernel's Documentation/admin-guide/cgroup-v2.rst: making a directory
creates the core interface files and those of the controllers the parent enables in its
``cgroup.subtree_control``; ``+ctrl`` is refused for a controller the cgroup does not have;
``cgroup.freeze`` is reflected in ``cgroup.events``; ``cgroup.kill`` empties the group; a
cgroup with processes or children cannot be removed. Real v2 is exercised by
tests/integration/runtime/test_cgroups_v2_kernel.py on hosts that have it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.errors import ContainerError, InvalidArgument
from berth.runtime.cgroups import (
    CgroupFS,
    Layout,
    V2Manager,
    manager_from_state,
    open_manager,
    prune_parent,
)

CORE_FILES = {
    "cgroup.procs": "",
    "cgroup.threads": "",
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.type": "domain\n",
    "cgroup.max.depth": "max\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}
CONTROLLER_FILES = {
    "memory": {
        "memory.max": "max\n", "memory.low": "0\n", "memory.high": "max\n",
        "memory.swap.max": "max\n", "memory.current": "0\n", "memory.peak": "0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
        "memory.stat": "anon 0\nfile 0\n",
    },
    "cpu": {"cpu.max": "max 100000\n", "cpu.max.burst": "0\n", "cpu.weight": "100\n",
            "cpu.idle": "0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-3\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n", "pids.events": "max 0\n"},
    "io": {"io.max": "", "io.weight": "default 100\n", "io.stat": ""},
}
ROOT_CONTROLLERS = "cpuset cpu io memory pids"


class FakeCgroup2(CgroupFS):
    """Plain files under ``root`` that act like a cgroup2 mount."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes: list[tuple[str, str]] = []
        for name, content in CORE_FILES.items():
            (root / name).write_text(content)
        (root / "cgroup.controllers").write_text(ROOT_CONTROLLERS + "\n")

    def mkdir(self, path: str) -> bool:
        if os.path.isdir(path):
            return False
        parent = Path(path).parent
        os.mkdir(path)
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        for name, content in CORE_FILES.items():
            Path(path, name).write_text(content)
        Path(path, "cgroup.controllers").write_text(" ".join(enabled) + "\n")
        for controller in enabled:
            for name, content in CONTROLLER_FILES.get(controller, {}).items():
                Path(path, name).write_text(content)
        return True

    def write(self, path: str, value: str) -> None:
        self.writes.append((path, value))
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        name = target.name
        if name == "cgroup.subtree_control":
            available = (target.parent / "cgroup.controllers").read_text().split()
            enabled = target.read_text().split()
            for word in value.split():
                controller = word[1:]
                if controller not in available:
                    raise OSError(errno.ENOENT, "No such file or directory", path)
                if word.startswith("+") and controller not in enabled:
                    enabled.append(controller)
                    self._propagate(target.parent, controller)
                elif word.startswith("-") and controller in enabled:
                    enabled.remove(controller)
            target.write_text(" ".join(enabled) + "\n")
        elif name == "cgroup.freeze":
            target.write_text(value + "\n")
            populated = "1" if (target.parent / "cgroup.procs").read_text().strip() else "0"
            (target.parent / "cgroup.events").write_text(
                f"populated {populated}\nfrozen {value.strip()}\n")
        elif name == "cgroup.kill":
            (target.parent / "cgroup.procs").write_text("")
        elif name == "cgroup.procs":
            procs = target.read_text().split()
            target.write_text("\n".join([*procs, value.strip()]) + "\n")
        else:
            target.write_text(value + "\n")

    @staticmethod
    def _propagate(directory: Path, controller: str) -> None:
        """Enabling a controller gives every existing child its files."""
        for child in directory.iterdir():
            if not child.is_dir():
                continue
            controllers = (child / "cgroup.controllers").read_text().split()
            (child / "cgroup.controllers").write_text(" ".join([*controllers, controller]))
            for name, content in CONTROLLER_FILES.get(controller, {}).items():
                (child / name).write_text(content)

    def rmdir(self, path: str) -> None:
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if (directory / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        if any(child.is_dir() for child in directory.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


Tree = tuple[Path, FakeCgroup2, Layout]


@pytest.fixture
def tree() -> Iterator[Tree]:
    root = Path(tempfile.mkdtemp(prefix="berth-test-cgroup2-"))
    try:
        yield root, FakeCgroup2(root), Layout(mode="v2", unified=str(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def make(tree: Tree, container: str = "c1",
         parent: str = "berth-test") -> V2Manager:
    _, fs, layout = tree
    manager = open_manager(None, container, parent=parent, layout=layout, fs=fs)
    assert isinstance(manager, V2Manager)
    return manager


def read(path: Path) -> str:
    return path.read_text().strip()


RESOURCES = {
    "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 42},
    "blockIO": {"weight": 500},
    "unified": {"memory.high": "60000000"},
}


def test_create_enables_controllers_and_applies_limits(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create(RESOURCES)
    leaf = root / "berth-test" / "c1"
    assert leaf.is_dir()
    assert set(read(root / "cgroup.subtree_control").split()) >= {"cpu", "memory", "pids"}
    assert set(read(root / "berth-test" / "cgroup.subtree_control").split()) >= {
        "cpu", "cpuset", "io", "memory", "pids"}
    assert read(leaf / "memory.max") == str(64 << 20)
    assert read(leaf / "memory.swap.max") == str(32 << 20)
    assert read(leaf / "memory.low") == str(32 << 20)
    assert read(leaf / "memory.high") == "60000000"
    assert read(leaf / "cpu.weight") == "39"
    assert read(leaf / "cpu.max") == "50000 100000"
    assert read(leaf / "cpuset.cpus") == "0-1"
    assert read(leaf / "cpuset.mems") == "0"
    assert read(leaf / "pids.max") == "42"
    assert read(leaf / "io.weight") == str(1 + (490 * 9999) // 990)


def test_unlimited_values(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create({"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 250000},
                    "pids": {"limit": -1}})
    leaf = root / "berth-test" / "c1"
    assert read(leaf / "memory.max") == "max"
    assert read(leaf / "memory.swap.max") == "max"
    assert read(leaf / "cpu.max") == "max 250000"
    assert read(leaf / "pids.max") == "max"


def test_update_period_keeps_quota(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create({"cpu": {"quota": 20000, "period": 100000}})
    manager.update({"cpu": {"period": 50000}})
    assert read(root / "berth-test" / "c1" / "cpu.max") == "20000 50000"
    manager.update({"cpu": {"quota": 30000}})
    assert read(root / "berth-test" / "c1" / "cpu.max") == "30000 50000"


def test_check_before_update_refuses_a_limit_below_usage(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create({"memory": {"limit": 100 << 20}})
    (root / "berth-test" / "c1" / "memory.current").write_text(str(80 << 20))
    with pytest.raises(InvalidArgument, match="current usage"):
        manager.update({"memory": {"limit": 50 << 20, "checkBeforeUpdate": True}})
    manager.update({"memory": {"limit": 50 << 20}})
    assert read(root / "berth-test" / "c1" / "memory.max") == str(50 << 20)


def test_processes_freeze_and_kill(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create(None)
    manager.add_process(4242)
    manager.add_process(4343)
    assert manager.pids() == [4242, 4343]
    assert manager.freezer_state() == "THAWED"
    manager.freeze()
    assert read(root / "berth-test" / "c1" / "cgroup.freeze") == "1"
    assert manager.freezer_state() == "FROZEN"
    manager.thaw()
    assert manager.freezer_state() == "THAWED"
    manager.kill_all(signal.SIGKILL)
    assert manager.pids() == []


def test_oom_and_stats(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create({"memory": {"limit": 1 << 20}, "pids": {"limit": 10}})
    leaf = root / "berth-test" / "c1"
    assert not manager.oom_killed()
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (leaf / "memory.current").write_text("524288\n")
    (leaf / "memory.peak").write_text("1048576\n")
    (leaf / "memory.stat").write_text("anon 400000\nfile 100000\ninactive_file 50000\n")
    (leaf / "cpu.stat").write_text(
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\n"
        "nr_throttled 3\nthrottled_usec 2000\n")
    (leaf / "pids.current").write_text("4\n")
    (leaf / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
    assert manager.oom_killed()
    stats = manager.stats()
    memory = stats["memory_stats"]
    assert memory["usage"] == 524288 and memory["max_usage"] == 1048576
    assert memory["limit"] == 1 << 20 and memory["cache"] == 100000
    assert memory["failcnt"] == 7 and memory["stats"]["inactive_file"] == 50000
    cpu = stats["cpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] == 1500 * 1000
    assert cpu["cpu_usage"]["usage_in_usermode"] == 1000 * 1000
    assert cpu["throttling_data"] == {"periods": 10, "throttled_periods": 3,
                                      "throttled_time": 2000 * 1000}
    assert stats["pids_stats"] == {"current": 4, "limit": 10}
    assert stats["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096},
        {"major": 8, "minor": 0, "op": "write", "value": 8192},
    ]


def test_unlimited_stats_are_none(tree: Tree) -> None:
    manager = make(tree)
    manager.create(None)
    stats = manager.stats()
    assert stats["memory_stats"]["limit"] is None
    assert stats["pids_stats"]["limit"] is None


def test_destroy_removes_the_leaf_and_the_parent_it_made(tree: Tree) -> None:
    root, _, _ = tree
    first, second = make(tree, "c1"), make(tree, "c2")
    first.create(None)
    second.create(None)
    first.destroy()  # the parent still holds c2: it stays
    assert not (root / "berth-test" / "c1").exists()
    assert (root / "berth-test" / "c2").is_dir()
    second.destroy()
    assert (root / "berth-test").is_dir()  # made by the first, which had gone by then
    prune_parent("berth-test", layout=tree[2], fs=tree[1])
    assert not (root / "berth-test").exists()
    first.destroy()  # twice is fine


def test_destroy_of_the_only_container_removes_its_parent(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create(None)
    manager.destroy()
    assert not (root / "berth-test").exists()
    assert (root / "cgroup.procs").exists()


def test_an_engine_keeps_the_parent_until_it_is_pruned(tree: Tree) -> None:
    """berth's engine keeps its store's parent between containers (keep_parents), as
    Docker keeps /docker; `system reset` prunes it."""
    root, fs, layout = tree
    for container in ("c1", "c2"):
        manager = open_manager(None, container, parent="berth-test", layout=layout, fs=fs,
                               keep_parents=True)
        manager.create(None)
        assert (root / "berth-test" / container).is_dir()
        again = manager_from_state(manager.to_state(), fs=fs)  # as a later delete finds it
        again.destroy()
        assert not (root / "berth-test" / container).exists()
        assert (root / "berth-test").is_dir()
    prune_parent("berth-test", layout=layout, fs=fs)
    assert not (root / "berth-test").exists()


def test_destroy_refuses_while_processes_remain(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from berth.runtime.cgroups import common

    monkeypatch.setattr(common, "DESTROY_TIMEOUT", 0.05)
    monkeypatch.setattr("berth.runtime.cgroups.v2.DESTROY_TIMEOUT", 0.05)
    manager = make(tree)
    manager.create(None)
    manager.add_process(4242)
    with pytest.raises(ContainerError, match="cannot remove cgroup"):
        manager.destroy()


def test_state_round_trip(tree: Tree) -> None:
    _, fs, _ = tree
    manager = make(tree)
    manager.create(None)
    manager.add_process(77)
    state = {"id": "c1", "cgroup": manager.to_state()}
    again = manager_from_state(state, fs=fs)
    assert isinstance(again, V2Manager)
    assert again.directory == manager.directory
    assert again.pids() == [77]
    assert again.to_state() == manager.to_state()


def test_failed_create_cleans_up(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    with pytest.raises(InvalidArgument, match="not a file of the container's cgroup"):
        manager.create({"unified": {"memory.nonsense": "1"}})
    assert not (root / "berth-test").exists()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"swap": 100}}, "needs a memory limit"),
        ({"cpu": {"realtimeRuntime": 950000}}, "realtime"),
        ({"unified": {"cgroup.procs": "1"}}, "managed by the runtime"),
        ({"unified": {"../escape": "1"}}, "not a cgroup interface file"),
        ({"memory": {"limit": "64m"}}, "whole number"),
        ({"pids": "10"}, "must be an object"),
    ],
)
def test_bad_resources(tree: Tree, resources: dict[str, Any], message: str) -> None:
    manager = make(tree)
    with pytest.raises(InvalidArgument, match=message):
        manager.create(resources)


def test_unsupported_settings_are_logged_not_fatal(
    tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    manager = make(tree)
    with caplog.at_level(logging.WARNING, logger="berth.runtime.cgroups.v2"):
        manager.create({
            "devices": [{"allow": False, "access": "rwm"}],
            "memory": {"swappiness": 10, "disableOOMKiller": True},
        })
    text = caplog.text
    assert "devices allowlist is not enforced on cgroup v2" in text
    assert "swappiness" in text and "OOM killer" in text


def test_a_missing_controller_is_a_clear_error(tree: Tree) -> None:
    root, fs, layout = tree
    (root / "cgroup.controllers").write_text("cpu memory\n")  # no pids on this "host"
    manager = open_manager(None, "c1", parent="berth-test", layout=layout, fs=fs)
    with pytest.raises(Exception, match=r"pids\.max"):
        manager.create({"pids": {"limit": 5}})
