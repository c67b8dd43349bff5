"""Stand-ins for containers and outside hosts, made of sockets opened inside namespaces.

A socket belongs to the network namespace it was created in, whichever thread uses it later.
So a "container" here is a namespace berth prepared plus sockets the test opens inside it
(servers run in threads of the test process, stopped and joined by the test); one test also
starts a real process there through ``nsenter``, as the runtime will.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.network import netns
from berth.network.dns import (
    RCODE_NXDOMAIN,
    RCODE_OK,
    TYPE_A,
    Answer,
    build_response,
    encode_name,
    parse_query,
)
from berth.store.paths import StorePaths

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_socket(path: str, family: int = socket.AF_INET,
                 kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket inside the network namespace bound at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    made: list[socket.socket] = []
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            made.append(socket.socket(family, kind))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    os.close(fd)
    if errors:
        raise errors[0]
    return made[0]


def links_named(predicate: Callable[[str], bool]) -> list[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return sorted(name for link in ipr.link("dump")
                      if (name := link.get("ifname")) and predicate(name))


def addresses_in(path: str) -> dict[str, list[str]]:
    """{ifname: ["addr/len", ...]} inside a namespace, read with pyroute2 (an independent
    reader of what berth's own netlink code set up)."""
    from pyroute2 import IPRoute

    with IPRoute(netns=path) as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        up = {link.get("ifname"): bool(link["flags"] & 1) for link in ipr.link("dump")}
        out: dict[str, list[str]] = {name: [] for name in names.values()}
        for addr in ipr.addr("dump", family=socket.AF_INET):
            out[names[addr["index"]]].append(f"{addr.get('address')}/{addr['prefixlen']}")
        out["_up"] = [name for name, is_up in up.items() if is_up]
        out["_routes"] = [f"{r.get('dst')}/{r['dst_len']} via {r.get('gateway')}"
                          for r in ipr.route("dump", family=socket.AF_INET)
                          if r.get("table") == 254]
        return out


class BannerServer:
    """A TCP server in a namespace: answers each connection with ``"<name> <peer-ip>\\n"``."""

    def __init__(self, path: str | None, address: str, port: int, name: str) -> None:
        self.sock = (netns_socket(path) if path else socket.socket())
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.name = name
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.peers.append(peer[0])
                try:
                    conn.sendall(f"{self.name} {peer[0]}\n".encode())
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class UdpEcho:
    """A UDP server in a namespace: answers each datagram with ``"<name> <peer-ip>"``."""

    def __init__(self, path: str, address: str, port: int, name: str) -> None:
        self.sock = netns_socket(path, kind=socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                _data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(f"{self.name} {peer[0]}".encode(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def fetch_banner(address: str, port: int, *, netns_path: str | None = None,
                 timeout: float = 2.0) -> str:
    """Connect (from the host, or from inside ``netns_path``) and read one line."""
    sock = netns_socket(netns_path) if netns_path else socket.socket()
    with sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()


def reachable(address: str, port: int, *, netns_path: str | None = None,
              timeout: float = 1.0) -> bool:
    try:
        return bool(fetch_banner(address, port, netns_path=netns_path, timeout=timeout))
    except OSError:
        return False


def udp_ask(address: str, port: int, *, netns_path: str | None = None,
            timeout: float = 2.0) -> str:
    sock = (netns_socket(netns_path, kind=socket.SOCK_DGRAM) if netns_path
            else socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        sock.settimeout(timeout)
        sock.sendto(b"hello", (address, port))
        return sock.recv(2048).decode()


def dns_query(name: str, qtype: int = TYPE_A, qid: int = 0x4242) -> bytes:
    return (struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name)
            + struct.pack("!HH", qtype, 1))


@dataclass
class DnsReply:
    rcode: int
    addresses: list[str]
    answers: int
    raw: bytes


def parse_reply(raw: bytes) -> DnsReply:
    _qid, flags, _qd, ancount, _ns, _ar = struct.unpack_from("!HHHHHH", raw)
    offset = 12
    while raw[offset]:
        offset += raw[offset] + 1
    offset += 5
    addresses = []
    for _ in range(ancount):
        if raw[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while raw[offset]:
                offset += raw[offset] + 1
            offset += 1
        rtype, _cls, _ttl, rdlength = struct.unpack_from("!HHIH", raw, offset)
        offset += 10
        if rtype == TYPE_A:
            addresses.append(socket.inet_ntoa(raw[offset : offset + 4]))
        offset += rdlength
    return DnsReply(flags & 0xF, addresses, ancount, raw)


def resolve(name: str, server: str, *, netns_path: str, qtype: int = TYPE_A, tcp: bool = False,
            timeout: float = 3.0) -> DnsReply:
    query = dns_query(name, qtype)
    if tcp:
        with netns_socket(netns_path) as sock:
            sock.settimeout(timeout)
            sock.connect((server, 53))
            sock.sendall(struct.pack("!H", len(query)) + query)
            length = struct.unpack("!H", _recv_exact(sock, 2))[0]
            return parse_reply(_recv_exact(sock, length))
    with netns_socket(netns_path, kind=socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (server, 53))
        return parse_reply(sock.recv(4096))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("short read")
        data += chunk
    return data


class StandInResolver:
    """An upstream DNS server in the outside namespace: A records for ``records``, NXDOMAIN
    for anything else; remembers every name it was asked."""

    def __init__(self, path: str, address: str, records: dict[str, str]) -> None:
        self.records = records
        self.asked: list[str] = []
        self.udp = netns_socket(path, kind=socket.SOCK_DGRAM)
        self.udp.bind((address, 53))
        self.tcp = netns_socket(path)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, 53))
        self.tcp.listen(8)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _answer(self, data: bytes) -> bytes:
        query = parse_query(data)
        self.asked.append(query.name)
        address = self.records.get(query.name)
        if address is None:
            return build_response(query, RCODE_NXDOMAIN)
        if query.qtype != TYPE_A:
            return build_response(query, RCODE_OK)
        return build_response(query, RCODE_OK,
                              [Answer(TYPE_A, ipaddress.IPv4Address(address).packed, 60)])

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.udp.sendto(self._answer(data), peer)

    def _serve_tcp(self) -> None:
        self.tcp.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _peer = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    length = struct.unpack("!H", _recv_exact(conn, 2))[0]
                    reply = self._answer(_recv_exact(conn, length))
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, ValueError):
                    pass

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.udp.close()
        self.tcp.close()


@dataclass
class OutsideHost:
    """A namespace standing in for a machine outside, linked to the host by a veth pair.

    The host end is ``bv<store suffix>out`` (so the store's cleanup recognises it), with
    198.18.N.1/24 (the benchmarking range, which nothing on these machines routes); the
    outside end is 198.18.N.2/24 and has no other route.
    """

    path: str
    host_ifname: str
    host_address: str
    address: str
    servers: list[BannerServer | StandInResolver | UdpEcho] = field(default_factory=list)

    @classmethod
    def create(cls, paths: StorePaths, root: str) -> OutsideHost:
        from pyroute2 import IPRoute

        path = os.path.join(root, "outside.netns")
        host_ifname = f"bv{paths.suffix}out"
        with IPRoute() as ipr:
            taken = [ipaddress.ip_network(f"{r.get('dst')}/{r['dst_len']}")
                     for r in ipr.route("dump", family=socket.AF_INET) if r.get("dst")]
            third = int(paths.suffix, 16) % 250 + 1
            while any(ipaddress.ip_network(f"198.18.{third}.0/24").overlaps(t) for t in taken):
                third = third % 250 + 1
            netns.create(path).close()
            host = cls(path, host_ifname, f"198.18.{third}.1", f"198.18.{third}.2")
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    ipr.link("add", ifname=host_ifname, kind="veth",
                             peer={"ifname": "eth0", "net_ns_fd": fd})
                finally:
                    os.close(fd)
                index = ipr.link_lookup(ifname=host_ifname)[0]
                ipr.addr("add", index=index, address=host.host_address, prefixlen=24)
                ipr.link("set", index=index, state="up")
                with IPRoute(netns=path) as inside:
                    peer = inside.link_lookup(ifname="eth0")[0]
                    inside.addr("add", index=peer, address=host.address, prefixlen=24)
                    inside.link("set", index=peer, state="up")
            except BaseException:
                host.destroy()
                raise
        return host

    def serve(self, port: int, name: str) -> BannerServer:
        server = BannerServer(self.path, self.address, port, name)
        self.servers.append(server)
        return server

    def resolver(self, records: dict[str, str]) -> StandInResolver:
        server = StandInResolver(self.path, self.address, records)
        self.servers.append(server)
        return server

    def destroy(self) -> None:
        from pyroute2 import IPRoute

        for server in self.servers:
            server.stop()
        self.servers.clear()
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=self.host_ifname)
            if found:
                ipr.link("del", index=found[0])
        netns.remove(self.path)
