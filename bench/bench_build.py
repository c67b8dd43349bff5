"""Issue 5 numbers: `berth build` vs BuildKit (dockerd 20.10, DOCKER_BUILDKIT=1) vs buildah.

    .venv/bin/python bench/bench_build.py [--runs N] [--only berth]

The Dockerfile: FROM busybox, three RUN steps, a 50 MB COPY, ENV, WORKDIR, EXPOSE and CMD.
Three cases, each tool on its own private store with busybox already in it:

- cold: no build cache, no image (reset untimed before each run);
- fully cached: the same build again;
- last line changed: the CMD line edited before each run (untimed), everything else cached.

The tools take turns run by run (each round starts with the next tool), so noise that drifts
while the benchmark runs (other tenants of the machine) weighs on every tool alike.

Run as root. berth runs with this interpreter (bytecode precompiled first); BuildKit is a
private dockerd (tests/support/peers.py: own data root and socket, vfs), started once for the
whole run; buildah uses its own --root/--runroot. Ratios are printed against BuildKit (< 1.0:
berth is faster).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
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

from common import BERTH, report, run  # noqa: E402

BUILDAH = "/usr/bin/buildah"
SETTLE = 0.5  # seconds of quiet before each timed build
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


class Tool:
    """One builder under test: how to build the context, and how to forget everything."""

    def __init__(self, name: str, build: Callable[[], object], reset: Callable[[], object]):
        self.name = name
        self.build = build
        self.reset = reset


def berth_tool(work: str, context: Context, archive: str) -> Tool:
    root = os.path.join(work, "berth-store")
    env = {**os.environ, "BERTH_ROOT": root}
    command = [*berth_command(work), "build", "-q", "-t", "bench", context.dir]

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        run([BERTH, "load", "-q", "-i", archive], env=env)

    return Tool("berth", lambda: run(command, env=env), reset)


def berth_cleanup(work: str) -> None:
    from berth.store.paths import StorePaths

    shutil.rmtree(StorePaths.at(os.path.join(work, "berth-store")).run_dir, ignore_errors=True)


def buildkit_tool(stack: contextlib.ExitStack, context: Context, archive: str) -> Tool:
    from tests.support.peers import dockerd

    d = stack.enter_context(dockerd())
    d.docker("load", "-i", archive)
    env = {"DOCKER_BUILDKIT": "1"}
    command = ["build", "-q", "--network", "host", "-t", "bench", context.dir]

    def reset() -> None:
        d.docker("rmi", "-f", "bench", check=False)
        d.docker("builder", "prune", "-af", check=False)

    return Tool("buildkit", lambda: d.docker(*command, env=env), reset)


def buildah_tool(stack: contextlib.ExitStack, work: str, context: Context, archive: str) -> Tool:
    root = os.path.join(work, "buildah")
    base = [
        BUILDAH,
        "--root",
        f"{root}/root",
        "--runroot",
        f"{root}/run",
        "--storage-driver",
        "vfs",
    ]

    def remove_all() -> None:
        subprocess.run([*base, "rmi", "-af"], capture_output=True, check=False)

    def cleanup() -> None:
        remove_all()
        shutil.rmtree(root, ignore_errors=True)

    stack.callback(cleanup)
    command = [*base, "bud", "--layers", "-q", "--network", "host", "-t", "bench", context.dir]

    def reset() -> None:
        remove_all()
        run([*base, "pull", "-q", f"docker-archive:{archive}"])
        run([*base, "tag", "busybox:latest", "docker.io/library/busybox:latest"])

    return Tool("buildah", lambda: run(command), reset)


def interleaved(
    tools: list[Tool],
    runs: int,
    warmup: int,
    before: Callable[[Tool], object] | None,
    failed: dict[str, str],
) -> dict[str, list[float]]:
    """Each round times every tool once (``before`` untimed first), starting with a different
    tool each round: noise that drifts over the minutes of a run hits all tools alike. Each run
    starts after a pause, so what a daemon still does after a build (dockerd's) does not fall
    into the next tool's time."""
    samples: dict[str, list[float]] = {tool.name: [] for tool in tools}
    for i in range(warmup + runs):
        for k in range(len(tools)):
            tool = tools[(i + k) % len(tools)]
            if tool.name in failed:
                continue
            try:
                if before is not None:
                    before(tool)
                time.sleep(SETTLE)
                start = time.perf_counter()
                tool.build()
                elapsed = time.perf_counter() - start
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                failed[tool.name] = f"{exc} {detail.decode(errors='replace')[-500:]}"
                continue
            if i >= warmup:
                samples[tool.name].append(elapsed)
    return {name: times for name, times in samples.items() if times and name not in failed}


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
    wanted = args.only or ["berth", "buildkit", "buildah"]
    work = tempfile.mkdtemp(prefix="berth-bench-build-", dir="/var/tmp")
    failed: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            archive = busybox_archive(work)
            context = Context(work)
            time.sleep(2.1)  # files older than the digest cache's racy window, as a real context
            makers: dict[str, Callable[[], Tool]] = {
                "berth": lambda: berth_tool(work, context, archive),
                "buildkit": lambda: buildkit_tool(stack, context, archive),
                "buildah": lambda: buildah_tool(stack, work, context, archive),
            }
            tools = []
            for name in wanted:
                try:
                    tools.append(makers[name]())
                except (subprocess.CalledProcessError, RuntimeError) as exc:
                    failed[name] = str(exc)
            results = run_cases(tools, context, args.runs, failed)
        for name, why in failed.items():
            print(f"{name}: failed: {why}")
        titles = {
            "cold": "cold build (no cache, busybox present)",
            "cached": "fully cached rebuild",
            "changed": "last line (CMD) changed",
        }
        for case, title in titles.items():
            rows = {f"{tool} build": samples for tool, samples in results[case].items()}
            if not rows:
                continue
            baseline = "buildkit" if "buildkit" in results[case] else next(iter(results[case]))
            report(title, rows, f"{baseline} build")
    finally:
        berth_cleanup(work)
        shutil.rmtree(work, ignore_errors=True)


def run_cases(
    tools: list[Tool], context: Context, runs: int, failed: dict[str, str]
) -> dict[str, dict[str, list[float]]]:
    context.write("hello")
    cold = interleaved(tools, runs, 0, lambda tool: tool.reset(), failed)
    cached = interleaved(tools, runs, 1, None, failed)
    changed = interleaved(tools, runs, 1, lambda _: context.change_last_line(), failed)
    context.write("hello")
    return {"cold": cold, "cached": cached, "changed": changed}


if __name__ == "__main__":
    main()
