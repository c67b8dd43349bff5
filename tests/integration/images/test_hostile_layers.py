"""Hostile layers through the real commands: ``berth import`` and ``berth load`` never write
outside the store, and a refused layer leaves the store exactly as it was."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tarfile

import pytest

from tests.integration.images.test_store_robustness import snapshot
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "hostile_layers")
HOST_PATHS = ("/etc/berth-pwned", "/etc/berth-hostile", "/berth-top", "/berth-escaped",
              "/berth-pwned")


def _single_layers() -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(FIXTURES, "*.tar"))
                  if not p.endswith((".1.tar", ".2.tar")))


def _outside(store_root: str) -> list[str]:
    """What a hostile layer could have touched around the store."""
    parent = os.path.dirname(store_root)
    found = [p for p in HOST_PATHS if os.path.lexists(p)]
    found += [p for p in os.listdir(parent) if "escaped" in p or "pwned" in p]
    return found


@pytest.mark.parametrize("fixture", _single_layers(), ids=os.path.basename)
def test_import_of_a_hostile_layer(cli: BerthCLI, store_root: str, fixture: str) -> None:
    cli("import", "-", "keep:1", input=b"\0" * 1024)  # an empty tarball: a store to protect
    before = snapshot(store_root)
    result = cli.run("import", fixture, "hostile:1")
    assert "Traceback" not in result.stderr
    assert _outside(store_root) == []
    if result.returncode == 0:
        cli("rmi", "hostile:1")
    else:
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error: ")
    assert snapshot(store_root) == before


def _archive_of(layers: list[bytes], path: str) -> None:
    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    members = {"config.json": config}
    for i, layer in enumerate(layers):
        members[f"layer{i}.tar"] = layer
    members["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": ["two:1"],
                                            "Layers": [f"layer{i}.tar"
                                                       for i in range(len(layers))]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name", sorted({os.path.basename(p).split(".")[0] for p in
                                          glob.glob(os.path.join(FIXTURES, "*.1.tar"))}))
def test_load_of_a_two_layer_attack(cli: BerthCLI, store_root: str, tmp_path: object,
                                    name: str) -> None:
    layers = []
    for i in (1, 2):
        with open(os.path.join(FIXTURES, f"{name}.{i}.tar"), "rb") as f:
            layers.append(f.read())
    archive = os.path.join(str(tmp_path), "two.tar")
    _archive_of(layers, archive)
    cli("images")  # a store to protect
    before = snapshot(store_root)
    result = cli.run("load", "-i", archive)
    assert "Traceback" not in result.stderr
    assert _outside(store_root) == []
    if result.returncode == 0:
        # each layer is its own dir: layer 2 cannot write through layer 1's symlink
        with open("/proc/self/mountinfo") as f:
            assert store_root not in f.read()
        cli("rmi", "two:1")
    else:
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(store_root) == before
