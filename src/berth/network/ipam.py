"""Address management: which subnet a new network gets, which address a new endpoint gets.

Subnets come from Docker's default pools, in order: ``172.17.0.0/16`` for the default network,
then ``172.18.0.0/16`` ... ``172.31.0.0/16``, then ``192.168.0.0/20`` ... ``192.168.240.0/20``.
A subnet is taken only when it overlaps neither another network of the store nor any route the
host has (that covers the host's own addresses, VPNs, and the bridges of other stores and other
engines) nor a nameserver of the host. Stores on one host do not share a database, so choosing
a subnet and putting it on a bridge happen under a host-wide lock (:class:`HostLock`), which
makes the second store see the first one's route.

Addresses inside a network are allocated in the store's database inside a write transaction,
so two berth processes never hand out one address twice. Allocation goes round the subnet from
the last address handed out (as Docker does), so a just-released address (still in some
neighbour's ARP cache) is not reused at once.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py adds enums, ~3 ms to import
import ipaddress
import time
from collections.abc import Iterable, Iterator

from berth.errors import InvalidArgument, NetworkError

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

DEFAULT_NETWORK_POOL = IPv4Network("172.17.0.0/16")


def pools() -> Iterator[IPv4Network]:
    """Candidate subnets for user-defined networks, in order."""
    for second in range(18, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Network(f"192.168.{third}.0/20")
    yield DEFAULT_NETWORK_POOL


def default_pools() -> Iterator[IPv4Network]:
    """Candidate subnets for the default network: 172.17.0.0/16 first."""
    yield DEFAULT_NETWORK_POOL
    for net in pools():
        if net != DEFAULT_NETWORK_POOL:
            yield net


def overlapping(candidate: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    for other in taken:
        if candidate.overlaps(other):
            return other
    return None


def choose_subnet(taken: list[IPv4Network], *, default: bool = False) -> IPv4Network:
    for candidate in default_pools() if default else pools():
        if overlapping(candidate, taken) is None:
            return candidate
    raise NetworkError(
        "no free subnet left in berth's address pools (172.17-31.0.0/16, 192.168.0.0/16 in "
        "/20s): every one overlaps a network or a route of this host",
        hint="remove unused networks (berth network prune), or pass --subnet",
    )


def parse_subnet(text: str) -> IPv4Network:
    try:
        interface = ipaddress.ip_interface(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text!r}", hint="use CIDR form, e.g. 10.10.0.0/24") \
            from None
    net = interface.network
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"subnet {text} is IPv6: berth networks are IPv4 for now",
                              hint="pass an IPv4 subnet, e.g. 10.10.0.0/24")
    if interface.ip != net.network_address:
        raise InvalidArgument(f"invalid subnet {text}: it has host bits set",
                              hint=f"did you mean {net}?")
    if net.prefixlen > 29:
        raise InvalidArgument(f"subnet {text} is too small: it needs room for a gateway and "
                              "containers", hint="use a /29 or larger")
    return net


def check_subnet(subnet: IPv4Network, taken: list[IPv4Network], what: str) -> None:
    other = overlapping(subnet, taken)
    if other is not None:
        raise NetworkError(f"subnet {subnet} overlaps {other} ({what})",
                           hint="pick another --subnet, or remove the network that uses it")


def parse_gateway(text: str | None, subnet: IPv4Network) -> IPv4Address:
    if not text:
        return subnet.network_address + 1
    try:
        gateway = IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid gateway address {text!r}") from None
    if not _is_host_address(gateway, subnet):
        raise InvalidArgument(f"gateway {gateway} is not a usable address of subnet {subnet}",
                              hint=f"pick one between {subnet.network_address + 1} and "
                              f"{subnet.broadcast_address - 1}")
    return gateway


def _is_host_address(address: IPv4Address, subnet: IPv4Network) -> bool:
    return address in subnet and address not in (subnet.network_address,
                                                 subnet.broadcast_address)


def allocate(subnet: IPv4Network, gateway: IPv4Address, used: set[int],
             cursor: int) -> IPv4Address:
    """The next free host address after ``cursor`` (an int address), round the subnet."""
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - 1
    size = last - first + 1
    start = cursor + 1 if first <= cursor < last else first
    for step in range(size):
        candidate = first + (start - first + step) % size
        if candidate != int(gateway) and candidate not in used:
            return IPv4Address(candidate)
    raise NetworkError(f"no free address left in subnet {subnet}",
                       hint="remove containers from the network, or create a larger one")


def check_requested(address_text: str, subnet: IPv4Network, gateway: IPv4Address,
                    used: set[int], network_name: str) -> IPv4Address:
    """An ``--ip`` the user asked for: valid, inside the subnet, and free."""
    try:
        address = IPv4Address(address_text)
    except ValueError:
        raise InvalidArgument(f"invalid --ip address {address_text!r}") from None
    if not _is_host_address(address, subnet) or address == gateway:
        raise InvalidArgument(
            f"address {address} is not available in network {network_name} ({subnet}, gateway "
            f"{gateway})", hint=f"pick a host address of {subnet} other than the gateway")
    if int(address) in used:
        raise NetworkError(f"address {address} is already in use in network {network_name}",
                           hint="pick another --ip, or leave it out to get a free one")
    return address


def mac_for(address: IPv4Address) -> str:
    """A stable, locally administered MAC derived from the address (no stale ARP entries
    when an address is reused by another container)."""
    return "02:be:" + ":".join(f"{b:02x}" for b in address.packed)


def host_networks(routes: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
                  nameservers: Iterable[str] = ()) -> list[IPv4Network]:
    """The IPv4 prefixes a new subnet must not overlap: every non-default route (any table;
    loopback and multicast left out) and every nameserver address."""
    out = []
    loopback = IPv4Network("127.0.0.0/8")
    multicast = IPv4Network("224.0.0.0/4")
    for net in routes:
        if not isinstance(net, IPv4Network) or net.prefixlen == 0:
            continue
        if net.subnet_of(loopback) or net.subnet_of(multicast):
            continue
        out.append(net)
    for server in nameservers:
        try:
            address = ipaddress.ip_address(server)
        except ValueError:
            continue
        if isinstance(address, IPv4Address) and not address.is_loopback:
            out.append(IPv4Network(address))
    return out


class HostLock:
    """A host-wide mutex for choosing subnets, shared by every berth store on the host.

    It is an abstract unix socket name: binding it takes the lock, closing (or dying) releases
    it, and it leaves no file behind.
    """

    NAME = b"\0berth-network-subnets"

    def __init__(self, timeout: float = 60.0) -> None:
        self._timeout = timeout
        self._sock: socket.socket | None = None

    def __enter__(self) -> HostLock:
        deadline = time.monotonic() + self._timeout
        delay = 0.001
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(self.NAME)
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise NetworkError(
                        "another berth process held the host's network lock for over "
                        f"{self._timeout:.0f}s", hint="check for a stuck berth process "
                        "(`ss -xlp | grep berth-network`)") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            self._sock = sock
            return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def read_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out
