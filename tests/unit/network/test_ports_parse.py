"""``-p`` / ``-P`` parsing with Docker's rules."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.errors import InvalidArgument, NetworkError
from berth.network.model import PortMapping
from berth.network.ports import (
    free_port,
    parse_publish,
    parse_publish_all,
    probe,
    publish_all,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortMapping(80, "tcp", "", 0)]),
        ("80/udp", [PortMapping(80, "udp", "", 0)]),
        ("80/SCTP", [PortMapping(80, "sctp", "", 0)]),
        ("8080:80", [PortMapping(80, "tcp", "", 8080)]),
        ("8080:80/udp", [PortMapping(80, "udp", "", 8080)]),
        ("127.0.0.1:8080:80", [PortMapping(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortMapping(80, "tcp", "127.0.0.1", 0)]),
        ("0.0.0.0:8080:80", [PortMapping(80, "tcp", "", 8080)]),
        ("[::1]:8080:80", [PortMapping(80, "tcp", "::1", 8080)]),
        ("::1:8080:80", [PortMapping(80, "tcp", "::1", 8080)]),
        ("[::]:8080:80/udp", [PortMapping(80, "udp", "", 8080)]),
        ("8000-8002:80-82", [PortMapping(80, "tcp", "", 8000), PortMapping(81, "tcp", "", 8001),
                             PortMapping(82, "tcp", "", 8002)]),
        ("8000-8010:80", [PortMapping(80, "tcp", "", 8000, 8010)]),
        ("80-81", [PortMapping(80, "tcp", "", 0), PortMapping(81, "tcp", "", 0)]),
        ("1.2.3.4:7000-7001:70-71/udp", [PortMapping(70, "udp", "1.2.3.4", 7000),
                                         PortMapping(71, "udp", "1.2.3.4", 7001)]),
    ],
)
def test_parse_publish(spec: str, expected: list[PortMapping]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("80/icmp", "invalid protocol"),
        ("http", "invalid container port"),
        ("0", "from 1 to 65535"),
        ("65536", "from 1 to 65535"),
        ("8080:", "invalid container port"),
        ("x:80", "invalid host port"),
        ("8000-8001:80-82", "same length"),
        ("90-80", "before the start"),
        ("300.1.1.1:80:80", "invalid IP address"),
        ("[::1:8080:80", "IPv6"),
        ("127.0.0.1:80", "invalid host port"),
    ],
)
def test_parse_publish_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_publish(spec)


def test_publish_all_adds_exposed_ports_not_published_explicitly() -> None:
    explicit = parse_publish_all(["8080:80"])
    result = publish_all(["80/tcp", "53/udp", "9000-9001", "53/UDP"], explicit)
    assert result == [PortMapping(80, "tcp", "", 8080), PortMapping(53, "udp", "", 0),
                      PortMapping(9000, "tcp", "", 0), PortMapping(9001, "tcp", "", 0)]
    with pytest.raises(InvalidArgument):
        publish_all(["80/ip"])


@given(st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["tcp", "udp", "sctp"]))
def test_roundtrip_single_mapping(host: int, container: int, proto: str) -> None:
    assert parse_publish(f"{host}:{container}/{proto}") == [
        PortMapping(container, proto, "", host)]


def test_probe_reports_a_port_in_use_with_a_hint() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(NetworkError, match=rf"port {port}/tcp on 127.0.0.1 is already in "
                           r"use.*-p OTHER:80"):
            probe("127.0.0.1", port, "tcp", 80)
        probe("127.0.0.1", port, "udp", 80)  # another protocol, another port


def test_free_port_skips_ports_berth_published() -> None:
    first = free_port("127.0.0.1", "tcp", set())
    assert first > 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        busy = holder.getsockname()[1]
        holder.listen(1)
        chosen = free_port("127.0.0.1", "tcp", {busy + 1}, busy, busy + 2)
        assert chosen == busy + 2
        with pytest.raises(NetworkError, match="no free host port"):
            free_port("127.0.0.1", "tcp", set(), busy, busy)
