"""The embedded DNS server's records, read from the store database when it changes."""

from __future__ import annotations

import ipaddress
import sqlite3
import threading

from berth.network import state
from berth.network.dns import Client, DnsRecords, NetworkRecords
from berth.store.db import Database


def load_records(conn: sqlite3.Connection | Database) -> DnsRecords:
    networks = {n.id: n for n in state.list_networks(conn)}
    sandboxes = {s.container_id: s for s in state.list_sandboxes(conn)}
    endpoints = state.all_endpoints(conn)
    names: dict[str, dict[str, list[str]]] = {}
    reverse: dict[str, dict[str, str]] = {}
    by_container: dict[str, list[str]] = {}
    for endpoint in endpoints:
        by_container.setdefault(endpoint.container_id, []).append(endpoint.network_id)
        net = networks.get(endpoint.network_id)
        if net is None or not net.has_dns:
            continue
        sandbox = sandboxes.get(endpoint.container_id)
        container_name = sandbox.name if sandbox else ""
        keys = [container_name, *endpoint.aliases, endpoint.container_id[:12]]
        table = names.setdefault(net.id, {})
        for key in dict.fromkeys(k.lower().rstrip(".") for k in keys if k):
            table.setdefault(key, []).append(endpoint.ip)
        reverse.setdefault(net.id, {})[endpoint.ip] = container_name or endpoint.container_id[:12]
    clients: dict[str, Client] = {}
    for endpoint in endpoints:
        net = networks.get(endpoint.network_id)
        if net is None or not net.has_dns:
            continue
        own = by_container.get(endpoint.container_id, [])
        dns_networks = tuple(n for n in own if n in networks and networks[n].has_dns)
        can_forward = any(n in networks and not networks[n].internal for n in own)
        sandbox = sandboxes.get(endpoint.container_id)
        servers = tuple(sandbox.dns.get("servers", ())) if sandbox else ()
        clients[endpoint.ip] = Client(endpoint.container_id, dns_networks, servers, can_forward)
    records = {
        net_id: NetworkRecords(
            ipaddress.IPv4Network(networks[net_id].subnet or "0.0.0.0/32"),
            {name: tuple(addresses) for name, addresses in names.get(net_id, {}).items()},
            reverse.get(net_id, {}),
        )
        for net_id in networks
        if networks[net_id].has_dns
    }
    return DnsRecords(clients, records)


class StoreRecords:
    """A :class:`berth.network.dns.RecordSource` over a store's database file.

    It opens its own connection (in the DNS server's thread) and reloads only when another
    connection committed (``PRAGMA data_version``) and the network tables' version moved.
    """

    def __init__(self, db_path: str) -> None:
        self._path = db_path
        self._db: Database | None = None
        self._data_version: int | None = None
        self._version: int | None = None
        self._records = DnsRecords()
        self._lock = threading.Lock()

    def current(self) -> DnsRecords:
        with self._lock:
            if self._db is None:
                self._db = Database(self._path)
                state.ensure_schema(self._db)
            db = self._db
            data_version = int(db.execute("PRAGMA data_version").fetchone()[0])
            if data_version != self._data_version:
                with db.read() as conn:
                    version = state.version(conn)
                    if version != self._version:
                        self._records = load_records(conn)
                        self._version = version
                self._data_version = data_version
            return self._records

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
