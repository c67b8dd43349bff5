"""The embedded DNS server: container names on user-defined networks, and a forwarder.

One server per store, meant to live in the store's long-lived supervisor (or run on its own:
``python -m berth.network.dns --root ROOT``). It listens on 127.0.0.1 on a free port, UDP and
TCP; the firewall DNATs queries that containers send to their network's gateway on port 53 to
it (see :mod:`berth.network.firewall`), so there is one pair of sockets however many networks
there are, and nothing listens on the host's other addresses.

Which container asks is told by the query's source address: container addresses are unique on
the host (subnets never overlap). A container gets answers for the names of the networks it is
on, and only those:

- A: a container's name, its network aliases (compose service names come as aliases) and its
  short id, on any of the asking container's user-defined networks; several containers with
  one alias give several records (round robin by the resolver).
- AAAA and other types of a known name: no data (NOERROR, no answer), so resolvers do not go
  on to ask the world.
- PTR of a container address on one of those networks: its name; of another address inside
  those subnets: NXDOMAIN.
- Anything else is forwarded to the container's ``--dns`` servers, else to the host's
  resolvers (``/etc/resolv.conf``; the server runs on the host, so systemd-resolved's
  127.0.0.53 works too), over the protocol the query came in on. A container only on internal
  networks gets REFUSED for outside names. Queries from unknown sources are REFUSED (no open
  resolver).

Records come from the store database, reloaded when it changes (``PRAGMA data_version``, then
the network tables' version counter): the CLI processes never talk to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from berth.errors import NetworkError

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1
RCODE_OK = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5
TTL = 600
EDNS_PAYLOAD = 1232

_HEADER = struct.Struct("!HHHHHH")


class DnsFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    name: str  # lowercase, no trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received (keeps the asker's letter case)
    edns: bool
    payload_size: int  # how large a UDP answer the asker takes


def parse_query(data: bytes) -> Query:
    if len(data) < _HEADER.size:
        raise DnsFormatError("message shorter than a DNS header")
    qid, flags, qdcount, _an, _ns, arcount = _HEADER.unpack_from(data)
    if flags & 0x8000:
        raise DnsFormatError("not a query")
    if qdcount != 1:
        raise DnsFormatError("a query must have exactly one question")
    labels, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise DnsFormatError("question cut short")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    question = data[_HEADER.size : offset + 4]
    offset += 4
    edns, payload = False, 512
    for _ in range(arcount):
        if offset >= len(data):
            break
        _labels, offset = _read_name(data, offset)
        if offset + 10 > len(data):
            break
        rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
        offset += 10 + rdlength
        if rtype == TYPE_OPT:
            edns, payload = True, max(512, min(rclass, 4096))
    name = ".".join(labels).lower()
    return Query(qid, flags, name, qtype, qclass, question, edns, payload)


def _read_name(data: bytes, offset: int) -> tuple[list[str], int]:
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("pointer cut short")
            if end < 0:
                end = offset + 2
            jumps += 1
            if jumps > 16:
                raise DnsFormatError("pointer loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError("unknown label type")
        offset += 1
        if length == 0:
            break
        labels.append(data[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    return labels, end if end >= 0 else offset


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw)]) + raw
    return bytes(out) + b"\0"


@dataclass(frozen=True)
class Answer:
    rtype: int
    rdata: bytes
    ttl: int = TTL


def build_response(query: Query, rcode: int, answers: Sequence[Answer] = (), *,
                   max_size: int = 65535) -> bytes:
    """A response echoing the question, with ``answers`` naming the question's name."""
    flags = 0x8000 | (query.flags & 0x7800) | 0x0400 | (query.flags & 0x0100) | 0x0080 | rcode
    body = bytearray(query.question)
    records = bytearray()
    for answer in answers:
        records += struct.pack("!HHHIH", 0xC00C, answer.rtype, CLASS_IN, answer.ttl,
                               len(answer.rdata)) + answer.rdata
    opt = struct.pack("!BHHIH", 0, TYPE_OPT, EDNS_PAYLOAD, 0, 0) if query.edns else b""
    count = len(answers)
    if _HEADER.size + len(body) + len(records) + len(opt) > max_size:
        flags |= 0x0200  # truncated: ask again over TCP
        records = bytearray()
        count = 0
    header = _HEADER.pack(query.id, flags, 1, count, 0, 1 if opt else 0)
    return header + bytes(body) + bytes(records) + opt


def error_response(data: bytes, rcode: int) -> bytes | None:
    """FORMERR/SERVFAIL for a message that could not be parsed (None if not even a header)."""
    if len(data) < _HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return _HEADER.pack(qid, 0x8000 | (flags & 0x7900) | 0x0080 | rcode, 0, 0, 0, 0)


