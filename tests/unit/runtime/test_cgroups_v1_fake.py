"""The cgroup v1 manager against plain files that follow v1's rules where the manager's
ordering matters: a new cpuset is empty, memory+swap may never be below memory, device rules
are applied in order. The real kernel is in tests/integration/runtime/test_cgroups_v1_kernel.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import InvalidArgument
from berth.runtime.cgroups import (
    CgroupFS,
    Layout,
    V1Manager,
    manager_from_state,
    open_manager,
    prune_parent,
)

UNLIMITED = "9223372036854771712"
FILES = {
    "memory": {"memory.limit_in_bytes": UNLIMITED, "memory.memsw.limit_in_bytes": UNLIMITED,
               "memory.soft_limit_in_bytes": UNLIMITED, "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.usage_in_bytes": "0", "memory.stat": "cache 0\nrss 0\n"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "devices": {"devices.allow": "", "devices.deny": ""},
    "freezer": {"freezer.state": "THAWED"},
    "unified": {},
}


class FakeCgroup1(CgroupFS):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.device_rules: list[tuple[str, str]] = []
        for controller, files in FILES.items():
            mount = root / controller
            mount.mkdir()
            (mount / "cgroup.procs").write_text("")
            for name, content in files.items():
                (mount / name).write_text(content)
        (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
        (root / "cpuset" / "cpuset.mems").write_text("0\n")

    def mkdir(self, path: str) -> bool:
        if os.path.isdir(path):
            return False
        os.mkdir(path)
        controller = Path(path).relative_to(self.root).parts[0]
        Path(path, "cgroup.procs").write_text("")
        for name, content in FILES[controller].items():
            Path(path, name).write_text(content)
        return True

    def write(self, path: str, value: str) -> None:
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        name = target.name
        if name in ("devices.allow", "devices.deny"):
            self.device_rules.append((name, value))
            return
        if name == "cgroup.procs" and target.parent.name != "cpuset" and \
                (target.parent / "cpuset.cpus").exists() and \
                not (target.parent / "cpuset.cpus").read_text().strip():
            raise OSError(errno.ENOSPC, "No space left on device", path)
        if name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            self._check_memory(target, name, value)
        target.write_text(value + "\n")

    @staticmethod
    def _check_memory(target: Path, name: str, value: str) -> None:
        def number(text: str) -> int:
            n = int(text)
            return 2**63 if n == -1 else n

        limit = number((target.parent / "memory.limit_in_bytes").read_text())
        memsw = number((target.parent / "memory.memsw.limit_in_bytes").read_text())
        if name == "memory.limit_in_bytes":
            limit = number(value)
        else:
            memsw = number(value)
        if memsw < limit:
            raise OSError(errno.EINVAL, "Invalid argument", str(target))

    def rmdir(self, path: str) -> None:
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if any(child.is_dir() for child in directory.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


Tree = tuple[Path, FakeCgroup1, Layout]


@pytest.fixture
def tree() -> Iterator[Tree]:
    root = Path(tempfile.mkdtemp(prefix="berth-test-cgroup1-"))
    try:
        fs = FakeCgroup1(root)
        controllers = [c for c in FILES if c != "unified"]
        layout = Layout(mode="hybrid", v1={c: str(root / c) for c in controllers},
                        v1_roots={c: "/" for c in controllers}, unified=str(root / "unified"))
        yield root, fs, layout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def make(tree: Tree) -> V1Manager:
    _, fs, layout = tree
    manager = open_manager(None, "c1", parent="berth-test", layout=layout, fs=fs)
    assert isinstance(manager, V1Manager)
    return manager


def text(path: Path) -> str:
    return path.read_text().strip()


def test_new_cpusets_get_their_parents_cpus_and_mems(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create(None)
    for level in ("berth-test", "berth-test/c1"):
        assert text(root / "cpuset" / level / "cpuset.cpus") == "0-3"
        assert text(root / "cpuset" / level / "cpuset.mems") == "0"
    manager.add_process(99)  # would be ENOSPC with an empty cpuset
    assert (root / "unified" / "berth-test" / "c1").is_dir()


def test_an_engine_keeps_the_parent_until_it_is_pruned(tree: Tree) -> None:
    """berth's engine keeps its store's parent between containers (keep_parents): in each
    hierarchy, with the cpuset's CPUs and memory nodes; `system reset` prunes it."""
    root, fs, layout = tree
    for container in ("c1", "c2"):
        manager = open_manager(None, container, parent="berth-test", layout=layout, fs=fs,
                               keep_parents=True)
        manager.create(None)
        manager.add_process(99)
        manager_from_state(manager.to_state(), fs=fs).destroy()  # as a later delete does
        for hierarchy in ("memory", "cpuset", "unified"):
            assert not (root / hierarchy / "berth-test" / container).exists()
            assert (root / hierarchy / "berth-test").is_dir()
        assert text(root / "cpuset" / "berth-test" / "cpuset.cpus") == "0-3"
    prune_parent("berth-test", layout=layout, fs=fs)
    for hierarchy in ("memory", "cpuset", "unified"):
        assert not (root / hierarchy / "berth-test").exists()


