"""``berth update``: new limits reach a running container's cgroup and its HostConfig."""

from __future__ import annotations

import json
import os
import time

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root


def _cgroup_file(cli: BerthCLI, name: str, controller: str, filename: str) -> str:
    """A cgroup file of the container, read on the host (v1 and v2)."""
    pid = cli("inspect", "-f", "{{.State.Pid}}", name).strip()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if controller in controllers.split(","):
            with open(os.path.join("/sys/fs/cgroup", controllers, path.lstrip("/"), filename)) as g:
                return g.read().strip()
    for _, controllers, path in lines:  # cgroup v2
        if controllers == "":
            with open(os.path.join("/sys/fs/cgroup", path.lstrip("/"), filename)) as g:
                return g.read().strip()
    raise AssertionError(f"no {controller} cgroup for {name}")


def _v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_update_changes_a_running_containers_limits(cli: BerthCLI, busybox: str) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "limited",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "1000",
    )
    assert (
        cli(
            "update",
            "--memory",
            "128m",
            "--memory-swap",
            "256m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--cpu-shares",
            "512",
            "limited",
        )
        == "limited\n"
    )
    if _v2():
        assert _cgroup_file(cli, "limited", "memory", "memory.max") == str(128 << 20)
        assert _cgroup_file(cli, "limited", "cpu", "cpu.max") == "50000 100000"
    else:
        assert _cgroup_file(cli, "limited", "memory", "memory.limit_in_bytes") == str(128 << 20)
        assert _cgroup_file(cli, "limited", "cpu", "cpu.cfs_quota_us") == "50000"
        assert _cgroup_file(cli, "limited", "cpu", "cpu.shares") == "512"
    assert _cgroup_file(cli, "limited", "pids", "pids.max") == "50"
    host = json.loads(cli("inspect", "limited"))[0]["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        128 << 20,
        256 << 20,
        500_000_000,
        50,
    )
    cli("update", "--pids-limit", "-1", "limited")
    assert _cgroup_file(cli, "limited", "pids", "pids.max") == "max"
    stats = cli("stats", "--no-stream", "--format", "{{.MemUsage}}", "limited")
    assert stats.strip().endswith("/ 128MiB")


def test_update_of_a_stopped_container_applies_at_its_next_start(
    cli: BerthCLI, busybox: str
) -> None:
    cli("create", "--name", "later", "busybox", "sleep", "1000")
    cli("update", "--memory", "96m", "--restart", "on-failure:2", "later")
    policy = json.loads(cli("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "later"))
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    cli("start", "later")
    name = "later"
    filename = "memory.max" if _v2() else "memory.limit_in_bytes"
    assert _cgroup_file(cli, name, "memory", filename) == str(96 << 20)


def test_a_new_restart_policy_applies_at_the_next_exit(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "flaky", "busybox", "sh", "-c", "sleep 1; exit 1")
    cli("update", "--restart", "on-failure:2", "flaky")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        count, status = cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky").split()
        if count == "2" and status == "exited":
            break
        time.sleep(0.2)
    assert (count, status) == ("2", "exited")


def test_update_errors(cli: BerthCLI, busybox: str) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "u1",
        "-m",
        "64m",
        "--memory-swap",
        "100m",
        "busybox",
        "sleep",
        "1000",
    )
    cli("create", "--rm", "--name", "autoremoved", "busybox", "true")
    cases = [
        (("update", "u1"), "you must provide one or more flags"),
        (("update", "--memory", "2m", "u1"), "Minimum memory limit allowed is 6MB"),
        (("update", "--memory", "200m", "u1"), "smaller than already set memoryswap"),
        (("update", "--restart", "always", "autoremoved"), "AutoRemove is enabled"),
        (("update", "--restart", "sometimes", "u1"), "invalid restart policy"),
        (("update", "--memory", "80m", "u1", "nosuch"), "No such container: nosuch"),
    ]
    for args, message in cases:
        result = cli.run(*args)
        assert result.returncode in (1, 125), (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    # the good one of the last pair went through
    assert cli("inspect", "-f", "{{.HostConfig.Memory}}", "u1") == f"{80 << 20}\n"
    bad_flag = cli.run("update", "--memory", "lots", "u1")
    assert bad_flag.returncode == 125


def test_python_api_update(store_root: str, busybox: str) -> None:
    with Engine(store_root) as engine:
        container = engine.containers.run("busybox", ["sleep", "1000"], detach=True)
        assert not isinstance(container, bytes)
        try:
            assert container.update(mem_limit="100m", cpu_shares=256) == {"Warnings": []}
            host = container.attrs["HostConfig"]
            assert host["Memory"] == 100 << 20 and host["CpuShares"] == 256
        finally:
            container.remove(force=True)
