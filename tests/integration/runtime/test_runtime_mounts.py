"""The spec's mounts: binds (ro, files, relative sources), tmpfs options, propagation, and
destinations that try to leave the rootfs through symlinks."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.runtime.container import Runtime
from tests.integration.runtime.helpers import BundleFactory, new_id, run_captured

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


def test_bind_mounts(runtime: Runtime, bundle: BundleFactory, workdir: str) -> None:
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    with open(os.path.join(data, "file"), "w") as f:
        f.write("from-host\n")
    spec = bundle.spec(["sh", "-c",
                        "cat /ro/file; touch /ro/x 2>/dev/null || echo ro-refused; "
                        "echo written > /rw/new; cat /single; grep ' /ro ' /proc/self/mountinfo"])
    spec["mounts"] += [
        {"destination": "/ro", "type": "bind", "source": data, "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": data, "options": ["rbind", "rw"]},
        # a relative source is relative to the bundle
        {"destination": "/single", "type": "bind", "source": "../data/file",
         "options": ["bind", "ro", "nosuid", "nodev"]},
    ]
    result = run_captured(runtime, bundle.write(spec))
    lines = result.out.splitlines()
    assert lines[:3] == ["from-host", "ro-refused", "from-host"], result
    assert lines[3].split()[5].startswith("ro,")
    with open(os.path.join(data, "new")) as f:
        assert f.read() == "written\n"


def test_tmpfs_options(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["sh", "-c", "grep ' /scratch ' /proc/self/mountinfo; stat -c %a /scratch"])
    spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "noexec", "size=1m", "mode=1770"]})
    result = run_captured(runtime, bundle.write(spec))
    info, mode = result.out.splitlines()
    fields = info.split()
    assert fields[5] == "rw,nosuid,noexec,relatime"
    assert "size=1024k" in fields[-1] and "mode=1770" in fields[-1]
    assert mode == "1770"


def test_symlinked_destination_stays_inside_the_rootfs(runtime: Runtime, bundle: BundleFactory,
                                                       workdir: str) -> None:
    rootfs = bundle.private_rootfs()
    outside = os.path.join(workdir, "outside")
    os.makedirs(outside)
    # absolute and relative links that point out of the rootfs, and one that dangles
    os.symlink(outside, os.path.join(rootfs, "abs-escape"))
    os.symlink("../../../../../../" + outside.lstrip("/"), os.path.join(rootfs, "rel-escape"))
    os.symlink(outside + "/made-by-runtime", os.path.join(rootfs, "dangling"))
    spec = bundle.spec(["sh", "-c", "ls -d /abs-escape/ /rel-escape/ /dangling/; "
                                    "ls -d " + outside + "/*"])
    spec["root"] = {"path": rootfs, "readonly": False}
    for dest in ("/abs-escape/a", "/rel-escape/b", "/dangling", "/../../etc/berth-dots"):
        spec["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    result = run_captured(runtime, bundle.write(spec))
    assert result.code == 0, result
    assert os.listdir(outside) == []
    inside = os.path.join(rootfs, outside.lstrip("/"))
    assert sorted(os.listdir(inside)) == ["a", "b", "made-by-runtime"]
    assert os.path.isdir(os.path.join(rootfs, "etc", "berth-dots"))


def test_propagation_of_host_mounts(runtime: Runtime, bundle: BundleFactory,
                                    workdir: str) -> None:
    shared = os.path.join(workdir, "shared")
    os.makedirs(os.path.join(shared, "sub"))
    subprocess.run(["mount", "--bind", shared, shared], check=True)
    subprocess.run(["mount", "--make-shared", shared], check=True)
    try:
        script = ("while ! grep -q ' /slave/sub ' /proc/self/mountinfo; do sleep 0.05; done; "
                  "echo slave-sees-it; grep -c ' /private/sub ' /proc/self/mountinfo")
        spec = bundle.spec(["sh", "-c", script])
        spec["mounts"] += [
            {"destination": "/slave", "type": "bind", "source": shared,
             "options": ["rbind", "rslave"]},
            {"destination": "/private", "type": "bind", "source": shared,
             "options": ["rbind", "rprivate"]},
        ]
        cid = new_id()
        runtime.create(cid, bundle.write(spec))
        subprocess.run(["mount", "-t", "tmpfs", "berth-prop", os.path.join(shared, "sub")],
                       check=True)
        runtime.start(cid)
        assert runtime.wait(cid) == 1  # grep -c found nothing in the private copy
        runtime.delete(cid)
    finally:
        subprocess.run(["umount", "-R", "-l", shared], check=False)


def test_cgroup_mount_is_read_only(runtime: Runtime, bundle: BundleFactory) -> None:
    script = ("ls /sys/fs/cgroup/memory/memory.limit_in_bytes >/dev/null && echo has-memory; "
              "echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo refused")
    result = run_captured(runtime, bundle(["sh", "-c", script]))
    assert result.out.split() == ["has-memory", "refused"], result