def test_cpuset_limits(tree: Tree) -> None:
    root, _, _ = tree
    make(tree).create({"cpu": {"cpus": "1", "mems": "0"}})
    assert text(root / "cpuset/berth-test/c1/cpuset.cpus") == "1"


def test_memory_and_swap_are_written_in_a_valid_order(tree: Tree) -> None:
    root, _, _ = tree
    manager = make(tree)
    manager.create({"memory": {"limit": 100 << 20, "swap": 200 << 20}})
    leaf = root / "memory/berth-test/c1"
    assert text(leaf / "memory.limit_in_bytes") == str(100 << 20)
    assert text(leaf / "memory.memsw.limit_in_bytes") == str(200 << 20)
    manager.update({"memory": {"limit": 20 << 20, "swap": 30 << 20}})  # lowering: limit first
    assert text(leaf / "memory.memsw.limit_in_bytes") == str(30 << 20)
    manager.update({"memory": {"limit": 400 << 20, "swap": 800 << 20}})  # raising: swap first
    assert text(leaf / "memory.limit_in_bytes") == str(400 << 20)
    manager.update({"memory": {"limit": -1}})  # unlimited lifts memory+swap too
    assert text(leaf / "memory.limit_in_bytes") == "-1"
    assert text(leaf / "memory.memsw.limit_in_bytes") == "-1"


def test_other_v1_limits(tree: Tree) -> None:
    root, _, _ = tree
    make(tree).create({
        "memory": {"reservation": 10 << 20, "swappiness": 0, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 25000, "period": 50000},
        "pids": {"limit": 64},
    })
    assert text(root / "memory/berth-test/c1/memory.soft_limit_in_bytes") == str(10 << 20)
    assert text(root / "memory/berth-test/c1/memory.swappiness") == "0"
    assert text(root / "memory/berth-test/c1/memory.oom_control") == "1"
    assert text(root / "cpu/berth-test/c1/cpu.shares") == "512"
    assert text(root / "cpu/berth-test/c1/cpu.cfs_quota_us") == "25000"
    assert text(root / "cpu/berth-test/c1/cpu.cfs_period_us") == "50000"
    assert text(root / "pids/berth-test/c1/pids.max") == "64"


def test_device_rules_in_order_then_the_implicit_ones(tree: Tree) -> None:
    _, fs, _ = tree
    make(tree).create({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
    ]})
    assert fs.device_rules[0] == ("devices.deny", "a")
    assert fs.device_rules[1] == ("devices.allow", "c 10:200 rwm")
    assert ("devices.allow", "c 1:3 rwm") in fs.device_rules[2:]
    assert ("devices.allow", "c 136:* rwm") in fs.device_rules[2:]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"unified": {"memory.high": "1"}}, "needs cgroup v2"),
        ({"memory": {"limit": 100, "swap": 50}}, "below memory.limit"),
        ({"memory": {"swappiness": 101}}, "swappiness"),
        ({"cpu": {"shares": 1}}, "shares"),
        ({"cpu": {"quota": 500}}, "quota"),
    ],
)
def test_bad_v1_resources(tree: Tree, resources: dict[str, object], message: str) -> None:
    root, _, _ = tree
    with pytest.raises(InvalidArgument, match=message):
        make(tree).create(resources)
    assert not (root / "memory" / "berth-test").exists()  # cleaned up


def test_destroy_and_state(tree: Tree) -> None:
    root, fs, _ = tree
    manager = make(tree)
    manager.create(None)
    again = manager_from_state(manager.to_state(), fs=fs)
    again.destroy()
    leftovers = [p for p in root.rglob("*") if p.is_dir() and "berth-test" in p.name]
    assert leftovers == []
