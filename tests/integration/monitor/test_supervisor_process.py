"""The supervisor as it really runs: a daemon under its anchor, started on demand, alone per
store, surviving kill -9 without losing a container, an output line or an exit code.
Containers here are fake (host processes): the container side is in test_containers.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from berth.containers.logs import read_logs
from berth.monitor.client import SupervisorClient
from berth.monitor.spawn import start_supervisor
from tests.integration.monitor.conftest import FAKE_BACKEND, FakeStore
from tests.support.supervisors import alive, kill_and_wait

pytestmark = pytest.mark.root


def wait_until(condition: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def lines_of(store: FakeStore, container_id: str) -> list[bytes]:
    return [data for _, data in read_logs(store.backend.log_path(container_id))]


def test_started_on_demand_as_a_daemon_under_its_anchor(fake_store: FakeStore) -> None:
    fake_store.start_supervisor()
    found = fake_store.processes()
    assert len(found["anchor"]) == 1 and len(found["supervisor"]) == 1
    supervisor = found["supervisor"][0]
    with open(f"/proc/{supervisor}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) == found["anchor"][0]  # its parent is the anchor
    assert int(fields[3]) != os.getsid(0)  # a session of its own
    assert fake_store.client.ping()["anchored"] is True
    for fd in os.listdir(f"/proc/{supervisor}/fd"):  # stdio: /dev/null and the log
        target = os.readlink(f"/proc/{supervisor}/fd/{fd}")
        if int(fd) < 3:
            assert target in ("/dev/null", fake_store.monitor.log)


def _ensure(root: str) -> int:
    from berth.store.paths import StorePaths

    paths = StorePaths.at(root)
    client = SupervisorClient(paths)
    start_supervisor(paths, extra_args=[*FAKE_BACKEND, "--idle-exit", "never"])
    return int(client.ping()["pid"])


def test_racing_clis_end_up_with_exactly_one_supervisor(fake_store: FakeStore) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        pids = pool.map(_ensure, [fake_store.paths.root] * 8)
    assert len(set(pids)) == 1
    found = fake_store.processes()
    assert len(found["anchor"]) == 1 and found["supervisor"] == [pids[0]]


def test_kill_9_of_the_supervisor_loses_nothing(fake_store: FakeStore) -> None:
    fake_store.start_supervisor()
    backend, client = fake_store.backend, fake_store.client
    backend.create(
        "long",
        [
            "sh",
            "-c",
            "i=0; while [ $i -lt 40 ]; do echo line $i; i=$((i+1)); sleep 0.05; done; exit 7",
        ],
    )
    backend.create("quick", ["sh", "-c", "sleep 0.3; echo bye; exit 5"])
    client.start("long")
    client.start("quick")
    first = fake_store.supervisor_pid()
    kill_and_wait([first])
    wait_until(lambda: backend.get("quick").state.get("ExitCode") == 5, "quick's exit")
    assert fake_store.client.ping()["pid"] != first  # the anchor started another
    assert client.wait("long") == 7
    assert lines_of(fake_store, "long") == [f"line {n}\n".encode() for n in range(40)]
    assert lines_of(fake_store, "quick") == [b"bye\n"]
    assert backend.get("long").state["Error"] == ""


def test_containers_outlive_supervisor_and_anchor(fake_store: FakeStore) -> None:
    """With both killed, output waits in the full FIFO (the container blocks, it is not
    killed by SIGPIPE); a new supervisor adopts it and gets every byte."""
    fake_store.start_supervisor()
    backend = fake_store.backend
    script = (
        "sleep 1; i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; "
        "i=$((i+1)); done; echo done > $MARK; sleep 60"
    )
    mark = os.path.join(fake_store.paths.root, "mark")
    os.environ["MARK"] = mark
    try:
        backend.create("writer", ["sh", "-c", script])
        found = fake_store.processes()
        kill_and_wait(found["anchor"])
        kill_and_wait(found["supervisor"])
        # no supervisor: the container starts through a new one, which is then killed too
        fake_store.start_supervisor()
        fake_store.client.start("writer")
        found = fake_store.processes()
        kill_and_wait(found["anchor"] + found["supervisor"])
        pid = int(backend.get("writer").state["Pid"])
        time.sleep(2.0)  # it writes after a second: into a FIFO nobody reads
        assert alive(pid)  # blocked on a full pipe, not dead
        assert not os.path.exists(mark)  # 3000 lines do not fit in a pipe
        fake_store.start_supervisor()  # adopts it and drains the FIFO
        wait_until(lambda: os.path.exists(mark), "the writer to finish")
        wait_until(lambda: len(lines_of(fake_store, "writer")) == 3000, "all lines logged")
        assert alive(pid)
    finally:
        del os.environ["MARK"]
    fake_store.client.stop("writer", timeout=5)
    assert backend.get("writer").status == "exited"


def test_exit_while_no_supervisor_runs_is_recorded(fake_store: FakeStore) -> None:
    fake_store.start_supervisor()
    backend = fake_store.backend
    backend.create("c1", ["sh", "-c", "sleep 0.5; exit 42"])
    fake_store.client.start("c1")
    anchor = fake_store.processes()["anchor"][0]
    os.kill(anchor, signal.SIGSTOP)  # the anchor holds off: no supervisor runs meanwhile
    try:
        kill_and_wait([fake_store.supervisor_pid()])
        time.sleep(1.0)  # c1 exits; the anchor (stopped) will reap it when it continues
    finally:
        os.kill(anchor, signal.SIGCONT)
    wait_until(lambda: backend.get("c1").state.get("Status") == "exited", "the exit record")
    assert backend.get("c1").state["ExitCode"] == 42


def test_restart_policies_work_with_no_cli_running(fake_store: FakeStore) -> None:
    fake_store.start_supervisor()
    backend = fake_store.backend
    backend.create("flaky", ["sh", "-c", "sleep 0.2; exit 1"], restart="on-failure", retries=3)
    fake_store.client.start("flaky")
    kill_and_wait([fake_store.supervisor_pid()])  # even across a supervisor's death
    wait_until(
        lambda: (
            backend.get("flaky").extra.get("RestartCount") == 3
            and backend.get("flaky").status == "exited"
        ),
        "three restarts",
        timeout=30,
    )
    assert backend.get("flaky").state["ExitCode"] == 1


def test_idle_supervisor_and_anchor_exit(fake_store: FakeStore) -> None:
    fake_store.extra_args = [*FAKE_BACKEND, "--idle-exit", "1"]
    fake_store.start_supervisor()
    backend = fake_store.backend
    backend.create("c1", ["true"])
    fake_store.client.start("c1")
    assert fake_store.client.wait("c1") == 0
    wait_until(lambda: fake_store.processes() == {"anchor": [], "supervisor": []}, "idle exit")
    assert not os.path.exists(fake_store.monitor.socket)
    assert not SupervisorClient.running(fake_store.paths)
    fake_store.start_supervisor()  # and a later command starts a new one
    fake_store.client.start("c1")
    assert fake_store.client.wait("c1") == 0


def test_a_stop_waiting_through_a_supervisor_crash_still_returns(fake_store: FakeStore) -> None:
    fake_store.start_supervisor()
    backend = fake_store.backend
    backend.create("stubborn", ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])
    fake_store.client.start("stubborn")
    result: list[BaseException | None] = []

    def stop() -> None:
        try:
            fake_store.client.stop("stubborn", timeout=2)
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    import threading

    thread = threading.Thread(target=stop)
    thread.start()
    time.sleep(0.5)
    kill_and_wait([fake_store.supervisor_pid()])
    thread.join(30)
    assert result == [None]
    assert backend.get("stubborn").status == "exited"
