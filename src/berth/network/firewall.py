"""nftables: NAT, published ports, isolation, and the user's own chain.

berth keeps all its rules in one table per store, ``inet berth`` (``inet berth-1a2b3c`` for
another root). The table is *rendered* from the store's database: every change writes the whole
of berth's part of it (static chains flushed and refilled, sets and maps flushed and refilled)
as one ``nft`` transaction, while the database write lock is held. So the kernel always holds
exactly what the database says, two berth processes cannot interleave their changes, a crash
leaves nothing a later change does not put right, and after a reboot the first change brings it
all back. A container's rules are elements of sets and maps, so rendering stays one small
transaction (a few hundred lines even with hundreds of published ports).

What the rules do (``nft list table inet berth`` shows them):

- ``nat-prerouting`` / ``nat-output``: traffic for a local address (``fib daddr type local``)
  goes through chain ``published``, which DNATs by the maps ``published-ip`` (ports published
  on one address) and ``published-any`` (on every address). Output covers the host itself:
  ``curl 127.0.0.1:8080`` works because the bridge has ``route_localnet=1`` and
  ``nat-postrouting`` masquerades sources in 127.0.0.0/8 leaving by a bridge.
  Queries to a user-defined network's gateway on port 53 go to the embedded DNS server.
- ``nat-postrouting``: masquerade of a network's subnet leaving by any non-berth interface
  (outbound NAT); hairpin: a DNATed connection from a network back into the same network is
  masqueraded to the gateway, so the reply comes back through the host.
- ``forward``: first ``jump berth-user``; then replies, traffic inside one network, and
  published ports are accepted; internal networks neither send nor receive anything forwarded;
  traffic between two different berth networks is dropped; containers may go out; nothing
  else may come in to them.
- ``input``: internal networks may reach the host only for DNS.
- ``raw-prerouting``: a packet arriving from a bridge for 127.0.0.0/8 is dropped (the
  ``route_localnet`` guard).

The user's place, like Docker's DOCKER-USER: chain ``berth-user`` in berth's table, jumped to
first thing in ``forward``. berth creates it when missing and never flushes or deletes it (except
when the whole table is removed by ``berth system reset``-like cleanup). A rule there sees
forwarded traffic after DNAT (so the container's address and port), with the published host
port available as ``ct original proto-dst`` (after a ``meta l4proto`` match). ``drop`` there
drops; ``accept`` skips berth's own forward rules (not other tables). For example, to keep
published TCP port 8080 from everyone but 10.0.0.0/8::

    nft add rule inet berth berth-user meta l4proto tcp ct original proto-dst 8080 \
        ip saddr != 10.0.0.0/8 drop

Traffic from the host itself to a published port is not forwarded, so ``berth-user`` does not
see it (as with Docker's chain).

Note: a host firewall in another table whose forward chain has policy drop (as Docker installs
in iptables) still drops container traffic; berth does not change other tables.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable

from berth.errors import HostError, NetworkError
from berth.network.model import BRIDGE, Network
from berth.network.state import PortRow
from berth.values import FrozenValue, init_fields

USER_CHAIN = "berth-user"
FAMILY = "inet"

_BASE_CHAINS = {
    "raw-prerouting": "type filter hook prerouting priority raw; policy accept;",
    "nat-prerouting": "type nat hook prerouting priority dstnat; policy accept;",
    "nat-output": "type nat hook output priority -100; policy accept;",
    "nat-postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    "forward": "type filter hook forward priority filter; policy accept;",
    "input": "type filter hook input priority filter; policy accept;",
}
_REGULAR_CHAINS = ("published",)
_SETS = {
    "bridges": "type ifname;",
    "internal": "type ifname;",
    "same-network": "type ifname . ifname;",
    "nat-sources": "type ipv4_addr; flags interval;",
    "hairpin": "type ipv4_addr . ifname; flags interval;",
    "dns-gateways": "type ipv4_addr;",
}
_MAPS = {
    "published-any": "type inet_proto . inet_service : ipv4_addr . inet_service;",
    "published-ip": "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
}


class FirewallState(FrozenValue):
    """What the table must hold: the store's bridge networks and its published ports."""

    __slots__ = ("dns_port", "networks", "ports", "table")
    table: str
    networks: tuple[Network, ...]
    ports: tuple[PortRow, ...]
    dns_port: int | None

    def __init__(
        self,
        table: str,
        networks: tuple[Network, ...],
        ports: tuple[PortRow, ...],
        dns_port: int | None,
    ) -> None:
        init_fields(self, table=table, networks=networks, ports=ports, dns_port=dns_port)


def render(state: FirewallState) -> str:
    """The nft script that makes berth's part of the table equal to ``state``."""
    t = f"{FAMILY} {state.table}"
    lines = [f"add table {t}", f"add chain {t} {USER_CHAIN}"]
    for name, spec in _BASE_CHAINS.items():
        lines.append(f"add chain {t} {name} {{ {spec} }}")
    for name in _REGULAR_CHAINS:
        lines.append(f"add chain {t} {name}")
    for name, spec in (_SETS | _MAPS).items():
        kind = "map" if name in _MAPS else "set"
        lines += [f"add {kind} {t} {name} {{ {spec} }}", f"flush {kind} {t} {name}"]
    for name in (*_BASE_CHAINS, *_REGULAR_CHAINS):
        lines.append(f"flush chain {t} {name}")
    lines += [f"add rule {t} {chain} {rule}" for chain, rule in _rules(state.dns_port)]
    lines += _elements(t, state)
    return "\n".join(lines) + "\n"


