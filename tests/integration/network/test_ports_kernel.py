"""Published ports on the real kernel: loopback, the host's other addresses, from outside,
hairpin, the user's chain, and ports that are taken."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from berth.errors import InvalidArgument, NetworkError
from berth.network import EndpointRequest, PortMapping, parse_publish, publish_all
from berth.network import state as net_state
from tests.integration.network.conftest import Store
from tests.integration.network.helpers import (
    BannerServer,
    OutsideHost,
    UdpEcho,
    fetch_banner,
    links_named,
    reachable,
    udp_ask,
)

pytestmark = pytest.mark.root

CID_A = "a" * 64
CID_B = "b" * 64
CID_C = "c" * 64


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def host_primary_address() -> str:
    """The address of the interface the host's default route uses (not loopback)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        default = next(r for r in ipr.route("dump", family=2)
                       if not r.get("dst") and r.get("table") == 254)
        addr = next(a for a in ipr.addr("dump", family=2) if a["index"] == default.get("oif"))
        return str(addr.get("address"))


def nft_elements(store: Store, map_name: str) -> str:
    out = subprocess.run(["nft", "list", "map", "inet", store.manager.table, map_name],
                         capture_output=True, text=True, check=True).stdout
    return out


def test_published_port_answers_on_loopback_host_addresses_and_from_outside(
        store: Store, outside: OutsideHost) -> None:
    port = free_port()
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                         parse_publish(f"{port}:80"))
    assert info.ports == (PortMapping(80, "tcp", "", port),)
    assert store.manager.port(CID_A) == [PortMapping(80, "tcp", "", port)]
    assert info.netns_path
    server = BannerServer(info.netns_path, "0.0.0.0", 80, "web")
    try:
        assert fetch_banner("127.0.0.1", port).startswith("web ")
        assert fetch_banner(host_primary_address(), port).startswith("web ")
        assert fetch_banner(outside.host_address, port).startswith("web ")
        # from the outside host, through the host's address on its link
        assert fetch_banner(outside.host_address, port,
                            netns_path=outside.path) == f"web {outside.address}"
    finally:
        server.stop()


def test_port_bound_to_loopback_is_not_reachable_from_outside(
        store: Store, outside: OutsideHost) -> None:
    port = free_port()
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                         parse_publish(f"127.0.0.1:{port}:80"))
    assert info.netns_path
    server = BannerServer(info.netns_path, "0.0.0.0", 80, "web")
    try:
        assert fetch_banner("127.0.0.1", port).startswith("web ")
        assert not reachable(outside.host_address, port, netns_path=outside.path)
        assert not reachable(host_primary_address(), port)
    finally:
        server.stop()


def test_hairpin_from_the_same_network_and_from_another_one(
        store: Store, outside: OutsideHost) -> None:
    port = free_port()
    store.manager.create("app")
    store.manager.create("other")
    web = store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                        parse_publish(f"{port}:80"))
    peer = store.manager.setup_container(CID_B, "peer", "peer", [EndpointRequest("app")])
    stranger = store.manager.setup_container(CID_C, "stranger", "stranger",
                                             [EndpointRequest("other")])
    assert web.netns_path and peer.netns_path and stranger.netns_path
    gateway = web.endpoints[0].gateway
    server = BannerServer(web.netns_path, "0.0.0.0", 80, "web")
    try:
        # another container of the network, through the host's address: answered, and the
        # reply came back through the host (masqueraded to the gateway)
        assert fetch_banner(outside.host_address, port,
                            netns_path=peer.netns_path) == f"web {gateway}"
        # the container itself through its own published port
        assert fetch_banner(outside.host_address, port,
                            netns_path=web.netns_path) == f"web {gateway}"
        # a container of another network: a published port is public
        assert fetch_banner(outside.host_address, port,
                            netns_path=stranger.netns_path) == f"web {stranger.ip}"
    finally:
        server.stop()


def test_udp_and_random_ports_and_publish_all(store: Store) -> None:
    store.manager.create("app")
    mappings = publish_all(["53/udp", "80/tcp"], parse_publish("127.0.0.1::81"))
    info = store.manager.setup_container(CID_A, "svc", "svc", [EndpointRequest("app")],
                                         mappings)
    by_port = {(m.container_port, m.protocol): m for m in info.ports}
    assert set(by_port) == {(53, "udp"), (80, "tcp"), (81, "tcp")}
    assert all(m.host_port > 0 for m in info.ports)
    assert by_port[(81, "tcp")].host_ip == "127.0.0.1"
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        low, high = (int(x) for x in handle.read().split())
    assert all(low <= m.host_port <= high for m in info.ports)
    assert info.netns_path
    echo = UdpEcho(info.netns_path, "0.0.0.0", 53, "dns")
    try:
        reply = udp_ask("127.0.0.1", by_port[(53, "udp")].host_port)
        assert reply.startswith("dns ")
    finally:
        echo.stop()


