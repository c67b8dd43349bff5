"""``berth events``: what the engine did, recorded where it happened, replayed and followed."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root


def _past(cli: BerthCLI, *args: str) -> list[str]:
    return cli("events", "--since", "5m", "--until", "0s", *args).splitlines()


def test_operations_are_recorded_as_docker_reports_them(cli: BerthCLI, busybox: str) -> None:
    assert (
        cli.run(
            "run", "--rm", "--name", "once", "-l", "tier=web", "busybox", "sh", "-c", "exit 3"
        ).returncode
        == 3
    )
    cli("tag", "busybox", "mine:1")
    cli("rmi", "mine:1")
    cli("volume", "create", "vol1")
    cli("volume", "rm", "vol1")
    cli("network", "create", "net1")
    cli("network", "rm", "net1")
    cli("run", "-d", "--name", "live", "busybox", "sleep", "1000")
    cli("exec", "live", "true")
    cli("pause", "live")
    cli("unpause", "live")
    cli("rename", "live", "alive")
    cli("kill", "alive")
    cli("wait", "alive")
    cli("start", "alive")
    cli("stop", "-t", "0", "alive")
    lines = _past(cli, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    expected = [
        "container create once",
        "container start once",
        "container die once",
        "container destroy once",
        "image tag mine:1",
        "image untag mine:1",
        "volume create <no value>",
        "volume destroy <no value>",
        "network create net1",
        "network destroy net1",
        "container create live",
        "container start live",
        "container exec_create: true live",
        "container exec_start: true live",
        "container pause live",
        "container unpause live",
        "container rename alive",
        "container kill alive",
        "container die alive",
        "container start alive",
        "container die alive",
        "container stop alive",
    ]
    assert [line for line in lines if line in expected] == expected
    text = [line for line in _past(cli, "--filter", "container=once") if " die " in line]
    assert len(text) == 1
    stamp, rest = text[0].split(" ", 1)
    assert len(stamp.split(".")[1].rstrip("Z").split("+")[0].split("-")[0]) == 9
    assert rest.startswith("container die ")
    assert rest.endswith("(exitCode=3, image=busybox, name=once, tier=web)")
    assert len(_past(cli, "--filter", "event=die", "--filter", "label=tier=web")) == 1
    assert len(_past(cli, "--filter", "type=network")) == 2
    assert _past(cli, "--filter", "image=mine:1", "--format", "{{.Action}}") == ["tag", "untag"]
    as_json = [
        json.loads(line) for line in _past(cli, "--filter", "type=volume", "--format", "json")
    ]
    assert [(m["Type"], m["Action"], m["Actor"]["ID"]) for m in as_json] == [
        ("volume", "create", "vol1"),
        ("volume", "destroy", "vol1"),
    ]


def test_events_follow_new_ones_until_interrupted(cli: BerthCLI, busybox: str) -> None:
    process = cli.popen(
        "events", "--filter", "type=container", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(1.0)  # only events from now on are reported without --since
        cli("run", "--rm", "--name", "followed", "busybox", "true")
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 20
        while "destroy" not in seen and time.monotonic() < deadline:
            seen.append(process.stdout.readline().decode().split()[2])
        assert seen == ["create", "start", "die", "destroy"]
    finally:
        process.terminate()
        process.wait(10)


def test_until_in_the_future_stops_then(cli: BerthCLI, busybox: str) -> None:
    started = time.monotonic()
    result = cli.run("events", "--until", "2s", "--since", "2s")  # "2s" means 2 s ago
    assert result.returncode == 0 and time.monotonic() - started < 10
    bad = cli.run("events", "--filter", "colour=red")
    assert bad.returncode == 1 and "invalid filter 'colour'" in bad.stderr


def test_python_api_events_and_info(store_root: str, busybox: str) -> None:
    with Engine(store_root) as engine:
        since = time.time()
        engine.volumes.create("api-vol")
        messages = list(engine.events(since=since, until=time.time() + 0.5, decode=True))
        assert [(m["Type"], m["Action"]) for m in messages] == [("volume", "create")]
        raw = list(engine.events(since=since, until=time.time(), filters={"type": ["volume"]}))
        assert json.loads(raw[0])["Actor"]["ID"] == "api-vol"
        assert engine.info()["Images"] == 1


def test_image_transfers_are_recorded(cli: BerthCLI, busybox: str, tmp_path: Path) -> None:
    from berth.registry.server import ServerConfig
    from tests.support.registry_server import ThreadServer

    archive = str(tmp_path / "busybox.tar")
    cli("save", "-o", archive, "busybox")
    cli("load", "-i", archive)
    with ThreadServer(ServerConfig(storage=str(tmp_path / "berth-registry"))) as server:
        remote = f"{server.host}/team/busybox:1"
        cli("tag", "busybox", remote)
        cli("push", "-q", remote)
        cli("rmi", remote)
        cli("pull", "-q", remote)
    lines = _past(cli, "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}}")
    assert f"save {busybox}" in lines and f"load {busybox}" in lines
    assert f"push {remote}" in lines and f"pull {remote}" in lines
    assert lines.index(f"push {remote}") < lines.index(f"pull {remote}")
