"""Issue 2 numbers: `berth load` vs `podman load` of a 212 MB image, and `berth images`
with 500 images vs `podman images` on a store of the same 500 images.

    .venv/bin/python bench/bench_images.py [--quick]

Run as root. Both tools use private stores in /var/tmp (removed at the end); berth is run with
the virtual environment's interpreter (not the pyenv shim on PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BERTH, big_image_archive, report, run, timed

PODMAN = "/usr/bin/podman"


def podman_cmd(root: str) -> list[str]:
    return [PODMAN, "--root", f"{root}/root", "--runroot", f"{root}/run", "--storage-driver",
            "overlay", "--events-backend", "none"]


def bench_load(runs: int) -> None:
    archive = big_image_archive()
    work = tempfile.mkdtemp(prefix="berth-bench-load-", dir="/var/tmp")
    berth_root = os.path.join(work, "berth")
    podman_root = os.path.join(work, "podman")
    env = {**os.environ, "BERTH_ROOT": berth_root}
    try:
        def berth_reset() -> None:
            shutil.rmtree(berth_root, ignore_errors=True)

        def podman_reset() -> None:
            subprocess_quiet([*podman_cmd(podman_root), "system", "reset", "-f"])
            shutil.rmtree(podman_root, ignore_errors=True)

        results = {
            "berth load": timed(lambda: run([BERTH, "load", "-q", "-i", archive], env=env),
                                runs, before=berth_reset),
            "podman load": timed(lambda: run([*podman_cmd(podman_root), "load", "-q", "-i",
                                              archive]), runs, before=podman_reset),
        }
        report("load of a 212 MB, 5-layer docker-archive (cold store each run)", results,
               "podman load")
        podman_reset()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def subprocess_quiet(cmd: list[str]) -> None:
    import subprocess

    subprocess.run(cmd, capture_output=True, check=False)


def bench_images(count: int, runs: int) -> None:
    work = tempfile.mkdtemp(prefix="berth-bench-images-", dir="/var/tmp")
    berth_root = os.path.join(work, "berth")
    podman_root = os.path.join(work, "podman")
    env = {**os.environ, "BERTH_ROOT": berth_root}
    try:
        from berth.engine import Engine
        from berth.oci.reference import parse_normalized

        run([BERTH, "image", "bootstrap", "-q", "busybox"], env=env)
        archive = os.path.join(work, "busybox.tar")
        run([BERTH, "save", "-o", archive, "busybox"], env=env)
        run([*podman_cmd(podman_root), "load", "-q", "-i", archive])
        # 500 distinct images: one tiny import each (same content, different config).
        with Engine(berth_root) as engine:
            import io
            import tarfile

            for i in range(count):
                buffer = io.BytesIO()
                with tarfile.open(fileobj=buffer, mode="w") as tar:
                    info = tarfile.TarInfo(f"file{i}")
                    data = str(i).encode()
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                buffer.seek(0)
                engine.images.import_image(buffer, f"bench/img{i}:v1")
        run([BERTH, "save", "-o", os.path.join(work, "all.tar"),
             *[f"bench/img{i}:v1" for i in range(count)]], env=env)
        run([*podman_cmd(podman_root), "load", "-q", "-i", os.path.join(work, "all.tar")])
        del parse_normalized
        results = {
            f"berth images ({count})": timed(lambda: run([BERTH, "images"], env=env), runs, 2),
            f"podman images ({count})": timed(
                lambda: run([*podman_cmd(podman_root), "images"]), runs, 2),
        }
        report(f"listing {count + 1} images", results, f"podman images ({count})")
        subprocess_quiet([*podman_cmd(podman_root), "system", "reset", "-f"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs, 50 images")
    args = parser.parse_args()
    runs = 2 if args.quick else 5
    bench_images(50 if args.quick else 500, 5 if args.quick else 15)
    bench_load(runs)


if __name__ == "__main__":
    main()
