"""What a new container is asked to be: the typed form of ``docker run``/``create`` options.

The CLI turns flags into a :class:`CreateOptions`; the Python API builds one from docker-py's
keyword names. :mod:`berth.containers.create` turns it into the container's persisted documents
(Docker's ``Config`` and ``HostConfig`` shapes, so ``inspect`` shows what Docker shows), and
everything after that (spec generation, the supervisor, inspect) reads those documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MountType = Literal["bind", "volume", "tmpfs"]


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One ``-v``, ``--mount`` or ``--tmpfs``.

    ``source``: a host path (bind), a volume name ("" = anonymous volume), or "" (tmpfs).
    """

    type: MountType
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""  # rprivate (default), private, rshared, shared, rslave, slave
    consistency: str = ""
    # bind
    create_host_path: bool = False  # -v creates a missing host dir; --mount type=bind refuses
    bind_recursive: bool = True
    # volume
    no_copy: bool = False  # volume-nocopy: do not seed from the image
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_driver: str = "local"
    volume_options: dict[str, str] = field(default_factory=dict)
    # tmpfs
    tmpfs_size: int = 0  # bytes; 0 = kernel default (half of RAM)
    tmpfs_mode: int = 0  # 0 = 1777
    tmpfs_options: tuple[str, ...] = ()  # extra mount options (--tmpfs /x:rw,noexec,size=64m)


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str  # "nofile", "nproc", ... (docker's names, without RLIMIT_)
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    path_on_host: str
    path_in_container: str
    permissions: str = "rwm"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: Literal["no", "always", "unless-stopped", "on-failure"] = "no"
    maximum_retry_count: int = 0


@dataclass(frozen=True, slots=True)
class HealthcheckOverride:
    """``--health-*`` flags; None leaves the image's value. ``disable`` is --no-healthcheck."""

    test: list[str] | None = None  # ["CMD-SHELL", "curl -f ..."] or ["CMD", ...] or ["NONE"]
    interval_ns: int | None = None
    timeout_ns: int | None = None
    start_period_ns: int | None = None
    start_interval_ns: int | None = None
    retries: int | None = None
    disable: bool = False


@dataclass(frozen=True, slots=True)
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)  # max-size, max-file, ...


@dataclass(slots=True)
class CreateOptions:
    """Everything ``docker create`` takes that berth supports, with Docker's defaults."""

    image: str
    command: list[str] | None = None  # None: the image's CMD
    entrypoint: list[str] | None = None  # None: the image's; [] (--entrypoint "") clears it
    name: str | None = None
    env: list[str] = field(default_factory=list)  # "K=V" (already merged with --env-file)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    stdin_open: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: list[str] = field(default_factory=list)  # --expose: "80/tcp"
    healthcheck: HealthcheckOverride = field(default_factory=HealthcheckOverride)
    # storage
    mounts: list[MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)  # "container[:ro|rw]"
    read_only: bool = False
    # resources (0 / None = unlimited or default)
    memory: int = 0
    memory_reservation: int = 0
    memory_swap: int = 0  # -1 = unlimited swap
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    nano_cpus: int = 0  # --cpus 1.5 -> 1_500_000_000
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None  # None/0: unlimited; -1 also unlimited
    blkio_weight: int = 0
    shm_size: int = 0  # 0: 64 MiB
    ulimits: list[Ulimit] = field(default_factory=list)
    # security
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)  # seccomp=..., no-new-privileges...
    group_add: list[str] = field(default_factory=list)
    devices: list[DeviceSpec] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    userns_mode: str = ""  # "" or "host"
    init: bool = False
    # lifecycle
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    log_config: LogConfig = field(default_factory=LogConfig)
    runtime: str = ""  # "" = berth's own; "runc", "crun" or a path
    # networking (the network code interprets these)
    network_mode: str = ""  # "" = default ("none" until bridge networks exist), "host", ...
    network_aliases: list[str] = field(default_factory=list)
    ipv4_address: str = ""
    publish: list[str] = field(default_factory=list)  # raw -p values
    publish_all: bool = False
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip"
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    mac_address: str = ""
    # berth
    platform: str = ""
    pull: Literal["missing", "always", "never"] = "missing"
