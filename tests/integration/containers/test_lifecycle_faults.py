"""What a user relies on when things go wrong: signals reach a foreground container, a killed
CLI leaves nothing that rm -f cannot clean, volumes follow Docker's rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration.containers.conftest import _leftovers
from tests.support.berthcli import BerthCLI
from tests.support.tarballs import rootfs_tar

pytestmark = pytest.mark.root


def _wait_for(cli: BerthCLI, name: str, status: str, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        result = cli.run("inspect", "-f", "{{.State.Status}}", name)
        if result.stdout.strip() == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {status}")


def test_signals_to_the_cli_reach_a_foreground_container(cli: BerthCLI, busybox: str) -> None:
    process = cli.popen("run", "--name", "trapper", "busybox", "sh", "-c",
                        "trap 'echo got-TERM; exit 0' TERM; while :; do sleep 0.1; done",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(cli, "trapper", "running")
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"got-TERM" in out
    assert json.loads(cli("inspect", "trapper"))[0]["State"]["ExitCode"] == 0


def test_kill_9_of_the_cli_leaves_a_container_rm_f_cleans(cli: BerthCLI, busybox: str,
                                                          store_root: str) -> None:
    process = cli.popen("run", "--name", "orphan", "busybox", "sleep", "300",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(cli, "orphan", "running")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert "orphan" in cli("ps", "-a", "--format", "{{.Names}}")  # never invisible
    cli("rm", "-f", "orphan")
    assert cli("ps", "-aq") == ""
    assert _leftovers(store_root) == []


def test_a_process_gone_without_a_word_is_recorded_as_exited(cli: BerthCLI,
                                                             busybox: str) -> None:
    process = cli.popen("run", "--name", "lost", "busybox", "sleep", "300",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(cli, "lost", "running")
    pid = int(cli("inspect", "-f", "{{.State.Pid}}", "lost"))
    process.send_signal(signal.SIGKILL)
    process.wait()
    os.kill(pid, signal.SIGKILL)  # as a reboot would: the process is gone, no one saw it
    time.sleep(0.2)
    state = json.loads(cli("inspect", "lost"))[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255
    assert "exit code is unknown" in state["Error"]


def test_image_volumes_get_anonymous_volumes_removed_with_rm_v(cli: BerthCLI,
                                                               busybox: str) -> None:
    cli("import", "--change", "VOLUME /data", "--change", 'CMD ["sh"]', "-", "withvol:1",
        input=rootfs_tar({"data/seed.txt": "from the image\n"}, dirs=("data",)))
    # a one-layer image without a shell: run busybox's sh through a bind of it
    cli("create", "--name", "v1", "withvol:1")
    mounts = json.loads(cli("inspect", "v1"))[0]["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Destination"] == "/data"
    assert mounts[0]["Type"] == "volume"
    volume = mounts[0]["Name"]
    assert volume in cli("volume", "ls", "-q").split()
    cli("rm", "-v", "v1")
    assert volume not in cli("volume", "ls", "-q").split()


def test_volumes_from_and_prune(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--name", "source", "-v", "/shared", "busybox", "sh", "-c",
        "echo written-by-source > /shared/f")
    out = cli("run", "--rm", "--volumes-from", "source", "busybox", "cat", "/shared/f")
    assert out == "written-by-source\n"
    ro = cli.run("run", "--rm", "--volumes-from", "source:ro", "busybox", "touch", "/shared/x")
    assert ro.returncode != 0
    cli("volume", "create", "named")
    anonymous = json.loads(cli("inspect", "source"))[0]["Mounts"][0]["Name"]
    cli("rm", "source")  # without -v the anonymous volume stays, unused
    pruned = cli("volume", "prune", "-f")
    assert anonymous in pruned and "named" not in pruned
    assert cli("volume", "ls", "-q").split() == ["named"]
    cli("volume", "prune", "-a", "-f")  # named ones too, as Docker 23 and later
    assert cli("volume", "ls", "-q") == ""
