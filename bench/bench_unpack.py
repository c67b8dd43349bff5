"""Unpacking an image's layers: berth against ``umoci unpack``, side by side.

Builds a 5-layer OCI image layout (busybox, then four ~50 MB layers of mixed content: a few big
files, thousands of small ones, directories, symlinks, hardlinks, some whiteouts), gzip
compressed, in a temp dir. Then, a few times each, alternating:

- ``umoci unpack --image layout:bench bundle`` (decompress, verify, extract, write mtree);
- berth: for each layer, the blob is hashed as read (as the store checks the blob digest),
  decompressed, hashed again (the diff id) and unpacked with ``unpack_layer`` in overlay mode
  into its own dir, as the store does;
- berth in apply mode: all layers flattened into one dir, as umoci does.

Prints medians and the ratios (berth time / umoci time: below 1.0 means berth is faster).

    sudo .venv/bin/python bench/bench_unpack.py [--runs 5] [--dir /var/tmp] [--keep]

By default it runs twice: on the disk (/var/tmp), where inode creation by the kernel dominates
both tools, and on a tmpfs (/dev/shm), where what each tool itself costs shows. Nothing is
deleted until the end: ext4 allocates inodes slowly for a while after many were deleted
(``recently_deleted`` scans), which would penalise whichever tool runs next.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import BinaryIO

from berth.oci import mediatypes as mt
from berth.store.compression import compressing_writer, open_decompressed
from berth.store.layertar import write_layer_tar
from berth.store.unpack import unpack_layer

BUSYBOX = "/bin/busybox"
MiB = 1 << 20


def _payload(rng: random.Random, size: int) -> bytes:
    """Half incompressible bytes, half text-like: gzip gets about 2:1, like real layers."""
    half = size // 2
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(64)]
    text = b" ".join(rng.choice(words) for _ in range(size // 8 + 1))
    return rng.randbytes(half) + text[: size - half]


def make_layer_tree(root: str, index: int, previous: list[str]) -> None:
    """About 50 MB: 3 big files, ~5000 small files in ~250 dirs, symlinks, hardlinks."""
    rng = random.Random(index)
    top = os.path.join(root, f"opt/app{index}")
    os.makedirs(top)
    for i in range(3):
        with open(os.path.join(top, f"big{i}.bin"), "wb") as f:
            f.write(_payload(rng, 8 * MiB))
    for d in range(250):
        sub = os.path.join(top, f"lib/pkg{d // 25}/mod{d}")
        os.makedirs(sub)
        for i in range(20):
            with open(os.path.join(sub, f"file{i}.py"), "wb") as f:
                f.write(_payload(rng, rng.randint(200, 9000)))
        for i in range(2):
            os.symlink(f"file{i}.py", os.path.join(sub, f"link{i}.py"))
        if d % 10 == 0:
            os.link(os.path.join(sub, "file0.py"), os.path.join(sub, "hard0.py"))
    os.chmod(os.path.join(top, "big0.bin"), 0o755)
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", f"app{index}.conf"), "w") as f:
        f.write(f"layer {index}\n")
    # Whiteouts of a few files of the layer below, as an overlay upper dir has them.
    for name in previous[:5]:
        parent = os.path.join(root, os.path.dirname(name))
        os.makedirs(parent, exist_ok=True)
        os.mknod(os.path.join(root, name), 0o020000, 0)


def make_busybox_tree(root: str) -> None:
    for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "home"):
        os.makedirs(os.path.join(root, d))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    applets = subprocess.run(
        [BUSYBOX, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")


def _write_blob(layout: str, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def build_layout(work: str) -> tuple[str, int]:
    """The OCI layout ``work/layout`` tagged ``bench``; returns it and the unpacked size."""
    layout = os.path.join(work, "layout")
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    layers: list[dict[str, object]] = []
    diff_ids: list[str] = []
    total = 0
    previous: list[str] = []
    for index in range(5):
        tree = os.path.join(work, f"tree{index}")
        os.makedirs(tree)
        if index == 0:
            make_busybox_tree(tree)
        else:
            make_layer_tree(tree, index, previous)
            previous = [f"opt/app{index}/lib/pkg0/mod0/file{i}.py" for i in range(5)]
        plain = io.BytesIO()
        result = write_layer_tar(tree, plain)
        total += result.size
        packed = io.BytesIO()
        with compressing_writer(packed, "gzip") as gz:
            gz.write(plain.getvalue())
        digest, size = _write_blob(layout, packed.getvalue())
        layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_ids.append(str(result.diff_id))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_digest, config_size = _write_blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    manifest_digest, manifest_size = _write_blob(layout, json.dumps(manifest).encode())
    index_doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index_doc, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return layout, total


class _HashingReader:
    """Hashes what is read through it, as the store's ingest does for both digests."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.hash = hashlib.sha256()

    def readinto(self, buffer: memoryview) -> int:
        n = self.source.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.hash.update(buffer[:n])
        return int(n or 0)

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        return data


