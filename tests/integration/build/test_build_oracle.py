"""The same Dockerfile and context built by berth and by BuildKit (and buildah): same result.

The corpus is ``tests/fixtures/dockerfiles/oracle-*/Dockerfile``; each case's context is made
here (symlinks, hard links, modes, empty directories and ignore files cannot all live in git).
BuildKit is a private dockerd 20.10 (``DOCKER_BUILDKIT=1``, its built-in frontend: no
``# syntax`` line, since the frontend image cannot be pulled here); buildah runs with
``bud --layers`` on its own vfs storage. Both start from berth's own busybox, loaded into them.

Compared: the flattened filesystem of the saved images (path, type, permission bits, owner,
content digest or link target; not times) and the config's Env, Cmd, Entrypoint, WorkingDir,
User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild and Shell.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.integration.build.conftest import BuildCLI
from tests.integration.build.oracle import config_subset, diff_trees, flatten_archive
from tests.support import peers

pytestmark = [pytest.mark.root, pytest.mark.peers]

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dockerfiles")
BUILDAH = "/usr/bin/buildah"


def _write(root: str, name: str, data: str | bytes, mode: int = 0o644) -> str:
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def _copy_semantics(root: str) -> None:
    _write(root, "file.txt", "file\n")
    _write(root, "other.txt", "other\n", 0o600)
    _write(root, "dir/a", "a\n", 0o755)
    _write(root, "dir/sub1/b", "b\n")
    _write(root, "dir/sub2/c", "c\n", 0o640)
    os.chmod(os.path.join(root, "dir/sub1"), 0o700)
    os.makedirs(os.path.join(root, "dir/empty"))
    os.chmod(os.path.join(root, "dir/empty"), 0o750)
    os.symlink("file.txt", os.path.join(root, "link-to-file"))
    _write(root, "links/target", "t\n")
    os.symlink("target", os.path.join(root, "links/relative"))
    os.symlink("/etc/passwd", os.path.join(root, "links/absolute"))
    os.symlink("../dir", os.path.join(root, "links/to-dir"))
    os.symlink("missing", os.path.join(root, "links/dangling"))
    _write(root, "hard/one", "same inode\n")
    os.link(os.path.join(root, "hard/one"), os.path.join(root, "hard/two"))
    _write(root, "ignored.log", "noise\n")
    _write(root, "logs/keep.log", "kept by an exception\n")
    _write(root, "logs/drop.log", "dropped\n")
    _write(root, ".dockerignore", "*.log\nlogs/*.log\n!logs/keep.log\n")


def _owners_workdir(root: str) -> None:
    _write(root, "file.txt", "owned\n")
    _write(root, "dir/inner", "inner\n", 0o600)
    os.makedirs(os.path.join(root, "dir/subdir"))


def _run_effects(root: str) -> None:
    del root


def _add_metadata(root: str) -> None:
    _write(root, "file.txt", "added\n")
    _write(root, "dir/x", "x\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("pkg", "dir"), ("pkg/bin", "dir")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755 if kind == "dir" else 0o644
            info.uid, info.gid = 501, 20
            tar.addfile(info)
        data = b"#!/bin/sh\necho tool\n"
        info = tarfile.TarInfo("pkg/bin/tool")
        info.size, info.mode, info.uid, info.gid = len(data), 0o755, 501, 20
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("pkg/bin/alias")
        info.type, info.linkname = tarfile.SYMTYPE, "tool"
        tar.addfile(info)
        info = tarfile.TarInfo("pkg/bin/hard")  # as tar writes it: the inode's metadata
        info.type, info.linkname = tarfile.LNKTYPE, "pkg/bin/tool"
        info.mode, info.uid, info.gid = 0o755, 501, 20
        tar.addfile(info)
    _write(root, "archive.tar.gz", gzip.compress(buffer.getvalue()))


CASES: dict[str, Callable[[str], None]] = {
    "oracle-copy-semantics": _copy_semantics,
    "oracle-owners-workdir": _owners_workdir,
    "oracle-run-effects": _run_effects,
    "oracle-add-metadata": _add_metadata,
}
BUILDAH_CASES = ("oracle-copy-semantics", "oracle-run-effects")


def _context(case: str) -> str:
    root = tempfile.mkdtemp(prefix=f"berth-{case}-", dir="/var/tmp")
    os.chmod(root, 0o755)
    shutil.copy(os.path.join(FIXTURES, case, "Dockerfile"), os.path.join(root, "Dockerfile"))
    CASES[case](root)
    return root


@pytest.fixture(scope="module")
def docker(busybox_archive: str) -> Iterator[peers.Dockerd]:
    with peers.dockerd() as d:
        d.docker("load", "-i", busybox_archive)
        yield d


def _berth_image(bcli: BuildCLI, context: str, out: str) -> None:
    result = bcli.build(context, "-t", "oracle")
    assert result.returncode == 0, result.stderr
    bcli("save", "-o", out, "oracle")


@pytest.mark.parametrize("case", sorted(CASES))
def test_berth_and_buildkit_build_the_same_image(case, bcli, busybox, docker, tmp_path):
    context = _context(case)
    try:
        ours = str(tmp_path / "berth.tar")
        theirs = str(tmp_path / "buildkit.tar")
        _berth_image(bcli, context, ours)
        built = docker.docker(
            "build",
            "--network",
            "host",
            "-t",
            f"oracle-{case}",
            context,
            env={"DOCKER_BUILDKIT": "1"},
            check=False,
        )
        assert built.returncode == 0, built.stderr.decode()
        docker.docker("save", "-o", theirs, f"oracle-{case}")
    finally:
        shutil.rmtree(context, ignore_errors=True)
    tree, config = flatten_archive(ours)
    peer_tree, peer_config = flatten_archive(theirs)
    differences = diff_trees(tree, peer_tree)
    assert not differences, "\n".join(differences)
    assert config_subset(config) == config_subset(peer_config)


@pytest.fixture
def buildah_root() -> Iterator[str]:
    peers.require(BUILDAH, "buildah")
    root = tempfile.mkdtemp(prefix="berth-buildah-", dir="/var/tmp")
    try:
        yield root
    finally:
        subprocess.run(_buildah(root, "rmi", "-af"), capture_output=True, check=False)
        for point in _mounts_under(root):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _buildah(root: str, *args: str) -> list[str]:
    return [
        BUILDAH,
        "--root",
        f"{root}/root",
        "--runroot",
        f"{root}/run",
        "--storage-driver",
        "vfs",
        *args,
    ]


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(
            (line.split()[4] for line in f if line.split()[4].startswith(path)),
            key=len,
            reverse=True,
        )


@pytest.mark.parametrize("case", BUILDAH_CASES)
def test_berth_and_buildah_build_the_same_image(
    case, bcli, busybox, busybox_archive, buildah_root, tmp_path
):
    context = _context(case)
    try:
        ours = str(tmp_path / "berth.tar")
        theirs = str(tmp_path / "buildah.tar")
        _berth_image(bcli, context, ours)
        subprocess.run(
            _buildah(buildah_root, "pull", "-q", f"docker-archive:{busybox_archive}"),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _buildah(buildah_root, "tag", "busybox:latest", "docker.io/library/busybox:latest"),
            check=False,
            capture_output=True,
        )
        built = subprocess.run(
            _buildah(
                buildah_root, "bud", "--layers", "-q", "--network", "host", "-t", "oracle", context
            ),
            capture_output=True,
            check=False,
        )
        assert built.returncode == 0, built.stderr.decode()
        subprocess.run(
            _buildah(buildah_root, "push", "oracle", f"docker-archive:{theirs}"),
            check=True,
            capture_output=True,
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    tree, config = flatten_archive(ours)
    peer_tree, peer_config = flatten_archive(theirs)
    # buildah leaves the mount points of /etc/hosts, /etc/hostname, /etc/resolv.conf, /run
    differences = diff_trees(
        tree, peer_tree, ignore=("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run")
    )
    assert not differences, "\n".join(differences)
    assert config_subset(config)["Cmd"] == config_subset(peer_config)["Cmd"]
