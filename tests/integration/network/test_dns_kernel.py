"""The embedded DNS server on the real kernel: containers resolve each other by name on their
own networks only, other names go to a stand-in upstream in a namespace of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from berth.network import DnsServer, DnsSettings, EndpointRequest
from berth.network.dns import RCODE_NXDOMAIN, RCODE_OK, RCODE_REFUSED, TYPE_AAAA, TYPE_PTR
from tests.integration.network.conftest import Store
from tests.integration.network.helpers import OutsideHost, StandInResolver, resolve

pytestmark = pytest.mark.root

CID_WEB = "a" * 64
CID_DB = "b" * 64
CID_OTHER = "c" * 64
CID_VAULT = "d" * 64


@pytest.fixture
def dns(store: Store, outside: OutsideHost) -> Iterator[DnsServer]:
    outside.resolver({"outside.example": "203.0.113.7"})
    server = store.manager.dns_server(upstreams=[outside.address])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_containers_resolve_each_other_by_name_and_alias(store: Store, dns: DnsServer) -> None:
    net = store.manager.create("shop")
    web = store.manager.setup_container(CID_WEB, "shop-web-1", "web",
                                        [EndpointRequest("shop", ("web",))])
    db = store.manager.setup_container(CID_DB, "shop-db-1", "db",
                                       [EndpointRequest("shop", ("db", "database"))])
    assert web.netns_path and db.netns_path and net.gateway
    gw = net.gateway
    assert resolve("db", gw, netns_path=web.netns_path).addresses == [db.ip]
    assert resolve("DATABASE", gw, netns_path=web.netns_path).addresses == [db.ip]
    assert resolve("shop-db-1", gw, netns_path=web.netns_path).addresses == [db.ip]
    assert resolve(CID_DB[:12], gw, netns_path=web.netns_path).addresses == [db.ip]
    assert resolve("web", gw, netns_path=db.netns_path).addresses == [web.ip]
    assert resolve("db", gw, netns_path=web.netns_path, tcp=True).addresses == [db.ip]
    aaaa = resolve("db", gw, netns_path=web.netns_path, qtype=TYPE_AAAA)
    assert (aaaa.rcode, aaaa.answers) == (RCODE_OK, 0)
    assert db.ip
    reverse = ".".join(reversed(db.ip.split("."))) + ".in-addr.arpa"
    ptr = resolve(reverse, gw, netns_path=web.netns_path, qtype=TYPE_PTR)
    assert ptr.rcode == RCODE_OK and b"shop-db-1" in ptr.raw


def test_two_containers_with_one_alias_get_both_addresses(store: Store, dns: DnsServer) -> None:
    net = store.manager.create("pool")
    one = store.manager.setup_container(CID_WEB, "w1", "w1", [EndpointRequest("pool", ("w",))])
    two = store.manager.setup_container(CID_DB, "w2", "w2", [EndpointRequest("pool", ("w",))])
    assert one.netns_path and net.gateway
    reply = resolve("w", net.gateway, netns_path=one.netns_path)
    assert sorted(reply.addresses) == sorted([one.ip, two.ip])


def test_names_change_as_containers_come_and_go(store: Store, dns: DnsServer) -> None:
    net = store.manager.create("live")
    web = store.manager.setup_container(CID_WEB, "web", "web", [EndpointRequest("live")])
    assert web.netns_path and net.gateway
    assert resolve("late", net.gateway, netns_path=web.netns_path).rcode == RCODE_NXDOMAIN
    late = store.manager.setup_container(CID_DB, "late", "late", [EndpointRequest("live")])
    assert resolve("late", net.gateway, netns_path=web.netns_path).addresses == [late.ip]
    store.manager.teardown_container(CID_DB)
    assert resolve("late", net.gateway, netns_path=web.netns_path).rcode == RCODE_NXDOMAIN


def test_names_of_other_networks_do_not_resolve(store: Store, dns: DnsServer,
                                                outside: OutsideHost) -> None:
    net = store.manager.create("front")
    store.manager.create("back")
    web = store.manager.setup_container(CID_WEB, "web", "web", [EndpointRequest("front")])
    store.manager.setup_container(CID_OTHER, "secret", "secret", [EndpointRequest("back")])
    assert web.netns_path and net.gateway
    reply = resolve("secret", net.gateway, netns_path=web.netns_path)
    assert reply.rcode == RCODE_NXDOMAIN and reply.addresses == []
    resolver = outside.servers[0]
    assert isinstance(resolver, StandInResolver)
    assert "secret" in resolver.asked  # it went upstream, as any unknown name


def test_outside_names_are_forwarded_over_udp_and_tcp(store: Store, dns: DnsServer,
                                                      outside: OutsideHost) -> None:
    net = store.manager.create("front")
    web = store.manager.setup_container(CID_WEB, "web", "web", [EndpointRequest("front")])
    assert web.netns_path and net.gateway
    assert resolve("outside.example", net.gateway,
                   netns_path=web.netns_path).addresses == ["203.0.113.7"]
    assert resolve("outside.example", net.gateway, netns_path=web.netns_path,
                   tcp=True).addresses == ["203.0.113.7"]
    assert resolve("nowhere.example", net.gateway,
                   netns_path=web.netns_path).rcode == RCODE_NXDOMAIN


def test_container_dns_servers_are_used_for_forwarding(store: Store, outside: OutsideHost
                                                       ) -> None:
    outside.resolver({"via-dns-flag.example": "203.0.113.8"})
    server = store.manager.dns_server(upstreams=["127.0.0.1:9"])  # a dead default upstream
    server.start()
    try:
        net = store.manager.create("front")
        web = store.manager.setup_container(CID_WEB, "web", "web", [EndpointRequest("front")],
                                            dns=DnsSettings(servers=(outside.address,)))
        assert web.netns_path and net.gateway
        assert f"nameserver {net.gateway}" in web.resolv_conf
        assert resolve("via-dns-flag.example", net.gateway,
                       netns_path=web.netns_path).addresses == ["203.0.113.8"]
    finally:
        server.stop()


def test_internal_network_resolves_its_names_but_not_the_world(store: Store,
                                                               dns: DnsServer) -> None:
    net = store.manager.create("vault", internal=True)
    a = store.manager.setup_container(CID_WEB, "a", "a", [EndpointRequest("vault")])
    b = store.manager.setup_container(CID_VAULT, "b", "b", [EndpointRequest("vault")])
    assert a.netns_path and net.gateway
    assert resolve("b", net.gateway, netns_path=a.netns_path).addresses == [b.ip]
    assert resolve("outside.example", net.gateway,
                   netns_path=a.netns_path).rcode == RCODE_REFUSED


def test_the_default_network_gets_no_answers(store: Store, dns: DnsServer) -> None:
    plain = store.manager.setup_container(CID_WEB, "plain", "plain", [])
    store.manager.setup_container(CID_DB, "friend", "friend", [])
    gateway = store.manager.get("bridge").gateway
    assert plain.netns_path and gateway
    with pytest.raises(OSError):  # nothing answers DNS on the default network's gateway
        resolve("friend", gateway, netns_path=plain.netns_path, timeout=1.0)


def test_standalone_server_process(store: Store, outside: OutsideHost) -> None:
    """``python -m berth.network.dns`` serves a store from a process of its own."""
    import subprocess
    import sys
    import time

    outside.resolver({"outside.example": "203.0.113.7"})
    net = store.manager.create("front")
    web = store.manager.setup_container(CID_WEB, "web", "web", [EndpointRequest("front")])
    db = store.manager.setup_container(CID_DB, "db", "db", [EndpointRequest("front")])
    assert web.netns_path and net.gateway
    proc = subprocess.Popen([sys.executable, "-m", "berth.network.dns", "--root",
                             store.root, "--upstream", outside.address])
    try:
        deadline = time.monotonic() + 20
        reply = None
        while time.monotonic() < deadline:
            try:
                reply = resolve("db", net.gateway, netns_path=web.netns_path, timeout=0.5)
                break
            except OSError:
                time.sleep(0.05)
        assert reply is not None and reply.addresses == [db.ip]
        assert resolve("outside.example", net.gateway,
                       netns_path=web.netns_path).addresses == ["203.0.113.7"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
