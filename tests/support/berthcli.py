"""Running the real ``berth`` command against a store of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

VENV_BIN = os.path.dirname(sys.executable)
BERTH = os.path.join(VENV_BIN, "berth")
# the Python launcher scripts/install writes; with a C compiler, BERTH is the compiled client
# of the fork server (src/berth/cli/forkclient.c), which runs this launcher for what it cannot
BERTH_PYTHON_LAUNCHER = os.path.join(sys.prefix, "libexec", "berth", "berth")


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        assert self.returncode == 0, (
            f"berth {' '.join(self.args)} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )
        return self


class BerthCLI:
    """``cli("images", "-q")`` runs ``berth images -q`` with this store as BERTH_ROOT."""

    def __init__(self, root: str) -> None:
        self.root = root

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["BERTH_ROOT"] = self.root
        env.pop("DOCKER_HOST", None)
        if extra:
            env.update(extra)
        return env

    def run(self, *args: str, input: bytes | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> Result:
        process = subprocess.run(
            [BERTH, *args], input=input, capture_output=True, timeout=timeout,
            env=self.env(env), check=False,
        )
        return Result(list(args), process.returncode,
                      process.stdout.decode(errors="replace"),
                      process.stderr.decode(errors="replace"))

    def __call__(self, *args: str, input: bytes | None = None, timeout: float = 300) -> str:
        return self.run(*args, input=input, timeout=timeout).check().stdout

    def store_cgroup(self) -> str:
        """The cgroup parent of this store's containers (``berth-<hash>``)."""
        from berth.store.paths import StorePaths

        return StorePaths.at(self.root).host_name("berth")

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen([BERTH, *args], env=self.env(), **kwargs)  # type: ignore[call-overload]
