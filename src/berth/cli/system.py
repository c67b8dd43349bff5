"""Handlers of ``system df``, ``system check`` and ``version``."""

from __future__ import annotations

import platform
import sys

from berth.cli.flags import Invocation
from berth.cli.render import format_objects, format_rows, write
from berth.engine import Engine

DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}


def df(inv: Invocation) -> int:
    from berth.units import human_size

    rows = []
    for line in Engine().system.df():
        percent = f" ({line.reclaimable * 100 // line.size}%)" if line.size else ""
        rows.append(
            {
                "Active": str(line.active),
                "Reclaimable": human_size(line.reclaimable)
                + (percent if line.type == "Images" else ""),
                "Size": human_size(line.size),
                "TotalCount": str(line.total),
                "Type": line.type,
            }
        )
    default = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    write(format_rows(rows, inv.get_str("format"), default_table=default, headers=DF_HEADERS))
    return 0


def check(inv: Invocation) -> int:
    repair = inv.get_bool("repair")
    findings = Engine().system.check(repair=repair)
    if not findings:
        write("The store is consistent.\n")
        return 0
    for finding in findings:
        where = f" ({finding.path})" if finding.path else ""
        action = "removed" if repair and finding.kind == "leftover" else finding.kind
        write(f"{action}: {finding.what}{where}\n")
    damage = [f for f in findings if f.kind == "damage"]
    if damage:
        sys.stderr.write(
            f"Error: {len(damage)} problem(s) need attention: pull or load the affected images "
            "again\n"
        )
        return 1
    if not repair:
        write("Run `berth system check --repair` to remove the leftovers.\n")
        return 1
    return 0


def version(inv: Invocation) -> int:
    from berth import __version__

    data = {
        "Client": {
            "Version": __version__,
            "ApiVersion": "1.43",
            "Os": "linux",
            "Arch": platform.machine(),
            "GoVersion": f"python{platform.python_version()}",
        },
        "Server": {"Engine": {"Version": __version__}},
    }
    fmt = inv.get_str("format")
    if fmt:
        write(format_objects([data], fmt))
        return 0
    write(
        f"Client:\n Version:           {__version__}\n API version:       1.43\n"
        f" Python version:    {platform.python_version()}\n OS/Arch:           linux/"
        f"{platform.machine()}\n\nEngine: berth (daemonless)\n Version:           "
        f"{__version__}\n"
    )
    return 0


def reset(inv: Invocation) -> int:
    engine = Engine()
    if not inv.get_bool("force"):
        sys.stdout.write(
            f"WARNING! This will remove all containers, images, volumes, networks and build "
            f"cache of the store at {engine.paths.root}, and what it has on the host.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    engine.system.reset()
    return 0