def reverse_name_to_ip(name: str) -> str | None:
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return ".".join(reversed(parts))


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A container that may ask: its networks and where its outside names go."""

    container_id: str
    networks: tuple[str, ...]  # ids of its user-defined networks
    servers: tuple[str, ...] = ()  # its --dns servers ("" = the host's)
    can_forward: bool = True  # False when it is only on internal networks


@dataclass(frozen=True)
class NetworkRecords:
    subnet: ipaddress.IPv4Network
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> addresses
    reverse: dict[str, str] = field(default_factory=dict)  # address -> name


@dataclass(frozen=True)
class DnsRecords:
    clients: dict[str, Client] = field(default_factory=dict)  # source address -> client
    networks: dict[str, NetworkRecords] = field(default_factory=dict)


class RecordSource(Protocol):
    def current(self) -> DnsRecords:
        """The records as they are now (cheap when nothing changed)."""
        ...


@dataclass(frozen=True)
class Decision:
    """What to do with a query: answer it (``response``) or forward it to ``servers``."""

    response: bytes | None = None
    servers: tuple[str, ...] = ()


def decide(records: DnsRecords, source: str, query: Query) -> Decision:
    client = records.clients.get(source)
    if client is None:
        return Decision(build_response(query, RCODE_REFUSED))
    if query.qclass == CLASS_IN:
        local = _local_answer(records, client, query)
        if local is not None:
            return Decision(local)
    if not client.can_forward:
        return Decision(build_response(query, RCODE_REFUSED))
    return Decision(None, client.servers)


def _local_answer(records: DnsRecords, client: Client, query: Query) -> bytes | None:
    if query.qtype == TYPE_PTR:
        address = reverse_name_to_ip(query.name)
        if address is None:
            return None
        ip = ipaddress.IPv4Address(address)
        inside = False
        for network_id in client.networks:
            net = records.networks.get(network_id)
            if net is None or ip not in net.subnet:
                continue
            inside = True
            name = net.reverse.get(address)
            if name is not None:
                return build_response(query, RCODE_OK, [Answer(TYPE_PTR, encode_name(name))])
        return build_response(query, RCODE_NXDOMAIN) if inside else None
    addresses: list[str] = []
    known = False
    for network_id in client.networks:
        net = records.networks.get(network_id)
        if net is None:
            continue
        found = net.names.get(query.name)
        if found is not None:
            known = True
            addresses.extend(a for a in found if a not in addresses)
    if not known:
        return None
    if query.qtype != TYPE_A:
        return build_response(query, RCODE_OK)  # the name exists, with no data of this type
    answers = [Answer(TYPE_A, ipaddress.IPv4Address(a).packed) for a in addresses]
    return build_response(query, RCODE_OK, answers, max_size=query.payload_size)


# -- the server ----------------------------------------------------------------------------------


def _parse_server(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


class HostUpstreams:
    """The host's resolvers, from a resolv.conf re-read when it changes."""

    def __init__(self, path: str = "/etc/resolv.conf") -> None:
        self._path = path
        self._stamp: tuple[float, int] | None = None
        self._servers: tuple[str, ...] = ()

    def servers(self) -> tuple[str, ...]:
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime, st.st_ino)
        except OSError:
            return self._servers
        if stamp != self._stamp:
            from berth.network.hosts import read_resolv_conf

            self._servers = read_resolv_conf(self._path).nameservers
            self._stamp = stamp
        return self._servers


