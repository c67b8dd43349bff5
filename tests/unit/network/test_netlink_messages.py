"""berth's own rtnetlink messages, checked against pyroute2's decoder (an independent one)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest

import berth.network
from berth.network import netlink


def _decode(msg_class: type, request: netlink.Request) -> object:
    header = struct.pack("=IHHII", 16 + len(request.body), request.type, request.flags, 1, 0)
    msg = msg_class(header + request.body)
    msg.decode()
    return msg


def test_attributes_are_padded_and_parse_back() -> None:
    data = netlink.attr_str(netlink.IFLA_IFNAME, "eth0") + netlink.attr_u32(4, 1500)
    assert len(data) % 4 == 0
    assert list(netlink.parse_attrs(data)) == [(netlink.IFLA_IFNAME, b"eth0\0"),
                                               (4, struct.pack("=I", 1500))]
    nested = netlink.nested(netlink.IFLA_LINKINFO, netlink.attr_str(1, "veth"))
    kind, payload = next(netlink.parse_attrs(nested))
    assert kind == netlink.IFLA_LINKINFO
    assert list(netlink.parse_attrs(payload)) == [(1, b"veth\0")]


def test_veth_request_decodes_with_pyroute2() -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    request = netlink.new_veth("bv-0123456789ab", 7, "eth0", 42, "02:be:ac:12:00:02")
    msg = _decode(ifinfmsg, request)
    assert msg.get_attr("IFLA_IFNAME") == "bv-0123456789ab"  # type: ignore[attr-defined]
    assert msg.get_attr("IFLA_MASTER") == 7  # type: ignore[attr-defined]
    info = msg.get_attr("IFLA_LINKINFO")  # type: ignore[attr-defined]
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_ADDRESS") == "02:be:ac:12:00:02"
    assert peer.get_attr("IFLA_NET_NS_FD") == 42
    assert msg["flags"] & 1  # type: ignore[index]


def test_address_and_route_requests_decode_with_pyroute2() -> None:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    addr = _decode(ifaddrmsg, netlink.add_address(
        3, ipaddress.IPv4Interface("172.18.0.2/16"), "eth0"))
    assert addr["prefixlen"] == 16 and addr["index"] == 3  # type: ignore[index]
    assert addr.get_attr("IFA_LOCAL") == "172.18.0.2"  # type: ignore[attr-defined]
    assert addr.get_attr("IFA_BROADCAST") == "172.18.255.255"  # type: ignore[attr-defined]
    route = _decode(rtmsg, netlink.add_default_route(ipaddress.IPv4Address("172.18.0.1"), 3,
                                                     "eth0"))
    assert route["dst_len"] == 0 and route["table"] == 254  # type: ignore[index]
    assert route.get_attr("RTA_GATEWAY") == "172.18.0.1"  # type: ignore[attr-defined]
    assert route.get_attr("RTA_OIF") == 3  # type: ignore[attr-defined]


def test_error_payload_with_extended_ack() -> None:
    echoed = struct.pack("=IHHII", 16, 16, 5, 1, 0)
    message = netlink.attr_str(netlink.NLMSGERR_ATTR_MSG, "Unknown device type")
    payload = struct.pack("=i", -errno.EOPNOTSUPP) + echoed + message
    flags = netlink.NLM_F_ACK_TLVS | netlink.NLM_F_CAPPED
    assert netlink._parse_error(payload, flags) == (errno.EOPNOTSUPP, "Unknown device type")
    assert netlink._parse_error(struct.pack("=i", 0), 0) == (0, "")
    error = netlink.NetlinkError(errno.EEXIST, "create bridge x", "already there")
    assert "create bridge x" in str(error) and "already there" in str(error)


def test_netlink_module_imports_without_pyroute2() -> None:
    import subprocess
    import sys

    code = ("import sys, berth.network.manager, berth.network.dns; "
            "print(any(m.startswith('pyroute2') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_public_surface() -> None:
    assert sorted(berth.network.__all__) == [
        "ContainerNetwork", "DnsServer", "DnsSettings", "Endpoint", "EndpointRequest",
        "Network", "NetworkManager", "PortMapping", "parse_publish", "parse_publish_all",
        "publish_all",
    ]


def test_dumps_match_pyroute2() -> None:
    """Reading links and routes needs no privileges: compare with pyroute2's view."""
    from pyroute2 import IPRoute

    with netlink.RtNetlink() as ours, IPRoute() as theirs:
        assert sorted((link.index, link.name) for link in ours.links()) == sorted(
            (link["index"], link.get("ifname")) for link in theirs.link("dump"))
        mine = sorted((str(r.network), r.table, r.oif) for r in ours.routes())
        expected = sorted((f"{r.get('dst') or '0.0.0.0'}/{r['dst_len']}", r.get("table"),
                           r.get("oif") or 0) for r in theirs.route("dump", family=2))
        assert mine == expected
        lo = ours.index("lo")
        assert lo == socket.if_nametoindex("lo")
        with pytest.raises(netlink.NetlinkError) as failure:
            ours.index("berth-nothing")
        assert failure.value.errno == errno.ENODEV
