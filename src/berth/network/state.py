"""The network tables in the store's database, and the queries on them.

Tables (created here, ``CREATE TABLE IF NOT EXISTS``, so the store's own schema does not need to
know about them)::

    net_networks   one row per network (bridge, subnet, gateway, flags, options, labels)
    net_sandboxes  one row per container with networking set up: its mode and netns path
    net_endpoints  a container on a network: interface names, address (the address lease:
                   UNIQUE(network_id, ip)), MAC, aliases
    net_ports      published ports: UNIQUE(host_port, proto, host_ip) is the reservation
    net_released   veths of torn-down containers whose namespace the kernel is still
                   destroying: their addresses stay reserved until the link is gone
    net_state      key/value: "version" (bumped by every change the DNS server must see),
                   "dns_port" (where the embedded DNS server listens), "ip_forward"

Every change goes through a write transaction (``BEGIN IMMEDIATE``), which serialises berth
processes: two of them can never hand out one address or one host port twice.
"""

from __future__ import annotations

import time

from berth import jsonio
from berth.network.model import Endpoint, Network, PortMapping
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

    from berth.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS net_networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT UNIQUE,
    subnet TEXT UNIQUE,
    gateway TEXT,
    internal INTEGER NOT NULL DEFAULT 0,
    is_default INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    ip_cursor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS net_sandboxes (
    container_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL,
    netns TEXT,
    dns TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    container_id TEXT NOT NULL REFERENCES net_sandboxes(container_id) ON DELETE CASCADE,
    network_id TEXT NOT NULL REFERENCES net_networks(id),
    position INTEGER NOT NULL,
    ifname TEXT NOT NULL,
    host_ifname TEXT NOT NULL UNIQUE,
    ip TEXT NOT NULL,
    ip_int INTEGER NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (container_id, network_id),
    UNIQUE (network_id, ip_int)
);
CREATE INDEX IF NOT EXISTS net_endpoints_by_network ON net_endpoints(network_id);
CREATE TABLE IF NOT EXISTS net_ports (
    container_id TEXT NOT NULL REFERENCES net_sandboxes(container_id) ON DELETE CASCADE,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT,
    PRIMARY KEY (host_port, proto, host_ip)
);
CREATE INDEX IF NOT EXISTS net_ports_by_container ON net_ports(container_id);
CREATE TABLE IF NOT EXISTS net_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_released (
    host_ifname TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    ip_int INTEGER NOT NULL,
    released REAL NOT NULL
)
"""


def ensure_schema(db: Database) -> None:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='net_released'").fetchone()
    if exists:
        return
    with db.write() as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)


class Sandbox(FrozenValue):
    __slots__ = ("container_id", "created", "dns", "hostname", "mode", "name", "netns")
    container_id: str
    name: str
    hostname: str
    mode: str  # "bridge", "none", "host", "container:<id>"
    netns: str | None
    dns: dict[str, list[str]]
    created: float

    def __init__(
        self,
        container_id: str,
        name: str,
        hostname: str,
        mode: str,
        netns: str | None,
        dns: dict[str, list[str]],
        created: float,
    ) -> None:
        init_fields(
            self,
            container_id=container_id,
            name=name,
            hostname=hostname,
            mode=mode,
            netns=netns,
            dns=dns,
            created=created,
        )


class PortRow(FrozenValue):
    __slots__ = ("container_id", "container_ip", "container_port", "host_ip", "host_port", "proto")
    container_id: str
    host_ip: str
    host_port: int
    proto: str
    container_port: int
    container_ip: str | None

    def __init__(
        self,
        container_id: str,
        host_ip: str,
        host_port: int,
        proto: str,
        container_port: int,
        container_ip: str | None,
    ) -> None:
        init_fields(
            self,
            container_id=container_id,
            host_ip=host_ip,
            host_port=host_port,
            proto=proto,
            container_port=container_port,
            container_ip=container_ip,
        )

    def mapping(self) -> PortMapping:
        return PortMapping(self.container_port, self.proto, self.host_ip, self.host_port)


# -- key/value ----------------------------------------------------------------------------------


def get_value(conn: sqlite3.Connection | Database, key: str) -> str | None:
    row = conn.execute("SELECT value FROM net_state WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_value(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO net_state(key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))


def bump_version(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO net_state(key, value) VALUES ('version', '1') "
                 "ON CONFLICT(key) DO UPDATE SET value=CAST(value AS INTEGER) + 1")


def version(conn: sqlite3.Connection | Database) -> int:
    value = get_value(conn, "version")
    return int(value) if value else 0


# -- networks -----------------------------------------------------------------------------------


def _network(row: sqlite3.Row) -> Network:
    return Network(
        id=row["id"], name=row["name"], driver=row["driver"], bridge=row["bridge"],
        subnet=row["subnet"], gateway=row["gateway"], internal=bool(row["internal"]),
        is_default=bool(row["is_default"]), options=jsonio.loads(row["options"]),
        labels=jsonio.loads(row["labels"]), created=row["created"],
    )


def insert_network(conn: sqlite3.Connection, net: Network) -> None:
    conn.execute(
        "INSERT INTO net_networks(id, name, driver, bridge, subnet, gateway, internal, "
        "is_default, options, labels, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (net.id, net.name, net.driver, net.bridge, net.subnet, net.gateway, int(net.internal),
         int(net.is_default), jsonio.dumps_sorted(net.options),
         jsonio.dumps_sorted(net.labels), net.created),
    )


def list_networks(conn: sqlite3.Connection | Database) -> list[Network]:
    rows = conn.execute("SELECT * FROM net_networks ORDER BY created, name").fetchall()
    return [_network(row) for row in rows]


def find_network(conn: sqlite3.Connection | Database, name_or_id: str) -> list[Network]:
    """Networks matching by exact name, exact id, or id prefix (in that order of preference)."""
    row = conn.execute("SELECT * FROM net_networks WHERE name=?", (name_or_id,)).fetchone()
    if row is not None:
        return [_network(row)]
    row = conn.execute("SELECT * FROM net_networks WHERE id=?", (name_or_id,)).fetchone()
    if row is not None:
        return [_network(row)]
    if not name_or_id or not all(c in "0123456789abcdef" for c in name_or_id):
        return []
    rows = conn.execute("SELECT * FROM net_networks WHERE id >= ? AND id < ?",
                        (name_or_id, name_or_id + "g")).fetchall()
    return [_network(row) for row in rows]


def delete_network(conn: sqlite3.Connection, network_id: str) -> None:
    conn.execute("DELETE FROM net_networks WHERE id=?", (network_id,))


def bridge_names(conn: sqlite3.Connection | Database) -> set[str]:
    rows = conn.execute("SELECT bridge FROM net_networks WHERE bridge IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def next_ip_cursor(conn: sqlite3.Connection, network_id: str) -> int:
    row = conn.execute("SELECT ip_cursor FROM net_networks WHERE id=?", (network_id,)).fetchone()
    return int(row[0]) if row else 0


def set_ip_cursor(conn: sqlite3.Connection, network_id: str, cursor: int) -> None:
    conn.execute("UPDATE net_networks SET ip_cursor=? WHERE id=?", (cursor, network_id))


# -- sandboxes ----------------------------------------------------------------------------------


def _sandbox(row: sqlite3.Row) -> Sandbox:
    return Sandbox(row["container_id"], row["name"], row["hostname"], row["mode"], row["netns"],
                   jsonio.loads(row["dns"]), row["created"])


def insert_sandbox(conn: sqlite3.Connection, sandbox: Sandbox) -> None:
    conn.execute(
        "INSERT INTO net_sandboxes(container_id, name, hostname, mode, netns, dns, created) "
        "VALUES (?,?,?,?,?,?,?)",
        (sandbox.container_id, sandbox.name, sandbox.hostname, sandbox.mode, sandbox.netns,
         jsonio.dumps_sorted(sandbox.dns), sandbox.created),
    )


def get_sandbox(conn: sqlite3.Connection | Database, container_id: str) -> Sandbox | None:
    row = conn.execute("SELECT * FROM net_sandboxes WHERE container_id=?",
                       (container_id,)).fetchone()
    return None if row is None else _sandbox(row)


def list_sandboxes(conn: sqlite3.Connection | Database) -> list[Sandbox]:
    return [_sandbox(row) for row in conn.execute("SELECT * FROM net_sandboxes").fetchall()]


def delete_sandbox(conn: sqlite3.Connection, container_id: str) -> None:
    conn.execute("DELETE FROM net_ports WHERE container_id=?", (container_id,))
    conn.execute("DELETE FROM net_endpoints WHERE container_id=?", (container_id,))
    conn.execute("DELETE FROM net_sandboxes WHERE container_id=?", (container_id,))


# -- endpoints ----------------------------------------------------------------------------------

_ENDPOINT_SELECT = (
    "SELECT e.*, n.name AS network_name, n.subnet, n.gateway, n.internal "
    "FROM net_endpoints e JOIN net_networks n ON n.id = e.network_id "
)


def _endpoint(row: sqlite3.Row) -> Endpoint:
    prefixlen = int(str(row["subnet"]).rpartition("/")[2]) if row["subnet"] else 32
    return Endpoint(
        container_id=row["container_id"], network_id=row["network_id"],
        network_name=row["network_name"], ifname=row["ifname"],
        host_ifname=row["host_ifname"], ip=row["ip"], prefixlen=prefixlen,
        gateway=None if row["internal"] else row["gateway"], mac=row["mac"],
        aliases=tuple(jsonio.loads(row["aliases"])),
    )


def insert_endpoint(conn: sqlite3.Connection, endpoint: Endpoint, position: int,
                    ip_int: int) -> None:
    conn.execute(
        "INSERT INTO net_endpoints(container_id, network_id, position, ifname, host_ifname, ip, "
        "ip_int, mac, aliases) VALUES (?,?,?,?,?,?,?,?,?)",
        (endpoint.container_id, endpoint.network_id, position, endpoint.ifname,
         endpoint.host_ifname, endpoint.ip, ip_int, endpoint.mac,
         jsonio.dumps_sorted(list(endpoint.aliases))),
    )


def endpoints_of_container(conn: sqlite3.Connection | Database,
                           container_id: str) -> list[Endpoint]:
    rows = conn.execute(_ENDPOINT_SELECT + "WHERE e.container_id=? ORDER BY e.position",
                        (container_id,)).fetchall()
    return [_endpoint(row) for row in rows]


def endpoints_of_network(conn: sqlite3.Connection | Database, network_id: str) -> list[Endpoint]:
    rows = conn.execute(_ENDPOINT_SELECT + "WHERE e.network_id=? ORDER BY e.ip_int",
                        (network_id,)).fetchall()
    return [_endpoint(row) for row in rows]


def all_endpoints(conn: sqlite3.Connection | Database) -> list[Endpoint]:
    rows = conn.execute(_ENDPOINT_SELECT + "ORDER BY e.container_id, e.position").fetchall()
    return [_endpoint(row) for row in rows]


def used_ips(conn: sqlite3.Connection, network_id: str) -> set[int]:
    """Addresses of the network's endpoints, and of released veths not gone yet."""
    rows = conn.execute("SELECT ip_int FROM net_endpoints WHERE network_id=? UNION "
                        "SELECT ip_int FROM net_released WHERE network_id=?",
                        (network_id, network_id)).fetchall()
    return {int(row[0]) for row in rows}


