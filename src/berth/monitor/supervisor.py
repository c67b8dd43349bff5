"""The supervisor: one process per store that runs its detached containers.

It starts them (so their inits are its children, or the anchor's), holds their stdio and
writes their logs, learns how they ended and records it, restarts them as their policy says,
runs their healthchecks, and answers CLIs on ``supervisor.sock`` (start, stop, kill, restart,
wait, attach, forget, boot, ping, shutdown). See docs/supervisor.md for the whole design.

Containers do not depend on it: when it dies they keep running (their output waits in their
FIFOs), the anchor reaps what ends meanwhile, and a new supervisor re-adopts them
(:meth:`Supervisor.recover`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from berth.errors import (
    BerthError,
    ContainerError,
    ContainerNotFound,
    ContainerStateConflict,
    InvalidArgument,
)
from berth.monitor import protocol
from berth.monitor.anchorlink import AnchorLink
from berth.monitor.backend import Backend, RecordView
from berth.monitor.connection import Connection
from berth.monitor.health import HealthConfig, HealthState
from berth.monitor.loop import Loop, Timer, log, log_exception
from berth.monitor.paths import MonitorPaths
from berth.monitor.probes import HealthRunner
from berth.monitor.procs import UNKNOWN_EXIT, ExitWatcher, start_time
from berth.monitor.restart import Backoff, RestartPolicy
from berth.monitor.session import AttachSession
from berth.monitor.stdio import prepare, receive_pty, reopen_outputs
from berth.monitor.supervised import Supervised, load_run_state, monotonic_of
from berth.store.paths import StorePaths

IDLE_CHECK_SECONDS = 2.0
KILL_WAIT_SECONDS = 10.0
FOREIGN_POLL_SECONDS = 0.1
UNKNOWN_EXIT_ERROR = (
    "the container's process ended while no berth process was watching it; its exit code is unknown"
)
MANUALLY_STOPPED = "HasBeenManuallyStopped"

Waiter = tuple[Connection, str]


class Supervisor:
    def __init__(
        self,
        store_paths: StorePaths,
        backend: Backend,
        anchor: AnchorLink | None,
        *,
        idle_exit: float | None,
        monitor_paths: MonitorPaths | None = None,
    ) -> None:
        self.paths = monitor_paths or MonitorPaths(store_paths.run_dir)
        self.backend = backend
        self.anchor = anchor
        self.idle_exit = idle_exit
        self.loop = Loop()
        self.exits = ExitWatcher(self.loop)
        self.running: dict[str, Supervised] = {}
        self.restarts: dict[str, Timer] = {}
        self.backoffs: dict[str, Backoff] = {}
        self.waiters: dict[str, list[Waiter]] = {}
        self.connections: set[Connection] = set()
        self.kept: dict[str, int] = {}
        self.listener: socket.socket | None = None
        self._idle_since: float | None = None
        self._exit_lock: int | None = None
        self._socket_inode = -1
        self.store_paths = store_paths
        self.dns: Any = None

    # =================================================================== serving

    def serve(self) -> int:
        """Recover, listen, and run until idle or told to stop. The process's exit code."""
        if self.anchor is not None:
            self.kept, early_exits = self.anchor.handshake()
            for record in early_exits:
                self.exits.on_exit_record(record)
            self.anchor.listen(self.loop, self.exits.on_exit_record, self._anchor_lost)
        self.recover()
        self._listen()
        self._start_dns()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.on_signal(signum, self._terminate)
            self.loop.on_signal(signal.SIGHUP, lambda: None)
        self.loop.call_later(IDLE_CHECK_SECONDS, self._idle_check)
        log(f"serving {self.paths.socket} ({len(self.running)} containers re-adopted)")
        try:
            self.loop.run()
        finally:
            if self.dns is not None:
                self.dns.stop()
            self._close_listener()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths.pid_file)
        return 0

    def _listen(self) -> None:
        path = self.paths.socket
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead supervisor's: only one supervisor runs (anchor.lock)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        self._socket_inode = os.stat(path).st_ino
        os.chmod(path, 0o600)
        listener.listen(128)
        listener.setblocking(False)
        self.listener = listener
        self.loop.add_reader(listener.fileno(), self._accept)
        with open(self.paths.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        self.loop.forget_fd(self.listener.fileno())
        try:
            ours = os.stat(self.paths.socket).st_ino == self._socket_inode
        except OSError:
            ours = False
        if ours:
            os.unlink(self.paths.socket)
        self.listener.close()
        self.listener = None

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn = Connection(self.loop, sock, self._dispatch)
            self.connections.add(conn)
            conn.on_close.append(functools.partial(self.connections.discard, conn))

    def _dispatch(self, conn: Connection, request: dict[str, Any]) -> None:
        op = str(request.get("op") or "")
        handler = getattr(self, f"op_{op.replace('-', '_')}", None)
        try:
            if handler is None:
                raise InvalidArgument(f"the supervisor has no operation {op!r}")
            handler(conn, request)
        except BerthError as exc:
            conn.reply(protocol.error_reply(exc))
        except Exception as exc:
            log_exception(f"error in {op}")
            conn.reply(
                protocol.error_reply(
                    ContainerError(
                        f"the supervisor failed in {op}: {exc!r}",
                        hint=f"see {self.paths.log}",
                    )
                )
            )

    def _terminate(self) -> None:
        log("asked to terminate; the containers keep running")
        self.loop.stop()

    def _anchor_lost(self) -> None:
        log("the anchor is gone: exits of containers that outlive this supervisor will be lost")
        self.anchor = None

    # ================================================================= operations

    def op_ping(self, conn: Connection, request: dict[str, Any]) -> None:
        conn.reply(
            {
                "ok": True,
                "pid": os.getpid(),
                "anchored": self.anchor is not None,
                "anchor_pid": os.getppid() if self.anchor is not None else 0,
                "running": sorted(self.running),
                "restarting": sorted(self.restarts),
            }
        )

    def op_start(self, conn: Connection, request: dict[str, Any]) -> None:
        self.user_start(str(request["id"]))
        conn.reply({"ok": True})

    def op_stop(self, conn: Connection, request: dict[str, Any]) -> None:
        container_id = str(request["id"])
        self.stop(
            container_id,
            request.get("timeout"),
            request.get("signal"),
            lambda: conn.reply({"ok": True}),
        )

    def op_kill(self, conn: Connection, request: dict[str, Any]) -> None:
        from berth.containers.runtimes import signal_number

        container_id = str(request["id"])
        signum = signal_number(request.get("signal") or "KILL")
        supervised = self.running.get(container_id)
        if supervised is None:
            if container_id in self.restarts:
                raise ContainerStateConflict(
                    f"Container {container_id} is restarting, wait until the container is running"
                )
            self.backend.kill(container_id, signum)  # raises when it is not running
            conn.reply({"ok": True})
            return
        stop_signal = self.backend.stop_signal(container_id)[0]
        if signum in (signal.SIGKILL, stop_signal):
            supervised.exit_on_next = True
            self._mark_manually_stopped(container_id, True)
        self.backend.kill(container_id, signum)
        if signum == signal.SIGKILL:
            supervised.on_exit.append(lambda: conn.reply({"ok": True}))  # once it is gone
        else:
            conn.reply({"ok": True})

    def op_restart(self, conn: Connection, request: dict[str, Any]) -> None:
        container_id = str(request["id"])

        def then_start() -> None:
            try:
                self.user_start(container_id)
            except BerthError as exc:
                conn.reply(protocol.error_reply(exc))
                return
            conn.reply({"ok": True})

        self.stop(container_id, request.get("timeout"), None, then_start)

    def op_wait(self, conn: Connection, request: dict[str, Any]) -> None:
        container_id = str(request["id"])
        condition = str(request.get("condition") or "not-running")
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        record = self.backend.get(container_id)
        ours = container_id in self.running or container_id in self.restarts
        if condition == "not-running" and not ours:
            if record.status in ("running", "paused"):  # a foreground container of a CLI
                self._poll_foreign(container_id, lambda code: conn.reply(_exit_reply(code)))
                return
            conn.reply(_exit_reply(int(record.state.get("ExitCode") or 0)))
            return
        waiters = self.waiters.setdefault(container_id, [])
        waiter = (conn, condition)
        waiters.append(waiter)
        conn.on_close.append(lambda: _discard(waiters, waiter))

    def op_attach(self, conn: Connection, request: dict[str, Any]) -> None:
        """Attach (``start``: start it first, in the same step, so that no output is
        missed: ``start -a``)."""
        container_id = str(request["id"])
        if request.get("start") and container_id not in self.running:
            self.user_start(container_id)
        supervised = self.running.get(container_id)
        if supervised is None:
            record = self.backend.get(container_id)
            if record.status in ("running", "paused"):
                raise ContainerStateConflict(
                    f"container {container_id[:12]} runs in the foreground of another berth "
                    "command; it cannot be attached to"
                )
            raise ContainerStateConflict("You cannot attach to a stopped container, start it first")
        session = AttachSession(
            self,
            supervised,
            conn,
            stdin=bool(request.get("stdin")) and supervised.input_fd is not None,
            stdout=bool(request.get("stdout", True)),
            stderr=bool(request.get("stderr", True)),
        )
        conn.reply({"ok": True, "tty": supervised.tty}, keep_open=True)
        if request.get("logs"):
            self._replay_log(supervised, session)
        supervised.sessions.append(session)
        session.begin()

    def op_forget(self, conn: Connection, request: dict[str, Any]) -> None:
        container_id = str(request["id"])
        timer = self.restarts.pop(container_id, None)
        if timer is not None:
            timer.cancel()
        self.backoffs.pop(container_id, None)
        supervised = self.running.get(container_id)
        if supervised is not None:  # removing a running container: it goes first
            supervised.exit_on_next = True
            supervised.on_exit.append(lambda: conn.reply({"ok": True}))
            with contextlib.suppress(BerthError):
                self.backend.kill(container_id, signal.SIGKILL)
            return
        self._remove_run_dir(container_id)
        self._notify_removed(container_id)
        conn.reply({"ok": True})

    def op_shutdown(self, conn: Connection, request: dict[str, Any]) -> None:
        busy = len(self.running) + len(self.restarts)
        if busy and not request.get("force"):
            raise ContainerStateConflict(
                f"{busy} container(s) run under this supervisor",
                hint="stop them first; or force it: they keep running, unsupervised",
            )
        if self.anchor is not None:
            self.anchor.quit_with_supervisor()
        conn.reply({"ok": True})
        self.loop.call_soon(self.loop.stop)

    def op_boot(self, conn: Connection, request: dict[str, Any]) -> None:
        started: list[str] = []
        failed: list[dict[str, str]] = []
        for record in self.backend.all():
            if record.id in self.running or record.id in self.restarts:
                continue
            if record.status in ("running", "paused", "restarting"):
                continue
            if str(record.state.get("StartedAt") or "0001").startswith("0001"):
                continue  # never started: nothing to bring back
            policy = RestartPolicy.of(record.host_config)
            if not policy.starts_at_boot(bool(record.extra.get(MANUALLY_STOPPED))):
                continue
            try:
                self.user_start(record.id)
            except BerthError as exc:
                failed.append({"name": record.name, "error": str(exc)})
            else:
                started.append(record.name)
        conn.reply({"ok": True, "started": started, "failed": failed})

    # ================================================================== lifecycle

    def user_start(self, container_id: str) -> None:
        """``berth start``: a running container is left alone; the restart count resets."""
        if container_id in self.running:
            return
        record = self.backend.get(container_id)
        timer = self.restarts.pop(container_id, None)
        if timer is not None:
            timer.cancel()
            self.backend.update_state(
                container_id, Status="exited", Running=False, Restarting=False
            )
        elif record.status in ("running", "paused"):
            return  # a foreground container of another berth command
        self.backoffs.pop(container_id, None)
        self.backend.update_extra(container_id, RestartCount=0, **{MANUALLY_STOPPED: False})
        self.launch(self.backend.get(container_id))

    def launch(self, record: RecordView) -> Supervised:
        container_id = record.id
        tty = bool(record.config.get("Tty"))
        stdio = prepare(
            self.paths, container_id, tty=tty, open_stdin=bool(record.config.get("OpenStdin"))
        )
        # marked first: should this process die right after the start, the next supervisor
        # knows the container was its predecessor's (and settles it) rather than a CLI's
        self.backend.update_extra(container_id, Supervised=True)
        try:
            pid, pid_start = self.backend.start(container_id, stdio.container, stdio.console_path)
        except BaseException:
            stdio.abandon()
            raise
        stdio.close_container_ends()
        started_wall = time.time()
        supervised = Supervised(
            container_id,
            pid,
            pid_start,
            tty,
            time.monotonic(),
            started_wall,
            stdin_once=bool(record.config.get("StdinOnce")),
        )
        self.running[container_id] = supervised
        try:
            if tty:
                assert stdio.console is not None
                try:
                    master = receive_pty(stdio.console, container_id)
                finally:
                    stdio.close_console()
                supervised.outputs = {master: "stdout"}
                self._keep(supervised, f"tty:{container_id}", master)
            else:
                supervised.outputs = dict(stdio.outputs)
                for fd, stream in supervised.outputs.items():  # what is in them is kept
                    self._keep(supervised, f"{stream}:{container_id}", fd)
                if stdio.stdin is not None:
                    supervised.stdin = stdio.stdin
                    self._keep(supervised, f"stdin:{container_id}", stdio.stdin)
            supervised.save(self.paths.container(container_id))
        except BaseException:
            log_exception(f"setting up container {container_id[:12]} failed; stopping it")
            with contextlib.suppress(BerthError, OSError):
                self.backend.kill(container_id, signal.SIGKILL)
            self._watch(supervised, record)
            raise
        self._watch(supervised, record)
        health = HealthConfig.of(record.config)
        if health is not None:
            state = HealthState.restarted(record.state.get("Health"))
            supervised.health = HealthRunner(
                self.loop, self.exits, self.backend, container_id, health, state, started_wall
            )
            supervised.health.begin()
        return supervised

    def _watch(self, supervised: Supervised, record: RecordView) -> None:
        """Log its output and learn of its end."""
        log_writer = None
        try:
            from berth.containers.logs import writer_for

            log_writer = writer_for(
                self.backend.log_path(supervised.id), record.host_config.get("LogConfig")
            )
        except (BerthError, OSError) as exc:
            log(f"container {supervised.id[:12]}: no log: {exc}")
        supervised.log = log_writer
        for fd in supervised.outputs:
            self.loop.add_reader(fd, functools.partial(self._on_output, supervised, fd))
        self.exits.watch(
            supervised.pid,
            supervised.pid_start,
            lambda code, known: self._on_exit(supervised, code, known),
        )

    def _keep(self, supervised: Supervised, tag: str, fd: int) -> None:
        if self.anchor is not None:
            self.anchor.keep(tag, fd)
            supervised.kept_tags.append(tag)

    # ---------------------------------------------------------------- output

    def _on_output(self, supervised: Supervised, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's other side is closed
            data = b""
        if not data:
            self._close_output(supervised, fd)
            return
        self._deliver(supervised, supervised.outputs[fd], data)

    def _deliver(self, supervised: Supervised, stream: str, data: bytes) -> None:
        if supervised.log is not None:
            try:
                supervised.log.write(stream, data)
                supervised.log_failing = False
            except OSError as exc:
                if not supervised.log_failing:  # once per spell (a full disk...)
                    log(f"container {supervised.id[:12]}: cannot write its log: {exc}")
                supervised.log_failing = True
        congested = False
        for session in list(supervised.sessions):
            session.output(stream, data)
            congested = congested or session.congested
        if congested and not supervised.output_paused:
            supervised.output_paused = True  # the container waits for a slow client
            for fd in supervised.outputs:
                self.loop.remove_reader(fd)

    def resume_output_if_drained(self) -> None:
        for supervised in self.running.values():
            if supervised.output_paused and not any(s.congested for s in supervised.sessions):
                supervised.output_paused = False
                for fd in supervised.outputs:
                    self.loop.add_reader(fd, functools.partial(self._on_output, supervised, fd))

    def _drain_outputs(self, supervised: Supervised) -> None:
        for fd in list(supervised.outputs):
            for _ in range(1024):
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    break
                self._deliver(supervised, supervised.outputs[fd], data)
            self._close_output(supervised, fd)

    def _close_output(self, supervised: Supervised, fd: int) -> None:
        if fd in supervised.outputs and not supervised.tty:
            del supervised.outputs[fd]
        elif fd not in supervised.outputs:
            return
        self.loop.forget_fd(fd)
        if supervised.tty:  # the master stays open (kept) until the container is gone
            return
        os.close(fd)

    def _replay_log(self, supervised: Supervised, session: AttachSession) -> None:
        from berth.containers.logs import read_logs

        try:
            for stream, data in read_logs(self.backend.log_path(supervised.id)):
                session.output(stream, data)
        except OSError as exc:
            log(f"container {supervised.id[:12]}: cannot read its log: {exc}")

    # ------------------------------------------------------------------ stdin

    def write_stdin(self, supervised: Supervised, data: bytes, conn: Connection) -> None:
        if supervised.input_fd is None:
            return
        supervised.stdin_buffer += data
        self._flush_stdin(supervised)

    def _flush_stdin(self, supervised: Supervised) -> None:
        fd = supervised.input_fd
        if fd is None:
            supervised.stdin_buffer.clear()
            return
        while supervised.stdin_buffer:
            try:
                written = os.write(fd, supervised.stdin_buffer)
            except BlockingIOError:
                break
            except OSError:
                supervised.stdin_buffer.clear()
                break
            del supervised.stdin_buffer[:written]
        if supervised.stdin_buffer:
            self.loop.add_writer(fd, lambda: self._flush_stdin(supervised))
        else:
            self.loop.remove_writer(fd)
        congested = len(supervised.stdin_buffer) > (1 << 20)
        for session in supervised.sessions:
            session.conn.pause_reading(congested)

    def close_stdin(self, supervised: Supervised) -> None:
        """The attached client's stdin ended and the container wants that end
        (``StdinOnce``): close every write end so that it reads end-of-file."""
        if supervised.stdin is None:
            return
        self._flush_blocking(supervised)
        self.loop.forget_fd(supervised.stdin)
        os.close(supervised.stdin)
        supervised.stdin = None
        tag = f"stdin:{supervised.id}"
        if tag in supervised.kept_tags and self.anchor is not None:
            self.anchor.drop(tag)
            supervised.kept_tags.remove(tag)

    def _flush_blocking(self, supervised: Supervised) -> None:
        if supervised.stdin is None or not supervised.stdin_buffer:
            return
        os.set_blocking(supervised.stdin, True)
        try:
            while supervised.stdin_buffer:
                written = os.write(supervised.stdin, supervised.stdin_buffer)
                del supervised.stdin_buffer[:written]
        except OSError:
            supervised.stdin_buffer.clear()

    # ------------------------------------------------------------------- exit

    def _on_exit(self, supervised: Supervised, code: int, known: bool) -> None:
        container_id = supervised.id
        self._drain_outputs(supervised)
        for fd in list(supervised.outputs):
            self.loop.forget_fd(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        supervised.outputs.clear()
        if supervised.stdin is not None:
            self.loop.forget_fd(supervised.stdin)
            os.close(supervised.stdin)
            supervised.stdin = None
        if self.anchor is not None:
            for tag in supervised.kept_tags:
                self.anchor.drop(tag)
        if supervised.log is not None:
            with contextlib.suppress(OSError):
                supervised.log.close()
        if supervised.health is not None:
            supervised.health.stop()
        if supervised.stop_timer is not None:
            supervised.stop_timer.cancel()
        if self.running.get(container_id) is supervised:
            del self.running[container_id]
        self._remove_run_dir(container_id)
        ran_for = time.monotonic() - supervised.started
        restart_delay = (
            None if supervised.exit_on_next else self._restart_delay(container_id, code, ran_for)
        )
        try:
            self.backend.finish(container_id, code, restarting=restart_delay is not None)
            if not known:
                self.backend.update_state(container_id, Error=UNKNOWN_EXIT_ERROR)
        except ContainerNotFound:
            restart_delay = None
        except BerthError as exc:
            log(f"container {container_id[:12]}: recording its exit failed: {exc}")
        for session in supervised.sessions:
            session.exited(code)
        supervised.sessions.clear()
        if restart_delay is not None:
            self.restarts[container_id] = self.loop.call_later(
                restart_delay, lambda: self._restart_now(container_id)
            )
        for callback in supervised.on_exit:
            callback()
        self._notify_exit(container_id, code)
        if not self._exists(container_id):  # --rm: removed with its exit
            self._notify_removed(container_id, code)

    def _restart_delay(self, container_id: str, code: int, ran_for: float) -> float | None:
        """If the policy restarts it after this exit: count the restart, and the delay."""
        try:
            record = self.backend.get(container_id)
        except ContainerNotFound:
            return None
        policy = RestartPolicy.of(record.host_config)
        count = int(record.extra.get("RestartCount") or 0)
        manual = bool(record.extra.get(MANUALLY_STOPPED))
        if not policy.wants_restart(code, count, manual):
            self.backoffs.pop(container_id, None)
            return None
        self.backend.update_extra(container_id, RestartCount=count + 1)
        return self.backoffs.setdefault(container_id, Backoff()).next(ran_for)

    def _exists(self, container_id: str) -> bool:
        try:
            self.backend.get(container_id)
        except ContainerNotFound:
            return False
        return True

    def _restart_now(self, container_id: str) -> None:
        self.restarts.pop(container_id, None)
        try:
            record = self.backend.get(container_id)
        except ContainerNotFound:
            return
        if record.status != "restarting":
            return
        try:
            self.launch(record)
        except BerthError as exc:
            log(f"restarting container {container_id[:12]} failed: {exc}")
            with contextlib.suppress(ContainerNotFound):
                record = self.backend.get(container_id)
                if record.status == "restarting":  # a start that failed this early
                    self.backend.update_state(
                        container_id, Status="exited", Running=False, Restarting=False
                    )
            self._notify_exit(container_id, int(record.state.get("ExitCode") or 0))

    def _notify_exit(self, container_id: str, code: int) -> None:
        waiters = self.waiters.get(container_id) or []
        keep = []
        for conn, condition in waiters:
            if condition in ("not-running", "next-exit"):
                conn.reply(_exit_reply(code))
            else:
                keep.append((conn, condition))
        if keep:
            self.waiters[container_id] = keep
        else:
            self.waiters.pop(container_id, None)

    def _notify_removed(self, container_id: str, code: int | None = None) -> None:
        for conn, _condition in self.waiters.pop(container_id, []):
            conn.reply(_exit_reply(code or 0))

    # ------------------------------------------------------------------- stop

    def stop(
        self,
        container_id: str,
        timeout: Any,
        signal_name: Any,
        done: Callable[[], None],
    ) -> None:
        """Stop it (the user asked: no restart follows); ``done`` once it has exited."""
        from berth.containers.runtimes import signal_number

        timer = self.restarts.pop(container_id, None)
        if timer is not None:
            timer.cancel()
            self._mark_manually_stopped(container_id, True)
            self.backend.update_state(
                container_id, Status="exited", Running=False, Restarting=False
            )
            self._notify_exit(
                container_id, int(self.backend.get(container_id).state.get("ExitCode") or 0)
            )
            done()
            return
        supervised = self.running.get(container_id)
        record = self.backend.get(container_id)
        if supervised is None:
            if record.status not in ("running", "paused"):
                done()  # not running: nothing to do, as docker stop
                return
            self._stop_foreign(record, timeout, signal_name, done)
            return
        self._mark_manually_stopped(container_id, True)
        supervised.exit_on_next = True
        signum, default_timeout = self.backend.stop_signal(container_id)
        if signal_name:
            signum = signal_number(str(signal_name))
        wait = default_timeout if timeout is None else int(timeout)
        supervised.on_exit.append(done)
        if record.status == "paused":
            with contextlib.suppress(BerthError):
                self.backend.resume(container_id)
        try:
            self.backend.kill(container_id, signum)
        except BerthError as exc:
            log(f"stopping container {container_id[:12]}: {exc}")
        if wait >= 0 and supervised.stop_timer is None:
            supervised.stop_timer = self.loop.call_later(wait, lambda: self._kill_now(container_id))

    def _kill_now(self, container_id: str) -> None:
        supervised = self.running.get(container_id)
        if supervised is None:
            return
        supervised.stop_timer = None
        try:
            self.backend.kill(container_id, signal.SIGKILL)
        except BerthError as exc:
            log(f"killing container {container_id[:12]}: {exc}")

    def _mark_manually_stopped(self, container_id: str, stopped: bool) -> None:
        with contextlib.suppress(ContainerNotFound):
            self.backend.update_extra(container_id, **{MANUALLY_STOPPED: stopped})

    def _stop_foreign(
        self, record: RecordView, timeout: Any, signal_name: Any, done: Callable[[], None]
    ) -> None:
        """Stop a container another berth command runs in its foreground."""
        from berth.containers.runtimes import signal_number

        signum, default_timeout = self.backend.stop_signal(record.id)
        if signal_name:
            signum = signal_number(str(signal_name))
        wait = default_timeout if timeout is None else int(timeout)
        self._mark_manually_stopped(record.id, True)
        with contextlib.suppress(BerthError):
            self.backend.kill(record.id, signum)
        deadline = time.monotonic() + wait if wait >= 0 else None

        def check(code: int | None = None) -> None:
            done()

        def escalate() -> None:
            with contextlib.suppress(BerthError):
                self.backend.kill(record.id, signal.SIGKILL)

        self._poll_foreign(record.id, check, deadline=deadline, on_deadline=escalate)

    def _poll_foreign(
        self,
        container_id: str,
        done: Callable[[int], None],
        *,
        deadline: float | None = None,
        on_deadline: Callable[[], None] | None = None,
    ) -> None:
        """Call ``done(exit code)`` once the record says the container stopped. Its CLI
        records the exit; if that CLI is gone too, the exit is recorded as unknown here."""
        gone_since: list[float] = []

        def check() -> None:
            nonlocal deadline
            try:
                record = self.backend.get(container_id)
            except ContainerNotFound:
                done(0)
                return
            if record.status not in ("running", "paused"):
                done(int(record.state.get("ExitCode") or 0))
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline and on_deadline is not None:
                deadline = None
                on_deadline()
            pid = int(record.state.get("Pid") or 0)
            alive = pid > 0 and start_time(pid) == int(record.state.get("PidStart") or -1)
            if not alive:
                if not gone_since:
                    gone_since.append(now)
                elif now - gone_since[0] > 2.0:
                    with contextlib.suppress(BerthError):
                        self.backend.finish(container_id, UNKNOWN_EXIT)
                        self.backend.update_state(container_id, Error=UNKNOWN_EXIT_ERROR)
            self.loop.call_later(FOREIGN_POLL_SECONDS, check)

        check()

    # ================================================================== recovery

    def recover(self) -> None:
        """Re-adopt what a previous supervisor ran; settle what ended meanwhile."""
        adopted: set[str] = set()
        try:
            names = os.listdir(self.paths.containers)
        except FileNotFoundError:
            names = []
        for container_id in names:
            try:
                if self._adopt(container_id):
                    adopted.add(container_id)
            except Exception:
                log_exception(f"re-adopting container {container_id[:12]} failed")
        for tag, fd in list(self.kept.items()):  # kept for containers that are gone
            os.close(fd)
            if self.anchor is not None:
                self.anchor.drop(tag)
        self.kept.clear()
        for record in self.backend.all():
            if record.id in adopted:
                continue
            try:
                self._settle(record)
            except Exception:
                log_exception(f"settling container {record.id[:12]} failed")

    def _adopt(self, container_id: str) -> bool:
        directory = self.paths.container(container_id)
        saved = load_run_state(directory)
        try:
            record = self.backend.get(container_id) if saved is not None else None
        except ContainerNotFound:
            record = None
        if saved is None or record is None or record.status not in ("running", "paused"):
            shutil.rmtree(directory, ignore_errors=True)
            return False
        tty = bool(saved.get("tty"))
        started_wall = float(saved.get("started_at") or time.time())
        supervised = Supervised(
            container_id,
            int(saved["pid"]),
            int(saved["pid_start"]),
            tty,
            monotonic_of(started_wall),
            started_wall,
            stdin_once=bool(saved.get("stdin_once")),
        )
        if tty:
            master = self.kept.pop(f"tty:{container_id}", None)
            if master is not None:
                os.set_blocking(master, False)
                supervised.outputs = {master: "stdout"}
                supervised.kept_tags.append(f"tty:{container_id}")
        else:
            for stream in ("stdout", "stderr"):
                fd = self.kept.pop(f"{stream}:{container_id}", None)
                if fd is not None:
                    os.set_blocking(fd, False)
                    supervised.outputs[fd] = stream
                    supervised.kept_tags.append(f"{stream}:{container_id}")
            if not supervised.outputs:  # no anchor kept them: open the FIFOs again
                supervised.outputs = reopen_outputs(self.paths, container_id)
            stdin = self.kept.pop(f"stdin:{container_id}", None)
            if stdin is not None:
                os.set_blocking(stdin, False)
                supervised.stdin = stdin
                supervised.kept_tags.append(f"stdin:{container_id}")
        self.running[container_id] = supervised
        self._watch(supervised, record)
        health = HealthConfig.of(record.config)
        if health is not None and container_id in self.running:
            state = HealthState.resumed(record.state.get("Health"))
            supervised.health = HealthRunner(
                self.loop, self.exits, self.backend, container_id, health, state, started_wall
            )
            supervised.health.begin()
        log(f"re-adopted container {container_id[:12]} (pid {supervised.pid})")
        return True

    def _settle(self, record: RecordView) -> None:
        """A record this supervisor did not re-adopt."""
        if record.status == "restarting":  # the last supervisor died during the backoff
            self.restarts[record.id] = self.loop.call_soon(lambda: self._restart_now(record.id))
            return
        if record.status in ("running", "paused") and record.extra.get("Supervised"):
            # it ran under a supervisor, but nothing of it is left in the run dir: the host
            # restarted, or it was started and lost before it could be recorded
            self.backend.finish(record.id, UNKNOWN_EXIT)
            self.backend.update_state(record.id, Error=UNKNOWN_EXIT_ERROR)

    def _remove_run_dir(self, container_id: str) -> None:
        shutil.rmtree(self.paths.container(container_id), ignore_errors=True)

    # ====================================================================== idle

    # ============================================================ embedded DNS

    def _start_dns(self) -> None:
        """Serve the store's embedded DNS (names on user-defined networks) in a thread."""
        try:
            from berth.network import NetworkManager
            from berth.store.db import Database

            manager = NetworkManager(self.store_paths, Database(self.store_paths.db))
            self.dns = manager.dns_server()
            port = self.dns.start()
            log(f"embedded DNS listening on 127.0.0.1:{port}")
        except Exception as exc:  # the supervisor's job goes on without names
            self.dns = None
            log(f"embedded DNS not started: {exc}")

    def _dns_in_use(self) -> bool:
        """Any container on a network that resolves names (foreground ones too)."""
        if self.dns is None:
            return False
        try:
            from berth.network import NetworkManager
            from berth.store.db import Database

            db = Database(self.store_paths.db)
            try:
                manager = NetworkManager(self.store_paths, db)
                return any(manager.endpoints(n.id) for n in manager.list() if n.has_dns)
            finally:
                db.close()
        except Exception:
            return False

    def _idle_check(self) -> None:
        self.loop.call_later(IDLE_CHECK_SECONDS, self._idle_check)
        if self.idle_exit is None:
            return
        busy = self.running or self.restarts or self.connections or self._dns_in_use()
        now = time.monotonic()
        if busy:
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
            return
        if now - self._idle_since < self.idle_exit:
            return
        # hold start.lock until this process is gone, so that no CLI connects to a supervisor
        # that is leaving: it waits and then starts a new one
        fd = os.open(self.paths.start_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a CLI is starting a supervisor (it will find this one)
            return
        self._exit_lock = fd
        log(f"idle for {self.idle_exit:.0f} s: exiting")
        self._close_listener()
        self.loop.stop()


def _exit_reply(code: int) -> dict[str, Any]:
    return {"ok": True, "exit_code": code}


def _discard(waiters: list[Waiter], waiter: Waiter) -> None:
    with contextlib.suppress(ValueError):
        waiters.remove(waiter)
