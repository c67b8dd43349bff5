"""``berth top`` and ``berth stats`` against running containers, as docker prints them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root

TOP_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


def _columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_top_shows_the_containers_processes_only(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "topper", "busybox", "sleep", "1000")
    cli("exec", "-d", "topper", "sleep", "999")
    deadline = time.monotonic() + 10
    while True:
        lines = cli("top", "topper").splitlines()
        if len(lines) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _columns(lines[0]) == TOP_TITLES
    assert lines[0].startswith("UID" + " " * 17 + "PID")  # docker's columns: 20 wide at least
    commands = sorted(line.split(None, 7)[7] for line in lines[1:])
    assert commands == ["sleep 1000", "sleep 999"]
    pid = int(cli("inspect", "-f", "{{.State.Pid}}", "topper"))
    assert str(pid) in [line.split()[1] for line in lines[1:]]
    custom = cli("container", "top", "topper", "-o", "pid,comm").splitlines()
    assert _columns(custom[0]) == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in custom[1:]) == ["sleep", "sleep"]
    bsd = cli("top", "topper", "aux").splitlines()
    assert _columns(bsd[0])[:3] == ["USER", "PID", "%CPU"] and len(bsd) == 3


def test_top_errors(cli: BerthCLI, busybox: str) -> None:
    cli("create", "--name", "idle", "busybox", "true")
    stopped = cli.run("top", "idle")
    assert stopped.returncode == 1 and "is not running" in stopped.stderr
    cli("run", "-d", "--name", "topper2", "busybox", "sleep", "1000")
    no_pid = cli.run("top", "topper2", "-o", "comm")
    assert no_pid.returncode == 1 and "Couldn't find PID field" in no_pid.stderr
    missing = cli.run("top", "nosuch")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr


def test_stats_no_stream_and_format(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c", "while true; do :; done")
    cli("run", "-d", "--name", "calm", "busybox", "sleep", "1000")
    cli("create", "--name", "stopped", "busybox", "true")
    table = cli("stats", "--no-stream").splitlines()
    assert _columns(table[0]) == [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    rows = {_columns(line)[1]: _columns(line) for line in table[1:]}
    assert set(rows) == {"busy", "calm"}  # running ones only
    busy = rows["busy"]
    assert float(busy[2].rstrip("%")) > 20.0  # a spinning shell: CPU % from two samples
    assert busy[3].endswith(" / 64MiB") and busy[7] == "1"
    assert busy[5] == "0B / 0B" or "/" in busy[5]
    calm = rows["calm"]
    assert float(calm[2].rstrip("%")) < 5.0
    host_total = calm[3].split(" / ")[1]
    assert host_total.endswith("GiB") or host_total.endswith("MiB")  # the host's memory
    every = cli("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}}")
    assert "stopped 0.00% 0" in every.splitlines()
    as_json = [
        json.loads(line)
        for line in cli("stats", "--no-stream", "--format", "json", "busy").splitlines()
    ]
    assert as_json[0]["Name"] == "busy" and as_json[0]["Container"] == "busy"
    assert set(as_json[0]) >= {"ID", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"}
    missing = cli.run("stats", "--no-stream", "nosuch")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr


def test_stats_streams_until_interrupted(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "streamed", "busybox", "sleep", "1000")
    process = cli.popen("stats", "streamed", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        headers = 0
        deadline = time.monotonic() + 20
        while headers < 2 and time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            headers += line.startswith("CONTAINER ID")
        assert headers == 2  # a second frame came without being asked
    finally:
        process.terminate()
        process.wait(10)


def test_python_api_top_and_stats(store_root: str, busybox: str) -> None:
    with Engine(store_root) as engine:
        container = engine.containers.run("busybox", ["sleep", "1000"], detach=True)
        assert not isinstance(container, bytes)
        try:
            top = container.top()
            assert top["Titles"][:2] == ["UID", "PID"] and len(top["Processes"]) == 1
            stats = container.stats(stream=False)
            assert stats["name"] == "/" + container.name
            assert stats["precpu_stats"]["system_cpu_usage"] > 0
            assert stats["memory_stats"]["usage"] > 0 and stats["pids_stats"]["current"] == 1
        finally:
            container.remove(force=True)


@pytest.mark.peers
@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc")
def test_top_and_stats_through_runc(cli: BerthCLI, busybox: str) -> None:
    cli(
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "viarunc",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    )
    top = cli("top", "viarunc").splitlines()
    assert len(top) == 2 and top[1].endswith("sh -c while true; do :; done")
    row = _columns(cli("stats", "--no-stream", "viarunc").splitlines()[1])
    assert float(row[2].rstrip("%")) > 20.0
    assert row[3].endswith(" / 64MiB") and row[7] == "1"


def test_stats_redraws_on_a_terminal_until_ctrl_c(cli: BerthCLI, busybox: str) -> None:
    from tests.support.berthcli import BERTH
    from tests.support.ptydriver import Terminal

    cli("run", "-d", "--name", "watched", "busybox", "sleep", "1000")
    terminal = Terminal([BERTH, "stats"], cli.env())
    deadline = time.monotonic() + 20
    while terminal.output.count(b"\x1b[2J\x1b[H") < 2 and time.monotonic() < deadline:
        terminal.read_for(0.2)
    assert terminal.output.count(b"\x1b[2J\x1b[H") >= 2  # the screen is redrawn
    assert b"watched" in terminal.output
    terminal.send(b"\x03")
    assert terminal.wait() == 130
    refused = Terminal([BERTH, "export", "watched"], cli.env())
    assert refused.wait() == 1
    assert b"cowardly refusing to save to a terminal" in refused.output
