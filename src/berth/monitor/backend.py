"""What the supervisor needs from the rest of berth, as one narrow interface.

:class:`StoreBackend` is the real one: container records and the launcher
(:mod:`berth.containers`). Unit tests give the supervisor a fake that runs plain host
processes instead of containers, so they need neither root nor images.
"""

from __future__ import annotations

from typing import Any, Protocol

from berth.store.paths import StorePaths


class RecordView(Protocol):
    """The parts of a container record the supervisor reads."""

    id: str
    name: str
    status: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: dict[str, Any]
    extra: dict[str, Any]


class Backend(Protocol):
    def get(self, container_id: str) -> RecordView:
        """The record; raises ContainerNotFound."""

    def all(self) -> list[RecordView]: ...

    def update_state(self, container_id: str, **fields: Any) -> None: ...

    def update_extra(self, container_id: str, **fields: Any) -> None: ...

    def log_path(self, container_id: str) -> str: ...

    def start(
        self, container_id: str, stdio: tuple[int, int, int], console_socket: str | None
    ) -> tuple[int, int]:
        """Start the container (created, exited, or restarting); (pid, pid start time) of
        its init."""

    def finish(self, container_id: str, exit_code: int, *, restarting: bool = False) -> None:
        """Record the exit and undo the start. ``restarting``: the restart policy starts it
        again shortly, so it is recorded as Docker records that (Status "restarting",
        Running and Restarting true) rather than "exited"."""

    def kill(self, container_id: str, signum: int) -> None: ...

    def resume(self, container_id: str) -> None:
        """Unfreeze a paused container (before it is stopped)."""

    def stop_signal(self, container_id: str) -> tuple[int, int]: ...

    def exec_probe(self, container_id: str, argv: list[str], stdio: tuple[int, int, int]) -> int:
        """Start a healthcheck probe in the container, detached; its pid."""

    def close(self) -> None: ...


class StoreBackend:
    """The store's container records and launcher. The launcher (and with it the runtime and
    the image store) is imported when the first container starts: a supervisor that only
    re-adopts running containers stays small."""

    def __init__(self, paths: StorePaths) -> None:
        from berth.containers.records import ContainerRecords
        from berth.store.store import Store

        self.store = Store(paths)
        self.records = ContainerRecords(self.store)
        self._launcher: Any = None

    @property
    def launcher(self) -> Any:
        if self._launcher is None:
            from berth.containers.launcher import Launcher

            self._launcher = Launcher(self.store)
        return self._launcher

    def get(self, container_id: str) -> RecordView:
        return self.records.get(container_id)

    def all(self) -> list[RecordView]:
        return list(self.records.all())

    def update_state(self, container_id: str, **fields: Any) -> None:
        self.records.update_state(container_id, **fields)

    def update_extra(self, container_id: str, **fields: Any) -> None:
        self.records.update_extra(container_id, **fields)

    def log_path(self, container_id: str) -> str:
        return str(self.records.log_path(container_id))

    def start(
        self, container_id: str, stdio: tuple[int, int, int], console_socket: str | None
    ) -> tuple[int, int]:
        if self.records.get(container_id).status == "restarting" and not self._handles_restarting():
            # this launcher starts only what does not run, and "restarting" counts as running
            self.records.update_state(
                container_id, Status="exited", Running=False, Restarting=False
            )
        started = self.launcher.start(container_id, stdio=stdio, console_socket=console_socket)
        return int(started.pid), int(started.pid_start)

    def finish(self, container_id: str, exit_code: int, *, restarting: bool = False) -> None:
        if restarting and self._handles_restarting():
            self.launcher.finish(container_id, exit_code, restarting=True)
            return
        self.launcher.finish(container_id, exit_code)
        if restarting:
            self.records.update_state(
                container_id, Status="restarting", Running=True, Restarting=True
            )

    def _handles_restarting(self) -> bool:
        """Whether the launcher handles restarting containers itself (``start`` of one,
        ``finish(restarting=True)``): then no moment comes in which the record says
        "exited" between two runs of a container its policy restarts."""
        import inspect

        return "restarting" in inspect.signature(self.launcher.finish).parameters

    def kill(self, container_id: str, signum: int) -> None:
        self.launcher.kill(container_id, signum)

    def resume(self, container_id: str) -> None:
        record = self.records.get(container_id)
        self.launcher.runtime(record).resume(container_id)
        self.records.update_state(container_id, Status="running", Paused=False)

    def stop_signal(self, container_id: str) -> tuple[int, int]:
        signum, timeout = self.launcher.stop_signal(container_id)
        return int(signum), int(timeout)

    def exec_probe(self, container_id: str, argv: list[str], stdio: tuple[int, int, int]) -> int:
        return int(self.launcher.exec(container_id, argv, stdio=stdio, detached=True))

    def close(self) -> None:
        self.store.close()
