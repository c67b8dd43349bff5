"""``berth cp`` both ways, for running and stopped containers: docker's path rules, tar on
stdin/stdout, owners, and never a host file read or written through a container's symlink."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from berth.engine import Engine
from tests.support.berthcli import BERTH, BerthCLI

pytestmark = pytest.mark.root


@pytest.fixture(params=["running", "stopped"])
def box(request: pytest.FixtureRequest, cli: BerthCLI, busybox: str) -> str:
    """A container with some files, running (sleeping) or stopped."""
    name = f"box-{request.param}"
    setup = (
        "mkdir -p /data/sub && echo one > /data/a.txt && echo two > /data/sub/b.txt && "
        "ln -s a.txt /data/link && chown 1234:2345 /data/a.txt"
    )
    if request.param == "running":
        cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
        cli("exec", name, "sh", "-c", setup)
    else:
        cli("run", "--name", name, "busybox", "sh", "-c", setup)
    return name


def test_copy_out_follows_dockers_rules(
    cli: BerthCLI, box: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli("cp", f"{box}:/data/a.txt", ".")  # file into a directory
    assert Path("a.txt").read_text() == "one\n"
    assert Path("a.txt").stat().st_uid == 0  # the caller's, without -a
    cli("cp", f"{box}:/data/a.txt", "renamed.txt")  # file to a new name
    assert Path("renamed.txt").read_text() == "one\n"
    Path("existing").write_text("old")
    cli("cp", f"{box}:data/sub/b.txt", "existing")  # relative path; overwrite
    assert Path("existing").read_text() == "two\n"
    cli("cp", f"{box}:/data", "newdir")  # dir to a new name
    assert Path("newdir/sub/b.txt").read_text() == "two\n"
    assert os.readlink("newdir/link") == "a.txt"  # links stay links
    os.mkdir("into")
    cli("cp", f"{box}:/data", "into")  # dir into a dir
    assert Path("into/data/a.txt").exists()
    os.mkdir("contents")
    cli("cp", f"{box}:/data/.", "contents")  # a dir's contents
    assert sorted(os.listdir("contents")) == ["a.txt", "link", "sub"]
    cli("cp", "-L", f"{box}:/data/link", "followed")  # -L: the link's target
    assert Path("followed").read_text() == "one\n" and not Path("followed").is_symlink()
    cli("cp", "-a", f"{box}:/data/a.txt", "owned")  # -a keeps the owners
    assert (Path("owned").stat().st_uid, Path("owned").stat().st_gid) == (1234, 2345)


def test_copy_in_follows_dockers_rules(
    cli: BerthCLI, box: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("f.txt").write_text("from host\n")
    os.chown("f.txt", 4321, 4321)
    Path("tree/inner").mkdir(parents=True)
    Path("tree/inner/x").write_text("x\n")
    cli("cp", "f.txt", f"{box}:/data/")
    cli("cp", "f.txt", f"{box}:/data/g.txt")
    cli("cp", "-a", "f.txt", f"{box}:/data/kept.txt")
    cli("cp", "tree", f"{box}:/data")
    cli("cp", "tree/.", f"{box}:/data/sub")
    cli("cp", "tree", f"{box}:/data/fresh")
    listing = _in_box(
        cli,
        box,
        "cat /data/f.txt /data/g.txt /data/tree/inner/x "
        "/data/sub/inner/x /data/fresh/inner/x; stat -c '%n %u:%g' /data/f.txt "
        "/data/kept.txt",
    )
    assert listing.splitlines() == [
        "from host",
        "from host",
        "x",
        "x",
        "x",
        "/data/f.txt 0:0",
        "/data/kept.txt 4321:4321",
    ]


def _in_box(cli: BerthCLI, box: str, script: str) -> str:
    if box.endswith("running"):
        return cli("exec", box, "sh", "-c", script)
    name = f"{box}-check"
    cli("commit", box, name)
    return cli("run", "--rm", name, "sh", "-c", script)


def test_copy_errors(
    cli: BerthCLI, box: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("x")
    cases = [
        (("cp", f"{box}:/nope", "."), f"Could not find the file /nope in container {box}"),
        (("cp", "file", f"{box}:/nodir/x"), f"Could not find the file /nodir in container {box}"),
        (("cp", f"{box}:/data", "file"), "cannot copy a directory to a file"),
        (("cp", f"{box}:/data/a.txt/", "."), "not a directory"),
        (("cp", "file", f"{box}:/data/newdir/"), "does not exist"),
        (("cp", "nosuch-local", f"{box}:/data"), "no such file or directory"),
        (("cp", "a", "b"), "must specify at least one container source"),
        (("cp", f"{box}:/a", f"{box}:/b"), "copying between containers is not supported"),
        (("cp", "nosuch:/a", "."), "No such container: nosuch"),
    ]
    for args, message in cases:
        result = cli.run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_tar_on_stdout_and_stdin(cli: BerthCLI, box: str) -> None:
    out = subprocess.run(
        [BERTH, "cp", f"{box}:/data", "-"], capture_output=True, env=cli.env(), check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        names = sorted(tar.getnames())
        assert names == ["data", "data/a.txt", "data/link", "data/sub", "data/sub/b.txt"]
        assert tar.getmember("data/a.txt").uid == 1234
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("piped/hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    cli.run("cp", "-", f"{box}:/data", input=archive.getvalue()).check()
    assert "hello" in _in_box(cli, box, "cat /data/piped/hello.txt")
    not_dir = cli.run("cp", "-", f"{box}:/data/a.txt", input=archive.getvalue())
    assert not_dir.returncode == 1 and "must be a directory" in not_dir.stderr


def test_hostile_symlinks_never_reach_the_host(
    cli: BerthCLI, box: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container plants links to / and above it; cp reads and writes only the container."""
    secret_dir = tmp_path / "host-secret"
    secret_dir.mkdir()
    (secret_dir / "secret").write_text("host only\n")
    target_dir = tmp_path / "host-target"
    target_dir.mkdir()
    plant = (
        f"ln -s / /evil && ln -s ../../../../../../.. /data/up && "
        f"mkdir -p {target_dir} && ln -s {target_dir} /data/abs"
    )
    if box.endswith("running"):
        cli("exec", box, "sh", "-c", plant)
    else:
        cli("commit", box, "planted")
        cli("rm", box)
        cli("run", "--name", box, "planted", "sh", "-c", plant)
    monkeypatch.chdir(tmp_path)
    for path in (f"/evil{secret_dir}/secret", f"/data/up{secret_dir}/secret"):
        result = cli.run("cp", f"{box}:{path}", "stolen")
        assert result.returncode == 1 and "Could not find the file" in result.stderr
        assert not Path("stolen").exists()
    Path("payload").write_text("planted\n")
    for dest in (f"/evil{target_dir}/", "/data/abs/", f"/data/up{target_dir}/"):
        cli("cp", "payload", f"{box}:{dest}")
        assert os.listdir(target_dir) == []  # the host's directory is untouched
    inside = _in_box(cli, box, f"cat {target_dir}/payload")
    assert inside == "planted\n"  # it went into the container's own directory
    # a tar that climbs or links out is refused or kept inside
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        tar.addfile(link)
        info = tarfile.TarInfo(f"out{target_dir}/via-link")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    cli.run("cp", "-", f"{box}:/data", input=archive.getvalue()).check()
    assert os.listdir(target_dir) == []


