"""``berth diff``, ``berth commit`` and ``berth export``: a container's changes as docker
reports them, as a new image, and as a flat tar."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root

CHANGES = "echo hi > /tmp/x && rm /etc/group && mkdir /newdir && touch /newdir/f"


def test_diff_lists_changes_without_the_init_stubs(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--name", "changed", "busybox", "sh", "-c", CHANGES)
    assert cli("diff", "changed").splitlines() == [
        "C /etc",
        "D /etc/group",
        "A /newdir",
        "A /newdir/f",
        "C /tmp",
        "A /tmp/x",
    ]
    cli("run", "--name", "pristine", "busybox", "true")
    assert cli("container", "diff", "pristine") == ""  # /etc/hosts & co are not changes
    assert cli.run("diff", "nosuch").returncode == 1


def test_commit_makes_an_image_of_the_changes(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--name", "changed", "-e", "FROM_RUN=1", "busybox", "sh", "-c", CHANGES)
    image_id = cli(
        "commit",
        "-m",
        "my message",
        "-a",
        "Jane <jane@example.com>",
        "-c",
        "ENV ADDED=yes",
        "-c",
        'CMD ["cat", "/tmp/x"]',
        "changed",
        "committed:v1",
    ).strip()
    assert image_id.startswith("sha256:")
    assert cli("images", "-q", "committed:v1").strip() == image_id[7:19]
    assert cli("run", "--rm", "committed:v1") == "hi\n"
    listing = cli(
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "ls /newdir; ls /etc/group 2>&1; echo $FROM_RUN $ADDED; ls /etc/hosts",
    )
    assert listing.splitlines()[:3] == ["f", "ls: /etc/group: No such file or directory", "1 yes"]
    inspect = json.loads(cli("image", "inspect", "committed:v1"))[0]
    assert inspect["Parent"] == busybox and inspect["Author"] == "Jane <jane@example.com>"
    assert inspect["Comment"] == "my message"
    base_layers = json.loads(cli("image", "inspect", "busybox"))[0]["RootFS"]["Layers"]
    assert inspect["RootFS"]["Layers"][:-1] == base_layers
    assert len(inspect["RootFS"]["Layers"]) == len(base_layers) + 1
    history = cli(
        "history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}", "committed:v1"
    )
    assert history.splitlines()[0] == f"my message|sh -c {CHANGES}"
    events = cli(
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=commit",
        "--format",
        "{{.Actor.Attributes.imageRef}}",
    )
    assert events == "committed:v1\n"


def test_commit_of_an_unchanged_container_adds_no_layer(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--name", "pristine", "busybox", "true")
    cli("commit", "pristine", "same")
    layers = json.loads(cli("image", "inspect", "same"))[0]["RootFS"]["Layers"]
    assert layers == json.loads(cli("image", "inspect", "busybox"))[0]["RootFS"]["Layers"]
    dangling = cli("commit", "pristine").strip()
    assert dangling in cli("images", "-a", "--no-trunc", "-q")


def test_commit_pauses_a_running_container(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo v > /tmp/v; sleep 1000")
    cli("commit", "live", "live:paused")
    cli("commit", "--pause=false", "live", "live:unpaused")
    assert cli("inspect", "-f", "{{.State.Status}}", "live") == "running\n"
    actions = cli(
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "container=live",
        "--format",
        "{{.Action}}",
    ).split()
    assert actions.count("pause") == 1 and actions.count("unpause") == 1
    assert cli("run", "--rm", "live:paused", "cat", "/tmp/v") == "v\n"
    bad = cli.run("commit", "-c", "BOGUS x", "live")
    assert bad.returncode == 1 and "not a valid change command" in bad.stderr


def test_export_writes_the_flat_filesystem(cli: BerthCLI, busybox: str, tmp_path: Path) -> None:
    cli("run", "--name", "changed", "busybox", "sh", "-c", CHANGES)
    out = tmp_path / "fs.tar"
    cli("export", "-o", str(out), "changed")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        member = tar.extractfile("tmp/x")
        assert member is not None and member.read() == b"hi\n"
    assert {"bin/busybox", "newdir/f", "etc/passwd"} <= names
    assert "etc/group" not in names
    assert not any(name.startswith(".wh.") or "/.wh." in name for name in names)
    piped = cli.run("export", "changed")
    assert piped.returncode == 0
    cli("export", "-o", "/dev/null", "changed")  # a device is written to, never replaced
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    cli("run", "-d", "--name", "live", "busybox", "sleep", "1000")
    with tarfile.open(fileobj=io.BytesIO(_export_bytes(cli, "live"))) as tar:
        assert "bin/busybox" in tar.getnames()


def _export_bytes(cli: BerthCLI, name: str) -> bytes:
    import subprocess

    from tests.support.berthcli import BERTH

    return subprocess.run(
        [BERTH, "export", name], capture_output=True, env=cli.env(), check=True
    ).stdout


def test_python_api_diff_commit_export(store_root: str, busybox: str) -> None:
    with Engine(store_root) as engine:
        container = engine.containers.create("busybox", ["sh", "-c", "echo a > /tmp/a"])
        engine.containers.run_foreground(container, stdio=(0, 1, 2), log=False)
        container.reload()
        assert {"Path": "/tmp/a", "Kind": 1} in container.diff()
        image = container.commit("api", "one", message="from python", changes=["ENV K=v"])
        assert "api:one" in image.tags
        assert "K=v" in (image.attrs["Config"]["Env"] or [])
        data = b"".join(container.export())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert "tmp/a" in tar.getnames()
        container.remove()
