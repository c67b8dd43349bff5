"""Subnet choice and address allocation."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.errors import InvalidArgument, NetworkError
from berth.network import ipam

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def test_default_network_gets_172_17_first() -> None:
    assert ipam.choose_subnet([], default=True) == N("172.17.0.0/16")
    assert ipam.choose_subnet([N("172.17.0.0/16")], default=True) == N("172.18.0.0/16")


def test_user_networks_start_at_172_18_and_skip_overlaps() -> None:
    assert ipam.choose_subnet([]) == N("172.18.0.0/16")
    taken = [N("172.18.5.0/24"), N("172.19.0.0/16"), N("172.16.0.0/12")]
    assert ipam.choose_subnet(taken) == N("192.168.0.0/20")
    taken.append(N("192.168.0.1/32"))
    assert ipam.choose_subnet(taken) == N("192.168.16.0/20")


def test_pools_run_out_with_a_clear_error() -> None:
    with pytest.raises(NetworkError, match=r"no free subnet.*network prune"):
        ipam.choose_subnet([N("172.16.0.0/12"), N("192.168.0.0/16")])


def test_host_networks_ignore_default_loopback_and_multicast() -> None:
    routes = [N("0.0.0.0/0"), N("127.0.0.0/8"), N("224.0.0.0/4"), N("10.1.0.0/16"),
              ipaddress.IPv6Network("fd00::/64"), N("192.0.2.2/32")]
    assert ipam.host_networks(routes, ["127.0.0.53", "10.255.255.53", "not-an-ip", "fd00::1"]) \
        == [N("10.1.0.0/16"), N("192.0.2.2/32"), N("10.255.255.53/32")]


@pytest.mark.parametrize(("text", "message"), [
    ("10.0.0.1/24", "host bits"),
    ("nonsense", "invalid subnet"),
    ("fd00::/64", "IPv6"),
    ("10.0.0.0/30", "too small"),
])
def test_parse_subnet_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ipam.parse_subnet(text)


def test_gateway_defaults_to_the_first_address_and_must_fit() -> None:
    net = N("10.5.0.0/24")
    assert ipam.parse_gateway(None, net) == A("10.5.0.1")
    assert ipam.parse_gateway("10.5.0.254", net) == A("10.5.0.254")
    for bad in ("10.5.0.0", "10.5.0.255", "10.6.0.1"):
        with pytest.raises(InvalidArgument, match="not a usable address"):
            ipam.parse_gateway(bad, net)


def test_allocation_goes_round_from_the_cursor_and_skips_the_gateway() -> None:
    net = N("10.5.0.0/29")  # hosts .1-.6
    gw = A("10.5.0.1")
    assert ipam.allocate(net, gw, set(), 0) == A("10.5.0.2")
    assert ipam.allocate(net, gw, set(), int(A("10.5.0.2"))) == A("10.5.0.3")
    # a released address is not handed out again at once: the cursor moves on
    assert ipam.allocate(net, gw, {int(A("10.5.0.3"))}, int(A("10.5.0.4"))) == A("10.5.0.5")
    assert ipam.allocate(net, gw, set(), int(A("10.5.0.6"))) == A("10.5.0.2")  # wraps
    used = {int(A(f"10.5.0.{i}")) for i in range(2, 7)}
    with pytest.raises(NetworkError, match="no free address"):
        ipam.allocate(net, gw, used, 0)


@given(st.integers(24, 29), st.sets(st.integers(2, 6)), st.integers(0, 300))
def test_allocation_never_returns_a_used_or_reserved_address(
        prefix: int, used_hosts: set[int], cursor: int) -> None:
    net = N(f"10.9.0.0/{prefix}")
    gw = net.network_address + 1
    used = {int(net.network_address) + h for h in used_hosts if h < net.num_addresses - 1}
    free = net.num_addresses - 3 - len(used)
    if free <= 0:
        return
    got = ipam.allocate(net, gw, used, int(net.network_address) + cursor)
    assert got in net and got != gw and int(got) not in used
    assert got not in (net.network_address, net.broadcast_address)


def test_requested_address_checks() -> None:
    net = N("10.5.0.0/24")
    gw = A("10.5.0.1")
    assert ipam.check_requested("10.5.0.9", net, gw, set(), "n") == A("10.5.0.9")
    with pytest.raises(NetworkError, match="already in use"):
        ipam.check_requested("10.5.0.9", net, gw, {int(A("10.5.0.9"))}, "n")
    for bad in ("10.5.0.1", "10.5.0.0", "10.5.1.9"):
        with pytest.raises(InvalidArgument, match="not available"):
            ipam.check_requested(bad, net, gw, set(), "n")
    with pytest.raises(InvalidArgument, match="invalid --ip"):
        ipam.check_requested("ten", net, gw, set(), "n")


def test_mac_is_stable_and_locally_administered() -> None:
    mac = ipam.mac_for(A("172.18.0.2"))
    assert mac == "02:be:ac:12:00:02"
    assert int(mac.split(":")[0], 16) & 0x02 and not int(mac.split(":")[0], 16) & 0x01


def test_host_lock_excludes_a_second_holder() -> None:
    order: list[str] = []
    with ipam.HostLock():
        def other() -> None:
            with ipam.HostLock():
                order.append("second")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=0.2)
        order.append("first")
    thread.join(timeout=5)
    assert order == ["first", "second"]