def test_running_containers_volumes_and_read_only_root(
    cli: BerthCLI, busybox: str, tmp_path: Path
) -> None:
    """A running container is seen as it sees itself: its volumes are there."""
    cli("run", "-d", "--name", "ro", "--read-only", "-v", "vdata:/data", "busybox", "sleep", "1000")
    note = tmp_path / "note"
    note.write_text("into the volume\n")
    cli("cp", str(note), "ro:/data/")
    assert cli("exec", "ro", "cat", "/data/note") == "into the volume\n"
    cli("cp", "ro:/data/note", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "into the volume\n"
    refused = cli.run("cp", str(note), "ro:/tmp/")
    assert refused.returncode == 1 and "cannot write /tmp/note: read-only file system" in (
        refused.stderr
    )
    kernel = cli.run("cp", "ro:/proc/1/environ", str(tmp_path))
    assert kernel.returncode == 1 and "kernel filesystem" in kernel.stderr
    cli("rm", "-f", "ro")
    assert cli("run", "--rm", "-v", "vdata:/d", "busybox", "cat", "/d/note") == (
        "into the volume\n"
    )


def test_a_stopped_containers_volumes_are_reached(
    cli: BerthCLI, busybox: str, tmp_path: Path
) -> None:
    """As docker: a stopped container's volumes and binds are mounted for the copy (in a
    namespace of its own: the host never sees them, the conftest checks no mount is left)."""
    bound = tmp_path / "bound"
    bound.mkdir()
    (bound / "from-host").write_text("bind\n")
    cli(
        "run",
        "--name",
        "stopped",
        "-v",
        "svol:/vol",
        "-v",
        f"{bound}:/bound:ro",
        "busybox",
        "sh",
        "-c",
        "echo in volume > /vol/inside",
    )
    cli("cp", "stopped:/vol/inside", str(tmp_path / "got"))
    assert (tmp_path / "got").read_text() == "in volume\n"
    cli("cp", "stopped:/bound/from-host", str(tmp_path / "got2"))
    assert (tmp_path / "got2").read_text() == "bind\n"
    (tmp_path / "new").write_text("new\n")
    cli("cp", str(tmp_path / "new"), "stopped:/vol/")
    assert cli("run", "--rm", "-v", "svol:/v", "busybox", "cat", "/v/new") == "new\n"
    refused = cli.run("cp", str(tmp_path / "new"), "stopped:/bound/")
    assert refused.returncode == 1 and "read-only file system" in refused.stderr
    assert not (bound / "new").exists()
    missing = cli.run("cp", "stopped:/vol/nope", str(tmp_path))
    assert missing.returncode == 1
    assert "Could not find the file /vol/nope in container stopped" in missing.stderr


def test_python_api_get_and_put_archive(store_root: str, busybox: str) -> None:
    with Engine(store_root) as engine:
        container = engine.containers.create("busybox", ["true"])
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("note.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
        assert container.put_archive("/tmp", archive.getvalue()) is True
        chunks, stat = container.get_archive("/tmp/note.txt")
        assert stat["name"] == "note.txt" and stat["size"] == 3
        assert stat["mode"] == 0o644
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile("note.txt")
            assert member is not None and member.read() == b"hi\n"
        _, bin_stat = container.get_archive("/bin")
        assert bin_stat["mode"] & (1 << 31)  # Go's ModeDir
        container.remove()


def test_extended_attributes_go_both_ways(cli: BerthCLI, box: str, tmp_path: Path) -> None:
    """User xattrs and file capabilities (security.capability) survive cp in and out, also
    with the owner changed on the way (a chown drops file capabilities: set after it)."""
    source = tmp_path / "in"
    source.mkdir()
    tool = source / "tool"
    tool.write_text("#!/bin/sh\n")
    os.setxattr(tool, "user.berth.note", b"kept\xff")
    subprocess.run(["setcap", "cap_net_raw+ep", str(tool)], check=True)
    os.setxattr(source, "user.berth.dir", b"d")
    cli("cp", str(source), f"{box}:/xattrs")
    out = tmp_path / "out"
    cli("cp", f"{box}:/xattrs", str(out))
    assert os.getxattr(out / "tool", "user.berth.note") == b"kept\xff"
    assert os.getxattr(out, "user.berth.dir") == b"d"
    caps = subprocess.run(
        ["getcap", str(out / "tool")], capture_output=True, text=True, check=True
    )
    assert "cap_net_raw" in caps.stdout
