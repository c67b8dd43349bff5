"""``engine.containers``: containers as docker-py's ``client.containers`` shows them.

Foreground containers (``berth run`` without ``-d``, ``containers.run(..., detach=False)``) run
as children of the calling process: it waits, copies their output, records the exit. Detached
ones are started by the store's supervisor (``berth.monitor``), which outlives the caller.
"""

from __future__ import annotations

import builtins
import os
import select
import time
from functools import cached_property

from berth import trace
from berth.basics import suppress
from berth.containers.options import CreateOptions
from berth.containers.records import ContainerRecord, ContainerRecords
from berth.errors import (
    BerthError,
    ContainerError,
    ContainerNotFound,
    ContainerStateConflict,
    ImageNotFound,
    InvalidArgument,
)
from berth.runtime import signals
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from berth.containers.launcher import Launcher
    from berth.engine import Engine
    from berth.engine.images import Image

UNKNOWN_EXIT = 255
STOPPED_BY_USER = "StoppedByUser"


class ContainerFailed(ContainerError):
    """``containers.run`` without ``detach``: the container exited non-zero (docker-py's
    ContainerError)."""

    def __init__(self, message: str, *, exit_status: int, stderr: bytes) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr


class ExecResult(FrozenValue):
    __slots__ = ("exit_code", "output")
    exit_code: int | None
    output: bytes | tuple[bytes, bytes] | None

    def __init__(self, exit_code: int | None, output: bytes | tuple[bytes, bytes] | None) -> None:
        init_fields(self, exit_code=exit_code, output=output)


class Container:
    """One container: ``id``, ``name``, ``status``, ``attrs`` (docker inspect) and actions."""

    def __init__(self, collection: ContainerCollection, record: ContainerRecord) -> None:
        self.collection = collection
        self.record = record

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def short_id(self) -> str:
        return self.record.id[:12]

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.record.config.get("Labels") or {})

    @property
    def image(self) -> Image | None:
        try:
            return self.collection.engine.images.get(self.record.image_id)
        except ImageNotFound:
            return None

    @property
    def attrs(self) -> dict[str, Any]:
        return self.collection.inspect_record(self.record)

    def reload(self) -> None:
        self.record = self.collection.records.get(self.id)

    # ------------------------------------------------------------------ actions

    def start(self) -> None:
        self.collection.start(self)

    def stop(self, timeout: int | None = None, signal_name: str | None = None) -> None:
        self.collection.stop(self, timeout=timeout, signal_name=signal_name)

    def kill(self, signal_name: str | int = "KILL") -> None:
        self.collection.kill(self, signal_name)

    def restart(self, timeout: int | None = None) -> None:
        if self.record.running:
            self.stop(timeout)
        self.reload()
        self.start()

    def pause(self) -> None:
        self.collection.pause(self, True)

    def unpause(self) -> None:
        self.collection.pause(self, False)

    def remove(self, *, force: bool = False, v: bool = False) -> None:
        self.collection.remove(self, force=force, volumes=v)

    def wait(self, condition: str = "not-running", timeout: float | None = None) -> dict[str, Any]:
        code = self.collection.wait(self, condition=condition, timeout=timeout)
        self.reload()
        error = self.record.state.get("Error") or None
        return {"StatusCode": code, "Error": {"Message": error} if error else None}

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        timestamps: bool = False,
        tail: int | str = "all",
        since: float | None = None,
        until: float | None = None,
        follow: bool = False,
        stream: bool = False,
    ) -> bytes | Iterator[bytes]:
        chunks = self.collection.log_chunks(
            self,
            stdout=stdout,
            stderr=stderr,
            timestamps=timestamps,
            tail=tail,
            since=since,
            until=until,
            follow=follow,
        )
        if stream:
            return (data for _name, data in chunks)
        return b"".join(data for _name, data in chunks)

    def exec_run(
        self,
        cmd: str | list[str],
        *,
        stdout: bool = True,
        stderr: bool = True,
        user: str = "",
        workdir: str = "",
        environment: list[str] | None = None,
        privileged: bool = False,
        detach: bool = False,
        demux: bool = False,
    ) -> ExecResult:
        return self.collection.exec_run(
            self,
            cmd,
            stdout=stdout,
            stderr=stderr,
            user=user,
            workdir=workdir,
            environment=environment or [],
            privileged=privileged,
            detach=detach,
            demux=demux,
        )

    def rename(self, name: str) -> None:
        from berth.containers.names import check_name

        old_name = self.name
        self.collection.records.rename(self.id, check_name(name))
        self.reload()
        _event(self.collection, "rename", self.record, oldName=f"/{old_name}")

    # docker-py's other methods: see berth.engine.container_api
    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        from berth.engine import container_api

        return container_api.top(self, ps_args)

    def stats(self, *, stream: bool = True, decode: bool = False) -> Any:
        from berth.engine import container_api

        return container_api.stats(self, stream=stream, decode=decode)

    def commit(self, repository: str | None = None, tag: str | None = None, **kw: Any) -> Image:
        from berth.engine import container_api

        return container_api.commit(self, repository, tag, **kw)

    def export(self, chunk_size: int = 2 * 1024 * 1024) -> Iterator[bytes]:
        from berth.engine import container_api

        return container_api.export(self, chunk_size)

    def diff(self) -> builtins.list[dict[str, Any]]:
        from berth.engine import container_api

        return container_api.diff(self)

    def update(self, **kwargs: Any) -> dict[str, Any]:
        from berth.engine import container_api

        return container_api.update(self, **kwargs)

    def get_archive(self, path: str, chunk_size: int = 2 * 1024 * 1024) -> Any:
        from berth.engine import container_api

        return container_api.get_archive(self, path, chunk_size)

    def put_archive(self, path: str, data: Any) -> bool:
        from berth.engine import container_api

        return container_api.put_archive(self, path, data)


