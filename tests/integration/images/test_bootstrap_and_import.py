"""Base images made on this host, and rootfs tarballs imported as images."""

from __future__ import annotations

import json
import os

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI
from tests.support.tarballs import compress, rootfs_tar

pytestmark = pytest.mark.root


def _layer_dir(engine: Engine, name: str) -> str:
    image = engine.images.get(name)
    stack = engine.store.layers.stack(image.record.top_chain)
    return engine.store.layers.diff_dir(stack[-1].chain_id)


def test_bootstrap_busybox_has_a_shell_every_applet_and_users(
    cli: BerthCLI, store_root: str
) -> None:
    out = cli("image", "bootstrap", "busybox")
    assert "busybox:latest" in out
    with Engine(store_root) as engine:
        rootfs = _layer_dir(engine, "busybox")
        applets = os.listdir(os.path.join(rootfs, "bin"))
        assert {"sh", "ls", "cat", "wget", "httpd", "nc"} <= set(applets)
        sh = os.stat(os.path.join(rootfs, "bin", "sh"))
        assert sh.st_ino == os.stat(os.path.join(rootfs, "bin", "busybox")).st_ino  # hardlinks
        assert sh.st_mode & 0o111
        passwd = open(os.path.join(rootfs, "etc", "passwd")).read()
        assert passwd.startswith("root:x:0:0:") and "nobody:x:65534" in passwd
        assert "root:x:0:" in open(os.path.join(rootfs, "etc", "group")).read()
        assert os.stat(os.path.join(rootfs, "tmp")).st_mode & 0o7777 == 0o1777
    inspect = json.loads(cli("image", "inspect", "busybox"))[0]
    assert inspect["Config"]["Cmd"] == ["sh"]
    assert inspect["RepoTags"] == ["busybox:latest"]
    assert inspect["Os"] == "linux" and inspect["Architecture"] in ("amd64", "arm64")


@pytest.mark.parametrize("compression", ["", "gzip", "zstd", "bzip2", "xz"])
def test_import_any_compression_from_a_file(cli: BerthCLI, store_root: str, tmp_path: object,
                                            compression: str) -> None:
    data = compress(rootfs_tar({"app/hello.txt": "hi\n"}, dirs=("app",)), compression)
    path = os.path.join(str(tmp_path), "rootfs.tar")
    with open(path, "wb") as f:
        f.write(data)
    image_id = cli("import", path, "imported:1").strip()
    assert image_id.startswith("sha256:")
    with Engine(store_root) as engine:
        content = open(os.path.join(_layer_dir(engine, "imported:1"), "app/hello.txt")).read()
    assert content == "hi\n"
    history = json.loads(cli("history", "--format", "{{json .}}", "imported:1").splitlines()[0])
    assert history["Comment"] == f"Imported from {path}"


def test_import_from_stdin_with_changes(cli: BerthCLI) -> None:
    data = rootfs_tar({"bin/app": "#!/bin/sh\necho app\n"}, dirs=("bin",))
    image_id = cli(
        "import",
        "--change", 'CMD ["/bin/app", "--serve"]',
        "--change", "ENV A=1 B=two",
        "--change", "WORKDIR /srv",
        "--change", "ENTRYPOINT /bin/sh -c",
        "--change", "EXPOSE 8080 53/udp",
        "--change", "USER nobody",
        "-m", "hello",
        "-", "stdin/app",
        input=data,
    ).strip()
    config = json.loads(cli("image", "inspect", "stdin/app"))[0]
    assert config["Id"] == image_id
    c = config["Config"]
    assert c["Cmd"] == ["/bin/app", "--serve"]
    assert c["Env"] == ["A=1", "B=two"]
    assert c["WorkingDir"] == "/srv"
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh -c"]
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["User"] == "nobody"
    assert config["Comment"] == "hello"


def test_import_rejects_bad_change_and_bad_input(cli: BerthCLI, tmp_path: object) -> None:
    data = rootfs_tar({"a": "b"})
    bad = cli.run("import", "--change", "RUN echo hi", "-", "x", input=data)
    assert bad.returncode == 1
    assert "run is not a valid change command" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = cli.run("import", "/nonexistent/rootfs.tar", "x")
    assert missing.returncode == 1 and "no such file" in missing.stderr
    corrupt = cli.run("import", "-", "x", input=b"\x1f\x8b" + os.urandom(2000))
    assert corrupt.returncode == 1
    assert corrupt.stderr.startswith("Error: ") and "Traceback" not in corrupt.stderr
    assert cli("images", "-q") == ""


def test_invalid_reference_is_rejected(cli: BerthCLI, busybox: str) -> None:
    result = cli.run("tag", "busybox", "Upper/Case")
    assert result.returncode == 1
    assert "must be lowercase" in result.stderr
    result = cli.run("import", "-", "bad::name", input=rootfs_tar({"a": "b"}))
    assert result.returncode == 1 and "invalid reference format" in result.stderr


@pytest.mark.slow
def test_bootstrap_debian_bookworm(cli: BerthCLI, store_root: str) -> None:
    cli("image", "bootstrap", "-q", "debian:bookworm", timeout=1800)
    with Engine(store_root) as engine:
        rootfs = _layer_dir(engine, "debian:bookworm")
        assert open(os.path.join(rootfs, "etc/debian_version")).read().startswith("12.")
        assert os.path.exists(os.path.join(rootfs, "usr/bin/apt-get"))
        assert os.path.exists(os.path.join(rootfs, "etc/apt/apt.conf.d/docker-clean"))
        assert os.listdir(os.path.join(rootfs, "var/lib/apt/lists")) in ([], ["partial"],
                                                                         ["lock", "partial"],
                                                                         ["partial", "lock"])
        assert not os.path.exists(os.path.join(rootfs, "etc/resolv.conf"))
        assert not os.listdir(os.path.join(rootfs, "proc"))  # nothing left mounted inside
    assert json.loads(cli("image", "inspect", "debian:bookworm"))[0]["Config"]["Cmd"] == ["bash"]
