"""docker-py's keyword arguments of ``containers.create``/``run`` -> :class:`CreateOptions`.

So a docker-py user can write ``engine.containers.run("busybox", "echo hi",
environment={"A": "1"}, volumes={"/data": {"bind": "/data", "mode": "ro"}}, mem_limit="64m")``.
"""

from __future__ import annotations

import shlex
from typing import Any

from berth.containers.options import (
    CreateOptions,
    DeviceSpec,
    HealthcheckOverride,
    LogConfig,
    MountSpec,
    RestartPolicy,
    Ulimit,
)
from berth.errors import InvalidArgument

_SIMPLE = {
    "name": "name",
    "working_dir": "working_dir",
    "user": "user",
    "hostname": "hostname",
    "domainname": "domainname",
    "tty": "tty",
    "stdin_open": "stdin_open",
    "stop_signal": "stop_signal",
    "stop_timeout": "stop_timeout",
    "read_only": "read_only",
    "privileged": "privileged",
    "cap_add": "cap_add",
    "cap_drop": "cap_drop",
    "security_opt": "security_opt",
    "group_add": "group_add",
    "sysctls": "sysctls",
    "init": "init",
    "auto_remove": "auto_remove",
    "runtime": "runtime",
    "network_mode": "network_mode",
    "dns": "dns",
    "dns_search": "dns_search",
    "dns_opt": "dns_options",
    "cpu_shares": "cpu_shares",
    "cpu_period": "cpu_period",
    "cpu_quota": "cpu_quota",
    "cpuset_cpus": "cpuset_cpus",
    "cpuset_mems": "cpuset_mems",
    "nano_cpus": "nano_cpus",
    "pids_limit": "pids_limit",
    "oom_kill_disable": "oom_kill_disable",
    "oom_score_adj": "oom_score_adj",
    "mem_swappiness": "memory_swappiness",
    "blkio_weight": "blkio_weight",
    "userns_mode": "userns_mode",
    "volumes_from": "volumes_from",
    "publish_all_ports": "publish_all",
    "platform": "platform",
    "mac_address": "mac_address",
}
_SIZES = {
    "mem_limit": "memory",
    "mem_reservation": "memory_reservation",
    "memswap_limit": "memory_swap",
    "shm_size": "shm_size",
}
_IGNORED = {"detach", "remove", "stdout", "stderr", "stream", "use_config_proxy"}


def options_from_kwargs(
    image: str, command: str | list[str] | None, kwargs: dict[str, Any]
) -> CreateOptions:
    options = CreateOptions(image=image)
    if command is not None:
        options.command = shlex.split(command) if isinstance(command, str) else list(command)
    for key, value in kwargs.items():
        if value is None or key in _IGNORED:
            continue
        if key in _SIMPLE:
            setattr(options, _SIMPLE[key], value)
        elif key in _SIZES:
            setattr(options, _SIZES[key], _size(value))
        elif key == "entrypoint":
            options.entrypoint = shlex.split(value) if isinstance(value, str) else list(value)
        elif key == "environment":
            options.env = (
                [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else list(value)
            )
        elif key == "labels":
            options.labels = dict(value) if isinstance(value, dict) else {k: "" for k in value}
        elif key == "volumes":
            options.mounts += _volumes(value)
        elif key == "mounts":
            options.mounts += [_mount(m) for m in value]
        elif key == "tmpfs":
            items = (
                value.items()
                if isinstance(value, dict)
                else ((v.partition(":")[0], v.partition(":")[2]) for v in value)
            )
            options.mounts += [
                MountSpec("tmpfs", target, tmpfs_options=tuple(o for o in opts.split(",") if o))
                for target, opts in items
            ]
        elif key == "ports":
            options.publish += _ports(value)
        elif key == "restart_policy":
            options.restart_policy = RestartPolicy(
                value.get("Name", "no") or "no", int(value.get("MaximumRetryCount", 0))
            )
        elif key == "ulimits":
            options.ulimits = [
                Ulimit(
                    u["Name"] if isinstance(u, dict) else u.name,
                    int(u["Soft"] if isinstance(u, dict) else u.soft),
                    int(u["Hard"] if isinstance(u, dict) else u.hard),
                )
                for u in value
            ]
        elif key == "devices":
            options.devices = [_device(d) for d in value]
        elif key == "healthcheck":
            options.healthcheck = HealthcheckOverride(
                test=value.get("test") or value.get("Test"),
                interval_ns=value.get("interval") or value.get("Interval"),
                timeout_ns=value.get("timeout") or value.get("Timeout"),
                start_period_ns=value.get("start_period") or value.get("StartPeriod"),
                retries=value.get("retries") or value.get("Retries"),
            )
        elif key == "log_config":
            options.log_config = LogConfig(
                value.get("Type", value.get("type", "json-file")),
                dict(value.get("Config", value.get("config")) or {}),
            )
        elif key == "extra_hosts":
            options.extra_hosts = (
                [f"{k}:{v}" for k, v in value.items()] if isinstance(value, dict) else list(value)
            )
        elif key == "network":
            options.network_mode = value
        else:
            raise InvalidArgument(f"unknown argument {key!r} for containers.create")
    return options


def _size(value: int | str) -> int:
    if isinstance(value, int):
        return value
    from berth.units import parse_ram_size

    return parse_ram_size(value)


def _volumes(value: dict[str, Any] | list[str]) -> list[MountSpec]:
    from berth.containers.flagvalues import parse_volume

    if isinstance(value, list):
        return [parse_volume(v) for v in value]
    out = []
    for source, spec in value.items():
        if isinstance(spec, str):
            out.append(parse_volume(f"{source}:{spec}"))
        else:
            out.append(parse_volume(f"{source}:{spec['bind']}:{spec.get('mode', 'rw')}"))
    return out


def _mount(value: Any) -> MountSpec:
    if isinstance(value, MountSpec):
        return value
    if isinstance(value, str):
        from berth.containers.flagvalues import parse_mount

        return parse_mount(value)
    data = dict(value)
    return MountSpec(
        str(data.get("Type", data.get("type", "volume"))),  # type: ignore[arg-type]
        str(data.get("Target", data.get("target"))),
        source=str(data.get("Source", data.get("source")) or ""),
        read_only=bool(data.get("ReadOnly", data.get("read_only", False))),
    )


def _ports(value: dict[str, Any]) -> list[str]:
    out = []
    for container_port, host in value.items():
        port = str(container_port)
        hosts = host if isinstance(host, list) else [host]
        for entry in hosts:
            if entry is None:
                out.append(port)
            elif isinstance(entry, tuple):
                out.append(f"{entry[0]}:{entry[1]}:{port}")
            else:
                out.append(f"{entry}:{port}")
    return out


def _device(value: str | dict[str, str]) -> DeviceSpec:
    if isinstance(value, dict):
        return DeviceSpec(
            value["PathOnHost"],
            value.get("PathInContainer", value["PathOnHost"]),
            value.get("CgroupPermissions", "rwm"),
        )
    from berth.containers.flagvalues import parse_device

    return parse_device(value)
