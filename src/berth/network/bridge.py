"""Bridges and veth pairs: the kernel side of a bridge network.

A network is a Linux bridge holding the gateway address. A container gets one veth pair per
network: the host end is enslaved to the bridge (hairpin mode on, so a packet the host sends
back through the port it came from gets there), the peer is created directly inside the
container's namespace with its final name (``eth0``, ``eth1``...), its address and a stable MAC;
the first network's gateway becomes the default route.

Per-bridge sysctl: ``route_localnet=1`` lets a DNATed packet that still has source 127.0.0.1
(``curl 127.0.0.1:8080`` on the host, published port 8080) be routed to the bridge; the
postrouting chain then masquerades it to the gateway address. The firewall drops anything
arriving *from* a bridge for 127.0.0.0/8, so containers cannot use this to reach services the
host binds to loopback (the kube-proxy CVE-2020-8558 lesson).
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py adds enums, ~3 ms to import
import errno
import ipaddress
import os

from berth.errors import NetworkError
from berth.network import netlink

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def link_index(name: str) -> int | None:
    """The ifindex of a host link, or None when it does not exist."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def random_mac() -> str:
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in raw)


def ensure_bridge(rtnl: netlink.RtNetlink, name: str, gateway: ipaddress.IPv4Interface) -> int:
    """Create bridge ``name`` with the gateway address and bring it up; a bridge that exists
    already is completed (address, up). Returns its ifindex."""
    index = link_index(name)
    try:
        if index is None:
            rtnl.run([netlink.new_bridge(name, random_mac())])
            index = link_index(name)
            if index is None:
                raise NetworkError(f"bridge {name} vanished right after it was created")
        rtnl.run([netlink.add_address(index, gateway, name), netlink.set_up(index, name)])
    except netlink.NetlinkError as exc:
        raise NetworkError(f"cannot set up bridge {name} with {gateway}: {exc.strerror}") \
            from None
    write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return index


def delete_links(rtnl: netlink.RtNetlink, names: list[str]) -> None:
    """Delete links by name; the ones already gone are fine."""
    if not names:
        return
    try:
        rtnl.run([netlink.delete_link(name) for name in names])
    except netlink.NetlinkError as exc:
        raise NetworkError(f"cannot delete {exc.what.removeprefix('delete link ')}: "
                           f"{exc.strerror}") from None


def add_veth(
    host: netlink.RtNetlink,
    inside: netlink.RtNetlink,
    netns_fd: int,
    *,
    host_name: str,
    ifname: str,
    bridge_index: int,
    address: ipaddress.IPv4Interface,
    mac: str,
    default_gateway: ipaddress.IPv4Address | None,
    mtu: int = 1500,
) -> None:
    """One endpoint: the veth pair, the container side's address and maybe its default route."""
    try:
        host.run([netlink.new_veth(host_name, bridge_index, ifname, netns_fd, mac, mtu)])
    except netlink.NetlinkError as exc:
        if exc.errno == errno.EEXIST:
            raise NetworkError(f"cannot create veth {host_name}: a link with that name exists, "
                               f"or the container already has an {ifname}") from None
        raise NetworkError(f"cannot create veth {host_name} for {ifname}: {exc.strerror}") \
            from None
    _set_hairpin(host_name)
    try:
        index = inside.index(ifname)
        requests = [netlink.set_up(index, ifname), netlink.add_address(index, address, ifname)]
        if default_gateway is not None:
            requests.append(netlink.add_default_route(default_gateway, index, ifname))
        inside.run(requests)
    except netlink.NetlinkError as exc:
        raise NetworkError(f"cannot configure {ifname} ({address}) in the container: "
                           f"{exc.strerror}") from None


def _set_hairpin(port: str) -> None:
    try:
        write_sysctl(f"/sys/class/net/{port}/brport/hairpin_mode", "1")
    except NetworkError:
        pass  # not fatal: only same-port hairpin traffic needs it


def write_sysctl(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise NetworkError(f"cannot write {value} to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_sysctl(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def enable_ip_forward() -> bool:
    """Turn on IPv4 forwarding (as Docker does); True when berth changed it."""
    if read_sysctl(IP_FORWARD) == "1":
        return False
    write_sysctl(IP_FORWARD, "1")
    return True
