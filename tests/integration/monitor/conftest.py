"""Fixtures of the supervisor's integration tests: a supervisor started the real way (anchor,
daemon, socket in /run), with fake containers (``fake_store``) or with berth's real ones (the
``cli`` and ``busybox`` fixtures); each test ends the supervisor it caused and leaves no
process, mount or cgroup behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from berth.monitor.client import SupervisorClient
from berth.monitor.paths import MonitorPaths
from berth.monitor.spawn import start_supervisor
from berth.store.paths import StorePaths
from tests.support.supervisors import end_supervisor, processes_of
from tests.unit.monitor.fakes import FakeBackend

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
FAKE_BACKEND = ["--backend", "tests.unit.monitor.fakes:make_backend"]


@dataclass
class FakeStore:
    paths: StorePaths
    backend: FakeBackend
    client: SupervisorClient
    extra_args: list[str]

    @property
    def monitor(self) -> MonitorPaths:
        return MonitorPaths(self.paths.run_dir)

    def start_supervisor(self) -> None:
        start_supervisor(self.paths, extra_args=self.extra_args)

    def supervisor_pid(self) -> int:
        with open(self.monitor.pid_file) as f:
            return int(f.read())

    def processes(self) -> dict[str, list[int]]:
        return processes_of(self.paths.root)


@pytest.fixture
def fake_store(store_root: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStore]:
    if os.geteuid() != 0:
        pytest.skip("the supervisor's run dir is under /run")
    monkeypatch.setenv("PYTHONPATH", REPO)  # the supervisor imports the fake backend
    paths = StorePaths.at(store_root)
    store = FakeStore(
        paths, FakeBackend(paths), SupervisorClient(paths), [*FAKE_BACKEND, "--idle-exit", "never"]
    )
    try:
        yield store
    finally:
        end_supervisor(store_root)
        for record in store.backend.all():
            pid = int(record.state.get("Pid") or 0)
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def no_leftovers(store_root: str) -> Iterator[None]:
    """For tests with real containers: afterwards, no container, supervisor, mount or
    cgroup of the store is left."""
    yield
    from tests.support.berthcli import BerthCLI

    cli = BerthCLI(store_root)
    for container in cli.run("ps", "-aq", "--no-trunc").stdout.split():
        cli.run("rm", "-f", container)
    killed = end_supervisor(store_root)
    assert processes_of(store_root) == {"anchor": [], "supervisor": []}
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if store_root in line.split()[4]]
    assert mounts == []
    name = StorePaths.at(store_root).host_name("berth")
    cgroups = [
        os.path.join(base, d)
        for base, dirs, _ in os.walk("/sys/fs/cgroup")
        if os.path.basename(base) == name
        for d in dirs
    ]
    assert cgroups == [], cgroups
    del killed
    run_dir = StorePaths.at(store_root).run_dir
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if run_dir in line.split()[4]]
    shutil.rmtree(run_dir, ignore_errors=True)  # runtime and network state dirs, now empty
