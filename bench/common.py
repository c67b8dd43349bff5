"""Shared helpers for benchmarks: timing commands side by side, fixture images, reporting."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence

VENV_BIN = os.path.dirname(sys.executable)
BERTH = os.path.join(VENV_BIN, "berth")
CACHE = "/var/tmp/berth-bench-cache"


def timed(fn: Callable[[], object], runs: int, warmup: int = 1,
          before: Callable[[], object] | None = None) -> list[float]:
    """Wall-clock seconds of ``fn`` over ``runs`` runs (``before`` runs untimed each time)."""
    samples = []
    for i in range(warmup + runs):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            samples.append(elapsed)
    return samples


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(cmd), check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    """Print medians and each ratio against ``baseline`` (< 1.0 means faster than it)."""
    print(f"\n== {title}")
    base = statistics.median(results[baseline])
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"  {name:<34} median {median * 1000:9.1f} ms  "
              f"(min {min(samples) * 1000:.1f}, n={len(samples)})  ratio vs {baseline}: "
              f"{median / base:.2f}")


def layer_tar(path: str, size: int, seed: int, small_files: int = 200) -> None:
    """A layer of ``size`` bytes: a few big random files, many small ones, dirs, symlinks."""
    rng = random.Random(seed)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("data", f"data/l{seed}", f"data/l{seed}/small"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        small_total = 0
        for i in range(small_files):
            data = rng.randbytes(rng.randint(100, 8000))
            small_total += len(data)
            info = tarfile.TarInfo(f"data/l{seed}/small/f{i}.txt")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, _Bytes(data))
        remaining = size - small_total
        for i in range(4):
            chunk = remaining // 4
            info = tarfile.TarInfo(f"data/l{seed}/big{i}.bin")
            info.size = chunk
            info.mode = 0o644
            tar.addfile(info, _Random(rng, chunk))
        for i in range(20):
            info = tarfile.TarInfo(f"data/l{seed}/link{i}")
            info.type = tarfile.SYMTYPE
            info.linkname = f"small/f{i}.txt"
            tar.addfile(info)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self.data) - self.pos
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(out)
        return out


class _Random:
    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def big_image_archive() -> str:
    """busybox plus four 50 MB layers (212 MB), as a docker-archive made by berth; cached."""
    from berth.engine import Engine
    from berth.oci import mediatypes
    from berth.oci.config import HistoryEntry, ImageConfig
    from berth.oci.digest import Digest
    from berth.oci.reference import parse_normalized
    from berth.store.image_writer import LayerSource, base_layers, write_new_image

    os.makedirs(CACHE, exist_ok=True)
    archive = os.path.join(CACHE, "big-image.docker.tar")
    if os.path.exists(archive):
        return archive
    root = os.path.join(CACHE, "make-big-store")
    env = {**os.environ, "BERTH_ROOT": root}
    run([BERTH, "image", "bootstrap", "-q", "busybox"], env=env)
    paths = []
    for i in range(4):
        path = os.path.join(CACHE, f"layer{i}.tar")
        layer_tar(path, 50_000_000, i)
        paths.append(path)

    def opener(path: str) -> Callable[[], object]:
        return lambda: open(path, "rb")

    with Engine(root) as engine:
        base = engine.images.get("busybox")
        config = base.config

        def make_config(diff_ids: list[Digest]) -> ImageConfig:
            config.diff_ids = diff_ids
            config.history += [HistoryEntry(created_by=f"layer {i}") for i in range(4)]
            return config

        write_new_image(
            engine.store, base=base_layers(engine.store, base.record),
            new_layers=[LayerSource(open=opener(p), media_type=mediatypes.OCI_LAYER)  # type: ignore[arg-type]
                        for p in paths],
            make_config=make_config, tags=[parse_normalized("bench/big:1")],
        )
    run([BERTH, "save", "-o", archive + ".part", "bench/big:1"], env=env)
    os.rename(archive + ".part", archive)
    subprocess.run(["rm", "-rf", root], check=False)
    for path in paths:
        os.unlink(path)
    return archive