def release_endpoints(conn: sqlite3.Connection, endpoints: list[Endpoint], ip_ints: list[int],
                      when: float) -> None:
    for endpoint, ip_int in zip(endpoints, ip_ints, strict=True):
        conn.execute("INSERT OR REPLACE INTO net_released(host_ifname, network_id, ip_int, "
                     "released) VALUES (?,?,?,?)",
                     (endpoint.host_ifname, endpoint.network_id, ip_int, when))


def released(conn: sqlite3.Connection | Database) -> list[tuple[str, float]]:
    rows = conn.execute("SELECT host_ifname, released FROM net_released").fetchall()
    return [(str(row[0]), float(row[1])) for row in rows]


def forget_released(conn: sqlite3.Connection, host_ifname: str) -> None:
    conn.execute("DELETE FROM net_released WHERE host_ifname=?", (host_ifname,))


def delete_endpoint(conn: sqlite3.Connection, container_id: str, network_id: str) -> None:
    conn.execute("DELETE FROM net_endpoints WHERE container_id=? AND network_id=?",
                 (container_id, network_id))


def host_ifnames(conn: sqlite3.Connection | Database) -> set[str]:
    rows = conn.execute("SELECT host_ifname FROM net_endpoints UNION "
                        "SELECT host_ifname FROM net_released").fetchall()
    return {row[0] for row in rows}


