"""``docker container inspect``'s document, built from a container record."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from berth.containers.records import ContainerRecord

if TYPE_CHECKING:
    from berth.engine import Engine


def inspect_document(engine: Engine, record: ContainerRecord) -> dict[str, Any]:
    from berth.containers.launcher import Launcher

    dirs = Launcher(engine.store).rootfs_dirs(record.id)
    lowers = []
    try:
        from berth.store.rootfs import lower_dirs

        lowers = lower_dirs(engine.store, record.top_chain)
    except Exception:
        lowers = []
    state = dict(record.state)
    state.pop("PidStart", None)
    state["Status"] = record.status
    host_config = {
        k: v
        for k, v in record.host_config.items()
        if k not in ("PublishRaw", "NetworkAliases", "IPv4Address")
    }
    mounts = []
    for mount in record.extra.get("Mounts") or []:
        shown = {
            k: v
            for k, v in mount.items()
            if k in ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
        }
        mounts.append(shown)
    network = record.extra.get("NetworkSettings") or {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "Networks": {},
        "IPAddress": "",
        "Gateway": "",
        "MacAddress": "",
    }
    return {
        "Id": record.id,
        "Created": _rfc3339(record.created),
        "Path": record.extra.get("Path", ""),
        "Args": record.extra.get("Args", []),
        "State": state,
        "Image": record.image_id,
        "ResolvConfPath": record.extra.get("ResolvConfPath", ""),
        "HostnamePath": record.extra.get("HostnamePath", ""),
        "HostsPath": record.extra.get("HostsPath", ""),
        "LogPath": record.extra.get("LogPath", ""),
        "Name": f"/{record.name}",
        "RestartCount": record.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {
            "Data": {
                "LowerDir": ":".join(lowers),
                "UpperDir": dirs.upper,
                "WorkDir": dirs.work,
                "MergedDir": dirs.merged,
            },
            "Name": "overlay",
        },
        "Mounts": mounts,
        "Config": record.config,
        "NetworkSettings": network,
    }


def _rfc3339(seconds: float) -> str:
    whole = int(seconds)
    fraction = int((seconds - whole) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:09d}Z"
