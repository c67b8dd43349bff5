"""A fake backend for the supervisor: "containers" are plain host processes.

Records are JSON files under ``<root>/fake/``; starting one runs its Config.Cmd on the host
with the stdio the supervisor gives (a pty when Config.Tty, sent over the console socket as
a runtime does). Everything else the supervisor does (FIFOs, logs, exits, the anchor,
restarts, healthchecks, attach) is real. The supervisor loads it with
``--backend tests.unit.monitor.fakes:make_backend``.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from berth.errors import CommandNotFound, ContainerNotFound, ContainerStateConflict
from berth.monitor.procs import start_time
from berth.store.paths import StorePaths

RUNNING = ("running", "paused", "restarting")


@dataclass
class FakeRecord:
    id: str
    name: str
    status: str = "created"
    config: dict[str, Any] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status in RUNNING


def now_text() -> str:
    from berth.units import format_rfc3339_nano

    return format_rfc3339_nano(time.time_ns())


class FakeBackend:
    def __init__(self, paths: StorePaths) -> None:
        self.paths = paths
        self.dir = os.path.join(paths.root, "fake")
        os.makedirs(self.dir, exist_ok=True)

    # ---------------------------------------------------------------- records

    def _file(self, container_id: str) -> str:
        return os.path.join(self.dir, container_id + ".json")

    def create(
        self,
        container_id: str,
        cmd: list[str],
        *,
        name: str | None = None,
        restart: str = "no",
        retries: int = 0,
        auto_remove: bool = False,
        log_config: dict[str, Any] | None = None,
        **config: Any,
    ) -> FakeRecord:
        record = FakeRecord(
            container_id,
            name or container_id,
            config={"Cmd": cmd, **config},
            host_config={
                "RestartPolicy": {"Name": restart, "MaximumRetryCount": retries},
                "AutoRemove": auto_remove,
                "LogConfig": log_config or {"Type": "json-file", "Config": {}},
            },
            state={
                "Status": "created",
                "Running": False,
                "ExitCode": 0,
                "StartedAt": "0001-01-01T00:00:00Z",
            },
            extra={"RestartCount": 0},
        )
        os.makedirs(os.path.join(self.dir, container_id), exist_ok=True)
        self._save(record)
        return record

    def _save(self, record: FakeRecord) -> None:
        tmp = self._file(record.id) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(record), f)
        os.rename(tmp, self._file(record.id))

    def get(self, container_id: str) -> FakeRecord:
        try:
            with open(self._file(container_id)) as f:
                return FakeRecord(**json.load(f))
        except FileNotFoundError:
            raise ContainerNotFound(f"No such container: {container_id}") from None

    def all(self) -> list[FakeRecord]:
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))
        out = []
        for name in names:
            with contextlib.suppress(ContainerNotFound):
                out.append(self.get(name[:-5]))
        return out

    def update_state(self, container_id: str, **fields: Any) -> None:
        record = self.get(container_id)
        record.state.update(fields)
        if "Status" in fields:
            record.status = fields["Status"]
        self._save(record)

    def update_extra(self, container_id: str, **fields: Any) -> None:
        record = self.get(container_id)
        record.extra.update(fields)
        self._save(record)

    def log_path(self, container_id: str) -> str:
        return os.path.join(self.dir, container_id, f"{container_id}-json.log")

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(container_id))
        shutil.rmtree(os.path.join(self.dir, container_id), ignore_errors=True)

    # -------------------------------------------------------------- processes

    def start(
        self, container_id: str, stdio: tuple[int, int, int], console_socket: str | None
    ) -> tuple[int, int]:
        record = self.get(container_id)
        if record.running and record.status != "restarting":
            raise ContainerStateConflict(f"container {container_id} is already running")
        argv = list(record.config["Cmd"])
        slave = -1
        if record.config.get("Tty"):
            assert console_socket is not None
            master, slave = os.openpty()
            stdio = (slave, slave, slave)
        try:
            pid = _spawn(argv, stdio)
        except FileNotFoundError:
            self.update_state(container_id, Error=f"exec: {argv[0]}: not found", ExitCode=127)
            raise CommandNotFound(f"exec: {argv[0]!r}: executable file not found") from None
        finally:
            if slave >= 0:
                os.close(slave)
        if slave >= 0:
            _send_fd(console_socket or "", master)
            os.close(master)
        self.update_state(
            container_id,
            Status="running",
            Running=True,
            Restarting=False,
            Pid=pid,
            PidStart=start_time(pid),
            StartedAt=now_text(),
            Error="",
        )
        return pid, start_time(pid) or 0

    def finish(self, container_id: str, exit_code: int, *, restarting: bool = False) -> None:
        record = self.get(container_id)
        pid = int(record.state.get("Pid") or 0)
        if pid:  # its session goes with it, as a pid namespace goes with its init
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.update_state(
            container_id,
            Status="restarting" if restarting else "exited",
            Running=restarting,
            Restarting=restarting,
            Pid=0,
            ExitCode=exit_code,
            FinishedAt=now_text(),
        )
        if record.host_config.get("AutoRemove"):
            self.remove(container_id)

    def kill(self, container_id: str, signum: int) -> None:
        record = self.get(container_id)
        if not record.running or not record.state.get("Pid"):
            raise ContainerStateConflict(f"container {container_id} is not running")
        os.kill(int(record.state["Pid"]), signum)

    def resume(self, container_id: str) -> None:
        pass

    def stop_signal(self, container_id: str) -> tuple[int, int]:
        config = self.get(container_id).config
        name = config.get("StopSignal") or "SIGTERM"
        return int(signal.Signals[name]), int(config.get("StopTimeout") or 10)

    def exec_probe(self, container_id: str, argv: list[str], stdio: tuple[int, int, int]) -> int:
        return _spawn(argv, stdio)

    def close(self) -> None:
        pass


def _spawn(argv: list[str], stdio: tuple[int, int, int]) -> int:
    return os.posix_spawnp(
        argv[0],
        argv,
        dict(os.environ),
        file_actions=[(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(stdio)],
        setsid=True,
    )


def _send_fd(path: str, fd: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendmsg(
            [b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
        )


def make_backend(paths: StorePaths) -> FakeBackend:
    return FakeBackend(paths)
