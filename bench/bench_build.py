"""Issue 5 numbers: `berth build` vs BuildKit (dockerd 20.10, DOCKER_BUILDKIT=1) vs buildah.

    .venv/bin/python bench/bench_build.py [--runs N] [--only berth]

The Dockerfile: FROM busybox, three RUN steps, a 50 MB COPY, ENV, WORKDIR, EXPOSE and CMD.
Three cases, each tool on its own private store with busybox already in it:

- cold: no build cache, no image (reset untimed before each run);
- fully cached: the same build again;
- last line changed: the CMD line edited before each run (untimed), everything else cached.

Run as root. berth runs with this interpreter (bytecode precompiled first); BuildKit is a
private dockerd (tests/support/peers.py: own data root and socket, vfs); buildah uses its own
--root/--runroot. Ratios are printed against BuildKit (< 1.0: berth is faster).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

from common import BERTH, report, run, timed  # noqa: E402

BUILDAH = "/usr/bin/buildah"
DOCKERFILE = """\
FROM busybox
RUN echo one > /one
RUN echo two > /two && mkdir -p /data
RUN for i in 1 2 3; do echo "line $i" >> /three; done
COPY big.bin /data/big.bin
ENV APP_ENV=production
WORKDIR /app
EXPOSE 8080
CMD ["sh", "-c", "echo {greeting}"]
"""

# `berth build` through the command tree, with the build commands added if the tree does
# not have them yet (the lead wires them into cli/commands.py).
_SHIM = """\
import sys
from berth.cli import commands
if commands.ROOT.find("build") is None:
    from berth.cli.build_commands import BUILD, BUILDER
    commands.ROOT.commands.extend([BUILD, BUILDER])
from berth.cli.main import main
sys.exit(main())
"""


class Context:
    def __init__(self, work: str) -> None:
        self.dir = os.path.join(work, "context")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "big.bin"), "wb") as f:
            for _ in range(50):
                f.write(os.urandom(1 << 20))
        self.counter = 0
        self.write("hello")

    def write(self, greeting: str) -> None:
        with open(os.path.join(self.dir, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(greeting=greeting))

    def change_last_line(self) -> None:
        self.counter += 1
        self.write(f"hello-{self.counter}")


def berth_command(work: str) -> list[str]:
    probe = subprocess.run([BERTH, "build", "--help"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [BERTH]
    shim = os.path.join(work, "berth_shim.py")
    with open(shim, "w") as f:
        f.write(_SHIM)
    return [sys.executable, shim]


def bench_berth(work: str, context: Context, archive: str, runs: int) -> dict[str, list[float]]:
    root = os.path.join(work, "berth-store")
    base = berth_command(work)
    env = {**os.environ, "BERTH_ROOT": root}
    build = [*base, "build", "-q", "-t", "bench", context.dir]

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        run([BERTH, "load", "-q", "-i", archive], env=env)

    context.write("hello")
    cold = timed(lambda: run(build, env=env), runs, warmup=0, before=reset)
    cached = timed(lambda: run(build, env=env), runs)
    changed = timed(lambda: run(build, env=env), runs, before=context.change_last_line)
    context.write("hello")
    from berth.store.paths import StorePaths

    shutil.rmtree(StorePaths.at(root).run_dir, ignore_errors=True)
    return {"cold": cold, "cached": cached, "changed": changed}


def bench_buildkit(context: Context, archive: str, runs: int) -> dict[str, list[float]]:
    from tests.support.peers import dockerd

    with dockerd() as d:
        d.docker("load", "-i", archive)
        env = {"DOCKER_BUILDKIT": "1"}
        build = ["build", "-q", "--network", "host", "-t", "bench", context.dir]

        def reset() -> None:
            d.docker("rmi", "-f", "bench", check=False)
            d.docker("builder", "prune", "-af", check=False)

        context.write("hello")
        cold = timed(lambda: d.docker(*build, env=env), runs, warmup=0, before=reset)
        cached = timed(lambda: d.docker(*build, env=env), runs)
        changed = timed(lambda: d.docker(*build, env=env), runs, before=context.change_last_line)
        context.write("hello")
        return {"cold": cold, "cached": cached, "changed": changed}


def bench_buildah(work: str, context: Context, archive: str, runs: int) -> dict[str, list[float]]:
    root = os.path.join(work, "buildah")

    def buildah(*args: str) -> subprocess.CompletedProcess[bytes]:
        return run(
            [
                BUILDAH,
                "--root",
                f"{root}/root",
                "--runroot",
                f"{root}/run",
                "--storage-driver",
                "vfs",
                *args,
            ]
        )

    build = ["bud", "--layers", "-q", "--network", "host", "-t", "bench", context.dir]

    def reset() -> None:
        subprocess.run(
            [
                BUILDAH,
                "--root",
                f"{root}/root",
                "--runroot",
                f"{root}/run",
                "--storage-driver",
                "vfs",
                "rmi",
                "-af",
            ],
            capture_output=True,
            check=False,
        )
        buildah("pull", "-q", f"docker-archive:{archive}")
        buildah("tag", "busybox:latest", "docker.io/library/busybox:latest")

    context.write("hello")
    try:
        cold = timed(lambda: buildah(*build), runs, warmup=0, before=reset)
        cached = timed(lambda: buildah(*build), runs)
        changed = timed(lambda: buildah(*build), runs, before=context.change_last_line)
    finally:
        context.write("hello")
        subprocess.run(
            [
                BUILDAH,
                "--root",
                f"{root}/root",
                "--runroot",
                f"{root}/run",
                "--storage-driver",
                "vfs",
                "rmi",
                "-af",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
    return {"cold": cold, "cached": cached, "changed": changed}


def busybox_archive(work: str) -> str:
    root = os.path.join(work, "seed")
    path = os.path.join(work, "busybox.tar")
    env = {**os.environ, "BERTH_ROOT": root}
    run([BERTH, "image", "bootstrap", "-q", "busybox"], env=env)
    run([BERTH, "save", "-o", path, "busybox"], env=env)
    shutil.rmtree(root, ignore_errors=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["berth", "buildkit", "buildah"], action="append")
    args = parser.parse_args()
    compileall.compile_dir(os.path.join(REPO, "src", "berth"), quiet=1)
    tools = args.only or ["berth", "buildkit", "buildah"]
    work = tempfile.mkdtemp(prefix="berth-bench-build-", dir="/var/tmp")
    try:
        archive = busybox_archive(work)
        context = Context(work)
        time.sleep(2.1)  # files older than the digest cache's racy window, as a real context
        results: dict[str, dict[str, list[float]]] = {}
        runners: dict[str, Callable[[], dict[str, list[float]]]] = {
            "berth": lambda: bench_berth(work, context, archive, args.runs),
            "buildkit": lambda: bench_buildkit(context, archive, args.runs),
            "buildah": lambda: bench_buildah(work, context, archive, args.runs),
        }
        for tool in tools:
            try:
                results[tool] = runners[tool]()
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                print(f"{tool}: failed: {exc} {detail.decode(errors='replace')[-500:]}")
        titles = {
            "cold": "cold build (no cache, busybox present)",
            "cached": "fully cached rebuild",
            "changed": "last line (CMD) changed",
        }
        baseline = "buildkit" if "buildkit" in results else next(iter(results))
        for case, title in titles.items():
            rows = {f"{tool} build": samples[case] for tool, samples in results.items()}
            report(title, rows, f"{baseline} build")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
