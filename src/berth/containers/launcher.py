"""Starting, signalling and finishing containers: the one place that turns a record into a
running process and back.

``start`` mounts the rootfs (the image's layers + the container's upper dir), seeds empty
volumes, resolves the user inside the container, writes /etc files and ``config.json``, and
creates and starts the container through its runtime. ``finish`` records how it ended and
undoes all of that. Both are used by the CLI (foreground containers) and by the supervisor
(detached ones); every failure undoes what was done and is recorded in ``State.Error``.
"""

from __future__ import annotations

import os

from berth import jsonio, trace
from berth.basics import suppress
from berth.containers.etcfiles import write_etc_files
from berth.containers.records import ContainerRecord, ContainerRecords, now_rfc3339
from berth.containers.runtimes import runtime_for, signal_number
from berth.containers.spec import ETC_FILES, SpecInputs, build_spec
from berth.containers.users import resolve_user
from berth.containers.volumes import VolumeStore, seed_volume
from berth.errors import BerthError, ContainerStateConflict
from berth.runtime import signals
from berth.store.rootfs import RootfsDirs, mount_rootfs, unmount_rootfs
from berth.store.trees import remove_tree, remove_tree_soon
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.containers.runtimes import ContainerRuntime
    from berth.store.store import Store

DEFAULT_STOP_TIMEOUT = 10


class Started(FrozenValue):
    __slots__ = ("pid", "pid_start")
    pid: int
    pid_start: int

    def __init__(self, pid: int, pid_start: int) -> None:
        init_fields(self, pid=pid, pid_start=pid_start)


class Launcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = ContainerRecords(store)
        self.volumes = VolumeStore(store)
        self._runtimes: dict[str, ContainerRuntime] = {}

    # ----------------------------------------------------------------- helpers

    def runtime(self, record: ContainerRecord) -> ContainerRuntime:
        name = str(record.host_config.get("Runtime") or "berth")
        if name not in self._runtimes:
            self._runtimes[name] = runtime_for(self.store.paths, name)
        return self._runtimes[name]

    def rootfs_dirs(self, container_id: str) -> RootfsDirs:
        return RootfsDirs.under(self.records.dir(container_id))

    def bundle_dir(self, container_id: str) -> str:
        return os.path.join(self.records.dir(container_id), "bundle")

    def cgroups_path(self, container_id: str) -> str:
        return f"/{self.store.paths.host_name('berth')}/{container_id}"

    # ----------------------------------------------------------------- start

    def start(
        self,
        container_id: str,
        *,
        stdio: tuple[int, int, int],
        console_socket: str | None = None,
        record: ContainerRecord | None = None,
        running_extra: dict[str, Any] | None = None,
    ) -> Started:
        """Start the container; its pid. ``record``: the container's, as the caller has just
        read it (else it is read here). ``running_extra``: fields of the record's ``extra``
        written in the same transaction as its "running" state."""
        if record is None or record.id != container_id:
            record = self.records.get(container_id)
        running_extra = dict(running_extra or {})
        if record.running and record.status != "restarting":
            raise ContainerStateConflict(f"container {record.short_id} is already running")
        dirs = self.rootfs_dirs(container_id)
        runtime = self.runtime(record)
        mounted = created = False
        try:
            _reset_workdir(dirs.work)
            # an --rm container's upper dir is thrown away: never sync it (see mount_rootfs)
            volatile = bool(record.host_config.get("AutoRemove"))
            # the files bound over /etc's, made in the upper dir if the image lacks them
            mount_rootfs(self.store, record.top_chain, dirs, volatile=volatile,
                         mount_points=tuple(f"etc/{name}" for name in ETC_FILES))
            mounted = True
            trace.mark("rootfs mounted")
            spec = self._prepare(record, dirs.merged, running_extra)
            trace.mark("spec built")
            bundle = self.bundle_dir(container_id)
            if runtime.reads_bundle:
                _write_bundle(bundle, spec)
            runtime.delete(container_id)  # a leftover of a crashed berth, if any
            trace.mark("bundle written")
            pid_start = 0

            def record_running(pid: int) -> None:
                # while the runtime's init sets the container up (see ContainerRuntime)
                nonlocal pid_start
                if not runtime.reads_bundle:  # for `inspect`, hooks and the user
                    _write_bundle(bundle, spec)
                pid_start = _pid_start(pid)
                with self.store.db.write():
                    self.records.update_state(
                        container_id,
                        Status="running",
                        Running=True,
                        Paused=False,
                        Restarting=False,
                        OOMKilled=False,
                        Dead=False,
                        Pid=pid,
                        ExitCode=0,
                        Error="",
                        StartedAt=now_rfc3339(),
                        PidStart=pid_start,
                    )
                    if running_extra:
                        self.records.update_extra(container_id, **running_extra)
                trace.mark("running recorded")

            created = True  # or half-made, if this fails: the delete below finds out
            pid = runtime.run(container_id, bundle, spec, stdio=stdio,
                              console_socket=console_socket, while_setting_up=record_running)
            trace.mark("runtime created and started")
            from berth.containers.events import container_event

            container_event(self.store, "start", record)
            return Started(pid, pid_start)
        except BaseException as exc:
            if created:
                with suppress(BerthError, OSError):
                    runtime.delete(container_id)
            if mounted:
                with suppress(BerthError, OSError):
                    unmount_rootfs(dirs)
            with suppress(BerthError, OSError):
                self._teardown_network(record)
            message = str(exc) if isinstance(exc, BerthError) else repr(exc)
            never_ran = str(record.state.get("StartedAt", "0001")).startswith("0001")
            with suppress(BerthError):
                self.records.update_state(
                    container_id,
                    Status="created" if never_ran else "exited",
                    Running=False,
                    Pid=0,
                    Error=message,
                    ExitCode=_start_exit_code(exc),
                )
            raise

    def _prepare(
        self, record: ContainerRecord, rootfs: str, running_extra: dict[str, Any]
    ) -> dict[str, Any]:
        mounts = list(record.extra.get("Mounts") or [])
        for mount in mounts:
            if mount["Type"] == "volume" and not mount.get("NoCopy"):
                _seed(mount, rootfs)
        user = resolve_user(
            rootfs,
            str(record.config.get("User") or ""),
            list(record.host_config.get("GroupAdd") or []),
        )
        container_dir = self.records.dir(record.id)
        netns = self._network(record, container_dir, running_extra)
        inputs = SpecInputs(
            rootfs=rootfs,
            user=user,
            cgroups_path=self.cgroups_path(record.id),
            container_dir=container_dir,
            netns=netns,
            mounts=mounts,
            cgroup_v2=_cgroup_v2(),
        )
        return build_spec(record.config, record.host_config, record.extra, inputs)

    def _network(
        self, record: ContainerRecord, container_dir: str, running_extra: dict[str, Any]
    ) -> str | None:
        """Set up the container's network; returns the netns to join (None: a new one, or
        the host's with --network host). ``--network none`` without published ports needs no
        network manager: the runtime makes an empty namespace (and its settings are recorded
        with the running state, in ``running_extra``: nothing looks them up before)."""
        host = record.host_config
        mode = str(host.get("NetworkMode") or "bridge")
        if mode == "none" and not host.get("PublishRaw") and not host.get("PublishAllPorts"):
            write_etc_files(container_dir, record.config, host)
            running_extra["NetworkSettings"] = _network_settings(None)
            return None
        from berth.network import DnsSettings, EndpointRequest, NetworkManager
        from berth.network.ports import parse_publish_all, publish_all

        manager = NetworkManager(self.store.paths, self.store.db)
        ports = parse_publish_all(host.get("PublishRaw") or [])
        if host.get("PublishAllPorts"):
            ports = publish_all(list(record.config.get("ExposedPorts") or {}), ports)
        request = EndpointRequest(
            mode, tuple(host.get("NetworkAliases") or ()), host.get("IPv4Address") or None
        )
        network = manager.setup_container(
            record.id,
            record.name,
            str(record.config.get("Hostname") or ""),
            [request],
            ports,
            domainname=str(record.config.get("Domainname") or ""),
            extra_hosts=list(host.get("ExtraHosts") or []),
            dns=DnsSettings(
                tuple(host.get("Dns") or ()),
                tuple(host.get("DnsSearch") or ()),
                tuple(host.get("DnsOptions") or ()),
            ),
        )
        if _resolves_names(network) and os.environ.get("BERTH_SUPERVISOR") != "1":
            from berth.monitor.client import SupervisorClient

            SupervisorClient.ensure(self.store.paths)  # it hosts the embedded DNS server
        try:
            network.write_files(container_dir)
            self.records.update_extra(record.id, NetworkSettings=_network_settings(network))
        except BaseException:
            manager.teardown_container(record.id)
            raise
        return network.netns_path

    # ----------------------------------------------------------------- finish

    def finish(
        self,
        container_id: str,
        exit_code: int,
        *,
        oom_killed: bool | None = None,
        restarting: bool = False,
    ) -> None:
        """Record the exit and undo start; idempotent. Removes an AutoRemove container.

        ``restarting``: the supervisor will start it again (its restart policy): the record
        says "restarting" (Docker's state between two runs) rather than "exited"."""
        try:
            record = self.records.get(container_id)
        except BerthError:
            return
        runtime = self.runtime(record)
        killed = False
        with suppress(BerthError, OSError):
            killed = runtime.delete(container_id)  # (its cgroup said, before it went)
        if oom_killed is None:
            oom_killed = killed
        trace.mark("runtime deleted")
        with suppress(BerthError, OSError):
            unmount_rootfs(self.rootfs_dirs(container_id))
        trace.mark("rootfs unmounted")
        with suppress(BerthError, OSError):
            self._teardown_network(record)
        from berth.containers.events import container_event

        remove = bool(record.host_config.get("AutoRemove")) and not restarting
        used: list[str] = []
        with self.store.db.write():  # the exit, its events (and an --rm's removal): at once
            if not remove:  # (a record removed in the same transaction needs no update)
                self.records.update_state(
                    container_id,
                    Status="restarting" if restarting else "exited",
                    Running=restarting,
                    Paused=False,
                    Restarting=restarting,
                    Pid=0,
                    ExitCode=exit_code,
                    FinishedAt=now_rfc3339(),
                    OOMKilled=bool(oom_killed),
                )
            if record.running and oom_killed:
                container_event(self.store, "oom", record)
            if record.running:
                container_event(self.store, "die", record, exitCode=exit_code)
            if remove:
                used = self._forget_record(record)
        trace.mark("exit recorded")
        if remove:  # the runtime, rootfs and network are undone
            self._forget_files(record, used, volumes=True)
            trace.mark("container removed")

    def _teardown_network(self, record: ContainerRecord) -> None:
        host = record.host_config
        mode = str(host.get("NetworkMode") or "bridge")
        if mode == "none" and not host.get("PublishRaw") and not host.get("PublishAllPorts"):
            return
        from berth.network import NetworkManager

        NetworkManager(self.store.paths, self.store.db).teardown_container(record.id)

    # ------------------------------------------------------------- signalling

    def kill(self, container_id: str, signum: int) -> None:
        record = self.records.get(container_id)
        if not record.running:
            raise ContainerStateConflict(
                f"cannot kill container: {record.short_id}: container {record.id} is not running"
            )
        self.runtime(record).kill(container_id, signum)

    def stop_signal(self, container_id: str) -> tuple[int, int]:
        record = self.records.get(container_id)
        signum = signal_number(record.config.get("StopSignal"), signals.SIGTERM)
        timeout = record.config.get("StopTimeout")
        return signum, int(timeout) if timeout is not None else DEFAULT_STOP_TIMEOUT

    def alive(self, container_id: str) -> bool:
        record = self.records.get(container_id)
        pid = int(record.state.get("Pid") or 0)
        return pid > 0 and _pid_start(pid) == int(record.state.get("PidStart") or -1)

    # ------------------------------------------------------------------- exec

    def exec(
        self,
        container_id: str,
        argv: list[str],
        *,
        env: list[str] | None = None,
        user: str = "",
        workdir: str = "",
        tty: bool = False,
        stdio: tuple[int, int, int] | None = None,
        detached: bool = False,
        privileged: bool = False,
        console_socket: str | None = None,
    ) -> int:
        record = self.records.get(container_id)
        if not record.running:
            raise ContainerStateConflict(f"container {record.id} is not running")
        if record.status == "paused":
            raise ContainerStateConflict(
                f"container {record.id} is paused, unpause the container before exec"
            )
        rootfs = self.rootfs_dirs(container_id).merged
        exec_user = resolve_user(
            rootfs,
            user or str(record.config.get("User") or ""),
            list(record.host_config.get("GroupAdd") or []),
        )
        from berth.containers.spec import capabilities, process_env

        config = dict(record.config)
        config["Env"] = [*(record.config.get("Env") or []), *(env or [])]
        config["Tty"] = tty
        caps = capabilities(
            record.host_config, privileged or bool(record.host_config.get("Privileged"))
        )
        process: dict[str, Any] = {
            "terminal": tty,
            "user": {
                "uid": exec_user.uid,
                "gid": exec_user.gid,
                "additionalGids": list(exec_user.additional_gids),
            },
            "args": argv,
            "env": process_env(config, exec_user),
            "cwd": workdir or record.config.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        }
        from berth.containers.events import container_event

        exec_id = os.urandom(32).hex()
        for action in ("exec_create", "exec_start"):
            container_event(self.store, f"{action}: {' '.join(argv)}", record, execID=exec_id)
        return self.runtime(record).exec(
            container_id,
            process,
            stdio=stdio or (0, 1, 2),
            console_socket=console_socket,
            detached=detached,
        )

    # ----------------------------------------------------------------- remove

    def remove(self, container_id: str, *, volumes: bool = False) -> None:
        """Forget a container that is not running, its dirs and (with ``volumes``) its
        anonymous volumes."""
        record = self.records.get(container_id)
        runtime = self.runtime(record)
        with suppress(BerthError, OSError):
            runtime.delete(container_id)
        with suppress(BerthError, OSError):
            unmount_rootfs(self.rootfs_dirs(container_id))
        with suppress(BerthError, OSError):
            self._teardown_network(record)
        self._forget(record, volumes=volumes)

    def _forget(self, record: ContainerRecord, *, volumes: bool) -> None:
        """The second half of :meth:`remove`: the record, the dirs, the anonymous volumes."""
        self._forget_files(record, self._forget_record(record), volumes=volumes)

    def _forget_record(self, record: ContainerRecord) -> list[str]:
        """The record and its ``destroy`` event, in one transaction (the caller's, if it is
        in one); the volumes it used."""
        from berth.containers.events import container_event

        with self.store.db.write() as conn:
            used = self.records.delete_in(conn, record.id)
            container_event(self.store, "destroy", record)
        return used

    def _forget_files(self, record: ContainerRecord, used: list[str], *, volumes: bool) -> None:
        """What :meth:`_forget_record` leaves: the dirs, and the anonymous volumes of ``used``
        (with ``volumes``)."""
        container_id = record.id
        directory = self.records.dir(container_id)
        if os.path.isdir(directory):
            trash = os.path.join(self.store.paths.trash, f"container-{container_id}")
            os.makedirs(self.store.paths.trash, exist_ok=True)
            try:
                os.rename(directory, trash)
            except OSError:
                remove_tree(directory)
            else:
                remove_tree_soon(trash)
        remove_tree(self.records.run_dir(container_id))
        if volumes:
            anonymous = {m["Name"] for m in record.extra.get("Mounts") or [] if m.get("Anonymous")}
            for name in used:
                if name in anonymous:
                    with suppress(BerthError):
                        self.volumes.remove(name)
        if _image_gone(self.store, record):  # rmi -f left its layers to this container
            self.store.collect_garbage()


