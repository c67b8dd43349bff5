"""What a new container is asked to be: the typed form of ``docker run``/``create`` options.

The CLI turns flags into a :class:`CreateOptions`; the Python API builds one from docker-py's
keyword names. :mod:`berth.containers.create` turns it into the container's persisted documents
(Docker's ``Config`` and ``HostConfig`` shapes, so ``inspect`` shows what Docker shows), and
everything after that (spec generation, the supervisor, inspect) reads those documents.
"""

from __future__ import annotations

from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    MountType = Literal["bind", "volume", "tmpfs"]


class MountSpec(FrozenValue):
    """One ``-v``, ``--mount`` or ``--tmpfs``.

    ``source``: a host path (bind), a volume name ("" = anonymous volume), or "" (tmpfs).
    """

    __slots__ = (
        "bind_recursive",
        "consistency",
        "create_host_path",
        "no_copy",
        "propagation",
        "read_only",
        "source",
        "target",
        "tmpfs_mode",
        "tmpfs_options",
        "tmpfs_size",
        "type",
        "volume_driver",
        "volume_labels",
        "volume_options",
    )
    type: MountType
    target: str
    source: str
    read_only: bool
    propagation: str
    consistency: str
    create_host_path: bool
    bind_recursive: bool
    no_copy: bool
    volume_labels: dict[str, str]
    volume_driver: str
    volume_options: dict[str, str]
    tmpfs_size: int
    tmpfs_mode: int
    tmpfs_options: tuple[str, ...]

    def __init__(
        self,
        type: MountType,
        target: str,
        source: str = "",
        read_only: bool = False,
        propagation: str = "",  # rprivate (default), private, rshared, shared, rslave, slave
        consistency: str = "",
        # bind
        create_host_path: bool = False,  # -v creates a missing host dir; --mount type=bind refuses
        bind_recursive: bool = True,
        # volume
        no_copy: bool = False,  # volume-nocopy: do not seed from the image
        volume_labels: dict[str, str] | None = None,
        volume_driver: str = "local",
        volume_options: dict[str, str] | None = None,
        # tmpfs
        tmpfs_size: int = 0,  # bytes; 0 = kernel default (half of RAM)
        tmpfs_mode: int = 0,  # 0 = 1777
        tmpfs_options: tuple[str, ...] = (),  # extra mount options (--tmpfs /x:rw,noexec,size=64m)
    ) -> None:
        init_fields(
            self,
            type=type,
            target=target,
            source=source,
            read_only=read_only,
            propagation=propagation,
            consistency=consistency,
            create_host_path=create_host_path,
            bind_recursive=bind_recursive,
            no_copy=no_copy,
            volume_labels={} if volume_labels is None else volume_labels,
            volume_driver=volume_driver,
            volume_options={} if volume_options is None else volume_options,
            tmpfs_size=tmpfs_size,
            tmpfs_mode=tmpfs_mode,
            tmpfs_options=tmpfs_options,
        )


class Ulimit(FrozenValue):
    __slots__ = ("hard", "name", "soft")
    name: str
    soft: int
    hard: int

    def __init__(
        self,
        name: str,  # "nofile", "nproc", ... (docker's names, without RLIMIT_)
        soft: int,
        hard: int,
    ) -> None:
        init_fields(self, name=name, soft=soft, hard=hard)


class DeviceSpec(FrozenValue):
    __slots__ = ("path_in_container", "path_on_host", "permissions")
    path_on_host: str
    path_in_container: str
    permissions: str

    def __init__(
        self,
        path_on_host: str,
        path_in_container: str,
        permissions: str = "rwm",
    ) -> None:
        init_fields(
            self,
            path_on_host=path_on_host,
            path_in_container=path_in_container,
            permissions=permissions,
        )


class RestartPolicy(FrozenValue):
    __slots__ = ("maximum_retry_count", "name")
    name: Literal["no", "always", "unless-stopped", "on-failure"]
    maximum_retry_count: int

    def __init__(
        self,
        name: Literal["no", "always", "unless-stopped", "on-failure"] = "no",
        maximum_retry_count: int = 0,
    ) -> None:
        init_fields(self, name=name, maximum_retry_count=maximum_retry_count)


