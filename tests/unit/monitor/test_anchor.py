"""The anchor (src/berth/monitor/anchor): built from its source, and what it does for a
supervisor, driven here by a small stand-in supervisor script."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import pytest

from berth.monitor.anchor import build

STANDIN = textwrap.dedent(
    """
    import array, os, socket, subprocess, sys, time
    work = sys.argv[1]
    fd = int(sys.argv[sys.argv.index("--anchor-fd") + 1])
    channel = socket.socket(fileno=fd)
    generation = len(os.listdir(os.path.join(work, "runs")))
    open(os.path.join(work, "runs", str(generation)), "w").close()
    with open(os.path.join(work, "pids"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    received = []
    while True:
        data, ancillary, _, _ = channel.recvmsg(256, socket.CMSG_SPACE(16))
        fds = []
        for _level, _kind, payload in ancillary:
            fds += list(array.array("i", payload[: len(payload) // 4 * 4]))
        received.append((data.decode(), len(fds)))
        if data == b"R":
            break
    with open(os.path.join(work, f"received.{generation}"), "w") as f:
        f.write(repr(received))
    if generation == 0:
        child = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 7"])
        with open(os.path.join(work, "child"), "w") as f:
            f.write(str(child.pid))
        r, w = os.pipe()
        channel.sendmsg([b"Stty:abc"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array("i", [w]).tobytes())])
        time.sleep(0.1)
        os._exit(3)  # "crash": the anchor restarts us, and hands the fd and the exit over
    channel.send(b"Dtty:abc")
    time.sleep(0.1)
    sys.exit(0)  # done: nothing is left, so the anchor exits too
    """
)


@pytest.fixture
def work() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="berth-anchor-test-", dir="/var/tmp")
    os.mkdir(os.path.join(path, "runs"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def anchor_binary(work: str) -> str:
    source = build.binary_path(os.uname().machine)
    target = os.path.join(work, "berth-anchor")
    shutil.copyfile(source, target)
    os.chmod(target, 0o700)
    return target


@pytest.mark.skipif(build.find_compiler(os.uname().machine) is None, reason="no C compiler")
def test_the_committed_binary_is_built_from_the_source(work: str) -> None:
    machine = os.uname().machine
    built = build.build(machine, work)
    with open(built, "rb") as a, open(build.binary_path(machine), "rb") as b:
        assert a.read() == b.read(), "anchor.c changed: run src/berth/monitor/anchor/build.py"


def test_anchor_restarts_the_supervisor_and_hands_over_fds_and_exits(work: str) -> None:
    script = os.path.join(work, "standin.py")
    with open(script, "w") as f:
        f.write(STANDIN)
    with open(os.path.join(work, "log"), "wb") as log:
        started = subprocess.run(
            [anchor_binary(work), sys.executable, script, work],
            stdout=log,
            stderr=log,
            check=False,
            timeout=10,
        )
    assert started.returncode == 0  # the anchor detached itself at once
    deadline = time.monotonic() + 15
    while len(os.listdir(os.path.join(work, "runs"))) < 2 or not os.path.exists(
        os.path.join(work, "received.1")
    ):
        assert time.monotonic() < deadline, open(os.path.join(work, "log")).read()
        time.sleep(0.05)
    with open(os.path.join(work, "received.0")) as f:
        assert f.read() == "[('R', 0)]"
    with open(os.path.join(work, "child")) as f:
        child = int(f.read())
    with open(os.path.join(work, "received.1")) as f:
        received = eval(f.read())  # a repr of a list of tuples written by the stand-in
    assert received[0] == ("Ftty:abc", 1)
    exits = [text for text, _ in received if text.startswith("X ")]
    assert len(exits) == 1
    pid, _start, status, _sec, _nsec = (int(x) for x in exits[0].split()[1:])
    assert pid == child and os.waitstatus_to_exitcode(status) == 7
    assert received[-1] == ("R", 0)
    with open(os.path.join(work, "pids")) as f:
        supervisors = [int(line) for line in f]
    anchor = _parent_of(supervisors[-1])
    deadline = time.monotonic() + 10
    while anchor is not None and _alive(anchor):  # nothing left to keep: the anchor exits
        assert time.monotonic() < deadline, "the anchor did not exit"
        time.sleep(0.05)
    with open(os.path.join(work, "log")) as f:
        assert "exited with status 3; restarting it" in f.read()


def test_anchor_passes_sigterm_on_and_exits_with_the_supervisor(work: str) -> None:
    script = os.path.join(work, "sleeper.py")
    with open(script, "w") as f:
        f.write(
            "import os, signal, sys, time\n"
            f"open({os.path.join(work, 'pid')!r}, 'w').write(str(os.getpid()))\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
            "time.sleep(60)\n"
        )
    subprocess.run([anchor_binary(work), sys.executable, script], check=True, timeout=10)
    pid_file = os.path.join(work, "pid")
    deadline = time.monotonic() + 10
    while not os.path.exists(pid_file) or not open(pid_file).read():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    supervisor = int(open(pid_file).read())
    anchor = _parent_of(supervisor)
    assert anchor is not None
    with open(f"/proc/{anchor}/status") as f:
        assert any(line.startswith("Name:\tberth-anchor") for line in f)
    os.kill(anchor, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(anchor) or _alive(supervisor):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