def _write_bundle(bundle: str, spec: dict[str, Any]) -> None:
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(jsonio.dumps(spec))


def _network_settings(network: Any) -> dict[str, Any]:
    """``NetworkSettings`` of docker inspect."""
    settings: dict[str, Any] = {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "Networks": {},
        "IPAddress": "",
        "Gateway": "",
        "IPPrefixLen": 0,
        "MacAddress": "",
    }
    if network is None:
        settings["Networks"] = {"none": {"IPAddress": "", "Gateway": "", "MacAddress": ""}}
        return settings
    settings["SandboxKey"] = network.netns_path or ""
    for mapping in network.ports:
        key = f"{mapping.container_port}/{mapping.protocol}"
        settings["Ports"].setdefault(key, []).append(
            {"HostIp": mapping.host_ip or "0.0.0.0", "HostPort": str(mapping.host_port)}
        )
    for endpoint in network.endpoints:
        settings["Networks"][endpoint.network_name] = {
            "IPAddress": endpoint.ip,
            "IPPrefixLen": endpoint.prefixlen,
            "Gateway": endpoint.gateway or "",
            "MacAddress": endpoint.mac,
            "NetworkID": endpoint.network_id,
            "Aliases": list(endpoint.aliases) or None,
        }
    if network.endpoints:
        first = network.endpoints[0]
        settings.update(
            IPAddress=first.ip,
            Gateway=first.gateway or "",
            IPPrefixLen=first.prefixlen,
            MacAddress=first.mac,
        )
    if network.mode == "host":
        settings["Networks"] = {"host": {"IPAddress": "", "Gateway": "", "MacAddress": ""}}
    return settings


