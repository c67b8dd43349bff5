"""Networks and container namespaces on the real kernel: what berth creates, and that it all
goes away again."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time

import pytest

from berth.errors import (
    ContainerStateConflict,
    InvalidArgument,
    NameInUse,
    NetworkError,
    NetworkInUse,
    NetworkNotFound,
)
from berth.network import EndpointRequest, netns
from berth.network import state as net_state
from tests.integration.network.conftest import Store
from tests.integration.network.helpers import (
    BannerServer,
    addresses_in,
    fetch_banner,
    links_named,
    netns_socket,
    reachable,
)

pytestmark = pytest.mark.root

CID_A = "a" * 64
CID_B = "b" * 64
CID_C = "c" * 64


def _link_addresses(name: str) -> list[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        return [f"{a.get('address')}/{a['prefixlen']}"
                for a in ipr.addr("dump", index=index, family=2)]


def _is_up(name: str) -> bool:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (link,) = ipr.link("get", index=ipr.link_lookup(ifname=name)[0])
        return bool(link["flags"] & 1)


def test_default_network_is_a_bridge_named_for_the_store(store: Store) -> None:
    net = store.manager.ensure_default()
    assert net.name == "bridge" and net.is_default
    assert net.bridge == f"berth0-{store.paths.suffix}"
    assert len(net.bridge) <= 15
    assert net.subnet
    prefix = ipaddress.ip_network(net.subnet).prefixlen
    assert _link_addresses(net.bridge) == [f"{net.gateway}/{prefix}"]
    assert _is_up(net.bridge)
    with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as handle:
        assert handle.read().strip() == "1"
    names = sorted(n.name for n in store.manager.list())
    assert names == ["bridge", "host", "none"]
    assert store.manager.ensure_default().id == net.id  # idempotent


def test_create_inspect_and_remove_a_network(store: Store) -> None:
    net = store.manager.create("front", labels={"app": "shop"}, options={"mtu": "1400"})
    assert net.bridge and net.subnet and net.gateway
    assert store.manager.get("front") == net
    assert store.manager.get(net.id[:10]) == net
    assert _link_addresses(net.bridge) == [f"{net.gateway}/{net.subnet.split('/')[1]}"]
    with pytest.raises(NameInUse, match="already exists"):
        store.manager.create("front")
    with pytest.raises(NameInUse):
        store.manager.create("bridge")
    store.manager.remove("front")
    assert links_named(lambda name: name == net.bridge) == []
    with pytest.raises(NetworkNotFound, match="front"):
        store.manager.get("front")


def test_subnets_never_overlap_routes_or_other_networks(store: Store) -> None:
    first = store.manager.create("one")
    second = store.manager.create("two")
    a = ipaddress.ip_network(first.subnet)  # type: ignore[arg-type]
    b = ipaddress.ip_network(second.subnet)  # type: ignore[arg-type]
    assert not a.overlaps(b)
    with pytest.raises(NetworkError, match="overlaps"):
        store.manager.create("three", subnet=str(a))
    # a route the host has (the outside link of the machine) cannot be used either
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        routes = [r for r in ipr.route("dump", family=2) if r.get("table") == 254]
        uplink = next(r.get("oif") for r in routes if not r.get("dst"))
        host_net = next(ipaddress.ip_network(f"{r.get('dst')}/{r['dst_len']}")
                        for r in routes if r.get("dst") and r.get("oif") == uplink)
    with pytest.raises(NetworkError, match="route of this host"):
        store.manager.create("four", subnet=str(host_net))


def test_user_subnet_and_gateway(store: Store) -> None:
    net = store.manager.create("custom", subnet="10.231.7.0/24", gateway="10.231.7.254")
    assert net.gateway == "10.231.7.254"
    info = store.manager.setup_container(CID_A, "pinned", "pinned",
                                         [EndpointRequest("custom", ip="10.231.7.9")])
    assert info.ip == "10.231.7.9"
    with pytest.raises(NetworkError, match="already in use"):
        store.manager.setup_container(CID_B, "second", "second",
                                      [EndpointRequest("custom", ip="10.231.7.9")])
    assert net_state.get_sandbox(store.db, CID_B) is None
    with pytest.raises(InvalidArgument, match="not available"):
        store.manager.setup_container(CID_B, "second", "second",
                                      [EndpointRequest("custom", ip="10.231.7.254")])
    with pytest.raises(InvalidArgument, match="host bits"):
        store.manager.create("bad", subnet="10.231.8.1/24")


def test_container_namespace_has_eth0_address_route_and_lo(store: Store) -> None:
    net = store.manager.create("app")
    info = store.manager.setup_container(CID_A, "web", "webhost", [EndpointRequest("app")])
    assert info.netns_path == os.path.join(store.paths.run_dir, "netns", CID_A)
    assert netns.exists(info.netns_path)
    inside = addresses_in(info.netns_path)
    prefix = net.subnet.split("/")[1]  # type: ignore[union-attr]
    assert inside["eth0"] == [f"{info.ip}/{prefix}"]
    assert inside["lo"] == ["127.0.0.1/8"]
    assert sorted(inside["_up"]) == ["eth0", "lo"]
    assert f"None/0 via {net.gateway}" in inside["_routes"]
    (endpoint,) = info.endpoints
    assert endpoint.host_ifname.startswith(f"bv{store.paths.suffix}")
    assert len(endpoint.host_ifname) <= 15
    with open(f"/sys/class/net/{endpoint.host_ifname}/brport/hairpin_mode") as handle:
        assert handle.read().strip() == "1"
    with open(f"/sys/class/net/{endpoint.host_ifname}/master/uevent") as handle:
        assert f"INTERFACE={net.bridge}" in handle.read()
    assert "webhost" in info.hosts and info.ip in info.hosts
    assert info.hostname_file == "webhost\n"
    assert f"nameserver {net.gateway}" in info.resolv_conf

    store.manager.teardown_container(CID_A, wait=True)
    assert not os.path.exists(info.netns_path)
    assert links_named(lambda name: name == endpoint.host_ifname) == []
    assert net_state.get_sandbox(store.db, CID_A) is None
    store.manager.teardown_container(CID_A)  # idempotent


def _wait_gone(name: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not links_named(lambda link: link == name):
            return True
        time.sleep(0.02)
    return False


def test_fast_teardown_lets_the_kernel_remove_the_veth_and_keeps_the_address(
        store: Store) -> None:
    store.manager.create("app", subnet="10.231.9.0/29")  # room for 5 containers
    info = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("app")])
    host_end = info.endpoints[0].host_ifname
    store.manager.teardown_container(CID_A)
    assert net_state.get_sandbox(store.db, CID_A) is None
    assert _wait_gone(host_end)  # the namespace died, and its veth pair with it
    # until the sweep sees it gone, the address stays reserved
    assert [name for name, _ in net_state.released(store.db)] == [host_end]
    again = store.manager.setup_container(CID_B, "b", "b", [EndpointRequest("app")])
    assert again.ip != info.ip
    assert net_state.released(store.db) == []


def test_a_veth_kept_alive_by_a_holder_is_deleted_by_the_sweep(store: Store) -> None:
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("app")])
    assert info.netns_path
    holder = netns_socket(info.netns_path)  # a socket keeps its namespace alive
    try:
        host_end = info.endpoints[0].host_ifname
        store.manager.teardown_container(CID_A)
        assert links_named(lambda name: name == host_end) == [host_end]
        assert store.manager.sweep_released(grace=0.0) == [host_end]
        assert links_named(lambda name: name == host_end) == []
        assert net_state.released(store.db) == []
    finally:
        holder.close()


def test_two_containers_talk_on_one_network_and_the_host_reaches_them(store: Store) -> None:
    store.manager.create("app")
    a = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("app")])
    b = store.manager.setup_container(CID_B, "b", "b", [EndpointRequest("app")])
    assert a.ip != b.ip
    server = BannerServer(b.netns_path, "0.0.0.0", 80, "b")
    try:
        assert b.ip is not None and a.ip is not None
        assert fetch_banner(b.ip, 80, netns_path=a.netns_path) == f"b {a.ip}"
        assert fetch_banner(b.ip, 80).startswith("b ")  # from the host
    finally:
        server.stop()


def test_default_bridge_has_no_embedded_dns(store: Store) -> None:
    info = store.manager.setup_container(CID_A, "plain", "plain", [])
    net = store.manager.get("bridge")
    assert info.endpoints[0].network_id == net.id
    # the host's only nameserver is a loopback one: the fallback servers, as Docker does
    assert "nameserver 8.8.8.8" in info.resolv_conf
    assert "search berth.test" in info.resolv_conf
    assert f"nameserver {net.gateway}" not in info.resolv_conf
    with pytest.raises(InvalidArgument, match="user-defined"):
        store.manager.setup_container(CID_B, "x", "x", [EndpointRequest("bridge", ("al",))])


def test_network_none_has_only_loopback(store: Store) -> None:
    info = store.manager.setup_container(CID_A, "alone", "alone", [EndpointRequest("none")])
    assert info.mode == "none" and info.netns_path
    inside = addresses_in(info.netns_path)
    assert set(inside) - {"_up", "_routes"} == {"lo"}
    assert inside["_up"] == ["lo"]
    assert store.manager.port(CID_A) == []
    store.manager.teardown_container(CID_A)
    assert not os.path.exists(info.netns_path)


def test_network_host_uses_no_namespace(store: Store) -> None:
    info = store.manager.setup_container(CID_A, "h", "h", [EndpointRequest("host")],
                                         extra_hosts=["db:10.9.8.7"])
    assert info.mode == "host" and info.netns_path is None
    assert "127.0.1.1\tberth-host" in info.hosts and "10.9.8.7\tdb" in info.hosts
    assert "nameserver 127.0.0.53" in info.resolv_conf  # the host's own, loopback kept
    store.manager.teardown_container(CID_A)


def test_network_container_joins_the_other_namespace(store: Store) -> None:
    store.manager.create("app")
    owner = store.manager.setup_container(CID_A, "owner", "owner", [EndpointRequest("app")],
                                          extra_hosts=["db:10.1.2.3", "gw:host-gateway"],
                                          domainname="corp.example")
    joined = store.manager.setup_container(CID_B, "side", "side",
                                           [EndpointRequest("container:owner")])
    assert joined.netns_path == owner.netns_path and joined.mode == "container"
    assert joined.hosts == owner.hosts and joined.ip == owner.ip
    assert "10.1.2.3\tdb" in joined.hosts and "owner.corp.example owner" in joined.hosts
    store.manager.teardown_container(CID_B)
    assert owner.netns_path and netns.exists(owner.netns_path)  # not the joiner's to remove
    with pytest.raises(ContainerStateConflict, match="not running"):
        store.manager.setup_container(CID_C, "x", "x", [EndpointRequest("container:nobody")])
    with pytest.raises(InvalidArgument, match="combined"):
        store.manager.setup_container(CID_C, "x", "x", [EndpointRequest("host"),
                                                         EndpointRequest("app")])


def test_connect_and_disconnect_a_running_container(store: Store) -> None:
    store.manager.create("one")
    two = store.manager.create("two")
    a = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("one")])
    b = store.manager.setup_container(CID_B, "b", "b", [EndpointRequest("two")])
    assert a.netns_path and b.ip
    server = BannerServer(b.netns_path, "0.0.0.0", 80, "b")
    try:
        assert not reachable(b.ip, 80, netns_path=a.netns_path)
        endpoint = store.manager.connect(CID_A, "two", aliases=["extra"])
        assert endpoint.ifname == "eth1"
        inside = addresses_in(a.netns_path)
        assert inside["eth1"] == [f"{endpoint.ip}/{two.subnet.split('/')[1]}"]  # type: ignore[union-attr]
        assert fetch_banner(b.ip, 80, netns_path=a.netns_path) == f"b {endpoint.ip}"
        with pytest.raises(NameInUse):
            store.manager.connect(CID_A, "two")
        store.manager.disconnect(CID_A, "two")
        assert "eth1" not in addresses_in(a.netns_path)
        assert not reachable(b.ip, 80, netns_path=a.netns_path)
    finally:
        server.stop()


def test_remove_refuses_a_network_in_use_and_prune_keeps_it(store: Store) -> None:
    store.manager.create("busy")
    store.manager.create("idle")
    store.manager.setup_container(CID_A, "worker", "worker", [EndpointRequest("busy")])
    with pytest.raises(NetworkInUse, match="worker"):
        store.manager.remove("busy")
    with pytest.raises(InvalidArgument, match="pre-defined"):
        store.manager.remove("bridge")
    assert store.manager.prune() == ["idle"]
    assert {n.name for n in store.manager.list()} >= {"busy"}
    store.manager.teardown_container(CID_A)
    assert store.manager.prune() == ["busy"]


def test_cleanup_stale_removes_what_a_killed_process_left(store: Store) -> None:
    store.manager.create("app")
    info = store.manager.setup_container(CID_A, "gone", "gone", [EndpointRequest("app")],
                                         ports=[])
    kept = store.manager.setup_container(CID_B, "kept", "kept", [EndpointRequest("app")])
    # leftovers a crash could leave: a namespace file and a veth nobody recorded
    orphan_ns = os.path.join(store.paths.run_dir, "netns", "f" * 64)
    netns.create(orphan_ns).close()
    orphan_link = f"bv{store.paths.suffix}dead"
    subprocess.run(["ip", "link", "add", orphan_link, "type", "veth", "peer", "name",
                    orphan_link + "2"], check=True)
    removed = store.manager.cleanup_stale(live={CID_B})
    assert f"link {orphan_link}" in removed
    assert not os.path.exists(orphan_ns)
    assert info.netns_path and not os.path.exists(info.netns_path)
    assert kept.netns_path and netns.exists(kept.netns_path)
    assert links_named(lambda name: name.startswith(orphan_link)) == []
    assert net_state.get_sandbox(store.db, CID_A) is None


def test_bridge_comes_back_when_missing(store: Store) -> None:
    net = store.manager.create("app")
    assert net.bridge
    subprocess.run(["ip", "link", "del", net.bridge], check=True)  # as after a reboot
    info = store.manager.setup_container(CID_A, "a", "a", [EndpointRequest("app")])
    assert _is_up(net.bridge) and info.ip
    assert reachable(info.ip, 1) is False  # nothing listens; just exercises the route


def test_a_failure_half_way_leaves_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The namespace exists and rules are in when plumbing fails: all of it goes again."""
    from berth.network import bridge

    store.manager.create("app")
    real_add_veth = bridge.add_veth
    calls = []

    def failing_add_veth(*args: object, **kwargs: object) -> None:
        calls.append(kwargs["host_name"])
        real_add_veth(*args, **kwargs)  # type: ignore[arg-type]
        raise NetworkError("injected failure after the veth was made")

    monkeypatch.setattr(bridge, "add_veth", failing_add_veth)
    with pytest.raises(NetworkError, match="injected"):
        store.manager.setup_container(CID_A, "web", "web", [EndpointRequest("app")],
                                      ports=[])
    assert calls
    assert net_state.get_sandbox(store.db, CID_A) is None
    assert net_state.all_endpoints(store.db) == [] and net_state.released(store.db) == []
    assert not os.path.exists(store.manager.netns_path(CID_A))
    assert links_named(lambda name: name.startswith(store.manager.veth_prefix)) == []
