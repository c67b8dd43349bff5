"""save and load: both archive formats, round trips, and real peers on both sides."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.berthcli import BerthCLI
from tests.support.peers import SKOPEO, dockerd, podman, require
from tests.support.tarballs import read_members

pytestmark = pytest.mark.root


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_round_trip_keeps_the_image_id_and_tags(cli: BerthCLI, busybox: str, tmp_path: object,
                                                fmt: str) -> None:
    cli("tag", "busybox", "mine/bb:2")
    path = os.path.join(str(tmp_path), "out.tar")
    cli("save", "--format", fmt, "-o", path, "busybox", "mine/bb:2")
    cli("rmi", "-f", busybox)
    out = cli("load", "-i", path)
    assert "Loaded image: busybox:latest" in out and "Loaded image: mine/bb:2" in out
    assert cli("image", "inspect", "-f", "{{.Id}}", "mine/bb:2").strip() == busybox


def test_docker_archive_has_both_manifest_json_and_an_oci_layout(
    cli: BerthCLI, busybox: str, tmp_path: object
) -> None:
    path = os.path.join(str(tmp_path), "out.tar")
    cli("save", "-o", path, "busybox")
    members = read_members(path)
    manifest = json.loads(members["manifest.json"])
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert manifest[0]["Config"] == f"blobs/sha256/{busybox[7:]}"
    index = json.loads(members["index.json"])
    annotations = index["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}


def test_save_to_stdout_and_load_from_stdin(cli: BerthCLI, busybox: str) -> None:
    archive = subprocess.run([*_berth(cli), "save", "busybox"], capture_output=True,
                             env=cli.env(), check=True).stdout
    cli("rmi", "busybox")
    assert cli("load", input=archive) == "Loaded image: busybox:latest\n"


def test_save_name_without_tag_takes_every_tag_of_that_repository(
    cli: BerthCLI, busybox: str, tmp_path: object
) -> None:
    cli("tag", "busybox", "busybox:other")
    path = os.path.join(str(tmp_path), "out.tar")
    cli("save", "-o", path, "busybox")
    tags = json.loads(read_members(path)["manifest.json"])[0]["RepoTags"]
    assert sorted(tags) == ["busybox:latest", "busybox:other"]


def test_load_rejects_what_is_not_an_image_archive(cli: BerthCLI, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "junk.tar")
    with open(path, "wb") as f:
        f.write(os.urandom(4096))
    result = cli.run("load", "-i", path)
    assert result.returncode == 1 and "not a valid tar archive" in result.stderr
    result = cli.run("load", "-i", "/nonexistent.tar")
    assert result.returncode == 1 and "no such file" in result.stderr


@pytest.mark.peers
def test_podman_loads_what_berth_saved_and_runs_it(cli: BerthCLI, busybox: str,
                                                   tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "bb.tar")
    cli("save", "-o", path, "busybox")
    with podman() as p:
        out = p.run("load", "-i", path).stdout.decode()
        assert "busybox:latest" in out
        ids = p.run("images", "--no-trunc", "--format", "{{.ID}}").stdout.decode().split()
        assert ids == [busybox[7:]] or ids == [busybox]
        echoed = p.run("run", "--rm", "--network", "none", "busybox", "echo", "from-podman",
                       check=False)
        assert echoed.stdout.decode().strip() == "from-podman", echoed.stderr.decode()


@pytest.mark.peers
def test_skopeo_reads_berths_oci_archive(cli: BerthCLI, busybox: str, tmp_path: object) -> None:
    require(SKOPEO, "skopeo")
    path = os.path.join(str(tmp_path), "bb-oci.tar")
    cli("save", "--format", "oci-archive", "-o", path, "busybox")
    out = subprocess.run([SKOPEO, "inspect", "--config", f"oci-archive:{path}"],
                         capture_output=True, check=True).stdout
    assert json.loads(out)["config"]["Cmd"] == ["sh"]
    layout = os.path.join(str(tmp_path), "layout")
    subprocess.run([SKOPEO, "copy", f"oci-archive:{path}", f"oci:{layout}:bb"],
                   capture_output=True, check=True)
    index = json.load(open(os.path.join(layout, "index.json")))
    assert index["manifests"][0]["digest"].startswith("sha256:")


@pytest.mark.peers
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_berth_loads_what_podman_saved(cli: BerthCLI, busybox_archive: str, tmp_path: object,
                                       fmt: str) -> None:
    path = os.path.join(str(tmp_path), "from-podman.tar")
    with podman() as p:
        p.run("load", "-i", busybox_archive)
        p.run("tag", "busybox", "localhost/podman-made:7")
        p.run("save", "--format", fmt, "-o", path, "localhost/podman-made:7")
    out = cli("load", "-i", path)
    assert out == "Loaded image: localhost/podman-made:7\n"
    assert cli("image", "inspect", "-f", "{{.Config.Cmd}}", "localhost/podman-made:7") == "[sh]\n"


@pytest.mark.peers
def test_docker_and_berth_exchange_images(cli: BerthCLI, busybox: str, tmp_path: object) -> None:
    ours = os.path.join(str(tmp_path), "ours.tar")
    theirs = os.path.join(str(tmp_path), "theirs.tar")
    cli("save", "-o", ours, "busybox")
    with dockerd() as docker:
        assert "busybox:latest" in docker.docker("load", "-i", ours).stdout.decode()
        image_id = docker.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout
        assert image_id.decode().strip() == busybox
        docker.docker("tag", "busybox", "from-docker:1")
        docker.docker("save", "-o", theirs, "from-docker:1")
    assert cli("load", "-i", theirs) == "Loaded image: from-docker:1\n"
    assert cli("image", "inspect", "-f", "{{.Id}}", "from-docker:1").strip() == busybox


def _berth(cli: BerthCLI) -> list[str]:
    from tests.support.berthcli import BERTH

    return [BERTH]
