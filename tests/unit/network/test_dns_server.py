"""DNS messages, the answer rules, and the server itself on loopback (no root needed: the
server's "containers" are loopback addresses here)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from berth.network.dns import (
    RCODE_FORMERR,
    RCODE_NXDOMAIN,
    RCODE_OK,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_PTR,
    Answer,
    Client,
    DnsFormatError,
    DnsRecords,
    DnsServer,
    NetworkRecords,
    build_response,
    decide,
    encode_name,
    error_response,
    parse_query,
    reverse_name_to_ip,
)


def query(name: str, qtype: int = TYPE_A, qid: int = 7, edns: bool = False) -> bytes:
    data = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    data += encode_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        data += struct.pack("!BHHIH", 0, 41, 4096, 0, 0)
    return data


def answers(raw: bytes) -> tuple[int, list[str], int]:
    _qid, flags, _qd, ancount, _ns, _ar = struct.unpack_from("!HHHHHH", raw)
    out = []
    offset = raw.index(b"\xc0\x0c") if ancount else len(raw)
    for _ in range(ancount):
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", raw, offset + 2)
        rdata = raw[offset + 12 : offset + 12 + length]
        out.append(socket.inet_ntoa(rdata) if rtype == TYPE_A else rdata.hex())
        offset += 12 + length
    return flags & 0xF, out, flags


RECORDS = DnsRecords(
    clients={
        "172.18.0.2": Client("web", ("n1",)),
        "172.20.0.2": Client("vault", ("n3",), can_forward=False),
        "172.18.0.9": Client("custom", ("n1",), servers=("10.9.9.9",)),
    },
    networks={
        "n1": NetworkRecords(ipaddress.IPv4Network("172.18.0.0/16"),
                             {"db": ("172.18.0.3",), "web": ("172.18.0.2",),
                              "w": ("172.18.0.2", "172.18.0.4")},
                             {"172.18.0.3": "db"}),
        "n2": NetworkRecords(ipaddress.IPv4Network("172.19.0.0/16"),
                             {"secret": ("172.19.0.2",)}),
        "n3": NetworkRecords(ipaddress.IPv4Network("172.20.0.0/16"),
                             {"inner": ("172.20.0.3",)}),
    },
)


def test_parse_query_and_name_encoding() -> None:
    parsed = parse_query(query("DB.Example", TYPE_AAAA, 0x1234, edns=True))
    assert (parsed.id, parsed.name, parsed.qtype, parsed.edns, parsed.payload_size) == (
        0x1234, "db.example", TYPE_AAAA, True, 4096)
    assert encode_name("a.bc.") == b"\x01a\x02bc\x00"
    for bad in (b"", b"\x00" * 11, struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0),
                struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0), query("x")[:-3]):
        with pytest.raises(DnsFormatError):
            parse_query(bad)
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"
    with pytest.raises(DnsFormatError):
        parse_query(loop)


def test_response_echoes_the_question_and_sets_flags() -> None:
    q = parse_query(query("Db"))
    raw = build_response(q, RCODE_OK, [Answer(TYPE_A, bytes([10, 0, 0, 1]))])
    rcode, found, flags = answers(raw)
    assert (rcode, found) == (RCODE_OK, ["10.0.0.1"])
    assert flags & 0x8000 and flags & 0x0100 and flags & 0x0080  # QR, RD copied, RA
    assert b"\x02Db" in raw  # the asker's letter case is kept
    big = build_response(q, RCODE_OK, [Answer(TYPE_A, bytes(4))] * 100, max_size=512)
    assert answers(big)[2] & 0x0200 and answers(big)[1] == []  # truncated
    assert error_response(b"\x00\x05\x01\x00" + bytes(8), RCODE_FORMERR)[3] & 0xF == \
        RCODE_FORMERR
    assert error_response(b"\x00", RCODE_FORMERR) is None


def test_reverse_names() -> None:
    assert reverse_name_to_ip("3.0.18.172.in-addr.arpa") == "172.18.0.3"
    assert reverse_name_to_ip("3.0.18.in-addr.arpa") is None
    assert reverse_name_to_ip("example.com") is None


def _decide(source: str, name: str, qtype: int = TYPE_A) -> tuple[int, list[str], tuple[str, ...]
                                                                  ] | str:
    decision = decide(RECORDS, source, parse_query(query(name, qtype)))
    if decision.response is None:
        return f"forward {decision.servers}"
    rcode, found, _flags = answers(decision.response)
    return rcode, found, ()


def test_answer_rules() -> None:
    assert _decide("172.18.0.2", "db") == (RCODE_OK, ["172.18.0.3"], ())
    assert _decide("172.18.0.2", "w") == (RCODE_OK, ["172.18.0.2", "172.18.0.4"], ())
    assert _decide("172.18.0.2", "db", TYPE_AAAA) == (RCODE_OK, [], ())
    assert _decide("172.18.0.2", "secret") == "forward ()"  # another network's name
    assert _decide("172.18.0.2", "example.com") == "forward ()"
    assert _decide("172.18.0.9", "example.com") == "forward ('10.9.9.9',)"
    assert _decide("10.1.1.1", "db")[0] == RCODE_REFUSED  # type: ignore[index]
    assert _decide("172.20.0.2", "inner") == (RCODE_OK, ["172.20.0.3"], ())
    assert _decide("172.20.0.2", "example.com")[0] == RCODE_REFUSED  # type: ignore[index]
    ptr = _decide("172.18.0.2", "3.0.18.172.in-addr.arpa", TYPE_PTR)
    assert ptr[0] == RCODE_OK and ptr[1] == [encode_name("db").hex()]  # type: ignore[index]
    assert _decide("172.18.0.2", "99.0.18.172.in-addr.arpa", TYPE_PTR)[0] == RCODE_NXDOMAIN  # type: ignore[index]
    assert _decide("172.18.0.2", "2.0.19.172.in-addr.arpa", TYPE_PTR) == "forward ()"


class FakeSource:
    def __init__(self, records: DnsRecords) -> None:
        self.records = records

    def current(self) -> DnsRecords:
        return self.records


class Upstream:
    """A stand-in upstream on loopback answering every A query with 203.0.113.5."""

    def __init__(self) -> None:
        for _attempt in range(50):  # a free UDP port may be taken for TCP: try another
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket()
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")
        self.tcp.listen(4)
        self.asked: list[str] = []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._udp, daemon=True),
                        threading.Thread(target=self._tcp, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _reply(self, data: bytes) -> bytes:
        q = parse_query(data)
        self.asked.append(q.name)
        return build_response(q, RCODE_OK, [Answer(TYPE_A, bytes([203, 0, 113, 5]))])

    def _udp(self) -> None:
        self.udp.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.udp.sendto(self._reply(data), peer)

    def _tcp(self) -> None:
        self.tcp.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                reply = self._reply(conn.recv(length))
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def stop(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(upstream: Upstream) -> Iterator[DnsServer]:
    records = DnsRecords(
        clients={"127.0.0.1": Client("me", ("n1",))},
        networks={"n1": RECORDS.networks["n1"]},
    )
    listened: list[int] = []
    dns = DnsServer(FakeSource(records), upstreams=[f"127.0.0.1:{upstream.port}"],
                    on_listen=listened.append, timeout=1.0)
    port = dns.start()
    assert listened == [port]
    try:
        yield dns
    finally:
        dns.stop()


def ask_udp(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(4096)


def ask_tcp(port: int, messages: list[bytes]) -> list[bytes]:
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        for data in messages:
            sock.sendall(struct.pack("!H", len(data)) + data)
            length = struct.unpack("!H", sock.recv(2))[0]
            reply = b""
            while len(reply) < length:
                reply += sock.recv(length - len(reply))
            out.append(reply)
    return out


def test_server_answers_local_names_over_udp_and_tcp(server: DnsServer) -> None:
    assert answers(ask_udp(server.port, query("db")))[:2] == (RCODE_OK, ["172.18.0.3"])
    replies = ask_tcp(server.port, [query("db", qid=1), query("web", qid=2)])
    assert [answers(r)[1] for r in replies] == [["172.18.0.3"], ["172.18.0.2"]]


def test_server_forwards_other_names(server: DnsServer, upstream: Upstream) -> None:
    raw = ask_udp(server.port, query("example.org", qid=99))
    assert struct.unpack("!H", raw[:2])[0] == 99
    assert answers(raw)[:2] == (RCODE_OK, ["203.0.113.5"])
    (tcp,) = ask_tcp(server.port, [query("tcp.example.org")])
    assert answers(tcp)[1] == ["203.0.113.5"]
    assert upstream.asked == ["example.org", "tcp.example.org"]


def test_server_fails_cleanly_when_upstreams_are_dead() -> None:
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # bound, never answers
    records = DnsRecords(clients={"127.0.0.1": Client("me", ())})
    dns = DnsServer(FakeSource(records), upstreams=[f"127.0.0.1:{dead.getsockname()[1]}"],
                    timeout=0.2)
    port = dns.start()
    try:
        assert answers(ask_udp(port, query("x.example")))[0] == RCODE_SERVFAIL
        garbage = ask_udp(port, b"\x00\x01\x00\x00" + bytes(8))
        assert garbage[3] & 0xF == RCODE_FORMERR
    finally:
        dns.stop()
        dead.close()
