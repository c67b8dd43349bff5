"""The store under pressure: concurrent commands, kill -9, bad input, a full disk, sharing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.support.berthcli import BERTH, BerthCLI
from tests.support.tarballs import read_members, rootfs_tar, write_members

pytestmark = pytest.mark.root

TABLES = ("images", "tags", "repo_digests", "layers", "image_layers", "image_blobs")


def snapshot(root: str) -> tuple[list[tuple[str, int]], dict[str, list[tuple[object, ...]]]]:
    """Every file of the store (but the database and temp files) and every table's rows."""
    files = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel.startswith(("berth.db", "tmp/")):
                continue
            files.append((rel, os.lstat(path).st_size))
    db = sqlite3.connect(os.path.join(root, "berth.db"))
    rows = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    db.close()
    return sorted(files), rows


def _random_rootfs(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return rootfs_tar({f"data/blob{seed}.bin": rng.randbytes(size)}, dirs=("data",))


def test_a_second_image_on_the_same_base_costs_no_layer_disk(cli: BerthCLI, busybox: str,
                                                             store_root: str,
                                                             tmp_path: object) -> None:
    layers_before = os.listdir(os.path.join(store_root, "layers"))
    cli("tag", "busybox", "copy:1")
    archive = os.path.join(str(tmp_path), "a.tar")
    cli("save", "-o", archive, "busybox")
    cli("load", "-i", archive)
    assert os.listdir(os.path.join(store_root, "layers")) == layers_before
    df = cli("system", "df").splitlines()[1].split()
    assert df[:3] == ["Images", "1", "0"]


def test_twenty_imports_and_removals_at_once_leave_a_consistent_store(
    cli: BerthCLI, busybox_archive: str
) -> None:
    for i in range(5):
        cli("import", "-", f"old/{i}:1", input=_random_rootfs(1000, 100 + i))
    commands: list[tuple[list[str], bytes | None]] = []
    for i in range(8):
        commands.append((["import", "-", f"new/{i}:1"], _random_rootfs(200_000, i)))
    for i in range(5):
        commands.append((["rmi", f"old/{i}:1"], None))
    for _ in range(5):
        commands.append((["load", "-i", busybox_archive], None))
    commands.append((["image", "prune", "-f"], None))
    commands.append((["images"], None))
    processes = []
    for args, data in commands:
        process = cli.popen(*args, stdin=subprocess.PIPE if data else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        processes.append((args, process, data))
    for args, process, data in processes:
        _, err = process.communicate(data, timeout=300)
        assert process.returncode == 0, f"{args}: {err.decode()}"
    names = set(cli("images", "--format", "{{.Repository}}:{{.Tag}}").split())
    assert names == {f"new/{i}:1" for i in range(8)} | {"busybox:latest"}
    check = cli.run("system", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    for name in names:  # every image is whole
        assert cli("save", "-o", os.path.join(cli.root, "check.tar"), name) == ""


@pytest.fixture
def big_archive(cli: BerthCLI, tmp_path: object) -> Iterator[str]:
    """A docker-archive of a 3-layer image with ~80 MB of data, then an empty store again."""
    work = str(tmp_path)
    cli("import", "-", "big:1", input=_random_rootfs(80_000_000, 1))
    path = os.path.join(work, "big.tar")
    cli("save", "-o", path, "big:1")
    cli("rmi", "big:1")
    yield path


def test_kill_9_in_the_middle_of_a_load_leaves_only_leftovers(cli: BerthCLI,
                                                              big_archive: str) -> None:
    for delay in (0.05, 0.2, 0.4, 0.7, 1.0):
        process = cli.popen("load", "-i", big_archive, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert cli.run("images").returncode == 0  # the next command works
        check = cli.run("system", "check")
        assert "damage" not in check.stdout, check.stdout
        _repair_once_the_command_is_gone(cli)
    assert cli("load", "-i", big_archive) == "Loaded image: big:1\n"


def _repair_once_the_command_is_gone(cli: BerthCLI) -> None:
    """``check --repair`` leaves what a live process still holds (its lease, its temp
    files). A command served by the fork server runs in a worker that dies a moment after
    its killed client (berth.cli.forkworker), so the repair is made again until nothing is
    left; it must never fail, and the store must end consistent."""
    deadline = time.monotonic() + 10
    while True:
        repaired = cli.run("system", "check", "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        check = cli.run("system", "check")
        assert "damage" not in check.stdout, check.stdout
        if check.stdout == "The store is consistent.\n" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert check.stdout == "The store is consistent.\n", check.stdout


def test_kill_9_in_the_middle_of_an_import(cli: BerthCLI) -> None:
    data = _random_rootfs(60_000_000, 7)
    for delay in (0.1, 0.3, 0.6):
        process = cli.popen("import", "-", "imp:1", stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert process.stdin is not None
        try:
            process.stdin.write(data[: len(data) // 2])
            time.sleep(delay)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        check = cli.run("system", "check")
        assert "damage" not in check.stdout, check.stdout
        _repair_once_the_command_is_gone(cli)
    assert cli("images", "-q") == ""


def _tamper(archive: str, out: str, change: str) -> None:
    members = read_members(archive)
    manifest = json.loads(members["manifest.json"])
    layer = manifest[0]["Layers"][0]
    config_name = manifest[0]["Config"]
    if change == "truncate":
        members[layer] = members[layer][: len(members[layer]) // 2]
    elif change == "flip":
        data = bytearray(members[layer])
        data[1024] ^= 0xFF
        members[layer] = bytes(data)
        # the path no longer names the digest: rename it so only the config can tell
        new = "layer.tar"
        members[new] = members.pop(layer)
        manifest[0]["Layers"] = [new]
    elif change == "config":
        members[config_name] = b"{not json"
    elif change == "manifest":
        members["manifest.json"] = b"[{]"
        write_members(out, members)
        return
    members["manifest.json"] = json.dumps(manifest).encode()
    write_members(out, members)


@pytest.mark.parametrize(("change", "message"), [
    ("truncate", "corrupt"),
    ("flip", "but the image config says"),
    ("config", "not valid JSON"),
    ("manifest", "not valid JSON"),
])
def test_damaged_archives_are_refused_and_the_store_is_unchanged(
    cli: BerthCLI, busybox: str, busybox_archive: str, store_root: str, tmp_path: object,
    change: str, message: str,
) -> None:
    cli("rmi", "busybox")
    cli("import", "-", "keep:1", input=rootfs_tar({"k": "v"}))
    bad = os.path.join(str(tmp_path), "bad.tar")
    _tamper(busybox_archive, bad, change)
    before = snapshot(store_root)
    result = cli.run("load", "-i", bad)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(store_root) == before


def test_a_full_disk_is_a_clear_error_and_the_store_is_unchanged(tmp_path: object) -> None:
    mountpoint = tempfile.mkdtemp(prefix="berth-fulldisk-", dir="/var/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mountpoint], check=True)
    try:
        cli = BerthCLI(os.path.join(mountpoint, "store"))
        cli("import", "-", "small:1", input=rootfs_tar({"a": "b"}))
        before = snapshot(cli.root)
        result = cli.run("import", "-", "big:1", input=_random_rootfs(8_000_000, 3))
        assert result.returncode == 1
        assert "no space left" in result.stderr.lower()
        assert "Traceback" not in result.stderr
        assert snapshot(cli.root) == before
        assert os.listdir(os.path.join(cli.root, "tmp")) == []
    finally:
        subprocess.run(["umount", mountpoint], check=False)
        shutil.rmtree(mountpoint, ignore_errors=True)


def test_blob_is_verified_on_the_way_in(cli: BerthCLI, busybox: str, store_root: str) -> None:
    blob_dir = os.path.join(store_root, "blobs", "sha256")
    for name in os.listdir(blob_dir):
        data = open(os.path.join(blob_dir, name), "rb").read()
        assert hashlib.sha256(data).hexdigest() == name


def test_unknown_image_is_one_clear_line(cli: BerthCLI) -> None:
    for args in (("rmi", "ghost"), ("image", "inspect", "ghost"), ("history", "ghost"),
                 ("save", "-o", os.path.join(cli.root, "x.tar"), "ghost"),
                 ("tag", "ghost", "x")):
        result = cli.run(*args)
        assert result.returncode == 1, args
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert "No such image" in result.stderr, (args, result.stderr)


def test_berth_binary_is_the_venv_one() -> None:
    assert os.access(BERTH, os.X_OK)
