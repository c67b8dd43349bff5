"""Detached containers under the real supervisor: the berth command, busybox, the kernel.

Each test ends with the store's containers removed and its supervisor and anchor killed by
PID, and checks that no process, mount or cgroup of the store is left (``no_leftovers``)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from berth.store.paths import StorePaths
from tests.support.berthcli import BerthCLI
from tests.support.supervisors import alive, kill_and_wait, processes_of

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("busybox", "no_leftovers")]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def inspect(cli: BerthCLI, name: str, template: str) -> str:
    return cli("inspect", "-f", template, name).strip()


def supervisor_pid(cli: BerthCLI) -> int:
    found = processes_of(cli.root)["supervisor"]
    assert len(found) == 1, found
    return found[0]


def test_detached_container_logs_and_exit(cli: BerthCLI) -> None:
    cli("run", "-d", "--name", "c1", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert cli("wait", "c1").strip() == "3"
    assert inspect(cli, "c1", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert not inspect(cli, "c1", "{{.State.FinishedAt}}").startswith("0001")
    result = cli.run("logs", "c1").check()
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    log_path = inspect(cli, "c1", "{{.LogPath}}")
    with open(log_path) as f:
        first = json.loads(f.readline())
    assert first["log"] == "out\n" and first["stream"] == "stdout"


def test_the_cli_is_not_needed_while_it_runs(cli: BerthCLI) -> None:
    """run -d returns at once; the container goes on under the supervisor, whose process
    is not the CLI's child: it was started as a daemon (its own session)."""
    cli("run", "-d", "--name", "c1", "busybox", "sleep", "60")
    supervisor = supervisor_pid(cli)
    with open(f"/proc/{supervisor}/stat") as f:
        session = int(f.read().rsplit(")", 1)[1].split()[3])
    assert session != os.getsid(0)
    assert "Up" in cli("ps", "--filter", "name=c1", "--format", "{{.Status}}")
    cli("stop", "-t", "1", "c1")


def test_kill_9_of_the_supervisor_keeps_container_output_and_exit(cli: BerthCLI) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.2; done; exit 4",
    )
    pid = int(inspect(cli, "c1", "{{.State.Pid}}"))
    kill_and_wait([supervisor_pid(cli)])
    assert alive(pid)  # the container did not go with it
    assert cli("wait", "c1").strip() == "4"
    assert cli("logs", "c1") == "".join(f"line {i}\n" for i in range(1, 11))
    assert inspect(cli, "c1", "{{.State.Error}}") == ""


def test_kill_9_while_a_container_exits(cli: BerthCLI) -> None:
    cli("run", "-d", "--name", "c1", "busybox", "sh", "-c", "sleep 1; echo bye; exit 9")
    anchor = processes_of(cli.root)["anchor"][0]
    os.kill(anchor, 19)  # SIGSTOP: no supervisor comes back until the container has exited
    try:
        kill_and_wait([supervisor_pid(cli)])
        time.sleep(1.5)
    finally:
        os.kill(anchor, 18)  # SIGCONT
    assert cli("wait", "c1").strip() == "9"
    assert cli("logs", "c1") == "bye\n"


def test_restart_policy_on_failure(cli: BerthCLI) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "c1",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 3",
    )
    wait_until(
        lambda: inspect(cli, "c1", "{{.RestartCount}} {{.State.Status}}") == "2 exited",
        "two restarts",
    )
    assert inspect(cli, "c1", "{{.State.ExitCode}}") == "3"
    assert cli("logs", "c1") == "attempt\n" * 3


