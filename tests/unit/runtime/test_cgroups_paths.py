"""Finding the cgroup hierarchies and placing a container in them (no cgroupfs needed)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import HostError, InvalidArgument
from berth.runtime.cgroups import (
    V1Manager,
    V2Manager,
    open_manager,
    parse_mountinfo,
    resolve_cgroups_path,
    shares_to_weight,
)
from berth.runtime.cgroups.common import (
    blkio_weight_to_io_weight,
    device_rule_text,
    join_cgroup,
    parse_flat_keyed,
)
from berth.runtime.cgroups.v2 import swap_max

HYBRID = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V1_COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
"""

V2 = """\
22 1 0:21 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""

V2_IN_CONTAINER = """\
30 25 0:26 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw
"""


@pytest.fixture
def berth_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="berth-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_hybrid_layout() -> None:
    layout = parse_mountinfo(HYBRID)
    assert layout.mode == "hybrid"
    assert layout.v1["memory"] == "/sys/fs/cgroup/memory"
    assert layout.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert "name=systemd" not in layout.v1 and "systemd" not in layout.v1
    assert layout.unified == "/sys/fs/cgroup/unified"


def test_v1_comounted_controllers_share_a_mount() -> None:
    layout = parse_mountinfo(V1_COMOUNTED)
    assert layout.mode == "v1"
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.unified is None


def test_pure_v2_layout() -> None:
    layout = parse_mountinfo(V2)
    assert layout.mode == "v2"
    assert layout.v1 == {}
    assert layout.unified == "/sys/fs/cgroup"


def test_escaped_mount_points() -> None:
    layout = parse_mountinfo(
        "30 25 0:26 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    )
    assert layout.unified == "/mnt/my cgroups"


def test_no_cgroups_mounted() -> None:
    with pytest.raises(HostError, match="no cgroup filesystem"):
        parse_mountinfo("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/berth/c1"),
        ("", "/berth/c1"),
        ("/berth-1a2b3c/c1", "/berth-1a2b3c/c1"),
        ("/a//b/", "/a/b"),
        ("mine/c1", "mine/c1"),
    ],
)
def test_resolve_cgroups_path(given: str | None, expected: str) -> None:
    assert resolve_cgroups_path(given, "c1", "berth") == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("system.slice:berth:c1", "systemd cgroup driver is not supported"),
        ("/a/../../etc", "must not contain '..'"),
        ("/", "root cgroup"),
    ],
)
def test_resolve_cgroups_path_refuses(given: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_cgroups_path(given, "c1", "berth")


@pytest.mark.parametrize("bad_id", ["", "a/b", ".."])
def test_default_path_needs_a_sane_id(bad_id: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_cgroups_path(None, bad_id, "berth")


def test_join_cgroup_strips_the_mount_root() -> None:
    assert join_cgroup("/sys/fs/cgroup/memory", "/", "/berth/c1") == \
        "/sys/fs/cgroup/memory/berth/c1"
    assert join_cgroup("/sys/fs/cgroup", "/docker/abc", "/docker/abc/berth/c1") == \
        "/sys/fs/cgroup/berth/c1"
    assert join_cgroup("/sys/fs/cgroup", "/docker/abc", "/other") == "/sys/fs/cgroup/other"


def test_v1_paths_on_a_hybrid_host() -> None:
    manager = open_manager("/berth-1a2b3c/c1", "c1", layout=parse_mountinfo(HYBRID))
    assert isinstance(manager, V1Manager)
    assert manager.path == "/berth-1a2b3c/c1"
    assert manager.dirs["memory"] == "/sys/fs/cgroup/memory/berth-1a2b3c/c1"
    assert manager.dirs["cpuset"] == "/sys/fs/cgroup/cpuset/berth-1a2b3c/c1"
    assert manager.unified_dir == "/sys/fs/cgroup/unified/berth-1a2b3c/c1"
    assert set(manager.dirs) == {"cpu", "cpuacct", "cpuset", "memory", "freezer", "pids"}


def test_v1_relative_paths_go_under_the_runtimes_own_cgroups(berth_tmp: Path) -> None:
    proc_cgroup = berth_tmp / "cgroup"
    proc_cgroup.write_text("4:memory:/process_api/xyz\n3:cpuset:/\n1:cpu:/\n0::/init.scope\n")
    manager = open_manager("berth/c1", "c1", layout=parse_mountinfo(HYBRID),
                           proc_cgroup=str(proc_cgroup))
    assert isinstance(manager, V1Manager)
    assert manager.dirs["memory"] == "/sys/fs/cgroup/memory/process_api/xyz/berth/c1"
    assert manager.dirs["cpu"] == "/sys/fs/cgroup/cpu/berth/c1"
    assert manager.unified_dir == "/sys/fs/cgroup/unified/berth/c1"  # parent of /init.scope


def test_v2_paths(berth_tmp: Path) -> None:
    manager = open_manager(None, "c1", parent="berth-9f9f9f", layout=parse_mountinfo(V2))
    assert isinstance(manager, V2Manager)
    assert manager.directory == "/sys/fs/cgroup/berth-9f9f9f/c1"
    proc_cgroup = berth_tmp / "cgroup"
    proc_cgroup.write_text("0::/user.slice/session-1.scope\n")
    relative = open_manager("berth/c1", "c1", layout=parse_mountinfo(V2),
                            proc_cgroup=str(proc_cgroup))
    assert isinstance(relative, V2Manager)
    assert relative.directory == "/sys/fs/cgroup/user.slice/berth/c1"


def test_v2_path_inside_a_container() -> None:
    manager = open_manager("/docker/abc/berth/c1", "c1", layout=parse_mountinfo(V2_IN_CONTAINER))
    assert isinstance(manager, V2Manager)
    assert manager.directory == "/sys/fs/cgroup/berth/c1"


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1024, 39), (512, 20), (262144, 10000), (1, 1), (10**6, 10000), (0, 0)],
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_blkio_weight_to_io_weight() -> None:
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 1 + (490 * 9999) // 990


@pytest.mark.parametrize(
    ("limit", "swap", "expected"),
    [
        (100, 300, "200"),
        (100, 100, "0"),
        (100, -1, "max"),
        (100, None, None),
        (-1, None, "max"),
        (None, None, None),
    ],
)
def test_swap_max(limit: int | None, swap: int | None, expected: str | None) -> None:
    assert swap_max(limit, swap) == expected


@pytest.mark.parametrize(("limit", "swap"), [(None, 300), (-1, 300), (200, 100)])
def test_swap_max_refuses(limit: int | None, swap: int) -> None:
    with pytest.raises(InvalidArgument, match="swap"):
        swap_max(limit, swap)


def test_device_rule_text() -> None:
    assert device_rule_text({"allow": False, "access": "rwm"}, "r") == (False, "a")
    assert device_rule_text({"allow": True, "type": "c", "major": 1, "minor": 3,
                             "access": "rw"}, "r") == (True, "c 1:3 rw")
    assert device_rule_text({"allow": True, "type": "c", "major": 136}, "r") == \
        (True, "c 136:* rwm")
    with pytest.raises(InvalidArgument, match=r"r\.access"):
        device_rule_text({"allow": True, "type": "c", "access": "x"}, "r")
    with pytest.raises(InvalidArgument, match=r"r\.allow"):
        device_rule_text({"type": "c"}, "r")


def test_parse_flat_keyed() -> None:
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == {
        "oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}