class ContainerCollection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @cached_property
    def records(self) -> ContainerRecords:
        return ContainerRecords(self.engine.store)

    @cached_property
    def launcher(self) -> Launcher:
        from berth.containers.launcher import Launcher

        return Launcher(self.engine.store)

    # ----------------------------------------------------------------- finding

    def get(self, name_or_id: str) -> Container:
        record = self.records.resolve(name_or_id)
        return Container(self, self._reconcile(record))

    def list(
        self,
        *,
        all: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
        limit: int = -1,
        before: str | None = None,
        since: str | None = None,
    ) -> builtins.list[Container]:
        from berth.engine.container_filters import filter_containers

        records = [self._reconcile(r) for r in self.records.all()]
        containers = [Container(self, r) for r in records]
        return filter_containers(
            self,
            containers,
            all=all,
            filters=filters or {},
            limit=limit,
            before=before,
            since=since,
        )

    def _reconcile(self, record: ContainerRecord) -> ContainerRecord:
        """A record that says running while its process is gone (the CLI that ran it was
        killed, or the host rebooted) is finished here, with an unknown exit code."""
        if not record.running:
            return record
        pid = int(record.state.get("Pid") or 0)
        from berth.store.leases import process_start_time

        start = process_start_time(pid) if pid else None
        if start is not None and int(start) == int(record.state.get("PidStart") or -1) \
                and not _is_zombie(pid):
            return record
        if record.extra.get("Supervised") and self._supervisor_running():
            return record  # the supervisor owns it and records the exit
        self.launcher.finish(record.id, UNKNOWN_EXIT)
        with suppress(BerthError):
            self.records.update_state(
                record.id,
                Error="the container's process ended while no berth process "
                "was watching it; its exit code is unknown",
            )
        try:
            return self.records.get(record.id)
        except ContainerNotFound:
            record.status = "removed"
            return record

    # ---------------------------------------------------------------- creating

    def create(
        self,
        image: str | CreateOptions,
        command: str | builtins.list[str] | None = None,
        **kwargs: Any,
    ) -> Container:
        from berth.containers.create import create_container, image_not_found

        if isinstance(image, CreateOptions):
            options = image
        else:
            from berth.engine.docker_kwargs import options_from_kwargs

            options = options_from_kwargs(image, command, kwargs)
        try:
            found = self.engine.images.get(options.image)
        except ImageNotFound:
            if options.pull == "never":
                raise image_not_found(options.image) from None
            found = self._pull(options.image)
        else:
            if options.pull == "always":
                found = self._pull(options.image)
        trace.mark("image found")
        with self.engine.store.db.write():  # the record and its event: one transaction
            record = create_container(
                self.engine.store, options, found.record, found.config.config
            )
            _event(self, "create", record)
        return Container(self, record)

    def _pull(self, name: str) -> Image:
        from berth.containers.create import image_not_found

        try:
            from berth.registry.client import pull
        except ImportError:
            raise image_not_found(name) from None
        try:
            results = pull(self.engine.store, name)
        except BerthError as exc:
            raise ImageNotFound(
                f"Unable to find image '{name}' locally, and pulling it failed: {exc}"
            ) from None
        return self.engine.images.get(str(results[0].image.id))

    def run(
        self,
        image: str | CreateOptions,
        command: str | builtins.list[str] | None = None,
        *,
        detach: bool = False,
        remove: bool = False,
        stdout: bool = True,
        stderr: bool = False,
        **kwargs: Any,
    ) -> bytes | Container:
        """docker-py's ``containers.run``: with ``detach`` the started Container, else the
        container's output (bytes) once it has exited; a non-zero exit raises
        :class:`ContainerFailed`."""
        from berth.runtime.cgroups import warm

        warm.start()  # a container is about to join its cgroups: see berth.runtime.cgroups.warm
        container = self.create(image, command, **kwargs)
        if detach:
            self.start(container)
            container.reload()
            return container
        read_out, write_out = os.pipe()
        read_err, write_err = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        captured: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        try:
            code = self.run_foreground(
                container,
                stdio=(devnull, write_out, write_err),
                pipes={"stdout": read_out, "stderr": read_err},
                sink=lambda name, data: captured[name].extend(data),
            )
        finally:
            os.close(devnull)
        out = bytes(captured["stdout"]) if stdout else b""
        err = bytes(captured["stderr"]) if stderr else b""
        if remove:
            with suppress(BerthError):
                self.remove(container, force=True, volumes=True)
        if code != 0:
            raise ContainerFailed(
                f"Command {container.record.extra.get('Args')!r} in image "
                f"{container.record.image_ref!r} returned non-zero exit status {code}",
                exit_status=code,
                stderr=bytes(captured["stderr"]),
            )
        return out + err

    def run_foreground(
        self,
        container: Container,
        *,
        stdio: tuple[int, int, int],
        pipes: dict[str, int] | None = None,
        sink: Any = None,
        log: bool = True,
        sig_proxy: bool = True,
        console_socket: str | None = None,
    ) -> int:
        """Start ``container`` as a child of this process and wait for it.

        ``stdio`` are the fds it gets. ``pipes`` maps "stdout"/"stderr" to the read ends of
        pipes whose write ends are in ``stdio``: their bytes go to ``sink(name, data)`` and to
        the container's log (unless ``log`` is false). The write ends are closed here.
        Signals sent to this process are passed on to the container (``sig_proxy``).
        Returns the exit code (128 + n when killed by signal n) and records it.
        """
        record = container.record
        launcher = self.launcher
        writer = None
        if log and pipes:
            from berth.containers.logs import writer_for

            log_config = record.host_config.get("LogConfig")
            writer = writer_for(self.records.log_path(record.id), log_config)
        old_handlers = _proxy_signals(launcher, record.id) if sig_proxy else {}
        external = (record.host_config.get("Runtime") or "berth") != "berth"
        if external:  # runc/crun leave the init to the nearest subreaper: be it
            from berth.runtime.syscalls import PR_SET_CHILD_SUBREAPER, prctl

            prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            started = launcher.start(  # a CLI's container, not the supervisor's (any more)
                record.id, stdio=stdio, console_socket=console_socket, record=record,
                running_extra={"Supervised": False},
            )
        except BaseException:
            _restore_signals(old_handlers)
            for fd in (pipes or {}).values():
                os.close(fd)
            _close_write_ends(stdio, pipes)
            if writer is not None:
                writer.close()
            self._remove_if_start_failed(container)
            raise
        _close_write_ends(stdio, pipes)
        try:
            status = _pump_and_wait(started.pid, pipes or {}, sink, writer)
        finally:
            _restore_signals(old_handlers)
            if writer is not None:
                writer.close()
        trace.mark("container exited")
        code = status
        launcher.finish(record.id, code)
        return code

    # ---------------------------------------------------------------- lifecycle

    def _supervisor(self) -> Any:
        from berth.monitor.client import SupervisorClient

        return SupervisorClient.ensure(self.engine.paths)

    def _supervisor_running(self) -> bool:
        try:
            from berth.monitor.client import SupervisorClient
        except ImportError:
            return False
        return bool(SupervisorClient.running(self.engine.paths))

    def start(self, container: Container) -> None:
        record = self.records.get(container.id)
        if record.running:
            return  # docker start of a running container is a no-op
        try:
            self._supervisor().start(record.id)
        except BerthError:
            self._remove_if_start_failed(container)
            raise

    def start_attached(self, container: Container, *, stdin: bool, detach_keys: str) -> int:
        """Start ``container`` through the store's supervisor with this process's stdio
        attached (``run -it``, ``start -a``): its exit code, or 0 when the user types the
        detach keys and leaves it running."""
        try:
            return int(
                self._supervisor().attach(
                    container.id,
                    stdin=stdin,
                    stdout=True,
                    stderr=True,
                    tty=bool(container.record.config.get("Tty")),
                    start=True,
                    detach_keys=detach_keys,
                )
            )
        except BerthError:
            self._remove_if_start_failed(container)
            raise

    def _remove_if_start_failed(self, container: Container) -> None:
        """An ``--rm`` container that could not start is removed, as Docker's daemon does."""
        try:
            record = self.records.get(container.id)
        except ContainerNotFound:
            return
        if record.host_config.get("AutoRemove") and not record.running:
            with suppress(BerthError):
                self.remove(container, force=True, volumes=True)

    def stop(
        self, container: Container, *, timeout: int | None = None, signal_name: str | None = None
    ) -> None:
        record = self._reconcile(self.records.get(container.id))
        if record.extra.get("Supervised") and (record.running or self._supervisor_running()):
            # also when it reads "exited": a restart may be pending, and stop cancels it
            self._supervisor().stop(record.id, timeout=timeout, signal=signal_name)
            if record.running:
                _event(self, "stop", record)
            return
        if not record.running:
            return
        from berth.containers.runtimes import signal_number

        signum, default_timeout = self.launcher.stop_signal(record.id)
        if signal_name:
            signum = signal_number(signal_name)
        wait = default_timeout if timeout is None else timeout
        with suppress(BerthError):
            self.launcher.kill(record.id, signum)
        if not self._wait_gone(record, wait):
            with suppress(BerthError):
                self.launcher.kill(record.id, signals.SIGKILL)
            self._wait_gone(record, 10)
        _event(self, "stop", record)

    def _wait_gone(self, record: ContainerRecord, timeout: float) -> bool:
        """Wait for a container another process runs to be recorded as exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self._reconcile(self.records.get(record.id))
            if not current.running:
                return True
            time.sleep(0.05)
        return False

    def kill(self, container: Container, signal_name: str | int = "KILL") -> None:
        from berth.containers.runtimes import signal_number

        record = self._reconcile(self.records.get(container.id))
        if record.running:
            _event(self, "kill", record, signal=signal_number(signal_name))
        if record.extra.get("Supervised") and (record.running or record.status == "restarting"):
            self._supervisor().kill(record.id, str(signal_name))
            return
        self.launcher.kill(record.id, signal_number(signal_name))

    def pause(self, container: Container, pause: bool) -> None:
        record = self._reconcile(self.records.get(container.id))
        runtime = self.launcher.runtime(record)
        if pause:
            if record.status != "running":
                raise ContainerStateConflict(f"Container {record.id} is not running")
            runtime.pause(record.id)
            self.records.update_state(record.id, Status="paused", Paused=True)
            _event(self, "pause", record)
        else:
            if record.status != "paused":
                raise ContainerStateConflict(f"Container {record.id} is not paused")
            runtime.resume(record.id)
            self.records.update_state(record.id, Status="running", Paused=False)
            _event(self, "unpause", record)

    def remove(self, container: Container, *, force: bool = False, volumes: bool = False) -> None:
        record = self._reconcile(self.records.get(container.id))
        if record.running:
            if not force:
                raise ContainerStateConflict(
                    f"You cannot remove a {record.status} container {record.id}. Stop the "
                    "container before attempting removal or force remove"
                )
            if record.status == "paused":
                with suppress(BerthError):
                    self.launcher.runtime(record).resume(record.id)
            self.stop(container, timeout=0, signal_name="KILL")
        if record.extra.get("Supervised") and self._supervisor_running():
            with suppress(BerthError):
                self._supervisor().forget(record.id)
        with suppress(ContainerNotFound):
            self.launcher.remove(record.id, volumes=volumes)

    def wait(
        self, container: Container, *, condition: str = "not-running", timeout: float | None = None
    ) -> int:
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(
                f"invalid condition: {condition!r}", hint="use not-running, next-exit or removed"
            )
        record = self._reconcile(self.records.get(container.id))
        if record.extra.get("Supervised") and self._supervisor_running() and condition != "removed":
            return int(self._supervisor().wait(record.id, condition))
        deadline = None if timeout is None else time.monotonic() + timeout
        seen_running = record.running
        while True:
            try:
                current = self._reconcile(self.records.get(record.id))
            except ContainerNotFound:
                return int(record.state.get("ExitCode") or 0)
            if current.running:
                seen_running = True
            elif condition == "not-running" or (condition == "next-exit" and seen_running):
                return int(current.state.get("ExitCode") or 0)
            record = current
            if deadline is not None and time.monotonic() > deadline:
                raise ContainerError(f"timed out waiting for container {record.short_id}")
            time.sleep(0.05)

    # ----------------------------------------------------------------- details

    def inspect_record(self, record: ContainerRecord) -> dict[str, Any]:
        from berth.engine.container_inspect import inspect_document

        return inspect_document(self.engine, record)

    def log_chunks(
        self,
        container: Container,
        *,
        stdout: bool,
        stderr: bool,
        timestamps: bool,
        tail: int | str,
        since: float | None,
        until: float | None,
        follow: bool,
    ) -> Iterator[tuple[str, bytes]]:
        from berth.containers.logs import read_logs

        record = container.record
        log_type = (record.host_config.get("LogConfig") or {}).get("Type", "json-file")
        if log_type not in ("json-file", "local"):
            raise ContainerError(f'configured logging driver "{log_type}" does not support reading')
        tail_count = None if tail in ("all", -1, "-1") else int(tail)

        def is_running() -> bool:
            try:
                return self._reconcile(self.records.get(record.id)).running
            except ContainerNotFound:
                return False

        return read_logs(
            self.records.log_path(record.id),
            stdout=stdout,
            stderr=stderr,
            tail=tail_count,
            since=since,
            until=until,
            timestamps=timestamps,
            follow=follow,
            is_running=is_running,
        )

    def exec_run(
        self,
        container: Container,
        cmd: str | builtins.list[str],
        *,
        stdout: bool,
        stderr: bool,
        user: str,
        workdir: str,
        environment: builtins.list[str],
        privileged: bool,
        detach: bool,
        demux: bool,
    ) -> ExecResult:
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            if detach:
                self.launcher.exec(
                    container.id,
                    argv,
                    env=environment,
                    user=user,
                    workdir=workdir,
                    stdio=(devnull, devnull, devnull),
                    detached=True,
                    privileged=privileged,
                )
                return ExecResult(None, None)
            read_out, write_out = os.pipe()
            read_err, write_err = os.pipe()
            captured = {"stdout": bytearray(), "stderr": bytearray()}
            import threading

            readers = [
                threading.Thread(target=_drain, args=(fd, captured[name]), daemon=True)
                for name, fd in (("stdout", read_out), ("stderr", read_err))
            ]
            for thread in readers:
                thread.start()
            try:
                code = self.launcher.exec(
                    container.id,
                    argv,
                    env=environment,
                    user=user,
                    workdir=workdir,
                    stdio=(devnull, write_out, write_err),
                    privileged=privileged,
                )
            finally:
                os.close(write_out)
                os.close(write_err)
                for thread in readers:
                    thread.join()
        finally:
            os.close(devnull)
        out = bytes(captured["stdout"]) if stdout else b""
        err = bytes(captured["stderr"]) if stderr else b""
        if demux:
            return ExecResult(code, (out, err))
        return ExecResult(code, out + err)

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> dict[str, Any]:
        from berth.engine.container_filters import prune_selection

        deleted: builtins.list[str] = []
        reclaimed = 0
        for container in prune_selection(self, filters or {}):
            size = _dir_size(self.launcher.rootfs_dirs(container.id).upper)
            with suppress(BerthError):
                self.remove(container)
                deleted.append(container.id)
                reclaimed += size
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


# ------------------------------------------------------------------------------- helpers


def _event(
    collection: ContainerCollection, action: str, record: ContainerRecord, **extra: Any
) -> None:
    from berth.containers.events import container_event

    container_event(collection.engine.store, action, record, **extra)


def _close_write_ends(stdio: tuple[int, int, int], pipes: dict[str, int] | None) -> None:
    if not pipes:
        return
    for fd in set(stdio[1:]):
        with suppress(OSError):
            os.close(fd)


def _pump_and_wait(pid: int, pipes: dict[str, int], sink: Any, writer: Any) -> int:
    """Copy the container's output until both pipes close, then reap it."""
    open_fds = {fd: name for name, fd in pipes.items()}
    while open_fds:
        try:
            ready, _, _ = select.select(list(open_fds), [], [])
        except InterruptedError:
            continue
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not data:
                os.close(fd)
                del open_fds[fd]
                continue
            name = open_fds[fd]
            if sink is not None:
                sink(name, data)
            if writer is not None:
                writer.write(name, data)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return UNKNOWN_EXIT
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


PROXIED_SIGNALS = (
    signals.SIGINT,
    signals.SIGTERM,
    signals.SIGHUP,
    signals.SIGQUIT,
    signals.SIGUSR1,
    signals.SIGUSR2,
)


def _proxy_signals(launcher: Launcher, container_id: str) -> dict[int, Any]:
    """docker run's sig-proxy: signals to the CLI are passed on to the container."""

    def forward(signum: int, _frame: object) -> None:
        with suppress(BerthError, OSError):
            launcher.kill(container_id, signum)

    old: dict[int, Any] = {}
    for signum in PROXIED_SIGNALS:
        with suppress(ValueError, OSError):
            old[signum] = signals.set_handler(signum, forward)
    return old


def _restore_signals(old: dict[int, Any]) -> None:
    for signum, handler in old.items():
        with suppress(ValueError, OSError):
            signals.set_handler(signum, handler)


def _is_zombie(pid: int) -> bool:
    """An exited process its (new) parent has not reaped yet: gone, for a container."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def _drain(fd: int, into: bytearray) -> None:
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        into.extend(data)
    os.close(fd)


def _dir_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
