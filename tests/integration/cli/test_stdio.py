"""A ``berth`` command started with its standard fds closed (``berth ... >&-``): it runs as
with them on /dev/null (what Docker's Go CLI gets), never with a traceback, and no file it
opens (the store's database, a socket) takes a closed fd's number, where a container given
the command's stdout would write into it.

Checked for the compiled client and the Python launcher through a fork server, and for a
command in its own process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from berth.cli.forkclient import running_servers
from tests.support.berthcli import BERTH, BERTH_PYTHON_LAUNCHER, BerthCLI

pytestmark = pytest.mark.root

# the container prints this; its command line (kept in the store) does not contain it
SCRIPT = 'printf "%s-%s\\n" stdout marker; printf "%s-%s\\n" stderr marker >&2'
MARKERS = (b"stdout-marker", b"stderr-marker")


@pytest.fixture(params=["compiled", "python", "no fork server"])
def command(request: pytest.FixtureRequest, cli: BerthCLI) -> Iterator[tuple[str, dict[str, str]]]:
    directory = tempfile.mkdtemp(prefix="berth-forkserver-", dir="/var/tmp")
    env = cli.env({"BERTH_FORKSERVER_DIR": directory})
    if request.param == "no fork server":
        env["BERTH_NO_FORKSERVER"] = "1"
    binary = BERTH_PYTHON_LAUNCHER if request.param == "python" else BERTH
    try:
        subprocess.run([binary, "version"], env=env, capture_output=True, check=True)
        yield binary, env
    finally:
        for pid in running_servers(directory):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


def _files_containing(root: str, needles: tuple[bytes, ...]) -> list[str]:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if any(needle in data for needle in needles):
                found.append(path)
    return found


@pytest.mark.parametrize("closed", ["1", "1 2", "0 1 2"])
def test_closed_standard_fds(command: tuple[str, dict[str, str]], cli: BerthCLI,
                             busybox: str, closed: str) -> None:
    binary, env = command
    fds = [int(fd) for fd in closed.split()]

    def close_them() -> None:
        for fd in fds:
            os.close(fd)

    for args in (["run", "--rm", "busybox", "sh", "-c", SCRIPT], ["ps", "-a"], ["images"]):
        result = subprocess.run([binary, *args], env=env, capture_output=True, timeout=120,
                                preexec_fn=close_them, check=False)
        assert result.returncode == 0, (args, result.stderr)
        assert b"Traceback" not in result.stderr
        if 1 in fds:
            assert result.stdout == b""
    assert _files_containing(cli.root, MARKERS) == []
