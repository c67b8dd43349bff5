"""``create``: options + an image -> a container record, its dirs and its volumes.

Docker's merge rules: ``--entrypoint`` clears the image's CMD; a command replaces CMD; ``-e``
overrides the image's ENV by key; labels merge; every VOLUME of the image without a mount of
its own gets an anonymous volume; the hostname defaults to the short ID.
"""

from __future__ import annotations

import os
import time

from berth.containers.names import check_name, random_name
from berth.containers.options import CreateOptions, MountSpec
from berth.containers.records import ContainerRecord, ContainerRecords, initial_state
from berth.containers.volumes import VolumeStore
from berth.errors import ImageNotFound, InvalidArgument, PathNotFound
from berth.oci.config import ContainerConfig
from berth.store.images import ImageRecord
from berth.values import as_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.store.store import Store

DEFAULT_LOG_OPTS = {"max-size": "10m", "max-file": "3"}


def create_container(
    store: Store, options: CreateOptions, image: ImageRecord, image_config: ContainerConfig
) -> ContainerRecord:
    records = ContainerRecords(store)
    volumes = VolumeStore(store)
    if options.name:  # taken: said before anything is made (the insert checks it again)
        name = check_name(options.name)
        taken = records.name_taken(name)
        if taken is not None:
            from berth.containers.records import name_in_use

            raise name_in_use(name, taken)
    else:
        name = random_name(lambda n: records.name_taken(n) is not None)
    container_id = os.urandom(32).hex()  # what secrets.token_hex(32) is
    config = _config(options, image_config, container_id)
    entrypoint = config.get("Entrypoint") or []
    argv = [*entrypoint, *(config.get("Cmd") or [])]
    mounts, volume_names = _mounts(options, image_config, records, volumes)
    host_config = _host_config(options)
    container_dir = records.dir(container_id)
    extra: dict[str, Any] = {
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "Mounts": mounts,
        "RestartCount": 0,
        "ResolvConfPath": os.path.join(container_dir, "resolv.conf"),
        "HostnamePath": os.path.join(container_dir, "hostname"),
        "HostsPath": os.path.join(container_dir, "hosts"),
        "LogPath": records.log_path(container_id),
    }
    os.makedirs(container_dir, exist_ok=True)
    record = ContainerRecord(
        id=container_id,
        name=name,
        image_id=str(image.id),
        image_ref=options.image,
        top_chain=image.top_chain,
        status="created",
        created=time.time(),
        config=config,
        host_config=host_config,
        state=initial_state(),
        extra=extra,
    )
    try:
        records.insert(record, volume_names)
    except BaseException:
        import shutil

        shutil.rmtree(container_dir, ignore_errors=True)
        for mount in mounts:
            if mount.get("Anonymous"):
                volumes.remove(mount["Name"], force=True)
        raise
    return record