def _resolves_names(network: Any) -> bool:
    """Whether the container is on a user-defined network (names resolve through DNS)."""
    return any(e.network_name != "bridge" for e in network.endpoints) and \
        network.mode == "bridge"


def _seed(mount: dict[str, Any], rootfs: str) -> None:
    """Seed a volume from what the image has at its mount point, resolved inside the
    rootfs (an absolute symlink in the image must not lead to the host's files)."""
    from berth.store.safepath import open_dir_in_root

    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            dir_fd = open_dir_in_root(root_fd, mount["Destination"])
        except OSError:
            return
        try:
            seed_volume(mount["Source"], f"/proc/self/fd/{dir_fd}")
        finally:
            os.close(dir_fd)
    finally:
        os.close(root_fd)


def _image_gone(store: Store, record: ContainerRecord) -> bool:
    row = store.db.execute("SELECT 1 FROM images WHERE id = ?", (record.image_id,)).fetchone()
    return row is None


def _reset_workdir(work: str) -> None:
    """overlayfs refuses a work dir left non-empty by an unclean unmount."""
    if os.path.isdir(work) and os.listdir(work):
        remove_tree(work)


def _pid_start(pid: int) -> int:
    from berth.store.leases import process_start_time

    start = process_start_time(pid)
    return int(start) if start else 0


def _cgroup_v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _start_exit_code(exc: BaseException) -> int:
    from berth.errors import CommandNotFound, CommandNotInvokable

    if isinstance(exc, CommandNotFound):
        return 127
    if isinstance(exc, CommandNotInvokable):
        return 126
    return 128
