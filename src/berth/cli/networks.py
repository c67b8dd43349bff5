"""Handlers of ``berth network ...`` and ``berth port``."""

from __future__ import annotations

import sys

from berth.cli.flags import Invocation
from berth.cli.render import act_on_each, format_rows, inspect_each, write
from berth.engine import Engine

NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def create(inv: Invocation) -> int:
    from berth.containers.flagvalues import parse_key_values

    subnets = inv.get_list("subnet")
    gateways = inv.get_list("gateway")
    network = Engine().networks.create(
        inv.args[0],
        driver=inv.get_str("driver"),
        internal=inv.get_bool("internal"),
        subnet=subnets[0] if subnets else None,
        gateway=gateways[0] if gateways else None,
        options=parse_key_values(inv.get_list("opt"), "opt"),
        labels=parse_key_values(inv.get_list("label"), "label"),
    )
    write(network.id + "\n")
    return 0


def ls(inv: Invocation) -> int:
    from berth.filters import parse_filters

    networks = Engine().networks.list(parse_filters(inv.get_list("filter")).to_dict())
    no_trunc = inv.get_bool("no_trunc")
    if inv.get_bool("quiet"):
        write("".join(f"{n.id if no_trunc else n.short_id}\n" for n in networks))
        return 0
    rows = [
        {
            "CreatedAt": "",
            "Driver": n.network.driver,
            "ID": n.id if no_trunc else n.short_id,
            "IPv6": "false",
            "Internal": str(n.network.internal).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in n.network.labels.items()),
            "Name": n.name,
            "Scope": "local",
        }
        for n in networks
    ]
    write(
        format_rows(
            rows,
            inv.get_str("format"),
            default_table="table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            headers=NETWORK_HEADERS,
        )
    )
    return 0


def inspect(inv: Invocation) -> int:
    engine = Engine()
    return inspect_each(
        inv.args, lambda name: engine.networks.get(name).attrs, inv.get_str("format")
    )


def rm(inv: Invocation) -> int:
    engine = Engine()
    return act_on_each(inv.args, engine.networks.manager.remove)


def prune(inv: Invocation) -> int:
    from berth.filters import parse_filters

    if not inv.get_bool("force"):
        sys.stdout.write(
            "WARNING! This will remove all custom networks not used by at least "
            "one container.\nAre you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = Engine().networks.prune(parse_filters(inv.get_list("filter")).to_dict())
    removed = result["NetworksDeleted"] or []
    if removed:
        write("Deleted Networks:\n" + "".join(f"{n}\n" for n in removed))
    return 0


def connect(inv: Invocation) -> int:
    Engine().networks.connect(
        inv.args[0], inv.args[1], inv.get_list("alias"), inv.get_str("ip") or None
    )
    return 0


def disconnect(inv: Invocation) -> int:
    Engine().networks.disconnect(inv.args[0], inv.args[1])
    return 0


def port(inv: Invocation) -> int:
    engine = Engine()
    container = engine.containers.get(inv.args[0])
    mappings = engine.networks.manager.port(container.id)
    wanted = inv.args[1] if len(inv.args) > 1 else None
    lines = []
    for m in mappings:
        key = f"{m.container_port}/{m.protocol}"
        host = m.host_ip or "0.0.0.0"
        if wanted is None:
            lines.append(f"{key} -> {host}:{m.host_port}")
        elif wanted in (key, str(m.container_port)):
            lines.append(f"{host}:{m.host_port}")
    if wanted is not None and not lines:
        from berth.errors import NotFound

        raise NotFound(f"No public port '{wanted}' published for {inv.args[0]}")
    write("".join(f"{line}\n" for line in lines))
    return 0