def _config(options: CreateOptions, image: ContainerConfig, container_id: str) -> dict[str, Any]:
    if options.entrypoint is not None:
        entrypoint: list[str] | None = [e for e in options.entrypoint if e] or None
        cmd = options.command or None
    else:
        entrypoint = image.entrypoint
        cmd = options.command or image.cmd
    env = dict(_env_pairs(image.env))
    env.update(_env_pairs(options.env))
    labels = dict(image.labels)
    labels.update(options.labels)
    exposed = list(dict.fromkeys([*image.exposed_ports, *options.exposed_ports]))
    health = image.healthcheck.to_json() if image.healthcheck else None
    override = options.healthcheck
    if override.disable:
        health = {"Test": ["NONE"]}
    elif any(
        v is not None
        for v in (
            override.test,
            override.interval_ns,
            override.timeout_ns,
            override.start_period_ns,
            override.retries,
        )
    ):
        health = dict(health or {})
        for key, value in (
            ("Test", override.test),
            ("Interval", override.interval_ns),
            ("Timeout", override.timeout_ns),
            ("StartPeriod", override.start_period_ns),
            ("StartInterval", override.start_interval_ns),
            ("Retries", override.retries),
        ):
            if value is not None:
                health[key] = value
    config: dict[str, Any] = {
        "Hostname": options.hostname
        or (_host_hostname() if options.network_mode == "host" else container_id[:12]),
        "Domainname": options.domainname,
        "User": options.user or image.user,
        "AttachStdin": options.attach_stdin,
        "AttachStdout": options.attach_stdout,
        "AttachStderr": options.attach_stderr,
        "ExposedPorts": {p: {} for p in exposed} or None,
        "Tty": options.tty,
        "OpenStdin": options.stdin_open,
        "StdinOnce": options.stdin_open and options.attach_stdin,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Cmd": cmd,
        "Healthcheck": health,
        "Image": options.image,
        "Volumes": {v: {} for v in image.volumes} or None,
        "WorkingDir": options.working_dir or image.working_dir,
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": options.stop_signal or image.stop_signal or None,
    }
    if options.stop_timeout is not None:
        config["StopTimeout"] = options.stop_timeout
    if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
        raise InvalidArgument(
            f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an "
            "absolute path"
        )
    return config


def _host_hostname() -> str:
    return os.uname().nodename


def _env_pairs(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        if not sep:  # "-e NAME" takes the value from the caller's environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        out.append((key, value))
    return out


def _host_config(options: CreateOptions) -> dict[str, Any]:
    if options.log_config.config:  # a bad --log-opt is refused here (the defaults are good)
        from berth.containers.logs import parse_log_options  # costs ms: only when there are

        parse_log_options(options.log_config.config)
    log_opts = dict(DEFAULT_LOG_OPTS)
    log_opts.update(options.log_config.config)
    return {
        "Binds": [
            f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
            for m in options.mounts
            if m.type == "bind" and m.create_host_path
        ]
        or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": options.log_config.type, "Config": log_opts},
        "NetworkMode": options.network_mode or "bridge",
        "PortBindings": {},
        "PublishRaw": list(options.publish),
        "RestartPolicy": {
            "Name": options.restart_policy.name,
            "MaximumRetryCount": options.restart_policy.maximum_retry_count,
        },
        "AutoRemove": options.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": list(options.volumes_from) or None,
        "CapAdd": list(options.cap_add) or None,
        "CapDrop": list(options.cap_drop) or None,
        "CgroupnsMode": "host",
        "Dns": list(options.dns),
        "DnsOptions": list(options.dns_options),
        "DnsSearch": list(options.dns_search),
        "ExtraHosts": list(options.extra_hosts) or None,
        "GroupAdd": list(options.group_add) or None,
        "IpcMode": "private",
        "OomScoreAdj": options.oom_score_adj,
        "PidMode": "",
        "Privileged": options.privileged,
        "PublishAllPorts": options.publish_all,
        "ReadonlyRootfs": options.read_only,
        "SecurityOpt": list(options.security_opt) or None,
        "Tmpfs": {m.target: ",".join(m.tmpfs_options) for m in options.mounts if m.type == "tmpfs"}
        or None,
        "UTSMode": "",
        "UsernsMode": options.userns_mode,
        "ShmSize": options.shm_size or 64 * 1024 * 1024,
        "Sysctls": dict(options.sysctls) or None,
        "Runtime": options.runtime or "berth",
        "Memory": options.memory,
        "MemoryReservation": options.memory_reservation,
        "MemorySwap": options.memory_swap,
        "MemorySwappiness": options.memory_swappiness,
        "OomKillDisable": options.oom_kill_disable,
        "NanoCpus": options.nano_cpus,
        "CpuShares": options.cpu_shares,
        "CpuPeriod": options.cpu_period,
        "CpuQuota": options.cpu_quota,
        "CpusetCpus": options.cpuset_cpus,
        "CpusetMems": options.cpuset_mems,
        "PidsLimit": options.pids_limit,
        "BlkioWeight": options.blkio_weight,
        "Devices": [
            {
                "PathOnHost": d.path_on_host,
                "PathInContainer": d.path_in_container,
                "CgroupPermissions": d.permissions,
            }
            for d in options.devices
        ],
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in options.ulimits]
        or None,
        "Init": options.init or None,
        "NetworkAliases": list(options.network_aliases),
        "IPv4Address": options.ipv4_address,
        "MacAddress": options.mac_address,
    }