class HealthcheckOverride(FrozenValue):
    """``--health-*`` flags; None leaves the image's value. ``disable`` is --no-healthcheck."""

    __slots__ = (
        "disable",
        "interval_ns",
        "retries",
        "start_interval_ns",
        "start_period_ns",
        "test",
        "timeout_ns",
    )
    test: list[str] | None
    interval_ns: int | None
    timeout_ns: int | None
    start_period_ns: int | None
    start_interval_ns: int | None
    retries: int | None
    disable: bool

    def __init__(
        self,
        test: list[str] | None = None,  # ["CMD-SHELL", "curl -f ..."] or ["CMD", ...] or ["NONE"]
        interval_ns: int | None = None,
        timeout_ns: int | None = None,
        start_period_ns: int | None = None,
        start_interval_ns: int | None = None,
        retries: int | None = None,
        disable: bool = False,
    ) -> None:
        init_fields(
            self,
            test=test,
            interval_ns=interval_ns,
            timeout_ns=timeout_ns,
            start_period_ns=start_period_ns,
            start_interval_ns=start_interval_ns,
            retries=retries,
            disable=disable,
        )


class LogConfig(FrozenValue):
    __slots__ = ("config", "type")
    type: str
    config: dict[str, str]

    def __init__(
        self,
        type: str = "json-file",
        config: dict[str, str] | None = None,  # max-size, max-file, ...
    ) -> None:
        init_fields(self, type=type, config={} if config is None else config)


