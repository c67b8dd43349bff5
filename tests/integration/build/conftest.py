"""Fixtures of the build tests: the ``berth`` command with build, contexts, leak checks.

``bcli`` runs ``berth`` on the test's store. ``make_context`` writes a context directory
(``{"Dockerfile": "...", "dir/file": b"..."}``). ``no_leaks`` fails a test that leaves a
mount, a build container or a scratch directory behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.support.berthcli import BERTH, BerthCLI, Result


class BuildCLI(BerthCLI):
    """``berth`` with a working directory of the test's choice (``-f -`` and relative paths)."""

    def run(  # type: ignore[override]
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 600,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        process = subprocess.run(
            [BERTH, *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            env=self.env(env),
            check=False,
            cwd=cwd,
        )
        return Result(
            list(args),
            process.returncode,
            process.stdout.decode(errors="replace"),
            process.stderr.decode(errors="replace"),
        )

    def build(
        self,
        context: str,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        return self.run("build", *args, context, input=input, env=env, cwd=cwd)


@pytest.fixture
def bcli(store_root: str) -> Iterator[BuildCLI]:
    from berth.store.paths import StorePaths

    yield BuildCLI(store_root)
    shutil.rmtree(StorePaths.at(store_root).run_dir, ignore_errors=True)


@pytest.fixture
def make_context() -> Iterator[Callable[[dict[str, str | bytes]], str]]:
    made: list[str] = []

    def make(files: dict[str, str | bytes]) -> str:
        root = tempfile.mkdtemp(prefix="berth-ctx-", dir="/var/tmp")
        made.append(root)
        for name, content in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            with open(path, "wb") as f:
                f.write(data)
        return root

    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def build_containers(store_root: str) -> list[str]:
    from berth.runtime.container import Runtime
    from berth.store.paths import StorePaths

    state = os.path.join(StorePaths.at(store_root).run_dir, "build-runtime")
    if not os.path.isdir(state):
        return []
    return [c["id"] for c in Runtime(state).list_containers()]


def scratch_dirs(store_root: str) -> list[str]:
    try:
        return [n for n in os.listdir(os.path.join(store_root, "tmp")) if "build" in n]
    except FileNotFoundError:
        return []


@pytest.fixture
def no_leaks(store_root: str) -> Iterator[None]:
    yield
    leaked = mounts_under(store_root)
    for point in reversed(leaked):
        subprocess.run(["umount", "-l", point], check=False)
    assert not leaked, f"mounts left behind: {leaked}"
    assert not build_containers(store_root), "build containers left behind"
    assert not scratch_dirs(store_root), f"scratch dirs left: {scratch_dirs(store_root)}"
