"""Layers unpacked for overlayfs, checked through a real overlay mount (root, real kernel).

- Changes made through a container-like overlay mount (upper + busybox lower) are written as a
  layer from the upper dir, unpacked again in overlay mode, and mounted as lowers: the merged
  view equals the one the changes were made in. ``list_changes`` reports them as Docker does.
- Unpacking the same layers in apply mode into one dir gives the merged view, file for file.
- ``umoci unpack`` (a peer) of the same layers as an OCI image gives the very same tree.
- Running out of space while unpacking is StorageFull.

Every mount is undone in a ``finally``, whatever happens.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from berth.errors import StorageFull
from berth.oci import mediatypes as mt
from berth.store.changes import Change, list_changes
from berth.store.compression import compressing_writer
from berth.store.layertar import write_layer_tar
from berth.store.unpack import unpack_layer
from tests.fixtures.hostile_layers.make_fixtures import Entry, tar_bytes
from tests.fixtures.hostile_layers.trees import diff, snapshot
from tests.support.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.root

# What berth uses: no redirect_dir, no metacopy (layers must hold whole copies).
OVERLAY_OPTIONS = "redirect_dir=off,metacopy=off,index=off"


@contextmanager
def overlay(target: Path, lowers: list[Path], upper: Path | None = None) -> Iterator[Path]:
    """Mount an overlay on ``target`` (lowers uppermost first); always unmounted after."""
    options = [f"lowerdir={':'.join(str(p) for p in lowers)}", OVERLAY_OPTIONS]
    if upper is not None:
        work = upper.parent / (upper.name + "-work")
        work.mkdir(exist_ok=True)
        options += [f"upperdir={upper}", f"workdir={work}"]
    target.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", ",".join(options), str(target)],
        check=True,
        capture_output=True,
    )
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("berth-overlay")


def _layer_of(tree: Path) -> bytes:
    out = io.BytesIO()
    write_layer_tar(str(tree), out)
    return out.getvalue()


def _unpack(layer: bytes, dest: Path, mode: str = "overlay") -> Path:
    dest.mkdir(exist_ok=True)
    unpack_layer(io.BytesIO(layer), str(dest), mode=mode)  # type: ignore[arg-type]
    return dest


def _change_things(root: Path) -> None:
    """What a RUN step might do, through the merged mount."""
    (root / "etc/motd").write_text("hello\n")  # new file
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")  # changed file
    os.unlink(root / "bin/vi")  # deleted symlink
    subprocess.run(["rm", "-rf", str(root / "var")], check=True)  # deleted dir
    subprocess.run(["rm", "-rf", str(root / "home")], check=True)  # deleted, then made again:
    (root / "home/app").mkdir(parents=True)  # overlayfs marks it opaque
    (root / "home/app/run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "home/app/run.sh", 0o4755)
    os.chown(root / "home/app", 1000, 1000)
    os.link(root / "home/app/run.sh", root / "home/app/run-link.sh")
    os.symlink("/home/app/run.sh", root / "usr-run")
    os.mknod(root / "etc/console", stat.S_IFCHR | 0o600, os.makedev(5, 1))
    os.chmod(root / "tmp", 0o1777)


def _base(work: Path) -> Path:
    base = work / "base"
    base.mkdir()
    make_busybox_rootfs(str(base))
    (base / "var/lib/dpkg").mkdir(parents=True)
    (base / "var/lib/dpkg/status").write_text("Package: busybox\n")
    (base / "home/olduser").mkdir(parents=True)
    (base / "home/olduser/.profile").write_text("old\n")
    return base


def test_container_changes_round_trip_through_a_layer(work: Path) -> None:
    base = _base(work)
    lower1 = _unpack(_layer_of(base), work / "l1")
    upper = work / "upper"
    upper.mkdir()
    with overlay(work / "container", [lower1], upper) as merged:
        _change_things(merged)
        expected = snapshot(str(merged), mtime_ns=False)

    assert list_changes(str(upper), [str(lower1)]) == [
        Change("C", "/bin"),
        Change("D", "/bin/vi"),
        Change("C", "/etc"),
        Change("A", "/etc/console"),
        Change("A", "/etc/motd"),
        Change("C", "/etc/passwd"),
        Change("C", "/home"),
        Change("A", "/home/app"),
        Change("A", "/home/app/run-link.sh"),
        Change("A", "/home/app/run.sh"),
        Change("D", "/home/olduser"),
        Change("C", "/tmp"),
        Change("A", "/usr-run"),
        Change("D", "/var"),
    ]

    layer2 = _layer_of(upper)
    lower2 = _unpack(layer2, work / "l2")
    assert os.getxattr(lower2 / "home", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(lower2 / "var").st_mode)
    with overlay(work / "image", [lower2, lower1]) as merged:
        got = snapshot(str(merged), mtime_ns=False)
    assert diff(expected, got) == []
    assert "var" not in got and "bin/vi" not in got and "home/olduser" not in got

    flat = _unpack(_layer_of(base), work / "flat", "apply")
    _unpack(layer2, flat, "apply")
    assert diff(expected, snapshot(str(flat), mtime_ns=False)) == []


def test_three_layers_whiteouts_and_opaque_dirs(work: Path) -> None:
    layers = [
        tar_bytes(
            [
                Entry("a", "dir"),
                Entry("a/b", "dir"),
                Entry("a/b/c", "dir"),
                Entry("a/b/c/bar", data=b"bar"),
                Entry("keep", data=b"1"),
                Entry("gone", data=b"x"),
                Entry("dir", "dir"),
                Entry("dir/f", data=b"f"),
            ]
        ),
        tar_bytes(
            [
                Entry("a", "dir"),
                Entry("a/.wh..wh..opq"),
                Entry("a/b", "dir"),
                Entry("a/b/c", "dir"),
                Entry("a/b/c/foo", data=b"foo"),
                Entry(".wh.gone"),
                Entry(".wh.dir"),
            ]
        ),
        tar_bytes(
            [
                Entry("dir", data=b"now a file"),
                Entry("gone", "symlink", link="keep"),
                Entry("a", "dir"),
                Entry("a/b", "dir"),
                Entry("a/b/.wh.c"),
            ]
        ),
    ]
    dirs = [_unpack(layer, work / f"l{i}") for i, layer in enumerate(layers)]
    flat = work / "flat"
    for layer in layers:
        _unpack(layer, flat, "apply")
    with overlay(work / "merged", dirs[::-1]) as merged:
        view = snapshot(str(merged), mtime_ns=False)
        assert sorted(view) == ["a", "a/b", "dir", "gone", "keep"]
        assert (merged / "dir").read_bytes() == b"now a file"
        assert os.readlink(merged / "gone") == "keep"
    assert diff(view, snapshot(str(flat), mtime_ns=False)) == []


def test_out_of_space_is_storage_full(work: Path) -> None:
    small = work / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        layer = tar_bytes([Entry("big", data=os.urandom(3 << 20))])
        dest = small / "dest"
        dest.mkdir()
        with pytest.raises(StorageFull, match="no space left"):
            unpack_layer(io.BytesIO(layer), str(dest))
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _oci_layout(layout: Path, layers: list[bytes]) -> None:
    """A minimal OCI image layout tagged ``test`` holding ``layers`` (gzipped)."""
    blobs = layout / "blobs/sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descriptors = []
    for layer in layers:
        packed = io.BytesIO()
        with compressing_writer(packed, "gzip") as writer:
            writer.write(layer)
        descriptors.append({"mediaType": mt.OCI_LAYER_GZIP, **blob(packed.getvalue())})
    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, **blob(json.dumps(config).encode())},
        "layers": descriptors,
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                **blob(json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": "test"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


@pytest.mark.peers
def test_same_tree_as_umoci(work: Path) -> None:
    base = _base(work)
    os.chmod(base / "bin/busybox", 0o4755)
    os.setxattr(
        base / "bin/busybox",
        "security.capability",
        bytes.fromhex("0100000200200000000000000000000000000000"),
    )
    os.link(base / "etc/passwd", base / "etc/passwd-hard")
    lower1 = _unpack(_layer_of(base), work / "l1")
    upper = work / "upper"
    upper.mkdir()
    with overlay(work / "container", [lower1], upper) as merged:
        _change_things(merged)
    layers = [_layer_of(base), _layer_of(upper)]
    _oci_layout(work / "layout", layers)
    subprocess.run(
        ["umoci", "unpack", "--image", f"{work / 'layout'}:test", str(work / "bundle")],
        check=True,
        capture_output=True,
    )
    umoci_tree = snapshot(str(work / "bundle/rootfs"))
    flat = work / "flat"
    for layer in layers:
        _unpack(layer, flat, "apply")
    assert diff(umoci_tree, snapshot(str(flat))) == []
    lower2 = _unpack(layers[1], work / "l2")
    with overlay(work / "image", [lower2, lower1]) as merged:
        assert diff(umoci_tree, snapshot(str(merged))) == []
