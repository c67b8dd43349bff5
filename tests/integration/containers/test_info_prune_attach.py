"""``berth info``, ``berth system prune`` and ``berth attach``."""

from __future__ import annotations

import json
import os
import platform

import pytest

from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root


def test_info_layout_and_template(cli: BerthCLI, busybox: str) -> None:
    cli("create", "--name", "c1", "busybox", "true")
    cli("run", "-d", "--name", "c2", "busybox", "sleep", "1000")
    result = cli.run("info")
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("Client:\n Version:")
    for line in (
        " Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 1\n",
        " Storage Driver: overlay\n",
        " Logging Driver: json-file\n",
        " Cgroup Driver: cgroupfs\n",
        " Default Runtime: berth\n",
        f" Kernel Version: {os.uname().release}\n",
        " OSType: linux\n",
        f" Architecture: {platform.machine()}\n",
        f" Berth Root Dir: {cli.root}\n",
        "  Network: bridge host none\n",
        "  Volume: local\n",
    ):
        assert line in out, line
    version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    assert f" Cgroup Version: {version}\n" in out
    if version == "1":
        assert "WARNING: This host runs cgroup v1" in result.stderr
    runtimes = out.split(" Runtimes: ")[1].split("\n")[0].split()
    assert runtimes[0] == "berth" and ("runc" in runtimes) == bool(_which("runc"))
    assert cli("info", "-f", "{{.ContainersRunning}} {{.Driver}} {{.OSType}}") == (
        "1 overlay linux\n"
    )
    data = json.loads(cli("system", "info", "--format", "json"))
    assert data["Containers"] == 2 and data["DockerRootDir"] == cli.root
    assert data["ClientInfo"]["Context"] == "default"
    assert isinstance(data["Warnings"], list) and data["NCPU"] == os.cpu_count()


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def test_system_prune(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--name", "stopped", "-v", "/anon", "busybox", "true")
    cli("run", "-d", "--name", "running", "busybox", "sleep", "1000")
    cli("network", "create", "unused-net")
    cli("run", "--name", "changed", "busybox", "sh", "-c", "echo x > /x")
    dangling = cli("commit", "changed").strip()
    cli("commit", "-m", "another", "changed", "spare:1")
    declined = cli.run("system", "prune", input=b"n\n")
    assert declined.returncode == 0 and "WARNING! This will remove:" in declined.stdout
    assert "stopped" in cli("ps", "-a", "--format", "{{.Names}}")
    out = cli("system", "prune", "-f")
    assert out.startswith("Deleted Containers:\n")
    assert "Deleted Networks:\nunused-net\n\n" in out
    assert f"Deleted Images:\ndeleted: {dangling}\n" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert cli("ps", "-a", "--format", "{{.Names}}") == "running\n"
    assert cli("volume", "ls", "-q") != ""  # volumes only with --volumes
    out = cli("system", "prune", "-f", "--volumes", "-a")
    assert "Deleted Volumes:\n" in out and "untagged: spare:1\n" in out
    assert cli("volume", "ls", "-q") == ""
    assert cli("images", "--format", "{{.Repository}}") == "busybox\n"  # "running" uses it
    bad = cli.run("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert bad.returncode == 1 and 'The "until" filter is not supported' in bad.stderr


def test_attach_streams_output_and_returns_the_exit_code(cli: BerthCLI, busybox: str) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo out; echo err >&2; exit 3",
    )
    result = cli.run("attach", "talker", timeout=30)
    assert result.returncode == 3
    assert "out" in result.stdout and "err" in result.stderr
    stopped = cli.run("attach", "talker")
    assert stopped.returncode == 1
    assert "You cannot attach to a stopped container, start it first" in stopped.stderr
    cli("run", "-di", "--name", "reader", "busybox", "sh", "-c", "read x; echo got $x; exit 4")
    piped = cli.run("attach", "reader", input=b"hello\n", timeout=30)
    assert piped.returncode == 4 and piped.stdout == "got hello\n"
    cli("run", "-d", "--name", "paused", "busybox", "sleep", "1000")
    cli("pause", "paused")
    refused = cli.run("attach", "paused")
    assert refused.returncode == 1 and "unpause it first" in refused.stderr
    cli("unpause", "paused")
