"""Outbound NAT, isolation between networks, and internal networks, on the real kernel.

The "outside" is a namespace of the test's own behind a veth pair; it has no route to any
container subnet, so a container reaching it proves the traffic was masqueraded.
"""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.network import EndpointRequest, parse_publish
from tests.integration.network.conftest import Store
from tests.integration.network.helpers import (
    BannerServer,
    OutsideHost,
    addresses_in,
    fetch_banner,
    reachable,
)

pytestmark = pytest.mark.root

CID_A = "a" * 64
CID_B = "b" * 64
CID_C = "c" * 64


def test_outbound_traffic_is_masqueraded(store: Store, outside: OutsideHost) -> None:
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "client", "client", [EndpointRequest("app")])
    plain = store.manager.setup_container(CID_B, "plain", "plain", [])  # the default network
    assert info.netns_path and plain.netns_path
    outside.serve(8000, "outside")
    # the outside host sees the host's address on its link, never the container's
    assert fetch_banner(outside.address, 8000,
                        netns_path=info.netns_path) == f"outside {outside.host_address}"
    assert fetch_banner(outside.address, 8000,
                        netns_path=plain.netns_path) == f"outside {outside.host_address}"


def test_outside_cannot_reach_container_addresses_directly(store: Store,
                                                            outside: OutsideHost) -> None:
    from pyroute2 import IPRoute

    net = store.manager.create("app")
    info = store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")])
    assert info.netns_path and info.ip and net.subnet
    server = BannerServer(info.netns_path, "0.0.0.0", 80, "web")
    try:
        # even when the outside host routes the subnet to us, only published ports come in
        with IPRoute(netns=outside.path) as inside:
            index = inside.link_lookup(ifname="eth0")[0]
            inside.route("add", dst=net.subnet, gateway=outside.host_address, oif=index)
        assert not reachable(info.ip, 80, netns_path=outside.path)
    finally:
        server.stop()


def test_networks_are_isolated_from_each_other(store: Store) -> None:
    store.manager.create("one")
    store.manager.create("two")
    a = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("one")])
    b = store.manager.setup_container(CID_B, "b", "b", [EndpointRequest("two")])
    a2 = store.manager.setup_container(CID_C, "a2", "a2", [EndpointRequest("one")])
    assert a.netns_path and b.netns_path and a2.netns_path and a.ip and b.ip
    server_a = BannerServer(a.netns_path, "0.0.0.0", 80, "a")
    server_b = BannerServer(b.netns_path, "0.0.0.0", 80, "b")
    try:
        assert fetch_banner(a.ip, 80, netns_path=a2.netns_path) == f"a {a2.ip}"
        assert not reachable(b.ip, 80, netns_path=a.netns_path)
        assert not reachable(a.ip, 80, netns_path=b.netns_path)
        # the default network is isolated from user-defined ones too
        plain = store.manager.setup_container("d" * 64, "plain", "plain", [])
        assert plain.netns_path
        assert not reachable(a.ip, 80, netns_path=plain.netns_path)
    finally:
        server_a.stop()
        server_b.stop()


def test_internal_network_reaches_nothing_outside(store: Store, outside: OutsideHost) -> None:
    net = store.manager.create("vault", internal=True)
    store.manager.create("app")
    inner = store.manager.setup_container(CID_A, "inner", "inner", [EndpointRequest("vault")])
    neighbour = store.manager.setup_container(CID_B, "neighbour", "neighbour",
                                              [EndpointRequest("vault")])
    other = store.manager.setup_container(CID_C, "other", "other", [EndpointRequest("app")])
    assert inner.netns_path and neighbour.netns_path and other.netns_path and inner.ip
    outside.serve(8001, "outside")
    server = BannerServer(inner.netns_path, "0.0.0.0", 80, "inner")
    host_server = BannerServer(None, net.gateway or "", 0, "host")
    try:
        routes = addresses_in(inner.netns_path)["_routes"]
        assert not any(route.startswith("None/0") for route in routes)  # no default route
        assert not reachable(outside.address, 8001, netns_path=inner.netns_path)
        assert fetch_banner(inner.ip, 80, netns_path=neighbour.netns_path).startswith("inner")
        assert not reachable(inner.ip, 80, netns_path=other.netns_path)
        # the host itself is closed to it, but for DNS
        assert not reachable(net.gateway or "", host_server.port, netns_path=inner.netns_path)
        with pytest.raises(InvalidArgument, match="internal"):
            store.manager.setup_container("e" * 64, "pub", "pub", [EndpointRequest("vault")],
                                          parse_publish("8080:80"))
    finally:
        server.stop()
        host_server.stop()


def test_containers_cannot_reach_host_loopback_services(store: Store) -> None:
    """route_localnet is on for the bridges (for DNAT from 127.0.0.1); a container forging
    packets to 127.0.0.1 through its gateway must still not reach the host's loopback."""
    import subprocess

    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "evil", "evil", [EndpointRequest("app")])
    gateway = info.endpoints[0].gateway
    assert info.netns_path and gateway
    secret = BannerServer(None, "127.0.0.1", 0, "secret")
    try:
        ns = ["nsenter", f"--net={info.netns_path}"]
        # inside: route 127.0.0.1 out of eth0 to the host, as a hostile root could
        for cmd in (["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                    ["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
                    ["ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table",
                     "local"],
                    ["ip", "route", "add", "127.0.0.1/32", "via", gateway, "dev", "eth0",
                     "onlink"]):
            subprocess.run([*ns, *cmd], check=True)
        assert not reachable("127.0.0.1", secret.port, netns_path=info.netns_path)
        drops = subprocess.run(["nft", "list", "chain", "inet", store.manager.table,
                                "raw-prerouting"], capture_output=True, text=True,
                               check=True).stdout
        assert "packets 0 " not in drops  # the guard rule is what stopped it
    finally:
        secret.stop()
