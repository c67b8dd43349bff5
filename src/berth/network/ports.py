"""Published ports: ``-p``/``-P`` parsing with Docker's rules, and host port checks.

Forms of ``-p`` (``--publish``), as Docker accepts them::

    CONTAINER[/PROTO]                    80, 80/udp, 8000-8010     a free host port for each
    HOST:CONTAINER[/PROTO]               8080:80, 8000-8010:80-90  ranges of equal length
    HOST_RANGE:CONTAINER                 8000-8010:80              one free port of the range
    IP:HOST:CONTAINER, IP::CONTAINER     127.0.0.1:8080:80, 127.0.0.1::80
    [IPv6]:HOST:CONTAINER                [::1]:8080:80

``PROTO`` is tcp (the default), udp or sctp. No host address means every address of the host
(Docker's ``0.0.0.0``).

A published port is a DNAT rule, not a listening socket, so the kernel would not stop berth from
"publishing" a port some program already listens on (the program would silently stop getting
its traffic). So just before the rules go in, berth binds each host port once and releases it:
a port in use is a clear error at ``run``, before anything is created.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py adds enums, ~3 ms to import
import errno
import ipaddress
from collections.abc import Iterable

from berth.errors import InvalidArgument, NetworkError
from berth.network.model import PortMapping

PROTOCOLS = ("tcp", "udp", "sctp")
_IPPROTO_SCTP = 132


def parse_publish(spec: str) -> list[PortMapping]:
    """One ``-p`` value as a list of mappings (host_port 0 = any free port; host_port_end set
    when a host range is to be searched for one free port)."""
    raw = spec.strip()
    if not raw:
        raise InvalidArgument("empty port specification for -p",
                              hint="use -p [IP:][HOST:]CONTAINER[/PROTO], e.g. -p 8080:80")
    rest, _, proto = raw.rpartition("/") if "/" in raw else (raw, "", "tcp")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in port specification {spec!r}",
                              hint="use tcp, udp or sctp")
    host_ip, host_part, container_part = _split_parts(rest, spec)
    c_start, c_end = _parse_range(container_part, spec, "container port")
    if not host_part:
        return [PortMapping(port, proto, host_ip, 0) for port in range(c_start, c_end + 1)]
    h_start, h_end = _parse_range(host_part, spec, "host port")
    if h_end - h_start == c_end - c_start:
        return [PortMapping(c_start + i, proto, host_ip, h_start + i)
                for i in range(c_end - c_start + 1)]
    if c_start != c_end:
        raise InvalidArgument(
            f"invalid port ranges in {spec!r}: the host range ({h_start}-{h_end}) and the "
            f"container range ({c_start}-{c_end}) must be the same length",
            hint="e.g. -p 8000-8010:80-90, or -p 8000-8010:80 for one free port of a range",
        )
    return [PortMapping(c_start, proto, host_ip, h_start, h_end)]


def parse_publish_all(specs: Iterable[str]) -> list[PortMapping]:
    out: list[PortMapping] = []
    for spec in specs:
        out.extend(parse_publish(spec))
    return out


def publish_all(exposed: Iterable[str], explicit: Iterable[PortMapping] = ()) -> list[PortMapping]:
    """``-P``: a free host port for every EXPOSEd port (``"80/tcp"``, ``"53/udp"``,
    ``"8000-8002"``) that no explicit ``-p`` already publishes; explicit ones come first."""
    explicit = list(explicit)
    done = {(m.container_port, m.protocol) for m in explicit}
    out = list(explicit)
    for item in exposed:
        port_part, _, proto = item.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid protocol in exposed port {item!r}")
        start, end = _parse_range(port_part, item, "exposed port")
        for port in range(start, end + 1):
            if (port, proto) not in done:
                done.add((port, proto))
                out.append(PortMapping(port, proto, "", 0))
    return out


def _split_parts(rest: str, spec: str) -> tuple[str, str, str]:
    """(host ip, host port part, container port part) of ``rest`` (no /proto)."""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0 or rest[close + 1 : close + 2] != ":":
            raise InvalidArgument(f"invalid IPv6 address in port specification {spec!r}",
                                  hint="write it in brackets: -p [::1]:8080:80")
        ip = rest[1:close]
        host_part, sep, container_part = rest[close + 2 :].partition(":")
        if not sep:
            raise InvalidArgument(f"missing container port in {spec!r}",
                                  hint="use -p [IP]:HOST:CONTAINER")
        return _check_ip(ip, spec), host_part, container_part
    parts = rest.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    ip = ":".join(parts[:-2])
    return _check_ip(ip, spec), parts[-2], parts[-1]


def _check_ip(ip: str, spec: str) -> str:
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidArgument(f"invalid IP address {ip!r} in port specification {spec!r}",
                              hint="use an address of this host, e.g. -p 127.0.0.1:8080:80") \
            from None
    if address.is_unspecified:
        return ""
    return str(address)


def _parse_range(text: str, spec: str, what: str) -> tuple[int, int]:
    start_text, sep, end_text = text.partition("-")
    start = _parse_port(start_text, spec, what)
    end = _parse_port(end_text, spec, what) if sep else start
    if end < start:
        raise InvalidArgument(f"invalid {what} range {text!r} in {spec!r}: the end is before "
                              "the start")
    return start, end


def _parse_port(text: str, spec: str, what: str) -> int:
    if not text.isdigit():
        raise InvalidArgument(f"invalid {what} {text!r} in port specification {spec!r}",
                              hint="ports are numbers from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"invalid {what} {port} in {spec!r}: ports go from 1 to 65535")
    return port


# -- the host side --------------------------------------------------------------------------------


def describe(host_ip: str, port: int, proto: str) -> str:
    return f"port {port}/{proto} on {host_ip or '0.0.0.0'}"


def _socket_for(proto: str) -> socket.socket:
    if proto == "udp":
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if proto == "sctp":
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM, _IPPROTO_SCTP)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a connection lingering in TIME_WAIT does not make the port "in use" for a listener
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def probe(host_ip: str, port: int, proto: str, container_port: int) -> None:
    """Bind the host port once and release it; NetworkError when a program holds it."""
    try:
        sock = _socket_for(proto)
    except OSError:
        return  # the kernel lacks the protocol (sctp): nothing can hold the port either
    try:
        sock.bind((host_ip or "0.0.0.0", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NetworkError(
                f"{describe(host_ip, port, proto)} is already in use by another program",
                hint=f"pick another host port with -p OTHER:{container_port}, or stop the "
                f"program (`ss -lnp 'sport = :{port}'` shows it)",
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise NetworkError(
                f"cannot publish {describe(host_ip, port, proto)}: {host_ip} is not an "
                "address of this host",
                hint="use one of the host's addresses, or leave the address out to publish on "
                "all of them",
            ) from None
        raise NetworkError(f"cannot publish {describe(host_ip, port, proto)}: "
                           f"{exc.strerror}") from None
    finally:
        sock.close()


def free_port(host_ip: str, proto: str, taken: set[int], low: int = 0, high: int = 0) -> int:
    """A host port free on the host and not in ``taken`` (ports berth already published);
    from [low, high] when given, else from the kernel's ephemeral range."""
    if low:
        for port in range(low, high + 1):
            if port in taken:
                continue
            try:
                probe(host_ip, port, proto, 0)
            except NetworkError:
                continue
            return port
        raise NetworkError(f"no free host port for {proto} in {low}-{high} on "
                           f"{host_ip or '0.0.0.0'}", hint="pick a wider range or another one")
    for _attempt in range(64):
        try:
            sock = _socket_for(proto)
        except OSError:
            sock = _socket_for("tcp")
        try:
            sock.bind((host_ip or "0.0.0.0", 0))
            port = int(sock.getsockname()[1])
        except OSError as exc:
            raise NetworkError(f"cannot find a free {proto} port on {host_ip or '0.0.0.0'}: "
                               f"{exc.strerror}") from None
        finally:
            sock.close()
        if port not in taken:
            return port
    raise NetworkError(f"cannot find a free {proto} host port that berth has not published yet",
                       hint="unpublish some ports (remove containers) and try again")
