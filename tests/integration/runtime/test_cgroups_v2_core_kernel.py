"""The v2 manager's core (no controllers needed) on the real kernel, wherever a cgroup2
hierarchy is mounted: on this CI host the hybrid's ``/sys/fs/cgroup/unified``.

Placing processes, ``cgroup.freeze``/``cgroup.events``, ``cgroup.kill`` and removal are the
same in every cgroup2 hierarchy, controllers or not; the limits themselves need a pure v2 host
(test_cgroups_v2_kernel.py, marked cgroup2).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.runtime.cgroups import Layout, V2Manager, detect_layout, open_manager, prune_parent
from tests.support.rootfs import require_busybox

pytestmark = pytest.mark.root


@pytest.fixture
def manager() -> Iterator[V2Manager]:
    layout = detect_layout()
    if layout.unified is None:
        pytest.skip("this host mounts no cgroup2 hierarchy at all (pure cgroup v1)")
    unified = Layout(mode="v2", unified=layout.unified, unified_root=layout.unified_root)
    name = f"berth-test-{secrets.token_hex(4)}"
    made = open_manager(None, "c1", parent=name, layout=unified)
    assert isinstance(made, V2Manager)
    try:
        yield made
    finally:
        made.kill_all(signal.SIGKILL)
        made.destroy()
        prune_parent(name, layout=unified)
    assert not list(Path(layout.unified).glob(f"{name}*"))


def spawn(manager: V2Manager, argv: list[str]) -> int:
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
    try:
        manager.add_process(pid)
    finally:
        os.write(go_w, b"g")
        os.close(go_w)
    return pid


def cpu_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def wait_for_progress(pid: int, since: int) -> None:
    deadline = time.monotonic() + 30
    while cpu_time(pid) <= since:
        if time.monotonic() > deadline:
            pytest.fail("the process never ran")
        time.sleep(0.01)


def test_place_freeze_thaw_kill_remove(manager: V2Manager) -> None:
    manager.create(None)
    pid = spawn(manager, [require_busybox(), "sh", "-c", "while :; do :; done"])
    try:
        assert manager.pids() == [pid]
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        assert f"0::{manager.path}" in cgroup.splitlines()
        wait_for_progress(pid, cpu_time(pid))
        manager.freeze()
        assert manager.freezer_state() == "FROZEN"
        frozen_at = cpu_time(pid)
        time.sleep(0.2)
        assert cpu_time(pid) == frozen_at
        manager.thaw()
        assert manager.freezer_state() == "THAWED"
        wait_for_progress(pid, frozen_at)
        manager.kill_all(signal.SIGKILL)  # through cgroup.kill where the kernel has it
        _, status = os.waitpid(pid, 0)
        assert os.WTERMSIG(status) == signal.SIGKILL
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    deadline = time.monotonic() + 30
    while manager.pids():
        assert time.monotonic() < deadline, "the cgroup never emptied"
        time.sleep(0.01)
    assert not manager.oom_killed()
    manager.destroy()
    assert not Path(manager.directory).exists()
