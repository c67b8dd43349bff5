"""The OCI runtime as a library: create, start, state, kill, delete, run, exec, and the rest.

:class:`Runtime` is what the engine imports and calls in its own process (``berth run`` never
starts another Python interpreter); ``berth-runtime`` (:mod:`berth.runtime.cli`) is a thin
command line over it. A container's state lives in ``<root>/<id>`` (:mod:`.state`).

The container's init is forked from the calling process (see :mod:`.namespaces`): it is the
caller's child, and the caller reaps it (:meth:`Runtime.wait`, or ``run``, which does). When
the caller exits first (``berth-runtime create``), the init is re-parented as any orphan is.
"""

from __future__ import annotations

import errno
import os
import select

from berth import trace
from berth.errors import (
    BerthError,
    ContainerError,
    ContainerStateConflict,
    InvalidArgument,
    PathNotFound,
)
from berth.runtime import (
    cgroup_adapter,
    hooks,
    namespaces,
    preforked,
    process,
    signals,
    state,
)
from berth.runtime.cgroups import warm
from berth.runtime.init import ChildConfig, exec_main, init_main
from berth.runtime.log import RuntimeLog
from berth.runtime.spec import check_process, check_spec, load_bundle_spec, rootfs_path
from berth.runtime.state import (
    STATUS_CREATED,
    STATUS_PAUSED,
    STATUS_RUNNING,
    STATUS_STOPPED,
    ContainerRecord,
    StateDir,
)
from berth.runtime.sync import (
    MSG_ERROR,
    MSG_GO,
    MSG_HOOKS,
    MSG_READY,
    Channel,
    ChannelClosed,
    ChannelPair,
    error_from_message,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket as socket_module
    from collections.abc import Callable
    from typing import Any

    from berth.runtime.cgroup_adapter import CgroupManager
    from berth.runtime.console import TtyProxy

DEFAULT_STATE_ROOT = state.DEFAULT_STATE_ROOT
_KILL_WAIT_SECONDS = 10.0


def exit_code_of(wait_status: int) -> int:
    """A shell's exit code for a wait status: the code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Runtime:
    """One state root (``/run/berth-runtime`` unless told) and the operations on its
    containers."""

    __slots__ = ("keep_cgroup_parents", "log", "root")

    def __init__(self, root: str = DEFAULT_STATE_ROOT, log: RuntimeLog | None = None, *,
                 keep_cgroup_parents: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.log = log or RuntimeLog.quiet()
        # whether the parent cgroups a container's create makes stay after its delete
        # (berth's engine keeps its store's parent, as Docker keeps /docker; the
        # `berth-runtime` command removes them once empty): CgroupManager.keep_parents
        self.keep_cgroup_parents = keep_cgroup_parents

    @property
    def seccomp_cache(self) -> str:
        """Where compiled seccomp programs are kept (:mod:`berth.runtime.seccomp_bpf`)."""
        return os.path.join(self.root, "@seccomp")  # "@": never a container id

    # -----------------------------------------------------------------------------------------
    # create / start

    def create(
        self,
        container_id: str,
        bundle: str,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        while_setting_up: Callable[[int], None] | None = None,
        start: bool = False,
        spec: dict[str, Any] | None = None,
    ) -> ContainerRecord:
        """Set the container up and leave its init waiting for :meth:`start`.

        ``stdio`` are the fds the container gets as 0, 1, 2 (default: the caller's own). With
        ``process.terminal``, ``console_socket`` must name the unix socket that receives the
        pty's master. ``while_setting_up(pid)`` is called once the init runs, while it sets
        the container up (the caller's own bookkeeping then costs no time; if it raises, the
        container is abandoned). Returns the record (``record.pid`` is the init's pid).

        ``start``: create and start in one (what ``runc run`` does): the start is put in the
        exec fifo before the init is even set up, so the init goes on to the program as soon
        as it is ready, with no round trip through :meth:`start`; this returns once it is
        (the container is then running, its ``poststart`` hooks run). With a terminal the
        start comes after the create, as from :meth:`start` (the pty is wired up first).
        ``spec``: the bundle's ``config.json`` as the caller has just written it (it is not
        read again; it is checked all the same)."""
        bundle = os.path.abspath(bundle)
        if spec is None:
            spec = load_bundle_spec(bundle)
        else:
            check_spec(spec, where=os.path.join(bundle, "config.json"))
        queue_start = start and not (spec.get("process") or {}).get("terminal")
        record, channel, _ = self._create(
            container_id,
            bundle,
            stdio=stdio,
            console_socket=console_socket,
            pid_file=pid_file,
            no_pivot=no_pivot,
            no_new_keyring=no_new_keyring,
            preserve_fds=preserve_fds,
            while_setting_up=while_setting_up,
            start_at_once=queue_start,
            spec=spec,
        )
        channel.close()
        if queue_start:
            self._started(record, StateDir(self.root, container_id))
        elif start:
            self.start(container_id)
        return record

    def _create(
        self,
        container_id: str,
        bundle: str,
        *,
        stdio: tuple[int, int, int] | None,
        console_socket: str | None,
        pid_file: str | None,
        no_pivot: bool,
        no_new_keyring: bool,
        preserve_fds: int,
        own_console: bool = False,
        while_setting_up: Callable[[int], None] | None = None,
        start_at_once: bool = False,
        spec: dict[str, Any] | None = None,
    ) -> tuple[ContainerRecord, Channel, socket_module.socket | None]:
        """``create``; also returns the channel to the init and, with ``own_console``, the
        socket on which the pty master arrives. ``spec``: the bundle's, checked (else read
        from it). ``start_at_once``: the start is queued (``create(start=)``, no terminal)."""
        bundle = os.path.abspath(bundle)
        if spec is None:
            spec = load_bundle_spec(bundle)
        proc = spec.get("process")
        if not proc:
            raise InvalidArgument(
                f"{bundle}/config.json has no process to run",
                hint="add a process section with args",
            )
        rootfs = rootfs_path(spec, bundle)
        if not os.path.isdir(rootfs):
            raise PathNotFound(
                f"the container's root filesystem {rootfs} does not exist",
                hint="root.path in config.json is relative to the bundle",
            )
        terminal = bool(proc.get("terminal"))
        if terminal and console_socket is None and not own_console:
            raise InvalidArgument(
                "process.terminal is set, so a console socket is needed to receive the pty",
                hint="pass --console-socket, or run the container in the foreground",
            )
        if preserve_fds < 0:
            raise InvalidArgument(f"--preserve-fds must not be negative, not {preserve_fds}")
        linux = spec.get("linux") or {}
        state_dir = StateDir(self.root, container_id)
        state_dir.make()
        pid = 0
        manager: CgroupManager | None = None
        plan: namespaces.NamespacePlan | None = None
        to_close: list[int] = []
        sockets: list[socket_module.socket] = []
        ours: socket_module.socket | None = None
        channel: Channel | None = None
        try:
            plan = namespaces.NamespacePlan.from_spec(spec)
            sock, ours = _console_for(terminal, console_socket, own_console)
            if sock is not None:
                sockets.append(sock)
            fifo_fd = os.open(state_dir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            to_close.append(fifo_fd)
            if start_at_once:  # in the fifo until the init, once ready, reads it
                _write_start(state_dir.fifo)
            child = dict(
                container_id=container_id, bundle=bundle, rootfs=rootfs, stdio=stdio,
                console_socket=sock, fifo_fd=fifo_fd, preserve_fds=preserve_fds,
                no_pivot=no_pivot, no_new_keyring=no_new_keyring)
            # An init forked ahead of time starts setting the container up now, while the
            # cgroups are made (it waits for [go] before anything that needs them).
            taken = self._hand_to_init_forked_ahead(spec, plan, **child)
            if taken is not None:
                pid, init_channel = taken
                channel = init_channel
            warm.start()  # the init's move into its cgroups then skips a grace period
            resources = linux.get("resources")
            manager, notes = cgroup_adapter.open_manager(
                linux.get("cgroupsPath"), container_id, resources,
                keep_parents=self.keep_cgroup_parents,
            )
            manager.create(resources)
            trace.mark("runtime: cgroup created")
            for note in (*notes, *_ignored_fields(spec)):
                self.log.debug(note)
            if taken is not None:
                try:
                    manager.add_process(pid)
                    init_channel.send(MSG_GO, pid=pid)
                except (ContainerError, OSError):  # it died after all: fork one
                    init_channel.close()
                    channel = None
                    _kill_and_reap(pid)
                    taken = None
            if taken is None:
                pid, init_channel = self._fork_init(spec, plan, **child)
                channel = init_channel
                manager.add_process(pid)
                init_channel.send(MSG_GO, pid=pid)
            _close_all(to_close, sockets)
            plan.close()
            warm.stop()
            # While the init sets the container up (on another CPU if there is one): what
            # does not need it ready. From here a `state` query finds the container (as
            # created); if the init then fails, the state goes with the rest (_abandon).
            # (the init is this process's child: even if it has already exited, which a
            # container started at once may have, its pid is not reused until reaped)
            start_time = state.process_start_time(pid, exited_child=True)
            if start_time is not None:
                record = ContainerRecord(
                    container_id,
                    bundle,
                    rootfs,
                    spec,
                    pid=pid,
                    pid_start=start_time,
                    annotations=dict(spec.get("annotations") or {}),
                    cgroup=cgroup_adapter.manager_state(manager),
                )
                state_dir.save(record)
                if while_setting_up is not None:
                    while_setting_up(pid)
            self._follow_setup(init_channel, spec, container_id, pid, bundle)
            trace.mark("runtime: init ready")
            if start_time is None:
                raise ContainerError(f"the init of container {container_id} exited during create")
            if pid_file:
                write_pid_file(pid_file, pid)
        except BaseException:
            warm.stop()
            _close_all(to_close, sockets)
            if ours is not None:
                ours.close()
            if channel is not None:
                channel.close()
            if plan is not None:
                plan.close()
            self._abandon(pid, manager, state_dir)
            raise
        return record, init_channel, ours

    def _fork_init(
        self, spec: dict[str, Any], plan: namespaces.NamespacePlan, **child: Any
    ) -> tuple[int, Channel]:
        """Fork the container's init (it waits for [go]); ``(pid, channel)``."""
        identity, seccomp, notes = security_functions_for(spec, self.seccomp_cache)
        for note in notes:
            self.log.debug(note)
        cfg = ChildConfig(spec=spec, process_spec=spec["process"], plan=plan,
                          shim=process.load_shim(), identity=identity, seccomp=seccomp, **child)
        trace.mark("runtime: init configured")
        pid, channel = namespaces.fork_into(plan, ChannelPair())
        if pid == 0:
            init_main(cfg, channel)
        trace.mark("runtime: init forked")
        return pid, channel

    def _hand_to_init_forked_ahead(
        self, spec: dict[str, Any], plan: namespaces.NamespacePlan, **child: Any,
    ) -> tuple[int, Channel] | None:
        """Hand the container to this process's init forked ahead of time
        (:mod:`berth.runtime.preforked`), if there is one that fits; ``(pid, channel)`` as
        :func:`namespaces.fork_into` gives them. It waits for [go] (once in its cgroups)
        before its first step that needs them, as a forked init does before its first."""
        ahead = preforked.take(plan, child.pop("preserve_fds"))
        if ahead is None:
            return None
        try:
            channel = ahead.hand_over(spec=spec, plan=plan, seccomp_cache=self.seccomp_cache,
                                      **child)
        except OSError:  # it died before its container came: fork one
            ahead.discard()
            return None
        trace.mark("runtime: init forked ahead taken")
        return ahead.pid, channel

    def _follow_setup(
        self, channel: Channel, spec: dict[str, Any], container_id: str, pid: int, bundle: str
    ) -> None:
        """Answer the init until it is ready: run the runtime-namespace hooks when asked."""
        while True:
            message = channel.recv()
            if message is None:
                raise ContainerError(
                    f"the init of container {container_id} exited during setup",
                    hint="run with --debug --log FILE for details",
                )
            kind = message["t"]
            if kind == MSG_READY:
                return
            if kind == MSG_ERROR:
                raise error_from_message(message)
            if kind == MSG_HOOKS:
                state_doc = hooks.hook_state(
                    container_id, pid, "creating", bundle, spec.get("annotations") or {},
                    spec["ociVersion"],
                )
                spec_hooks = spec.get("hooks") or {}
                hooks.run_hooks("prestart", spec_hooks.get("prestart") or [], state_doc)
                hooks.run_hooks("createRuntime", spec_hooks.get("createRuntime") or [], state_doc)
                channel.send(MSG_GO)

    def _abandon(self, pid: int, manager: CgroupManager | None, state_dir: StateDir) -> None:
        """Undo a failed create: kill the init, remove its cgroup and state."""
        if pid > 0:
            _kill_and_reap(pid)
        if manager is not None:
            try:
                manager.destroy()
            except (OSError, BerthError) as exc:
                self.log.warning(f"cannot remove the cgroup of a failed container: {exc}")
        state_dir.remove()

    def start(self, container_id: str) -> None:
        """Let a created container's init execute the user's program."""
        state_dir = StateDir(self.root, container_id)
        lock = state_dir.lock()
        try:
            record = state_dir.load()
            status = self._status(record, state_dir)
            if status != STATUS_CREATED:
                raise ContainerStateConflict(
                    f"cannot start container {container_id}: it is {status}, not created",
                    hint="a container can be started once; create a new one to run it again",
                )
            try:
                _write_start(state_dir.fifo)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    raise ContainerError(
                        f"the init of container {container_id} is no longer waiting to start"
                    ) from None
                raise
            os.unlink(state_dir.fifo)
        finally:
            os.close(lock)
        self._run_hooks_warn("poststart", record, STATUS_RUNNING)

    def _started(self, record: ContainerRecord, state_dir: StateDir) -> None:
        """What :meth:`start` does after its write, for a container created with ``start``:
        the fifo goes (the state says running from here), the ``poststart`` hooks run."""
        try:
            os.unlink(state_dir.fifo)
        except FileNotFoundError:
            pass
        self._run_hooks_warn("poststart", record, STATUS_RUNNING)

    def _run_hooks_warn(self, stage: str, record: ContainerRecord, status: str) -> None:
        entries = (record.spec.get("hooks") or {}).get(stage) or []
        if not entries:
            return
        doc = hooks.hook_state(record.id, record.pid, status, record.bundle, record.annotations,
                               record.spec.get("ociVersion", "1.0.2"))
        for hook in entries:
            try:
                hooks.run_hook(stage, hook, doc)
            except BerthError as exc:
                self.log.warning(str(exc))

    # -----------------------------------------------------------------------------------------
    # run

    def run(
        self,
        container_id: str,
        bundle: str,
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        keep: bool = False,
    ) -> int:
        """Create, start, wait, delete: the container's exit code (128 + n for signal n).

        Signals sent to this process while the container runs are passed on to it. A terminal
        without ``console_socket`` is proxied to ``stdio`` (or this process's stdio)."""
        waiter = ForegroundWaiter()
        ours = None
        proxy: TtyProxy | None = None
        created = False
        try:
            record, channel, ours = self._create(
                container_id,
                bundle,
                stdio=stdio,
                console_socket=console_socket,
                pid_file=pid_file,
                no_pivot=no_pivot,
                no_new_keyring=no_new_keyring,
                preserve_fds=preserve_fds,
                own_console=console_socket is None,
            )
            created = True
            if ours is not None:
                proxy = _start_proxy(ours, stdio)
            self.start(container_id)
            code, error = waiter.wait(record.pid, channel, proxy)
            if error is not None:
                raise error
            return code
        finally:
            waiter.close()
            if proxy is not None:
                proxy.stop()
                os.close(proxy.master)
            if ours is not None:
                ours.close()
            if created and not keep:
                try:
                    self.delete(container_id, force=True)
                except BerthError as exc:
                    self.log.warning(f"cannot delete container {container_id}: {exc}")

    def wait(self, container_id: str) -> int:
        """Wait for the init of a container this process created; its exit code."""
        record = StateDir(self.root, container_id).load()
        _, status = os.waitpid(record.pid, 0)
        return exit_code_of(status)

    # -----------------------------------------------------------------------------------------
    # state, list

    def _status(self, record: ContainerRecord, state_dir: StateDir) -> str:
        frozen = False
        if record.init_alive():
            try:
                manager = cgroup_adapter.manager_from_state(record.cgroup)
                frozen = manager.freezer_state() == "FROZEN"
            except (OSError, BerthError):
                frozen = False
        return state.status_of(record, state_dir, frozen)

    def record(self, container_id: str) -> ContainerRecord:
        return StateDir(self.root, container_id).load()

    def state(self, container_id: str) -> dict[str, Any]:
        """The OCI state document, as ``runc state`` prints it."""
        state_dir = StateDir(self.root, container_id)
        record = state_dir.load()
        return record.oci_state(self._status(record, state_dir))

    def list_containers(self) -> list[dict[str, Any]]:
        out = []
        for container_id in state.list_ids(self.root):
            try:
                out.append(self.state(container_id))
            except BerthError:
                continue
        return out

    # -----------------------------------------------------------------------------------------
    # kill, delete

    def kill(self, container_id: str, signum: int = signals.SIGTERM, all: bool = False) -> None:
        """Send ``signum`` to the container's init (``all``: to every process in it)."""
        state_dir = StateDir(self.root, container_id)
        record = state_dir.load()
        status = self._status(record, state_dir)
        if status == STATUS_STOPPED:
            raise ContainerStateConflict(
                f"container {container_id} is not running", hint="there is nothing to signal"
            )
        if all:
            self._signal_all(record, signum)
        else:
            _signal_init(record, signum)

    def _signal_all(self, record: ContainerRecord, signum: int) -> None:
        manager = cgroup_adapter.manager_from_state(record.cgroup)
        frozen = False
        if signum == signals.SIGKILL:
            try:
                manager.freeze()
                frozen = True
            except (OSError, BerthError):
                frozen = False
        try:
            pids = set(manager.pids())
            if record.init_alive():
                pids.add(record.pid)
            for pid in sorted(pids):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                manager.thaw()

    def delete(self, container_id: str, force: bool = False) -> bool:
        """Remove a stopped (or created) container; ``force`` kills a running one first.
        Returns whether the kernel's OOM killer killed a process of it (its cgroup says, read
        before the cgroup goes)."""
        state_dir = StateDir(self.root, container_id)
        lock = state_dir.lock()
        try:
            try:
                record = state_dir.load()
            except ContainerStateConflict:
                if not force:
                    raise
                state_dir.remove()
                return False
            status = self._status(record, state_dir)
            if status in (STATUS_RUNNING, STATUS_PAUSED) and not force:
                raise ContainerStateConflict(
                    f"cannot delete container {container_id}: it is {status}",
                    hint="stop it first (kill), or delete --force",
                )
            manager = cgroup_adapter.manager_from_state(record.cgroup)
            if status != STATUS_STOPPED:
                self._signal_all(record, signals.SIGKILL)
                if status == STATUS_PAUSED:
                    try:
                        manager.thaw()
                    except (OSError, BerthError):
                        pass
                _wait_gone(record.pid, _KILL_WAIT_SECONDS)
            _reap_if_ours(record)
            try:
                oom_killed = bool(manager.oom_killed())
            except (OSError, BerthError):
                oom_killed = False
            try:
                manager.destroy()
            except (OSError, BerthError) as exc:
                self.log.warning(f"cannot remove the cgroup of container {container_id}: {exc}")
            self._run_hooks_warn("poststop", record, STATUS_STOPPED)
            state_dir.remove()
        finally:
            os.close(lock)
        return oom_killed

    # -----------------------------------------------------------------------------------------
    # pause, resume, ps, update, stats

    def _manager(self, container_id: str, want: tuple[str, ...]) -> CgroupManager:
        state_dir = StateDir(self.root, container_id)
        record = state_dir.load()
        status = self._status(record, state_dir)
        if status not in want:
            raise ContainerStateConflict(
                f"container {container_id} is {status}, not {' or '.join(want)}"
            )
        return cgroup_adapter.manager_from_state(record.cgroup)

    def pause(self, container_id: str) -> None:
        self._manager(container_id, (STATUS_RUNNING, STATUS_CREATED)).freeze()

    def resume(self, container_id: str) -> None:
        self._manager(container_id, (STATUS_PAUSED,)).thaw()

    def ps(self, container_id: str) -> list[int]:
        """The pids (as this process sees them) of the container's processes."""
        state_dir = StateDir(self.root, container_id)
        record = state_dir.load()
        if not record.init_alive():
            return []
        pids = set(cgroup_adapter.manager_from_state(record.cgroup).pids())
        pids.add(record.pid)
        return sorted(pids)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Change the container's cgroup limits (``linux.resources`` form)."""
        state_dir = StateDir(self.root, container_id)
        lock = state_dir.lock()
        try:
            record = state_dir.load()
            if self._status(record, state_dir) == STATUS_STOPPED:
                raise ContainerStateConflict(f"container {container_id} is stopped")
            cgroup_adapter.manager_from_state(record.cgroup).update(resources)
            linux = record.spec.setdefault("linux", {})
            merged = dict(linux.get("resources") or {})
            for key, value in resources.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            linux["resources"] = merged
            state_dir.save(record)
        finally:
            os.close(lock)

    def stats(self, container_id: str) -> dict[str, Any]:
        record = StateDir(self.root, container_id).load()
        return cgroup_adapter.manager_from_state(record.cgroup).stats()

    # -----------------------------------------------------------------------------------------
    # exec

    def exec(
        self,
        container_id: str,
        process_spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        preserve_fds: int = 0,
    ) -> int:
        """Run ``process_spec`` (a spec ``process``) in the container and wait: its exit code."""
        if console_socket is None:
            process_spec = _sized_as_our_terminal(process_spec, stdio)
        waiter = ForegroundWaiter()
        proxy: TtyProxy | None = None
        ours = None
        try:
            pid, channel, ours = self._exec(
                container_id, process_spec, stdio=stdio, console_socket=console_socket,
                pid_file=pid_file, preserve_fds=preserve_fds, own_console=console_socket is None,
            )
            if ours is not None:
                proxy = _start_proxy(ours, stdio)
            code, error = waiter.wait(pid, channel, proxy)
            if error is not None:
                raise error
            return code
        finally:
            waiter.close()
            if proxy is not None:
                proxy.stop()
                os.close(proxy.master)
            if ours is not None:
                ours.close()

    def exec_detached(
        self,
        container_id: str,
        process_spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int] | None = None,
        console_socket: str | None = None,
        pid_file: str | None = None,
        preserve_fds: int = 0,
    ) -> int:
        """Start ``process_spec`` in the container and return its pid (this process's child)."""
        pid, channel, _ = self._exec(
            container_id, process_spec, stdio=stdio, console_socket=console_socket,
            pid_file=pid_file, preserve_fds=preserve_fds, own_console=False,
        )
        try:
            # end-of-file: the process has exec'd the shim (or died); anything else is an error
            message = _recv_or_none(channel)
        finally:
            channel.close()
        if message is not None and message["t"] == MSG_ERROR:
            _reap(pid)
            raise error_from_message(message)
        return pid

    def _exec(
        self,
        container_id: str,
        process_spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int] | None,
        console_socket: str | None,
        pid_file: str | None,
        preserve_fds: int,
        own_console: bool,
    ) -> tuple[int, Channel, socket_module.socket | None]:
        state_dir = StateDir(self.root, container_id)
        record = state_dir.load()
        status = self._status(record, state_dir)
        if status in (STATUS_STOPPED, STATUS_PAUSED):
            raise ContainerStateConflict(
                f"cannot exec in container {container_id}: it is {status}",
                hint="start or resume it first" if status == STATUS_PAUSED else "",
            )
        check_process(process_spec, "the exec process")
        terminal = bool(process_spec.get("terminal"))
        if terminal and console_socket is None and not own_console:
            raise InvalidArgument(
                "a terminal was asked for, so a console socket is needed to receive the pty",
                hint="pass --console-socket, or run exec in the foreground",
            )
        kinds = [ns["type"] for ns in (record.spec.get("linux") or {}).get("namespaces") or []]
        plan = namespaces.NamespacePlan.for_process_in(record.pid, kinds)
        sockets: list[socket_module.socket] = []
        ours = None
        pid = 0
        channel = None
        try:
            if not record.init_alive():
                raise ContainerStateConflict(f"container {container_id} stopped meanwhile")
            manager = cgroup_adapter.manager_from_state(record.cgroup)
            identity, seccomp, notes = security_functions_for(record.spec, self.seccomp_cache)
            for note in notes:
                self.log.debug(note)
            sock, ours = _console_for(terminal, console_socket, own_console)
            if sock is not None:
                sockets.append(sock)
            cfg = ChildConfig(
                container_id=container_id,
                spec=record.spec,
                process_spec=process_spec,
                plan=plan,
                shim=process.load_shim(),
                identity=identity,
                seccomp=seccomp,
                bundle=record.bundle,
                rootfs=record.rootfs,
                stdio=stdio,
                console_socket=sock,
                preserve_fds=preserve_fds,
            )
            pid, channel = namespaces.fork_into(plan, ChannelPair())
            if pid == 0:
                exec_main(cfg, channel)
            _close_all([], sockets)
            plan.close()
            manager.add_process(pid)
            channel.send(MSG_GO)
            channel.expect(MSG_READY, "exec setup")
            if pid_file:
                write_pid_file(pid_file, pid)
        except BaseException:
            _close_all([], sockets)
            plan.close()
            if ours is not None:
                ours.close()
            if channel is not None:
                channel.close()
            if pid > 0:
                try:
                    os.kill(pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap(pid)
            raise
        return pid, channel, ours


# ---------------------------------------------------------------------------------------------
# helpers


def security_functions_for(
    spec: dict[str, Any], seccomp_cache: str | None = None
) -> tuple[process.IdentityFunction, process.SeccompLoader, list[str]]:
    return process.security_functions((spec.get("linux") or {}).get("seccomp"), seccomp_cache)


def _ignored_fields(spec: dict[str, Any]) -> list[str]:
    """Notes for the spec fields berth-runtime accepts and does not apply."""
    proc = spec.get("process") or {}
    linux = spec.get("linux") or {}
    notes = []
    for where, value in (
        ("process.apparmorProfile", proc.get("apparmorProfile")),
        ("process.selinuxLabel", proc.get("selinuxLabel")),
        ("linux.mountLabel", linux.get("mountLabel")),
        ("linux.personality", linux.get("personality")),
        ("linux.intelRdt", linux.get("intelRdt")),
    ):
        if value:
            notes.append(f"{where} is not supported by berth-runtime and is ignored")
    return notes


def _console_for(
    terminal: bool, console_socket: str | None, own_console: bool
) -> tuple[socket_module.socket | None, socket_module.socket | None]:
    """(the socket the child sends the pty on, our end when we receive it ourselves)."""
    if not terminal:
        return None, None
    from berth.runtime import console

    if console_socket is not None:
        return console.connect_console_socket(console_socket), None
    if not own_console:
        return None, None
    theirs, ours = console.console_socketpair()
    return theirs, ours


def _sized_as_our_terminal(process_spec: dict[str, Any],
                           stdio: tuple[int, int, int] | None) -> dict[str, Any]:
    """A foreground process with a terminal of its own: given the size of the terminal this
    process proxies it to (its ``consoleSize``, set before the process runs), unless it says
    one. The proxy sets it too, but only once it has the pty: the process runs by then, and
    one that asks at once (``stty size``, a full-screen program drawing) could find 0x0."""
    if not process_spec.get("terminal") or process_spec.get("consoleSize"):
        return process_spec
    from berth.runtime import console

    size = console.proxied_size(*((stdio[0], stdio[1]) if stdio else (0, 1)))
    if not size or not all(size):
        return process_spec
    return {**process_spec, "consoleSize": {"height": size[0], "width": size[1]}}


def _start_proxy(sock: socket_module.socket, stdio: tuple[int, int, int] | None) -> TtyProxy:
    from berth.runtime import console

    master, _ = console.receive_fd(sock)
    stdin, stdout = (stdio[0], stdio[1]) if stdio else (0, 1)
    proxy = console.TtyProxy(master, stdin, stdout)
    proxy.start()
    return proxy


def _write_start(fifo: str) -> None:
    """Put the start in the exec fifo (the init reads it once ready); ENXIO if no one holds
    the fifo open for reading."""
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def _close_all(fds: list[int], sockets: list[socket_module.socket]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()
    for sock in sockets:
        sock.close()
    sockets.clear()


def write_pid_file(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (a reader never sees a partial file)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.berth-tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as exc:
        raise InvalidArgument(f"cannot write the pid file {path}: {exc.strerror}") from None


def _signal_init(record: ContainerRecord, signum: int) -> None:
    """Signal the init through a pidfd, checked to still be the container's process."""
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        raise ContainerStateConflict(f"container {record.id} is not running") from None
    try:
        if state.process_start_time(record.pid) != record.pid_start:
            raise ContainerStateConflict(f"container {record.id} is not running")
        signals.pidfd_send(pidfd, signum)
    finally:
        os.close(pidfd)


def _wait_gone(pid: int, timeout: float) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            raise ContainerError(
                f"process {pid} did not exit within {timeout:.0f} s of SIGKILL",
                hint="it may be stuck in the kernel (state D); try again later",
            )
    finally:
        os.close(pidfd)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signals.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _reap_if_ours(record: ContainerRecord) -> None:
    """Reap the init if it is this process's zombie child (a library caller's create)."""
    try:
        with open(f"/proc/{record.pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] == b"Z" and int(fields[1]) == os.getpid() and int(fields[19]) == record.pid_start:
        try:
            os.waitpid(record.pid, os.WNOHANG)
        except ChildProcessError:
            pass


class ForegroundWaiter:
    """Waits for a foreground container process, passing on the signals this process gets
    (through Python's wakeup fd, so nothing runs in a signal handler) and copying a tty."""

    __slots__ = ("_active", "_old_handlers", "_old_wakeup", "_pipe")

    FORWARD_EXCLUDED = frozenset(
        (signals.SIGCHLD, signals.SIGKILL, signals.SIGSTOP, signals.SIGURG, signals.SIGPIPE)
    )

    def __init__(self) -> None:
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_handlers: dict[int, object] = {}
        self._old_wakeup = -1
        self._active = False
        try:
            self._old_wakeup = signals.set_wakeup_fd(self._pipe[1])
        except ValueError:
            return  # not the main thread: signals stay where they are
        self._active = True
        for signum in signals.all_signals() - self.FORWARD_EXCLUDED:
            try:
                self._old_handlers[signum] = signals.set_handler(signum, _ignore_handler)
            except (OSError, ValueError):
                continue

    def close(self) -> None:
        if self._active:
            for signum, handler in self._old_handlers.items():
                try:
                    signals.set_handler(signum, handler)
                except (OSError, ValueError, TypeError):
                    pass
            signals.set_wakeup_fd(self._old_wakeup)
            self._active = False
        for fd in self._pipe:
            try:
                os.close(fd)
            except OSError:
                pass

    def wait(
        self, pid: int, channel: Channel | None, proxy: TtyProxy | None
    ) -> tuple[int, BaseException | None]:
        """Until ``pid`` exits: its exit code, and an error the child reported after start."""
        error: BaseException | None = None
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self._pipe[0], select.POLLIN)
        if channel is not None and channel.rfd >= 0:
            poller.register(channel.rfd, select.POLLIN)
        if proxy is not None:
            poller.register(proxy.master, select.POLLIN)
            poller.register(proxy.stdin, select.POLLIN)
        try:
            exited = False
            while not exited:
                for fd, _ in poller.poll():
                    if fd == pidfd:
                        exited = True
                    elif fd == self._pipe[0]:
                        self._forward(pid, proxy)
                    elif channel is not None and fd == channel.rfd:
                        message = _recv_or_none(channel)
                        if message is None:
                            poller.unregister(fd)
                        elif message["t"] == MSG_ERROR:
                            error = error_from_message(message)
                    elif proxy is not None and fd == proxy.master:
                        if not proxy.from_master():
                            poller.unregister(fd)
                    elif proxy is not None and fd == proxy.stdin and not proxy.from_stdin():
                        poller.unregister(fd)
            if proxy is not None:
                _drain(proxy)
        finally:
            os.close(pidfd)
            if channel is not None:
                channel.close()
        _, status = os.waitpid(pid, 0)
        return exit_code_of(status), error

    def _forward(self, pid: int, proxy: TtyProxy | None) -> None:
        try:
            data = os.read(self._pipe[0], 256)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signals.SIGWINCH and proxy is not None:
                proxy.resize()
                continue
            if signum in self.FORWARD_EXCLUDED:
                continue
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _ignore_handler(signum: int, frame: object) -> None:
    del signum, frame


def _recv_or_none(channel: Channel) -> dict[str, Any] | None:
    try:
        return channel.recv()
    except (OSError, ValueError, ChannelClosed):
        return None


def _drain(proxy: TtyProxy) -> None:
    poller = select.poll()
    poller.register(proxy.master, select.POLLIN)
    while poller.poll(50):
        if not proxy.from_master():
            break


# ---------------------------------------------------------------------------------------------
# module-level functions, for callers that hold no Runtime


def create(state_root: str, container_id: str, bundle: str, **kwargs: Any) -> ContainerRecord:
    return Runtime(state_root).create(container_id, bundle, **kwargs)


def start(state_root: str, container_id: str) -> None:
    Runtime(state_root).start(container_id)


def run(state_root: str, container_id: str, bundle: str, **kwargs: Any) -> int:
    return Runtime(state_root).run(container_id, bundle, **kwargs)


def kill(state_root: str, container_id: str, signum: int = signals.SIGTERM,
         all: bool = False) -> None:
    Runtime(state_root).kill(container_id, signum, all=all)


def delete(state_root: str, container_id: str, force: bool = False) -> None:
    Runtime(state_root).delete(container_id, force=force)


def container_state(state_root: str, container_id: str) -> dict[str, Any]:
    return Runtime(state_root).state(container_id)