def test_restart_policy_always_and_stop(cli: BerthCLI) -> None:
    cli("run", "-d", "--name", "c1", "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
    wait_until(lambda: int(inspect(cli, "c1", "{{.RestartCount}}")) >= 2, "restarts")
    cli("stop", "-t", "1", "c1")
    count = inspect(cli, "c1", "{{.RestartCount}}")
    time.sleep(1.5)
    assert inspect(cli, "c1", "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"


def test_healthcheck_shows_in_ps_and_inspect(cli: BerthCLI) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "good",
        "--health-cmd",
        "echo fine",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "60",
    )
    cli(
        "run",
        "-d",
        "--name",
        "bad",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "60",
    )
    wait_until(lambda: inspect(cli, "good", "{{.State.Health.Status}}") == "healthy", "healthy")
    wait_until(lambda: inspect(cli, "bad", "{{.State.Health.Status}}") == "unhealthy", "unhealthy")
    statuses = cli("ps", "--format", "{{.Names}} {{.Status}}")
    assert "(healthy)" in statuses and "(unhealthy)" in statuses
    log = json.loads(inspect(cli, "good", "{{json .State.Health.Log}}"))
    assert log[-1]["ExitCode"] == 0 and log[-1]["Output"] == "fine\n"
    assert len(log) <= 5
    cli("stop", "-t", "1", "good", "bad")


def test_log_rotation_and_follow(cli: BerthCLI) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "c1",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.005; done",
    )
    follower = cli.popen("logs", "-f", "c1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines == [f"line {i}" for i in range(300)]  # followed across rotations, stopped
    log_path = inspect(cli, "c1", "{{.LogPath}}")
    assert os.path.exists(log_path + ".1") and os.path.exists(log_path + ".2")
    assert not os.path.exists(log_path + ".3")
    for path in (log_path, log_path + ".1"):
        assert os.path.getsize(path) < 2000 + 200
    tail = cli("logs", "--tail", "2", "c1").splitlines()
    assert tail == ["line 298", "line 299"]


def test_auto_remove_after_exit(cli: BerthCLI) -> None:
    cli("run", "-d", "--rm", "--name", "gone", "busybox", "true")
    wait_until(lambda: "gone" not in cli("ps", "-a", "--format", "{{.Names}}"), "removal")


def test_tty_container_survives_the_supervisor_and_attaches(cli: BerthCLI) -> None:
    container = cli("run", "-dit", "--name", "t1", "busybox", "sh").strip()
    kill_and_wait([supervisor_pid(cli)])  # the pty master is kept by the anchor meanwhile
    time.sleep(1.0)
    assert "Up" in cli("ps", "--filter", "name=t1", "--format", "{{.Status}}")
    output = _attach_and_type(cli, container, b"echo hi-$((40+2))\r")
    assert b"hi-42" in output
    assert "Up" in cli("ps", "--filter", "name=t1", "--format", "{{.Status}}")  # detached
    cli("stop", "-t", "1", "t1")


def _attach_and_type(cli: BerthCLI, container: str, keys: bytes) -> bytes:
    """Attach in a pty of our own (as a user's terminal), type ``keys``, then detach."""
    code = (
        "import sys\n"
        "from berth.monitor.client import SupervisorClient\n"
        "from berth.store.paths import StorePaths\n"
        f"client = SupervisorClient.ensure(StorePaths.at({cli.root!r}))\n"
        f"sys.exit(client.attach({container!r}, stdin=True, stdout=True, stderr=True,"
        " tty=True))\n"
    )
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [sys.executable, "-c", code])
    output = b""

    def read_for(seconds: float) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    return

    read_for(1.0)
    os.write(fd, keys)
    read_for(1.5)
    os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
    read_for(1.0)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output


def test_system_boot_starts_what_policies_say(cli: BerthCLI) -> None:
    from berth.monitor.client import SupervisorClient

    for name, policy in (("aa", "always"), ("uu", "unless-stopped"), ("nn", "no")):
        cli("run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "60")
    cli("run", "-d", "--name", "u-stopped", "--restart", "unless-stopped", "busybox", "sleep", "60")
    cli("stop", "-t", "0", "aa", "u-stopped")
    _reboot(cli)
    assert not SupervisorClient.running(StorePaths.at(cli.root))
    assert set(_boot(cli).split()) == {"aa", "uu"}
    assert set(cli("ps", "--format", "{{.Names}}").split()) == {"aa", "uu"}
    # what ran before the "reboot" and was not brought back is recorded as ended
    assert inspect(cli, "nn", "{{.State.Status}} {{.State.ExitCode}}") == "exited 255"
    cli("stop", "-t", "0", "aa", "uu")


def _reboot(cli: BerthCLI) -> None:
    """What a reboot does to a store: every process gone, /run and the cgroups empty."""
    from tests.support.supervisors import end_supervisor

    pids = [int(p) for p in cli("ps", "-q", "--format", "{{.ID}}").split() if p.isdigit()]
    for container in cli("ps", "-q", "--no-trunc").split():
        pids.append(int(inspect(cli, container, "{{.State.Pid}}")))
    end_supervisor(cli.root)  # first: nothing may restart them
    kill_and_wait(pids)
    name = StorePaths.at(cli.root).host_name("berth")
    for base, dirs, _ in list(os.walk("/sys/fs/cgroup")):
        if os.path.basename(base) == name:
            for directory in dirs:
                os.rmdir(os.path.join(base, directory))
    run_dir = StorePaths.at(cli.root).run_dir
    with open("/proc/self/mountinfo") as f:
        mounts = [
            line.split()[4]
            for line in f
            if cli.root in line.split()[4] or run_dir in line.split()[4]
        ]
    for mount in reversed(mounts):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(run_dir)  # a tmpfs: empty after a reboot


def _boot(cli: BerthCLI) -> str:
    """``berth system boot`` (through its handler until the command is wired)."""
    result = cli.run("system", "boot")
    if result.returncode == 0:
        return result.stdout
    code = (
        "import os, sys\n"
        f"os.environ['BERTH_ROOT'] = {cli.root!r}\n"
        "from berth.cli.monitor import boot\n"
        "sys.exit(boot(None))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, env=cli.env(), timeout=60
    )
    return done.stdout.decode()
