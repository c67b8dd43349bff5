"""Handlers of ``berth volume create|inspect|ls|prune|rm``."""

from __future__ import annotations

import sys

from berth.cli.flags import Invocation
from berth.cli.render import act_on_each, format_rows, inspect_each, write
from berth.engine import Engine
from berth.errors import InvalidArgument

VOLUME_HEADERS = {
    "Driver": "DRIVER",
    "Name": "VOLUME NAME",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Scope": "SCOPE",
    "Size": "SIZE",
}


def create(inv: Invocation) -> int:
    from berth.containers.flagvalues import parse_key_values

    name = inv.get_str("name")
    if inv.args:
        if name and name != inv.args[0]:
            raise InvalidArgument(
                "conflicting options: either specify --name or provide positional arg, not both"
            )
        name = inv.args[0]
    volume = Engine().volumes.create(
        name or None,
        driver=inv.get_str("driver"),
        driver_opts=parse_key_values(inv.get_list("opt"), "opt") or None,
        labels=parse_key_values(inv.get_list("label"), "label"),
    )
    write(volume.name + "\n")
    return 0


def inspect(inv: Invocation) -> int:
    engine = Engine()
    return inspect_each(
        inv.args, lambda name: engine.volumes.get(name).attrs, inv.get_str("format")
    )


def ls(inv: Invocation) -> int:
    from berth.filters import parse_filters

    volumes = Engine().volumes.list(parse_filters(inv.get_list("filter")).to_dict())
    if inv.get_bool("quiet"):
        write("".join(f"{v.name}\n" for v in volumes))
        return 0
    rows = []
    for volume in volumes:
        attrs = volume.attrs
        rows.append(
            {
                "Driver": attrs["Driver"],
                "Labels": ",".join(f"{k}={v}" for k, v in (attrs["Labels"] or {}).items()),
                "Mountpoint": attrs["Mountpoint"],
                "Name": attrs["Name"],
                "Scope": "local",
                "Size": "N/A",
            }
        )
    write(
        format_rows(
            rows,
            inv.get_str("format"),
            default_table="table {{.Driver}}\t{{.Name}}",
            headers=VOLUME_HEADERS,
        )
    )
    return 0


def prune(inv: Invocation) -> int:
    from berth.filters import parse_filters
    from berth.units import human_size

    all_volumes = inv.get_bool("all")
    if not inv.get_bool("force"):
        what = (
            "all local volumes not used by at least one container"
            if all_volumes
            else "anonymous local volumes not used by at least one container"
        )
        sys.stdout.write(
            f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = Engine().volumes.prune(
        parse_filters(inv.get_list("filter")).to_dict(), all=all_volumes
    )
    removed = result["VolumesDeleted"] or []
    if removed:
        write("Deleted Volumes:\n" + "".join(f"{v}\n" for v in removed) + "\n")
    write(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}\n")
    return 0


def rm(inv: Invocation) -> int:
    engine = Engine()
    force = inv.get_bool("force")
    return act_on_each(inv.args, lambda name: engine.volumes.volumes.remove(name, force=force))