def test_port_already_in_use_is_a_clear_error_and_nothing_is_created(store: Store) -> None:
    store.manager.create("app")
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(NetworkError, match=rf"port {port}/tcp on 0.0.0.0 is already in use "
                           r"by another program.*-p OTHER:80"):
            store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                          parse_publish(f"{port}:80"))
    finally:
        holder.close()
    assert net_state.get_sandbox(store.db, CID_A) is None
    assert net_state.all_endpoints(store.db) == []
    assert not os.path.exists(store.manager.netns_path(CID_A))
    assert links_named(lambda name: name.startswith(store.manager.veth_prefix)) == []
    assert f"{port}" not in nft_elements(store, "published-any")


def test_port_published_by_another_container_is_refused(store: Store) -> None:
    port = free_port()
    store.manager.create("app")
    store.manager.setup_container(CID_A, "first", "first", [EndpointRequest("app")],
                                  parse_publish(f"{port}:80"))
    with pytest.raises(NetworkError, match="already published by container first"):
        store.manager.setup_container(CID_B, "second", "second", [EndpointRequest("app")],
                                      parse_publish(f"127.0.0.1:{port}:80"))
    assert net_state.get_sandbox(store.db, CID_B) is None
    # udp on the same number is another port
    store.manager.setup_container(CID_B, "second", "second", [EndpointRequest("app")],
                                  parse_publish(f"{port}:80/udp"))


def test_address_not_on_the_host_and_ipv6_are_refused(store: Store) -> None:
    store.manager.create("app")
    with pytest.raises(NetworkError, match="not an address of this host"):
        store.manager.setup_container(CID_A, "x", "x", [EndpointRequest("app")],
                                      parse_publish(f"203.0.113.9:{free_port()}:80"))
    with pytest.raises(InvalidArgument, match="IPv6"):
        store.manager.setup_container(CID_A, "x", "x", [EndpointRequest("app")],
                                      parse_publish("[::1]:8080:80"))
    assert net_state.list_sandboxes(store.db) == []


def test_teardown_removes_the_port_rules(store: Store) -> None:
    port = free_port()
    store.manager.create("app")
    store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                  parse_publish(f"{port}:80"))
    assert f"tcp . {port} :" in nft_elements(store, "published-any")
    store.manager.teardown_container(CID_A)
    assert f"{port}" not in nft_elements(store, "published-any")
    assert store.manager.port(CID_A) == []


def test_user_chain_rule_drops_a_published_port_and_survives_berth_changes(
        store: Store, outside: OutsideHost) -> None:
    port = free_port()
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                         parse_publish(f"{port}:80"))
    assert info.netns_path
    server = BannerServer(info.netns_path, "0.0.0.0", 80, "web")
    table = store.manager.table
    try:
        assert reachable(outside.host_address, port, netns_path=outside.path)
        subprocess.run(["nft", "add", "rule", "inet", table, "berth-user", "meta", "l4proto",
                        "tcp", "ct", "original", "proto-dst", str(port), "drop"], check=True)
        assert not reachable(outside.host_address, port, netns_path=outside.path)
        # berth renders its table again for every change; the user's rule stays
        store.manager.setup_container(CID_B, "other", "other", [EndpointRequest("app")],
                                      parse_publish(f"{free_port()}:81"))
        store.manager.refresh_firewall()
        assert not reachable(outside.host_address, port, netns_path=outside.path)
        subprocess.run(["nft", "flush", "chain", "inet", table, "berth-user"], check=True)
        assert reachable(outside.host_address, port, netns_path=outside.path)
    finally:
        server.stop()


def test_a_real_process_in_the_namespace_serves_a_published_port(store: Store,
                                                                   tmp_path_factory:
                                                                   pytest.TempPathFactory
                                                                   ) -> None:
    """What the runtime will do: a process joins the namespace path (here with nsenter)."""
    from tests.support.rootfs import require_busybox

    busybox = require_busybox()
    port = free_port()
    www = tmp_path_factory.mktemp("berth-www")
    (www / "index.html").write_text("hello from berth\n")
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "httpd", "httpd", [EndpointRequest("app")],
                                         parse_publish(f"{port}:80"))
    assert info.netns_path
    proc = subprocess.Popen(["nsenter", f"--net={info.netns_path}", busybox, "httpd", "-f",
                             "-p", "80", "-h", str(www)])
    try:
        import http.client
        import time

        deadline = time.monotonic() + 10
        body = b""
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/index.html")
                body = conn.getresponse().read()
                conn.close()
                break
            except OSError:
                time.sleep(0.05)
        assert body == b"hello from berth\n"
    finally:
        proc.kill()
        proc.wait()
