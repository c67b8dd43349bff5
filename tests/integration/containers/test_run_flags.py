"""The rest of ``docker run``'s flags, each checked from inside the container."""

from __future__ import annotations

import time

import pytest

from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root


def test_device_sysctl_shm_groups_oom(cli: BerthCLI, busybox: str) -> None:
    out = cli("run", "--rm", "--device", "/dev/null:/dev/mynull",
              "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024",
              "--shm-size", "8m", "--group-add", "users", "--group-add", "1234",
              "--oom-score-adj", "500", "busybox", "sh", "-c",
              "stat -c '%t,%T' /dev/mynull; cat /proc/sys/net/ipv4/ip_unprivileged_port_start;"
              " df -k /dev/shm | tail -1 | awk '{print $2}'; id -G; cat /proc/self/oom_score_adj")
    lines = out.split()
    assert lines[0] == "1,3"
    assert lines[1] == "1024"
    assert lines[2] == "8192"
    assert "100" in lines[3:-1] and "1234" in lines[3:-1]
    assert lines[-1] == "500"


def test_cpu_and_cpuset_limits_reach_the_cgroup(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "limited", "--cpus", "0.5", "--cpuset-cpus", "0",
        "-m", "32m", "busybox", "sleep", "60")
    container_id = cli("inspect", "-f", "{{.Id}}", "limited").strip()
    group = f"/sys/fs/cgroup/cpu/{cli.store_cgroup()}/{container_id}"
    assert open(f"{group}/cpu.cfs_quota_us").read().strip() == "50000"
    assert open(f"{group}/cpu.cfs_period_us").read().strip() == "100000"
    cpuset = f"/sys/fs/cgroup/cpuset/{cli.store_cgroup()}/{container_id}/cpuset.cpus"
    assert open(cpuset).read().strip() == "0"
    memory = f"/sys/fs/cgroup/memory/{cli.store_cgroup()}/{container_id}"
    assert open(f"{memory}/memory.limit_in_bytes").read().strip() == str(32 * 1024 * 1024)


def test_stop_signal_and_timeout(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "graceful", "--stop-signal", "USR1", "busybox", "sh", "-c",
        "trap 'echo got-USR1; exit 0' USR1; while :; do sleep 0.1; done")
    time.sleep(0.3)
    cli("stop", "graceful")
    assert cli("inspect", "-f", "{{.State.ExitCode}}", "graceful") == "0\n"
    assert "got-USR1" in cli("logs", "graceful")
    cli("run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox", "sh", "-c",
        "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.3)
    started = time.monotonic()
    cli("stop", "stubborn")
    assert time.monotonic() - started < 8  # killed after 1 s, not Docker's default 10
    assert cli("inspect", "-f", "{{.State.ExitCode}}", "stubborn") == "137\n"


def test_security_options(cli: BerthCLI, busybox: str) -> None:
    unconfined = cli("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep",
                     "Seccomp:", "/proc/self/status")
    assert unconfined.split()[1] == "0"
    nnp = cli("run", "--rm", "--security-opt", "no-new-privileges=false", "busybox", "grep",
              "NoNewPrivs:", "/proc/self/status")
    assert nnp.split()[1] == "0"
    bad = cli.run("run", "--rm", "--security-opt", "nonsense", "busybox", "true")
    assert bad.returncode == 125 and "security-opt" in bad.stderr
