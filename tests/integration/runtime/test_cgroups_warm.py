"""berth.runtime.cgroups.warm on the real kernel: the no-op moves that keep the cgroup
migration lock warm move nothing, stop when told, and stop by themselves after LIMIT.

Each case runs in a child Python so the threads it counts are its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.root]


def _run(body: str) -> str:
    code = textwrap.dedent(
        """
        import os, time
        from berth.runtime.cgroups import warm

        def threads():
            return len(os.listdir("/proc/self/task"))

        def wait_for(check):
            deadline = time.monotonic() + 5
            while not check():
                assert time.monotonic() < deadline, "timed out"
                time.sleep(0.005)
        """
    ) + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_own_procs_file_is_this_process_cgroup() -> None:
    out = _run(
        """
        path = warm.own_procs_file()
        print(path)
        with open(path) as f:
            print(os.getpid() in {int(p) for p in f.read().split()})
        """
    )
    path, listed = out.split()
    assert path.startswith("/sys/fs/cgroup/") and path.endswith("/cgroup.procs")
    assert listed == "True"


def test_keeps_writing_moves_nothing_and_stops_when_told() -> None:
    out = _run(
        """
        before = open("/proc/self/cgroup").read()
        alone = threads()
        warm.start()
        warm.start()  # a second start while running adds no thread
        wait_for(lambda: threads() == alone + 1)
        time.sleep(0.05)
        print(threads() - alone, open("/proc/self/cgroup").read() == before)
        warm.stop()
        wait_for(lambda: threads() == alone)
        print("stopped")
        """
    )
    assert out.split() == ["1", "True", "stopped"]


def test_stops_by_itself_after_its_limit() -> None:
    out = _run(
        """
        warm.LIMIT = 0.1
        alone = threads()
        warm.start()
        wait_for(lambda: threads() == alone + 1)
        wait_for(lambda: threads() == alone)  # nobody called stop()
        print("ended")
        """
    )
    assert out.split() == ["ended"]


def test_a_start_while_running_keeps_it_going_for_another_limit() -> None:
    """A fork server starts it whenever a spare takes a command: with commands coming
    faster than LIMIT, it goes on until LIMIT after the last."""
    out = _run(
        """
        warm.LIMIT = 0.3
        alone = threads()
        began = time.monotonic()
        warm.start()
        wait_for(lambda: threads() == alone + 1)
        time.sleep(0.2)
        warm.start()  # at 0.2 s: now until 0.5 s
        time.sleep(0.2)
        print(threads() - alone)  # at 0.4 s, past the first start's 0.3
        wait_for(lambda: threads() == alone)
        print(time.monotonic() - began >= 0.45)
        """
    )
    assert out.split() == ["1", "True"]


def test_a_fork_starts_its_own() -> None:
    """The thread is not in a fork (a fork server's spare): its start() starts one."""
    out = _run(
        """
        alone = threads()
        warm.start()
        wait_for(lambda: threads() == alone + 1)
        pid = os.fork()
        if pid == 0:
            mine = threads()
            warm.start()
            wait_for(lambda: threads() == mine + 1)
            warm.stop()
            wait_for(lambda: threads() == mine)
            os._exit(0)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        warm.stop()
        """
    )
    assert out.split() == ["0"]


def test_starts_again_once_it_stopped_by_itself() -> None:
    """A fork server starts it for its next command; a command that comes after its limit
    (a quiet host) starts it again for its own container (berth run's handler does)."""
    out = _run(
        """
        warm.LIMIT = 0.1
        alone = threads()
        warm.start()
        wait_for(lambda: threads() == alone + 1)
        wait_for(lambda: threads() == alone)
        warm.start()
        wait_for(lambda: threads() == alone + 1)
        warm.stop()
        wait_for(lambda: threads() == alone)
        print("restarted")
        """
    )
    assert out.split() == ["restarted"]
