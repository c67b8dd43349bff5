"""images, inspect, history, tag, rmi and prune behave as the docker CLI does."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.support.berthcli import BerthCLI
from tests.support.tarballs import rootfs_tar

pytestmark = pytest.mark.root


def _import(cli: BerthCLI, name: str | None, content: str, *changes: str) -> str:
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    args.append("-")
    if name:
        args.append(name)
    return cli(*args, input=rootfs_tar({"f": content})).strip()


def test_images_table_quiet_digests_and_format(cli: BerthCLI, busybox: str) -> None:
    cli("tag", "busybox", "localhost:5000/team/bb:v1")
    lines = cli("images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    short = busybox.split(":")[1][:12]
    assert ("busybox", "latest", short) in rows
    assert ("localhost:5000/team/bb", "v1", short) in rows
    assert cli("images", "-q").split() == [short, short]
    assert cli("images", "-q", "--no-trunc").split()[0] == busybox
    assert "DIGEST" in cli("images", "--digests").splitlines()[0]
    assert cli("images", "--format", "{{.Repository}}:{{.Tag}}", "busybox") == "busybox:latest\n"
    row = json.loads(cli("images", "--format", "{{json .}}", "busybox"))
    assert row["ID"] == short and row["Repository"] == "busybox" and row["Tag"] == "latest"
    table = cli("images", "--format", "table {{.ID}}\t{{.Repository}}").splitlines()
    assert table[0].split() == ["IMAGE", "ID", "REPOSITORY"]


def test_images_filters(cli: BerthCLI, busybox: str) -> None:
    labelled = _import(cli, "lab:1", "x", "LABEL tier=web")
    dangling = _import(cli, None, "y")
    assert cli("images", "-q", "--no-trunc", "--filter", "dangling=true").split() == [dangling]
    assert cli("images", "-q", "--no-trunc", "-f", "label=tier=web").split() == [labelled]
    assert cli("images", "-q", "--no-trunc", "-f", "label=tier=db").split() == []
    assert cli("images", "-q", "--no-trunc", "-f", "reference=busy*").split() == [busybox]
    assert cli("images", "-q", "--no-trunc", "-f", "reference=lab:*").split() == [labelled]
    bad = cli.run("images", "-f", "color=red")
    assert bad.returncode == 1 and "invalid filter 'color'" in bad.stderr


def test_inspect_format_and_errors(cli: BerthCLI, busybox: str) -> None:
    assert cli("image", "inspect", "-f", "{{.Id}} {{index .RepoTags 0}}", "busybox") == \
        f"{busybox} busybox:latest\n"
    both = json.loads(cli("image", "inspect", "busybox", busybox[7:19]))
    assert [o["Id"] for o in both] == [busybox, busybox]
    missing = cli.run("image", "inspect", "busybox", "nope")
    assert missing.returncode == 1
    assert "No such image: nope" in missing.stderr
    assert json.loads(missing.stdout)[0]["Id"] == busybox


def test_history_rows(cli: BerthCLI, busybox: str) -> None:
    lines = cli("history", "busybox").splitlines()
    assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
    assert lines[1].startswith(busybox[7:19])
    assert cli("history", "-q", "--no-trunc", "busybox").split()[0] == busybox


def test_rmi_untags_then_deletes_and_reports_like_docker(cli: BerthCLI, busybox: str) -> None:
    cli("tag", "busybox", "other:1")
    assert cli("rmi", "other:1") == "Untagged: other:1\n"
    cli("tag", "busybox", "other:1")
    conflict = cli.run("rmi", busybox[7:19])
    assert conflict.returncode == 1
    assert "image is referenced in multiple repositories" in conflict.stderr
    out = cli("image", "rm", "-f", busybox[7:19]).splitlines()
    assert "Untagged: busybox:latest" in out and "Untagged: other:1" in out
    assert f"Deleted: {busybox}" in out
    assert cli("images", "-q") == ""
    missing = cli.run("rmi", "busybox")
    assert missing.returncode == 1 and "No such image: busybox:latest" in missing.stderr


def _add_container(store_root: str, image_id: str, status: str) -> None:
    """A container record using the image (containers are made by `run` in a later issue)."""
    db = sqlite3.connect(f"{store_root}/berth.db")
    db.execute(
        "INSERT INTO containers (id, name, image_id, status, created) VALUES (?, ?, ?, ?, ?)",
        ("c" * 64, "user", image_id, status, time.time()),
    )
    db.commit()
    db.close()


def test_rmi_refuses_while_a_container_uses_the_image(cli: BerthCLI, busybox: str,
                                                      store_root: str) -> None:
    _add_container(store_root, busybox, "exited")
    refused = cli.run("rmi", "busybox")
    assert refused.returncode == 1
    assert "container cccccccccccc is using its referenced image" in refused.stderr
    assert cli("images", "-q")  # still there
    assert f"Deleted: {busybox}" in cli("rmi", "-f", "busybox")


def test_rmi_force_never_removes_an_image_of_a_running_container(
    cli: BerthCLI, busybox: str, store_root: str
) -> None:
    _add_container(store_root, busybox, "running")
    refused = cli.run("rmi", "-f", busybox)
    assert refused.returncode == 1
    assert "cannot be forced" in refused.stderr and "running container" in refused.stderr
    assert cli("images", "-q", "--no-trunc").split() == [busybox]


def test_prune_dangling_then_all(cli: BerthCLI, busybox: str) -> None:
    dangling = _import(cli, None, "d")
    kept = _import(cli, "kept:1", "k")
    out = cli("image", "prune", "-f")
    assert f"deleted: {dangling}" in out and "Total reclaimed space:" in out
    remaining = set(cli("images", "-q", "--no-trunc").split())
    assert remaining == {busybox, kept}
    cli("image", "prune", "-a", "-f")
    assert cli("images", "-q") == ""


def test_prune_asks_for_confirmation(cli: BerthCLI, busybox: str) -> None:
    _import(cli, None, "d")
    result = cli.run("image", "prune", input=b"n\n")
    assert result.returncode == 0 and "Are you sure" in result.stdout
    assert len(cli("images", "-q").split()) == 2


def test_usage_errors_exit_125(cli: BerthCLI) -> None:
    result = cli.run("images", "--bogus")
    assert result.returncode == 125
    assert result.stderr.startswith("unknown flag: --bogus")
    assert "Run 'berth images --help' for more information" in result.stderr
    missing = cli.run("rmi")  # docker exits 1 for a wrong number of arguments
    assert missing.returncode == 1
    assert "'berth rmi' requires at least 1 argument" in missing.stderr