def _mounts(
    options: CreateOptions, image: ContainerConfig, records: ContainerRecords, volumes: VolumeStore
) -> tuple[list[dict[str, Any]], list[str]]:
    mounts: list[dict[str, Any]] = []
    names: list[str] = []
    targets: set[str] = set()
    for spec in options.mounts:
        target = _clean_target(spec.target)
        if target in targets:
            raise InvalidArgument(f"Duplicate mount point: {target}")
        targets.add(target)
        mounts.append(_resolve_mount(spec, target, volumes, names))
    for source in options.volumes_from:
        other_name, _, mode = source.partition(":")
        other = records.resolve(other_name)
        for mount in other.extra.get("Mounts") or []:
            if mount["Destination"] in targets:
                continue
            copied = dict(mount)
            if mode in ("ro", "rw"):
                copied["RW"] = mode == "rw"
                copied["Mode"] = mode
            copied.pop("Anonymous", None)
            mounts.append(copied)
            targets.add(mount["Destination"])
            if copied["Type"] == "volume":
                names.append(copied["Name"])
    for path in image.volumes:
        target = _clean_target(path)
        if target in targets:
            continue
        volume = volumes.create(anonymous=True)
        names.append(volume.name)
        mounts.append(
            {
                "Type": "volume",
                "Name": volume.name,
                "Source": volume.mountpoint,
                "Destination": target,
                "Driver": "local",
                "Mode": "",
                "RW": True,
                "Propagation": "",
                "Anonymous": True,
            }
        )
        targets.add(target)
    return mounts, names


def _resolve_mount(
    spec: MountSpec, target: str, volumes: VolumeStore, names: list[str]
) -> dict[str, Any]:
    base = {
        "Destination": target,
        "RW": not spec.read_only,
        "Mode": "ro" if spec.read_only else "",
        "Propagation": spec.propagation,
    }
    if spec.type == "bind":
        source = os.path.abspath(spec.source)
        if not os.path.exists(source):
            if not spec.create_host_path:
                raise PathNotFound(
                    f'invalid mount config for type "bind": bind source path '
                    f"does not exist: {source}"
                )
            os.makedirs(source, exist_ok=True)
        return {
            "Type": "bind",
            "Source": source,
            **base,
            "Propagation": spec.propagation or "rprivate",
        }
    if spec.type == "volume":
        anonymous = not spec.source
        volume = volumes.create(spec.source or None, labels=spec.volume_labels, anonymous=anonymous)
        names.append(volume.name)
        out = {
            "Type": "volume",
            "Name": volume.name,
            "Source": volume.mountpoint,
            "Driver": volume.driver,
            **base,
        }
        if anonymous:
            out["Anonymous"] = True
        if spec.no_copy:
            out["NoCopy"] = True
        return out
    return {
        "Type": "tmpfs",
        "Source": "",
        **base,
        "TmpfsSize": spec.tmpfs_size,
        "TmpfsMode": spec.tmpfs_mode,
        "TmpfsOptions": list(spec.tmpfs_options),
    }


def _clean_target(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{path}' mount path must be absolute")
    clean = os.path.normpath(path)
    if clean == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return clean


def options_summary(options: CreateOptions) -> dict[str, Any]:
    """For debugging and tests: the options as plain data."""
    return as_dict(options)


def image_not_found(name: str) -> ImageNotFound:
    return ImageNotFound(
        f"Unable to find image '{name}' locally",
        hint="pull it (berth pull), build it, or make a base with `berth image bootstrap`",
    )
