"""Ctrl-C during a RUN, a context file that vanishes, a context of several GB."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tests.integration.build.conftest import BuildCLI, build_containers, mounts_under
from tests.integration.build.test_build_basic import _files
from tests.support.berthcli import BERTH

pytestmark = [pytest.mark.root]


def _popen(bcli: BuildCLI, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BERTH, *args],
        env=bcli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(process: subprocess.Popen[bytes], text: bytes, timeout: float = 60) -> bytes:
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen += line
        if text in seen:
            return seen
    raise AssertionError(f"never saw {text!r} in {seen!r}")


def test_ctrl_c_during_run_stops_the_build_and_cleans_up(
    bcli, busybox, make_context, store_root, no_leaks
):
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    process = _popen(bcli, "build", ctx)
    try:
        _wait_for(process, b"started")
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 130
    assert not build_containers(store_root)
    assert not mounts_under(store_root)
    assert bcli("images", "-aq").split() == [
        bcli("image", "inspect", "-f", "{{.Id}}", "busybox").strip()[7:19]
    ]


def test_a_context_file_that_vanishes_is_a_clear_error(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN echo waiting; sleep 2\nCOPY data /data\n",
            "data": "here\n",
        }
    )
    process = _popen(bcli, "build", ctx)
    _wait_for(process, b"waiting")
    os.unlink(os.path.join(ctx, "data"))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith("Error: Dockerfile:3: ")
    assert '"/data": not found' in last
    assert b"Traceback" not in stderr


@pytest.mark.slow
def test_a_context_of_several_gigabytes_is_streamed(bcli, busybox, make_context, no_leaks):
    size = 3 * 1024**3
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY big /big\nRUN ls -l /big > /ls\n"})
    with open(os.path.join(ctx, "big"), "wb") as f:
        f.truncate(size)  # sparse: costs no disk in the context, 3 GiB in the layer
        f.seek(size // 2)
        f.write(b"middle")
    peak = _peak_rss_of(lambda: _popen(bcli, "build", "-q", ctx))
    assert peak["code"] == 0, peak["stderr"]
    assert peak["rss"] < 150 * 1024 * 1024, f"peak RSS {peak['rss'] / 2**20:.0f} MiB"
    image = peak["stdout"].strip()
    assert str(size) in _files(bcli, image)["ls"].decode()


def _peak_rss_of(start) -> dict:
    process = start()
    peak = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                with open(f"/proc/{process.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except FileNotFoundError:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    stdout, stderr = process.communicate(timeout=1200)
    stop.set()
    thread.join()
    return {
        "code": process.returncode,
        "rss": peak,
        "stdout": stdout.decode(),
        "stderr": stderr.decode(),
    }
