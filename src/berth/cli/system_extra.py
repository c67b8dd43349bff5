"""Handlers of ``events``, ``info`` and ``system prune``."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from berth.cli.flags import Invocation
from berth.cli.render import write
from berth.engine import Engine

# ---------------------------------------------------------------------------------- events


def events(inv: Invocation) -> int:
    from berth.engine.events import stream_events
    from berth.filters import parse_filters

    engine = Engine()
    fmt = inv.get_str("format")
    messages = stream_events(
        engine,
        since=inv.get_str("since") or None,
        until=inv.get_str("until") or None,
        filters=parse_filters(inv.get_list("filter")).to_dict(),
    )
    for message in messages:
        write(format_event(message, fmt))
        sys.stdout.flush()
    return 0


def format_event(message: Mapping[str, Any], fmt: str) -> str:
    """One event as ``docker events`` prints it (its line, JSON, or a template)."""
    from berth.cli import gotemplate

    fmt = fmt.strip()
    if fmt in ("json", "{{json .}}"):
        return gotemplate.go_json(dict(message)) + "\n"
    if fmt:
        from berth.engine.events import template_fields

        source = gotemplate.docker_format_source(fmt)
        return gotemplate.render(source, template_fields(message)) + "\n"
    actor = message["Actor"]
    line = (
        f"{rfc3339_nano_fixed(int(message['timeNano']))} {message['Type']} "
        f"{message['Action']} {actor['ID']}"
    )
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line + "\n"


def rfc3339_nano_fixed(nanoseconds: int) -> str:
    """Local time with all nine digits of the fraction, as docker prints event times:
    ``2024-01-02T03:04:05.000123456+01:00`` (``Z`` in UTC)."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if offset == 0:
        zone = "Z"
    else:
        sign = "-" if offset < 0 else "+"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return f"{stamp}.{fraction:09d}{zone}"


# ------------------------------------------------------------------------------------ info


def info(inv: Invocation) -> int:
    from berth import __version__
    from berth.engine.hostinfo import info as host_info

    engine = Engine()
    data = host_info(engine)
    client = {
        "Debug": False,
        "Context": "default",
        "Plugins": [],
        "Version": __version__,
        "Warnings": None,
    }
    fmt = inv.get_str("format")
    if fmt:
        from berth.cli import gotemplate

        document = {**data, "ClientInfo": client}
        if fmt.strip() == "json":
            write(gotemplate.go_json(document) + "\n")
        else:
            write(gotemplate.render(gotemplate.docker_format_source(fmt), document) + "\n")
        return 0
    write(render_info(data, __version__))
    sys.stdout.flush()
    for warning in data["Warnings"]:
        sys.stderr.write(warning + "\n")
    return 0


def render_info(data: Mapping[str, Any], client_version: str) -> str:
    """``docker info``'s text: a Client and a Server section."""
    from berth.units import bytes_size

    lines = [
        "Client:",
        f" Version:    {client_version}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {data['Containers']}",
        f"  Running: {data['ContainersRunning']}",
        f"  Paused: {data['ContainersPaused']}",
        f"  Stopped: {data['ContainersStopped']}",
        f" Images: {data['Images']}",
        f" Server Version: {data['ServerVersion']}",
        f" Storage Driver: {data['Driver']}",
    ]
    lines += [f"  {key}: {value}" for key, value in data["DriverStatus"]]
    plugins = data["Plugins"]
    lines += [
        f" Logging Driver: {data['LoggingDriver']}",
        f" Cgroup Driver: {data['CgroupDriver']}",
        f" Cgroup Version: {data['CgroupVersion']}",
        " Plugins:",
        f"  Volume: {' '.join(plugins['Volume'])}",
        f"  Network: {' '.join(plugins['Network'])}",
        f"  Log: {' '.join(plugins['Log'])}",
        " Swarm: inactive",
        f" Runtimes: {' '.join(data['Runtimes'])}",
        f" Default Runtime: {data['DefaultRuntime']}",
        f" Init Binary: {data['InitBinary']}",
    ]
    if data["SecurityOptions"]:
        lines.append(" Security Options:")
        for option in data["SecurityOptions"]:
            fields = dict(part.split("=", 1) for part in option.split(",") if "=" in part)
            lines.append(f"  {fields.get('name', option)}")
            for key, value in fields.items():
                if key != "name":
                    lines.append(f"   {key.capitalize()}: {value}")
    lines += [
        f" Kernel Version: {data['KernelVersion']}",
        f" Operating System: {data['OperatingSystem']}",
        f" OSType: {data['OSType']}",
        f" Architecture: {data['Architecture']}",
        f" CPUs: {data['NCPU']}",
        f" Total Memory: {bytes_size(data['MemTotal'])}",
        f" Name: {data['Name']}",
        f" ID: {data['ID']}",
        f" Berth Root Dir: {data['DockerRootDir']}",
        " Debug Mode: false",
    ]
    for key, label in (("HttpProxy", "HTTP Proxy"), ("HttpsProxy", "HTTPS Proxy")):
        if data.get(key):
            lines.append(f" {label}: {data[key]}")
    if data.get("NoProxy"):
        lines.append(f" No Proxy: {data['NoProxy']}")
    lines += [" Experimental: false", " Insecure Registries:"]
    lines += [f"  {cidr}" for cidr in data["RegistryConfig"]["InsecureRegistryCIDRs"]]
    lines.append(f" Live Restore Enabled: {str(data['LiveRestoreEnabled']).lower()}")
    return "\n".join(lines) + "\n\n"


# ----------------------------------------------------------------------------- system prune


def prune(inv: Invocation) -> int:
    from berth.engine.system_prune import system_prune
    from berth.filters import parse_filters
    from berth.units import human_size

    filters = parse_filters(inv.get_list("filter"))
    all_images = inv.get_bool("all")
    volumes = inv.get_bool("volumes")
    if not inv.get_bool("force") and not _confirm(
        prune_warning(all_images, volumes, inv.get_list("filter"))
    ):
        return 0
    report = system_prune(Engine(), all=all_images, volumes=volumes, filters=filters.to_dict())
    sections = [
        ("Deleted Containers:", report.containers),
        ("Deleted Networks:", report.networks),
        ("Deleted Volumes:", report.volumes),
        (
            "Deleted Images:",
            [
                f"{kind.lower()}: {what}"
                for record in report.images
                for kind, what in record.items()
            ],
        ),
        ("Deleted build cache objects:", report.build_cache),
    ]
    for title, lines in sections:
        if lines:
            write(title + "\n" + "".join(f"{line}\n" for line in lines) + "\n")
    write(f"Total reclaimed space: {human_size(report.reclaimed, 4)}\n")
    return 0


def prune_warning(all_images: bool, volumes: bool, filters: list[str]) -> str:
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    if all_images:
        items += ["all images without at least one container associated to them", "all build cache"]
    else:
        items += ["all dangling images", "unused build cache"]
    text = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    if filters:
        text += "\n  Items to be pruned will be filtered with:\n"
        text += "".join(f"  - {value}\n" for value in filters)
    return text


def _confirm(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