def _rules(dns_port: int | None) -> list[tuple[str, str]]:
    rules = [
        ("raw-prerouting", "iifname @bridges ip daddr 127.0.0.0/8 counter drop"),
    ]
    if dns_port:
        rules.append(("nat-prerouting", "iifname @bridges ip daddr @dns-gateways meta l4proto "
                      f"{{ tcp, udp }} th dport 53 dnat ip to 127.0.0.1:{dns_port}"))
    rules += [
        ("nat-prerouting", "fib daddr type local jump published"),
        ("nat-output", "fib daddr type local jump published"),
        ("published", "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport "
         "map @published-ip"),
        ("published", "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @published-any"),
        ("nat-postrouting", "ct status dnat ip saddr . oifname @hairpin masquerade"),
        ("nat-postrouting", "oifname @bridges ip saddr 127.0.0.0/8 masquerade"),
        ("nat-postrouting", "ip saddr @nat-sources oifname != @bridges masquerade"),
        ("forward", f"jump {USER_CHAIN}"),
        ("forward", "ct state established,related accept"),
        ("forward", "iifname . oifname @same-network accept"),
        ("forward", "iifname @internal counter drop"),
        ("forward", "oifname @internal counter drop"),
        ("forward", "ct status dnat oifname @bridges accept"),
        ("forward", "iifname @bridges oifname @bridges counter drop"),
        ("forward", "iifname @bridges accept"),
        ("forward", "oifname @bridges counter drop"),
        ("input", "iifname @internal ct state established,related accept"),
        ("input", "iifname @internal ct status dnat accept"),
        ("input", "iifname @internal counter drop"),
    ]
    return rules


def _elements(t: str, state: FirewallState) -> list[str]:
    bridges = [n for n in state.networks if n.driver == BRIDGE and n.bridge and n.subnet]
    sets: dict[str, list[str]] = {name: [] for name in (*_SETS, *_MAPS)}
    for net in bridges:
        name = f'"{net.bridge}"'
        sets["bridges"].append(name)
        sets["same-network"].append(f"{name} . {name}")
        if net.internal:
            sets["internal"].append(name)
        else:
            sets["nat-sources"].append(str(net.subnet))
            sets["hairpin"].append(f"{net.subnet} . {name}")
        if net.has_dns and net.gateway:
            sets["dns-gateways"].append(net.gateway)
    for port in state.ports:
        if not port.container_ip:
            continue
        target = f"{port.container_ip} . {port.container_port}"
        if port.host_ip:
            sets["published-ip"].append(f"{port.host_ip} . {port.proto} . {port.host_port} : "
                                        f"{target}")
        else:
            sets["published-any"].append(f"{port.proto} . {port.host_port} : {target}")
    lines = []
    for name, elements in sets.items():
        for start in range(0, len(elements), 500):
            chunk = ", ".join(elements[start : start + 500])
            lines.append(f"add element {t} {name} {{ {chunk} }}")
    return lines


def delete_table_script(table: str) -> str:
    """Remove the whole table, the user's chain included (creating it first makes this a no-op
    when it is already gone)."""
    return f"add table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"


# -- talking to the kernel ------------------------------------------------------------------------


class Nft:
    """Runs nft scripts: through libnftables when it loads (no process to start), else the
    ``nft`` command."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._ctx: int | None = None
        try:
            lib = ctypes.CDLL("libnftables.so.1")
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            ctx = lib.nft_ctx_new(0)
            if ctx:
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                self._lib, self._ctx = lib, ctx
        except OSError:
            pass

    def run(self, script: str, what: str) -> str:
        """Apply ``script`` as one transaction; its output (for list commands)."""
        if self._lib is not None and self._ctx is not None:
            with self._lock:
                rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
                output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
                error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
            if rc != 0:
                raise _failure(what, error)
            return output
        import shutil
        import subprocess

        nft = shutil.which("nft")
        if nft is None:
            raise HostError("nftables is missing: berth needs libnftables or the nft command "
                            "for its networks", hint="install Debian's nftables package")
        proc = subprocess.run([nft, "-f", "-"], input=script, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise _failure(what, proc.stderr)
        return proc.stdout


def _failure(what: str, error: str) -> NetworkError:
    first = next((line for line in error.splitlines() if line.strip()), "unknown error")
    return NetworkError(f"nftables refused the rules to {what}: {first}",
                        hint="`nft list ruleset` shows the host's rules; the kernel needs "
                        "nf_tables with nat and fib support")


_nft: Nft | None = None


def nft() -> Nft:
    global _nft
    if _nft is None:
        _nft = Nft()
    return _nft


def apply(state: FirewallState, what: str) -> None:
    nft().run(render(state), what)


def delete_table(table: str) -> None:
    nft().run(delete_table_script(table), f"remove table {table}")


def list_tables() -> list[str]:
    out = nft().run("list tables\n", "list tables")
    return [line.split()[-1] for line in out.splitlines() if line.startswith("table ")]


def table_names(lines: Iterable[str]) -> list[str]:
    return [line.split()[-1] for line in lines if line.startswith(f"table {FAMILY} ")]
