"""The network tables and the DNS records built from them (a temporary SQLite store)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator

import pytest

from berth.network import state
from berth.network.model import Endpoint, Network
from berth.network.records import StoreRecords, load_records
from berth.store.db import Database


@pytest.fixture
def db() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="berth-state-") as root:
        database = Database(f"{root}/berth.db")
        state.ensure_schema(database)
        state.ensure_schema(database)  # twice is fine
        try:
            yield database
        finally:
            database.close()


def _net(net_id: str, name: str, subnet: str, *, internal: bool = False,
         default: bool = False) -> Network:
    return Network(net_id, name, "bridge", f"br-{name}", subnet,
                   subnet.replace("0/16", "1"), internal, default, created=1.0)


def _join(conn: sqlite3.Connection, cid: str, name: str, net: Network, ip: str,
          aliases: tuple[str, ...] = (), servers: tuple[str, ...] = ()) -> None:
    if state.get_sandbox(conn, cid) is None:
        state.insert_sandbox(conn, state.Sandbox(cid, name, name, "bridge", f"/run/x/{cid}",
                                                 {"servers": list(servers)}, 1.0))
    position = len(state.endpoints_of_container(conn, cid))
    endpoint = Endpoint(cid, net.id, net.name, f"eth{position}", f"bv{cid[:4]}{position}", ip,
                        16, net.gateway, "02:be:00:00:00:00", aliases)
    state.insert_endpoint(conn, endpoint, position, int.from_bytes(bytes(
        int(x) for x in ip.split(".")), "big"))


def test_address_leases_are_unique_per_network(db: Database) -> None:
    net = _net("n1", "app", "172.18.0.0/16")
    with db.write() as conn:
        state.insert_network(conn, net)
        _join(conn, "a" * 64, "a", net, "172.18.0.2")
    with pytest.raises(sqlite3.IntegrityError), db.write() as conn:
        _join(conn, "b" * 64, "b", net, "172.18.0.2")
    assert state.get_sandbox(db, "b" * 64) is None  # the whole transaction rolled back
    assert state.used_ips(db._conn, "n1") == {0xAC120002}


def test_port_holder_treats_every_address_as_overlapping(db: Database) -> None:
    net = _net("n1", "app", "172.18.0.0/16")
    with db.write() as conn:
        state.insert_network(conn, net)
        _join(conn, "a" * 64, "a", net, "172.18.0.2")
        state.insert_port(conn, state.PortRow("a" * 64, "127.0.0.1", 8080, "tcp", 80,
                                              "172.18.0.2"))
        assert state.port_holder(conn, "127.0.0.1", 8080, "tcp") is not None
        assert state.port_holder(conn, "", 8080, "tcp") is not None
        assert state.port_holder(conn, "10.0.0.1", 8080, "tcp") is None
        assert state.port_holder(conn, "127.0.0.1", 8080, "udp") is None
        state.delete_sandbox(conn, "a" * 64)
        assert state.all_ports(conn) == [] and state.all_endpoints(conn) == []


def test_version_counter_and_values(db: Database) -> None:
    assert state.version(db) == 0
    with db.write() as conn:
        state.bump_version(conn)
        state.bump_version(conn)
        state.set_value(conn, "dns_port", "5353")
        state.set_value(conn, "dns_port", "5354")
    assert state.version(db) == 2
    assert state.get_value(db, "dns_port") == "5354"


def test_find_network_by_name_id_and_prefix(db: Database) -> None:
    with db.write() as conn:
        state.insert_network(conn, _net("abc123", "app", "172.18.0.0/16"))
        state.insert_network(conn, _net("abd456", "web", "172.19.0.0/16"))
    assert [n.name for n in state.find_network(db, "app")] == ["app"]
    assert [n.name for n in state.find_network(db, "abd456")] == ["web"]
    assert [n.name for n in state.find_network(db, "abc")] == ["app"]
    assert len(state.find_network(db, "ab")) == 2
    assert state.find_network(db, "zz") == []


def test_records_follow_networks_and_clients(db: Database) -> None:
    app = _net("n1", "app", "172.18.0.0/16")
    vault = _net("n2", "vault", "172.19.0.0/16", internal=True)
    default = _net("n0", "bridge", "172.17.0.0/16", default=True)
    with db.write() as conn:
        for net in (app, vault, default):
            state.insert_network(conn, net)
        _join(conn, "a" * 64, "Web-1", app, "172.18.0.2", ("web",), servers=("9.9.9.9",))
        _join(conn, "b" * 64, "db-1", app, "172.18.0.3", ("db",))
        _join(conn, "b" * 64, "db-1", vault, "172.19.0.2")
        _join(conn, "c" * 64, "inner", vault, "172.19.0.3")
        _join(conn, "d" * 64, "plain", default, "172.17.0.2")
        state.bump_version(conn)
    records = load_records(db)
    assert records.networks["n1"].names["web-1"] == ("172.18.0.2",)
    assert records.networks["n1"].names["web"] == ("172.18.0.2",)
    assert records.networks["n1"].names["a" * 12] == ("172.18.0.2",)
    assert records.networks["n1"].reverse["172.18.0.3"] == "db-1"
    assert "n0" not in records.networks  # the default network has no names
    assert "172.17.0.2" not in records.clients
    web = records.clients["172.18.0.2"]
    assert web.networks == ("n1",) and web.servers == ("9.9.9.9",) and web.can_forward
    db_client = records.clients["172.19.0.2"]
    assert set(db_client.networks) == {"n1", "n2"} and db_client.can_forward
    assert records.clients["172.19.0.3"].can_forward is False  # only internal


def test_store_records_reload_only_on_change(db: Database) -> None:
    app = _net("n1", "app", "172.18.0.0/16")
    with db.write() as conn:
        state.insert_network(conn, app)
        state.bump_version(conn)
    source = StoreRecords(db.path)
    try:
        first = source.current()
        assert first.clients == {}
        assert source.current() is first  # nothing changed: the same object
        with db.write() as conn:
            _join(conn, "a" * 64, "web", app, "172.18.0.2")
            state.bump_version(conn)
        assert "172.18.0.2" in source.current().clients
    finally:
        source.close()