# -- ports --------------------------------------------------------------------------------------


def _port(row: sqlite3.Row) -> PortRow:
    return PortRow(row["container_id"], row["host_ip"], row["host_port"], row["proto"],
                   row["container_port"], row["container_ip"])


def insert_port(conn: sqlite3.Connection, row: PortRow) -> None:
    conn.execute(
        "INSERT INTO net_ports(container_id, host_ip, host_port, proto, container_port, "
        "container_ip) VALUES (?,?,?,?,?,?)",
        (row.container_id, row.host_ip, row.host_port, row.proto, row.container_port,
         row.container_ip),
    )


def ports_of_container(conn: sqlite3.Connection | Database, container_id: str) -> list[PortRow]:
    rows = conn.execute("SELECT * FROM net_ports WHERE container_id=? "
                        "ORDER BY container_port, proto, host_ip", (container_id,)).fetchall()
    return [_port(row) for row in rows]


def all_ports(conn: sqlite3.Connection | Database) -> list[PortRow]:
    rows = conn.execute("SELECT * FROM net_ports ORDER BY host_port, proto, host_ip").fetchall()
    return [_port(row) for row in rows]


def port_holder(conn: sqlite3.Connection, host_ip: str, host_port: int,
                proto: str) -> PortRow | None:
    """A published port that conflicts with (host_ip, host_port, proto): same address, or
    either of them is every address."""
    row = conn.execute(
        "SELECT * FROM net_ports WHERE host_port=? AND proto=? AND "
        "(host_ip=? OR host_ip='' OR ?='') LIMIT 1",
        (host_port, proto, host_ip, host_ip)).fetchone()
    return None if row is None else _port(row)


def taken_ports(conn: sqlite3.Connection, proto: str) -> set[int]:
    rows = conn.execute("SELECT host_port FROM net_ports WHERE proto=?", (proto,)).fetchall()
    return {int(row[0]) for row in rows}


def repoint_ports(conn: sqlite3.Connection, container_id: str, container_ip: str | None) -> None:
    conn.execute("UPDATE net_ports SET container_ip=? WHERE container_id=?",
                 (container_ip, container_id))


def now() -> float:
    return time.time()