class DnsServer:
    """The embedded DNS server of one store.

    ``run()`` serves in the running asyncio loop until cancelled; ``start()`` runs it in a
    thread of its own and returns once it listens; ``serve_forever()`` blocks. ``on_listen``
    is called with the port once the sockets are bound (the manager uses it to point the
    firewall's DNAT at it). ``upstreams`` overrides the host's resolvers ("IP" or "IP:PORT").
    """

    def __init__(
        self,
        source: RecordSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstreams: Sequence[str] | None = None,
        host_resolv_conf: str = "/etc/resolv.conf",
        on_listen: Callable[[int], None] | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._source = source
        self._host = host
        self._port = port
        self._fixed_upstreams = tuple(upstreams) if upstreams is not None else None
        self._host_upstreams = HostUpstreams(host_resolv_conf)
        self._on_listen = on_listen
        self._timeout = timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._listening = threading.Event()
        self._failure: BaseException | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        udp_sock, tcp_server = await self._bind(loop)
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), sock=udp_sock)
        try:
            if self._on_listen is not None:
                self._on_listen(self.port)
            self._listening.set()
            await self._stopping.wait()
        finally:
            transport.close()
            tcp_server.close()
            for writer in list(self._connections):
                writer.close()
            await tcp_server.wait_closed()
            await asyncio.sleep(0)  # let the connection handlers see their end

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> tuple[socket.socket,
                                                                     asyncio.Server]:
        last: OSError | None = None
        for _attempt in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((self._host, self._port))
                port = udp.getsockname()[1]
                server = await asyncio.start_server(self._serve_tcp, self._host, port,
                                                    reuse_address=True)
            except OSError as exc:
                udp.close()
                last = exc
                if self._port:
                    break
                continue
            udp.setblocking(False)
            self.port = port
            return udp, server
        raise NetworkError(f"the embedded DNS server cannot listen on {self._host}: {last}")

    def start(self) -> int:
        """Serve in a background thread; returns the port once listening."""
        def target() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:
                self._failure = exc
                self._listening.set()

        self._thread = threading.Thread(target=target, name="berth-dns", daemon=True)
        self._thread.start()
        self._listening.wait()
        if self._failure is not None:
            raise self._failure
        return self.port

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def serve_forever(self) -> None:
        asyncio.run(self.run())

    # -- handling ----------------------------------------------------------------------------

    def _decide(self, data: bytes, source: str, *, tcp: bool) -> tuple[Query | None,
                                                                          Decision]:
        try:
            query = parse_query(data)
        except DnsFormatError:
            reply = error_response(data, RCODE_FORMERR)
            return None, Decision(reply if reply is not None else b"")
        try:
            records = self._source.current()
        except Exception:
            return query, Decision(build_response(query, RCODE_SERVFAIL))
        if tcp:
            query = _with_payload(query, 65535)
        return query, decide(records, source, query)

    def _upstreams(self, servers: tuple[str, ...]) -> list[tuple[str, int]]:
        chosen = servers or self._fixed_upstreams or self._host_upstreams.servers()
        out = []
        for text in chosen:
            try:
                out.append(_parse_server(text))
            except ValueError:
                continue
        return out

    def handle_udp(self, data: bytes, addr: tuple[str, int],
                   transport: asyncio.DatagramTransport) -> None:
        query, decision = self._decide(data, addr[0], tcp=False)
        if decision.response is not None:
            if decision.response:
                transport.sendto(decision.response, addr)
            return
        assert query is not None
        asyncio.get_running_loop().create_task(
            self._forward_udp(data, query, decision.servers, addr, transport))

    async def _forward_udp(self, data: bytes, query: Query, servers: tuple[str, ...],
                           addr: tuple[str, int], transport: asyncio.DatagramTransport) -> None:
        reply = await self._forward(data, query, servers, tcp=False)
        if not transport.is_closing():
            transport.sendto(reply, addr)

    async def _forward(self, data: bytes, query: Query, servers: tuple[str, ...], *,
                       tcp: bool) -> bytes:
        for host, port in self._upstreams(servers):
            try:
                if tcp:
                    reply = await asyncio.wait_for(_ask_tcp(host, port, data), self._timeout)
                else:
                    reply = await asyncio.wait_for(_ask_udp(host, port, data), self._timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                continue
            if len(reply) >= 2 and reply[:2] == data[:2]:
                return reply
        return build_response(query, RCODE_SERVFAIL)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = peer[0] if peer else ""
        self._connections.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), 10.0)
                    data = await reader.readexactly(struct.unpack("!H", head)[0])
                except (TimeoutError, asyncio.IncompleteReadError, OSError):
                    return
                query, decision = self._decide(data, source, tcp=True)
                if decision.response is not None:
                    reply = decision.response
                else:
                    assert query is not None
                    reply = await self._forward(data, query, decision.servers, tcp=True)
                if not reply:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _with_payload(query: Query, size: int) -> Query:
    return Query(query.id, query.flags, query.name, query.qtype, query.qclass, query.question,
                 query.edns, size)


async def _ask_udp(host: str, port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, data)
        while True:
            reply = await loop.sock_recv(sock, 65535)
            if reply[:2] == data[:2]:
                return reply


async def _ask_tcp(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        head = await reader.readexactly(2)
        return await reader.readexactly(struct.unpack("!H", head)[0])
    finally:
        writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self._transport is not None:
            self._server.handle_udp(data, (str(addr[0]), int(addr[1])), self._transport)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier reply: nothing to do


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m berth.network.dns --root ROOT [--upstream IP[:PORT]]...``: serve one
    store's names until interrupted (for tests, or without the supervisor)."""
    import argparse

    from berth.network.manager import NetworkManager
    from berth.store.db import Database
    from berth.store.paths import StorePaths

    parser = argparse.ArgumentParser(prog="python -m berth.network.dns",
                                     description="berth's embedded DNS server for one store")
    parser.add_argument("--root", default=None, help="the store's root (default: BERTH_ROOT)")
    parser.add_argument("--upstream", action="append", default=None,
                        help="forward to this server instead of the host's (repeatable)")
    args = parser.parse_args(argv)
    paths = StorePaths.at(args.root)
    manager = NetworkManager(paths, Database(paths.db))
    server = manager.dns_server(upstreams=args.upstream)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
