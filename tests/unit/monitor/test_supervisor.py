"""The supervisor, run in this process on a temp dir, with fake containers (host processes,
see fakes.py): lifecycle, logs, restart policies, healthchecks, attach, wait, boot,
re-adoption. The real spawn path (anchor, kill -9) is in tests/integration/monitor."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from berth.containers.logs import read_logs
from berth.errors import CommandNotFound, ContainerStateConflict
from berth.monitor import loop
from berth.monitor.client import SupervisorClient
from berth.monitor.paths import MonitorPaths
from berth.monitor.spawn import can_connect
from berth.monitor.supervisor import Supervisor
from berth.store.paths import StorePaths
from tests.unit.monitor.fakes import FakeBackend


@dataclass
class Harness:
    backend: FakeBackend
    client: SupervisorClient
    paths: StorePaths
    monitor: MonitorPaths
    threads: list[threading.Thread]

    def serve(self) -> Supervisor:
        supervisor = Supervisor(
            self.paths, self.backend, None, idle_exit=None, monitor_paths=self.monitor
        )
        thread = threading.Thread(target=supervisor.serve, daemon=True)
        thread.start()
        self.threads.append(thread)
        wait_for(lambda: can_connect(self.monitor.socket), "the supervisor to listen")
        return supervisor

    def stop_serving(self) -> None:
        with contextlib.suppress(Exception):
            self.client.shutdown(force=True)
        for thread in self.threads:
            thread.join(10)
        self.threads.clear()

    def state(self, container_id: str) -> dict[str, object]:
        return self.backend.get(container_id).state

    def logs(self, container_id: str) -> list[tuple[str, bytes]]:
        return list(read_logs(self.backend.log_path(container_id)))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def harness(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    # The supervisor serves in a thread of this process: keep its log lines out of the
    # stdout and stderr that attach tests read.
    monkeypatch.setattr(loop, "LOG_STREAM", io.StringIO())
    base = str(tmp_path)
    paths = StorePaths.at(os.path.join(base, "store"))
    monitor = MonitorPaths(os.path.join(base, "run"))
    os.makedirs(monitor.run_dir)
    client = SupervisorClient(paths)
    client.paths = monitor  # this supervisor listens in the temp dir, not in /run
    h = Harness(FakeBackend(paths), client, paths, monitor, [])
    h.serve()
    try:
        yield h
    finally:
        h.stop_serving()
        for record in h.backend.all():  # leave no process behind
            pid = int(record.state.get("Pid") or 0)
            if record.status in ("running", "paused") and pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


# --------------------------------------------------------------------------- lifecycle


def test_start_wait_logs_and_exit_code(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    harness.client.start("c1")
    assert harness.client.wait("c1") == 3
    state = harness.state("c1")
    assert state["Status"] == "exited" and state["ExitCode"] == 3
    assert harness.logs("c1") == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert harness.backend.get("c1").extra["Supervised"] is True
    assert not os.path.exists(harness.monitor.container("c1"))  # run dir cleaned


def test_wait_on_a_stopped_container_returns_its_last_code(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "exit 9"])
    harness.client.start("c1")
    assert harness.client.wait("c1") == 9
    assert harness.client.wait("c1", "not-running") == 9


def test_start_failure_comes_back_as_the_launchers_error(harness: Harness) -> None:
    harness.backend.create("c1", ["berth-no-such-command"])
    with pytest.raises(CommandNotFound, match="berth-no-such-command"):
        harness.client.start("c1")
    assert harness.state("c1")["ExitCode"] == 127


def test_start_of_a_running_container_is_a_no_op(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    harness.client.start("c1")
    pid = harness.state("c1")["Pid"]
    harness.client.start("c1")
    assert harness.state("c1")["Pid"] == pid
    harness.client.stop("c1", timeout=5)


def test_stop_sends_the_stop_signal_then_kills(harness: Harness) -> None:
    harness.backend.create("polite", ["sleep", "30"])
    harness.backend.create("stubborn", ["sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"])
    harness.client.start("polite")
    harness.client.start("stubborn")
    time.sleep(0.2)
    harness.client.stop("polite", timeout=10)
    assert harness.state("polite")["ExitCode"] == 128 + signal.SIGTERM
    began = time.monotonic()
    harness.client.stop("stubborn", timeout=1)
    assert harness.state("stubborn")["ExitCode"] == 128 + signal.SIGKILL
    assert 0.9 < time.monotonic() - began < 5


def test_stop_with_another_signal(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    harness.client.start("c1")
    harness.client.stop("c1", timeout=5, signal="SIGINT")
    assert harness.state("c1")["ExitCode"] == 128 + signal.SIGINT


def test_kill_and_its_errors(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    with pytest.raises(ContainerStateConflict):
        harness.client.kill("c1", "KILL")
    harness.client.start("c1")
    harness.client.kill("c1", "KILL")  # returns once it is gone
    assert harness.state("c1")["Status"] == "exited"
    assert harness.state("c1")["ExitCode"] == 137


def test_forget_kills_a_running_container(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    harness.client.start("c1")
    harness.client.forget("c1")
    assert harness.state("c1")["Status"] == "exited"


# ------------------------------------------------------------------------ restart policy


def test_on_failure_restarts_up_to_its_limit(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo run; exit 2"], restart="on-failure", retries=2)
    harness.client.start("c1")
    wait_for(
        lambda: (
            harness.backend.get("c1").extra.get("RestartCount") == 2
            and harness.state("c1")["Status"] == "exited"
        ),
        "two restarts",
    )
    time.sleep(0.5)  # and no third
    record = harness.backend.get("c1")
    assert record.extra["RestartCount"] == 2 and record.state["ExitCode"] == 2
    assert [data for _, data in harness.logs("c1")] == [b"run\n"] * 3


def test_on_failure_does_not_restart_a_success(harness: Harness) -> None:
    harness.backend.create("c1", ["true"], restart="on-failure")
    harness.client.start("c1")
    assert harness.client.wait("c1") == 0
    time.sleep(0.3)
    assert harness.backend.get("c1").extra["RestartCount"] == 0


def test_always_restarts_with_backoff_until_stopped(harness: Harness) -> None:
    harness.backend.create("c1", ["true"], restart="always")
    began = time.monotonic()
    harness.client.start("c1")
    wait_for(lambda: harness.backend.get("c1").extra.get("RestartCount", 0) >= 4, "restarts")
    # 0.1 + 0.2 + 0.4 s of backoff before the fourth restart
    assert time.monotonic() - began >= 0.6
    harness.client.stop("c1", timeout=5)
    record = harness.backend.get("c1")
    count = record.extra["RestartCount"]
    assert record.status == "exited" and record.extra["HasBeenManuallyStopped"] is True
    time.sleep(1.0)
    assert harness.backend.get("c1").extra["RestartCount"] == count
    harness.client.start("c1")  # a user's start resets the count
    wait_for(lambda: harness.backend.get("c1").extra.get("RestartCount", 0) >= 1, "restart")
    assert harness.backend.get("c1").extra["HasBeenManuallyStopped"] is False
    harness.client.stop("c1", timeout=5)


def test_restarting_shows_in_the_record(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "sleep 0.2; exit 1"], restart="always")
    harness.client.start("c1")
    seen: set[str] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "restarting" not in seen:
        seen.add(harness.backend.get("c1").status)
        time.sleep(0.005)
    assert "restarting" in seen
    harness.client.stop("c1", timeout=5)
    assert harness.backend.get("c1").status == "exited"


def test_kill_with_sigkill_prevents_the_restart(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"], restart="always")
    harness.client.start("c1")
    harness.client.kill("c1", "SIGKILL")
    time.sleep(0.5)
    assert harness.backend.get("c1").status == "exited"
    assert harness.backend.get("c1").extra["RestartCount"] == 0


def test_kill_with_another_signal_restarts(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"], restart="unless-stopped")
    harness.client.start("c1")
    harness.client.kill("c1", "USR1")
    wait_for(lambda: harness.backend.get("c1").extra.get("RestartCount") == 1, "a restart")
    harness.client.stop("c1", timeout=5)


def test_restart_command(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    harness.client.start("c1")
    first = harness.state("c1")["Pid"]
    harness.client.restart("c1", timeout=5)
    assert harness.state("c1")["Status"] == "running"
    assert harness.state("c1")["Pid"] != first
    harness.client.stop("c1", timeout=5)


def test_wait_next_exit_sees_each_exit_of_a_restarting_container(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "sleep 0.3; exit 4"], restart="on-failure", retries=1)
    harness.client.start("c1")
    assert harness.client.wait("c1", "next-exit") == 4
    assert harness.client.wait("c1", "next-exit") == 4
    assert harness.backend.get("c1").extra["RestartCount"] == 1


def test_boot_starts_what_the_policies_say(harness: Harness) -> None:
    specs = {
        "always-stopped": ("always", True, True),
        "unless-stopped-by-user": ("unless-stopped", True, True),
        "unless-stopped-crashed": ("unless-stopped", False, True),
        "never-started": ("always", False, False),
        "on-failure": ("on-failure", False, True),
    }
    for name, (policy, manual, started) in specs.items():
        harness.backend.create(name, ["sleep", "30"], restart=policy)
        harness.backend.update_extra(name, HasBeenManuallyStopped=manual)
        if started:
            harness.backend.update_state(name, StartedAt="2024-01-02T03:04:05Z", Status="exited")
    reply = harness.client.boot()
    assert sorted(reply["started"]) == ["always-stopped", "unless-stopped-crashed"]
    for name in ("always-stopped", "unless-stopped-crashed"):
        assert harness.backend.get(name).status == "running"
        harness.client.stop(name, timeout=5)


# ---------------------------------------------------------------------------- healthcheck


def test_healthcheck_states(harness: Harness, tmp_path: object) -> None:
    flag = os.path.join(str(tmp_path), "healthy")
    harness.backend.create(
        "c1",
        ["sleep", "30"],
        Healthcheck={
            "Test": ["CMD-SHELL", f"test -e {flag} && echo fine || (echo sick; exit 1)"],
            "Interval": 100_000_000,
            "Retries": 2,
        },
    )
    harness.client.start("c1")
    assert harness.state("c1")["Health"]["Status"] == "starting"  # type: ignore[index]

    def health() -> dict[str, object]:
        value = harness.state("c1").get("Health")
        assert isinstance(value, dict)
        return value

    wait_for(lambda: health()["Status"] == "unhealthy", "unhealthy")
    assert int(health()["FailingStreak"]) >= 2  # type: ignore[call-overload]
    open(flag, "w").close()
    wait_for(lambda: health()["Status"] == "healthy", "healthy")
    last = health()["Log"][-1]  # type: ignore[index]
    assert last["ExitCode"] == 0 and last["Output"] == "fine\n"
    assert last["Start"] <= last["End"]
    assert len(health()["Log"]) <= 5  # type: ignore[arg-type]
    harness.client.stop("c1", timeout=5)
    assert health()["Status"] == "unhealthy"  # stopped: as Docker reports it


def test_healthcheck_timeout_and_long_output(harness: Harness) -> None:
    harness.backend.create(
        "slow",
        ["sleep", "30"],
        Healthcheck={
            "Test": ["CMD", "sleep", "5"],
            "Interval": 100_000_000,
            "Timeout": 200_000_000,
        },
    )
    harness.backend.create(
        "chatty",
        ["sleep", "30"],
        Healthcheck={
            "Test": ["CMD-SHELL", "head -c 5000 /dev/zero | tr '\\0' x"],
            "Interval": 100_000_000,
        },
    )
    harness.client.start("slow")
    harness.client.start("chatty")
    wait_for(lambda: harness.state("slow").get("Health", {}).get("Log"), "a slow probe")
    slow = harness.state("slow")["Health"]["Log"][0]  # type: ignore[index]
    assert slow["ExitCode"] == -1
    assert slow["Output"] == "Health check exceeded timeout (200ms)"
    wait_for(lambda: harness.state("chatty").get("Health", {}).get("Log"), "a chatty probe")
    chatty = harness.state("chatty")["Health"]["Log"][0]  # type: ignore[index]
    assert chatty["Output"] == "x" * 4096 + "..."
    harness.client.stop("slow", timeout=5)
    harness.client.stop("chatty", timeout=5)


# --------------------------------------------------------------------------------- attach


def test_attach_gets_output_and_the_exit_code(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    harness.backend.create("c1", ["sh", "-c", "sleep 0.5; echo out; echo err >&2; exit 4"])
    harness.client.start("c1")
    code = harness.client.attach("c1", stdin=False, stdout=True, stderr=True, tty=False)
    assert code == 4
    out, err = capfd.readouterr()
    assert out == "out\n" and err == "err\n"


def test_attach_with_logs_replays_first(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo early; sleep 0.5; echo late"])
    harness.client.start("c1")
    time.sleep(0.2)
    code = harness.client.attach("c1", stdin=False, stdout=True, stderr=False, tty=False, logs=True)
    assert code == 0
    assert capfd.readouterr().out == "early\nlate\n"


def test_attach_to_a_stopped_container_is_refused(harness: Harness) -> None:
    harness.backend.create("c1", ["true"])
    with pytest.raises(ContainerStateConflict, match="start it first"):
        harness.client.attach("c1", stdin=False, stdout=True, stderr=True, tty=False)


def test_attach_stdin_once_closes_the_containers_stdin(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    harness.backend.create("c1", ["sh", "-c", "cat; echo done"], OpenStdin=True, StdinOnce=True)
    harness.client.start("c1")
    read_end, write_end = os.pipe()
    os.write(write_end, b"hello\n")
    os.close(write_end)
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        code = harness.client.attach("c1", stdin=True, stdout=True, stderr=True, tty=False)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read_end)
    assert code == 0
    assert capfd.readouterr().out == "hello\ndone\n"


def test_a_tty_container_writes_through_its_pty(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo hi; test -t 1 && echo tty"], Tty=True)
    harness.client.start("c1")
    assert harness.client.wait("c1") == 0
    output = b"".join(data for _, data in harness.logs("c1"))
    assert output == b"hi\r\ntty\r\n"


# ---------------------------------------------------------------------------- re-adoption


def test_a_new_supervisor_adopts_running_containers(harness: Harness) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo one; sleep 1; echo two; exit 6"], restart="no")
    harness.client.start("c1")
    time.sleep(0.3)
    harness.stop_serving()  # forced: the container goes on without a supervisor
    assert harness.backend.get("c1").status == "running"
    harness.serve()
    assert harness.client.ping()["running"] == ["c1"]
    assert harness.client.wait("c1") == 6
    assert [d for _, d in harness.logs("c1")] == [b"one\n", b"two\n"]


def test_shutdown_is_refused_while_containers_run(harness: Harness) -> None:
    harness.backend.create("c1", ["sleep", "30"])
    harness.client.start("c1")
    with pytest.raises(ContainerStateConflict, match="run under this supervisor"):
        harness.client.shutdown()
    harness.client.stop("c1", timeout=5)


def test_attach_with_start_misses_nothing(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    harness.backend.create("c1", ["sh", "-c", "echo at-once; exit 5"])
    code = harness.client.attach("c1", stdin=False, stdout=True, stderr=True, tty=False, start=True)
    assert code == 5
    assert capfd.readouterr().out == "at-once\n"
