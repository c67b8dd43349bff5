"""Splitting mount options, and reading the host's cgroup mounts (no root needed)."""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.runtime import mounts, syscalls


def test_flags_data_and_propagation() -> None:
    opts = mounts.MountOptions.parse(
        ["nosuid", "noexec", "rbind", "ro", "rslave", "mode=755", "size=65536k"]
    )
    assert opts.flags == (syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_BIND
                          | syscalls.MS_REC | syscalls.MS_RDONLY)
    assert opts.propagation == [syscalls.MS_SLAVE | syscalls.MS_REC]
    assert opts.data_string == "mode=755,size=65536k"
    assert opts.is_bind


def test_later_options_win() -> None:
    assert mounts.MountOptions.parse(["ro", "rw"]).flags == 0
    assert mounts.MountOptions.parse(["exec", "noexec"]).flags == syscalls.MS_NOEXEC
    assert mounts.MountOptions.parse(["defaults"]).data_string is None


def test_runc_only_options_are_ignored_and_unsupported_ones_refused() -> None:
    assert mounts.MountOptions.parse(["tmpcopyup"]).data == []
    with pytest.raises(InvalidArgument, match="idmap"):
        mounts.MountOptions.parse(["idmap"])


MOUNTINFO = """\
29 1 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
30 1 0:26 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
31 1 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
32 1 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 1 0:29 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_cgroup_mounts_from_mountinfo() -> None:
    table = [line.split() for line in MOUNTINFO.splitlines()]
    v1 = mounts.cgroup_v1_mounts(table)
    assert [(sorted(opts & {"cpu", "cpuacct", "memory", "name=systemd"}), point, root)
            for opts, point, root in v1] == [
        (["cpu", "cpuacct"], "/sys/fs/cgroup/cpu,cpuacct", "/"),
        (["memory"], "/sys/fs/cgroup/memory", "/process_api"),
        (["name=systemd"], "/sys/fs/cgroup/systemd", "/"),
    ]
    assert mounts.cgroup2_mount(table) == ("/sys/fs/cgroup/unified", "/")


def test_unescape_and_relative_paths() -> None:
    assert mounts._unescape("/mnt/with\\040space") == "/mnt/with space"
    assert mounts._relative_to("/process_api/x/c1", "/process_api/x") == "/c1"
    assert mounts._relative_to("/c1", "/") == "/c1"
    assert mounts._relative_to("/", "/") == ""
    assert mounts._relative_to("/a", "/a") == ""


def test_ramfs_root_is_detected() -> None:
    ramfs = [["1", "1", "0:1", "/", "/", "rw", "-", "rootfs", "rootfs", "rw"]]
    assert mounts.root_is_ramfs(ramfs)
    over = [*ramfs, ["27", "1", "254:0", "/", "/", "rw", "-", "ext4", "/dev/vda", "rw"]]
    assert not mounts.root_is_ramfs(over)