class CreateOptions(Value):
    """Everything ``docker create`` takes that berth supports, with Docker's defaults."""

    __slots__ = (
        "attach_stderr",
        "attach_stdin",
        "attach_stdout",
        "auto_remove",
        "blkio_weight",
        "cap_add",
        "cap_drop",
        "command",
        "cpu_period",
        "cpu_quota",
        "cpu_shares",
        "cpuset_cpus",
        "cpuset_mems",
        "devices",
        "dns",
        "dns_options",
        "dns_search",
        "domainname",
        "entrypoint",
        "env",
        "exposed_ports",
        "extra_hosts",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipv4_address",
        "labels",
        "log_config",
        "mac_address",
        "memory",
        "memory_reservation",
        "memory_swap",
        "memory_swappiness",
        "mounts",
        "name",
        "nano_cpus",
        "network_aliases",
        "network_mode",
        "oom_kill_disable",
        "oom_score_adj",
        "pids_limit",
        "platform",
        "privileged",
        "publish",
        "publish_all",
        "pull",
        "read_only",
        "restart_policy",
        "runtime",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_signal",
        "stop_timeout",
        "sysctls",
        "tty",
        "ulimits",
        "user",
        "userns_mode",
        "volumes_from",
        "working_dir",
    )

    def __init__(
        self,
        image: str,
        command: list[str] | None = None,  # None: the image's CMD
        entrypoint: list[str] | None = None,  # None: the image's; [] (--entrypoint "") clears it
        name: str | None = None,
        env: list[str] | None = None,  # "K=V" (already merged with --env-file)
        working_dir: str = "",
        user: str = "",
        hostname: str = "",
        domainname: str = "",
        labels: dict[str, str] | None = None,
        tty: bool = False,
        stdin_open: bool = False,
        attach_stdin: bool = False,
        attach_stdout: bool = True,
        attach_stderr: bool = True,
        stop_signal: str = "",
        stop_timeout: int | None = None,
        exposed_ports: list[str] | None = None,  # --expose: "80/tcp"
        healthcheck: HealthcheckOverride | None = None,
        # storage
        mounts: list[MountSpec] | None = None,
        volumes_from: list[str] | None = None,  # "container[:ro|rw]"
        read_only: bool = False,
        # resources (0 / None = unlimited or default)
        memory: int = 0,
        memory_reservation: int = 0,
        memory_swap: int = 0,  # -1 = unlimited swap
        memory_swappiness: int | None = None,
        oom_kill_disable: bool = False,
        oom_score_adj: int = 0,
        nano_cpus: int = 0,  # --cpus 1.5 -> 1_500_000_000
        cpu_shares: int = 0,
        cpu_period: int = 0,
        cpu_quota: int = 0,
        cpuset_cpus: str = "",
        cpuset_mems: str = "",
        pids_limit: int | None = None,  # None/0: unlimited; -1 also unlimited
        blkio_weight: int = 0,
        shm_size: int = 0,  # 0: 64 MiB
        ulimits: list[Ulimit] | None = None,
        # security
        privileged: bool = False,
        cap_add: list[str] | None = None,
        cap_drop: list[str] | None = None,
        security_opt: list[str] | None = None,  # seccomp=..., no-new-privileges...
        group_add: list[str] | None = None,
        devices: list[DeviceSpec] | None = None,
        sysctls: dict[str, str] | None = None,
        userns_mode: str = "",  # "" or "host"
        init: bool = False,
        # lifecycle
        restart_policy: RestartPolicy | None = None,
        auto_remove: bool = False,
        log_config: LogConfig | None = None,
        runtime: str = "",  # "" = berth's own; "runc", "crun" or a path
        # networking (the network code interprets these)
        network_mode: str = "",  # "" = default ("none" until bridge networks exist), "host", ...
        network_aliases: list[str] | None = None,
        ipv4_address: str = "",
        publish: list[str] | None = None,  # raw -p values
        publish_all: bool = False,
        extra_hosts: list[str] | None = None,  # "name:ip"
        dns: list[str] | None = None,
        dns_search: list[str] | None = None,
        dns_options: list[str] | None = None,
        mac_address: str = "",
        # berth
        platform: str = "",
        pull: Literal["missing", "always", "never"] = "missing",
    ) -> None:
        self.image = image
        self.command = command
        self.entrypoint = entrypoint
        self.name = name
        self.env = [] if env is None else env
        self.working_dir = working_dir
        self.user = user
        self.hostname = hostname
        self.domainname = domainname
        self.labels = {} if labels is None else labels
        self.tty = tty
        self.stdin_open = stdin_open
        self.attach_stdin = attach_stdin
        self.attach_stdout = attach_stdout
        self.attach_stderr = attach_stderr
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.exposed_ports = [] if exposed_ports is None else exposed_ports
        self.healthcheck = HealthcheckOverride() if healthcheck is None else healthcheck
        self.mounts = [] if mounts is None else mounts
        self.volumes_from = [] if volumes_from is None else volumes_from
        self.read_only = read_only
        self.memory = memory
        self.memory_reservation = memory_reservation
        self.memory_swap = memory_swap
        self.memory_swappiness = memory_swappiness
        self.oom_kill_disable = oom_kill_disable
        self.oom_score_adj = oom_score_adj
        self.nano_cpus = nano_cpus
        self.cpu_shares = cpu_shares
        self.cpu_period = cpu_period
        self.cpu_quota = cpu_quota
        self.cpuset_cpus = cpuset_cpus
        self.cpuset_mems = cpuset_mems
        self.pids_limit = pids_limit
        self.blkio_weight = blkio_weight
        self.shm_size = shm_size
        self.ulimits = [] if ulimits is None else ulimits
        self.privileged = privileged
        self.cap_add = [] if cap_add is None else cap_add
        self.cap_drop = [] if cap_drop is None else cap_drop
        self.security_opt = [] if security_opt is None else security_opt
        self.group_add = [] if group_add is None else group_add
        self.devices = [] if devices is None else devices
        self.sysctls = {} if sysctls is None else sysctls
        self.userns_mode = userns_mode
        self.init = init
        self.restart_policy = RestartPolicy() if restart_policy is None else restart_policy
        self.auto_remove = auto_remove
        self.log_config = LogConfig() if log_config is None else log_config
        self.runtime = runtime
        self.network_mode = network_mode
        self.network_aliases = [] if network_aliases is None else network_aliases
        self.ipv4_address = ipv4_address
        self.publish = [] if publish is None else publish
        self.publish_all = publish_all
        self.extra_hosts = [] if extra_hosts is None else extra_hosts
        self.dns = [] if dns is None else dns
        self.dns_search = [] if dns_search is None else dns_search
        self.dns_options = [] if dns_options is None else dns_options
        self.mac_address = mac_address
        self.platform = platform
        self.pull = pull