def _layer_blobs(layout: str) -> list[tuple[str, str]]:
    with open(os.path.join(layout, "index.json")) as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout, "blobs/sha256", manifest_digest.split(":")[1])) as f:
        manifest = json.load(f)
    with open(os.path.join(layout, "blobs/sha256", manifest["config"]["digest"][7:])) as f:
        diff_ids = json.load(f)["rootfs"]["diff_ids"]
    return [
        (os.path.join(layout, "blobs/sha256", layer["digest"][7:]), diff_id)
        for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True)
    ]


def berth_unpack(layout: str, out: str, mode: str) -> None:
    os.makedirs(out)
    for index, (blob, diff_id) in enumerate(_layer_blobs(layout)):
        dest = out if mode == "apply" else os.path.join(out, str(index))
        os.makedirs(dest, exist_ok=True)
        with open(blob, "rb", buffering=0) as raw:
            blob_hash = _HashingReader(raw)
            content = _HashingReader(open_decompressed(blob_hash, "gzip"))  # type: ignore[arg-type]
            unpack_layer(content, dest, mode=mode)  # type: ignore[arg-type]
        if f"sha256:{content.hash.hexdigest()}" != diff_id:
            raise SystemExit(f"diff id mismatch in layer {index}")
        if blob_hash.hash.hexdigest() != os.path.basename(blob):
            raise SystemExit(f"blob digest mismatch in layer {index}")


def umoci_unpack(layout: str, out: str) -> None:
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:bench", out],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _timed(fn: Callable[[str], None], out: str) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    fn(out)
    return time.perf_counter() - start


def _fs_type(path: str) -> str:
    return (
        subprocess.run(
            ["findmnt", "-no", "FSTYPE", "-T", path], capture_output=True, text=True, check=False
        )
        .stdout.split("\n")[0]
        .strip()
    )


def bench_in(base_dir: str, runs: int, keep: bool) -> None:
    work = tempfile.mkdtemp(prefix="berth-bench-unpack-", dir=base_dir)
    try:
        print(f"\n== in {base_dir} ({_fs_type(work)}): building the image ...", flush=True)
        layout, unpacked = build_layout(work)
        blob_bytes = sum(os.path.getsize(b) for b, _ in _layer_blobs(layout))
        print(f"5 layers: {unpacked / 1e6:.0f} MB as tar, {blob_bytes / 1e6:.0f} MB gzipped")
        runners = {
            "umoci": lambda out: umoci_unpack(layout, out),
            "berth-overlay": lambda out: berth_unpack(layout, out, "overlay"),
            "berth-apply": lambda out: berth_unpack(layout, out, "apply"),
        }
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in range(runs):
            for name, runner in runners.items():
                out = os.path.join(work, f"out-{name}-{run}")
                times[name].append(_timed(runner, out))
        base = statistics.median(times["umoci"])
        print(f"{'tool':<16}{'median s':>10}{'MB/s':>8}{'ratio':>8}   runs")
        for name, values in times.items():
            median = statistics.median(values)
            runs_text = " ".join(f"{v:.2f}" for v in values)
            print(
                f"{name:<16}{median:>10.2f}{unpacked / 1e6 / median:>8.0f}"
                f"{median / base:>8.2f}   {runs_text}"
            )
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--dir",
        action="append",
        help="where to work (repeatable; default: /var/tmp, a disk, and /dev/shm, a tmpfs)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (umoci unpack and overlay whiteouts need it)", file=sys.stderr)
        return 2
    for base_dir in args.dir or ["/var/tmp", "/dev/shm"]:
        bench_in(base_dir, args.runs, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
