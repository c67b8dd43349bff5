"""A container's ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``, as Docker writes them.

- hosts: the localhost lines, the ``--add-host`` entries, then the container's own address and
  hostname. ``--add-host NAME:host-gateway`` means the host as the container reaches it (its
  network's gateway). With ``--network host`` the host's own file, plus ``--add-host`` entries.
- resolv.conf on a user-defined network: the embedded DNS server (the network's gateway),
  ``options ndots:0`` (so a bare name is asked as is, not first with every search domain), and
  the search domains and options of the host (or ``--dns-search``/``--dns-option``). The
  embedded server forwards other names to ``--dns`` servers if given, else to the host's.
- resolv.conf on the default network (and ``none``): the host's nameservers without the
  loopback ones (a container cannot reach the host's 127.0.0.53); when the host only has
  systemd-resolved's stub, the upstreams systemd-resolved lists; when nothing is left, Google's
  public servers, as Docker does. ``--dns`` replaces them.
"""

from __future__ import annotations

import ipaddress

from berth.errors import InvalidArgument
from berth.network.model import DnsSettings
from berth.values import FrozenValue, init_fields

HOST_GATEWAY = "host-gateway"
SYSTEMD_RESOLVED_UPSTREAMS = "/run/systemd/resolve/resolv.conf"
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

_LOCALHOST = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


class ResolvConf(FrozenValue):
    __slots__ = ("nameservers", "options", "other", "search")
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]
    other: tuple[str, ...]  # lines kept as they are (sortlist, ...)

    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        search: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
        other: tuple[str, ...] = (),
    ) -> None:
        init_fields(self, nameservers=nameservers, search=search, options=options, other=other)


def parse_resolv_conf(text: str) -> ResolvConf:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    other: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        key, *values = line.split()
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key in ("search", "domain"):
            search = values  # the last one wins, as in glibc
        elif key == "options":
            options.extend(values)
        else:
            other.append(line)
    return ResolvConf(tuple(nameservers), tuple(search), tuple(options), tuple(other))


def read_resolv_conf(path: str) -> ResolvConf:
    try:
        with open(path) as handle:
            return parse_resolv_conf(handle.read())
    except OSError:
        return ResolvConf()


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_upstreams(host: ResolvConf, systemd_path: str = SYSTEMD_RESOLVED_UPSTREAMS) -> ResolvConf:
    """The host's resolv.conf as a container on the host's side of NAT can use it."""
    if host.nameservers and all(_is_loopback(s) for s in host.nameservers):
        resolved = read_resolv_conf(systemd_path)
        if resolved.nameservers:
            return ResolvConf(resolved.nameservers, host.search or resolved.search,
                              host.options, host.other)
    return host


def render_resolv_conf(conf: ResolvConf, comment: str = "") -> str:
    lines = [f"# {comment}"] if comment else []
    lines += [f"nameserver {server}" for server in conf.nameservers]
    if conf.search:
        lines.append("search " + " ".join(conf.search))
    if conf.options:
        lines.append("options " + " ".join(conf.options))
    lines += list(conf.other)
    return "\n".join(lines) + "\n"


def resolv_conf_for_embedded_dns(dns_address: str, host: ResolvConf,
                                 settings: DnsSettings) -> str:
    options = list(settings.options or host.options)
    if not any(option.startswith("ndots:") for option in options):
        options.append("ndots:0")
    conf = ResolvConf((dns_address,), settings.search or host.search, tuple(options))
    upstream = ", ".join(settings.servers) or "the host's resolvers"
    return render_resolv_conf(conf, f"berth: embedded DNS server (forwards to {upstream})")


def resolv_conf_plain(host: ResolvConf, settings: DnsSettings, *,
                      keep_loopback: bool = False) -> str:
    """The default network's (and none's) resolv.conf; ``keep_loopback`` for --network host."""
    servers = list(settings.servers)
    if not servers:
        servers = [s for s in host.nameservers if keep_loopback or not _is_loopback(s)]
        if not servers and not keep_loopback:
            servers = list(FALLBACK_NAMESERVERS)
    conf = ResolvConf(tuple(servers), settings.search or host.search,
                      settings.options or host.options, host.other)
    return render_resolv_conf(conf)


def parse_add_host(spec: str) -> tuple[str, str]:
    """``--add-host NAME:IP`` (or ``NAME=IP``; IPv6 as ``NAME:::1`` or ``NAME=[::1]``;
    ``IP`` may be ``host-gateway``) as (name, ip)."""
    if "=" in spec:
        name, _, address = spec.partition("=")
    else:
        name, _, address = spec.partition(":")
    name = name.strip()
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if not name or not address:
        raise InvalidArgument(f"invalid --add-host {spec!r}",
                              hint="use NAME:IP, e.g. --add-host db:10.0.0.5")
    if address != HOST_GATEWAY:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise InvalidArgument(f"invalid IP address {address!r} in --add-host {spec!r}",
                                  hint="use an IP address or host-gateway") from None
    return name, address


def resolve_extra_hosts(entries: list[tuple[str, str]],
                        host_gateway: str | None) -> list[tuple[str, str]]:
    out = []
    for name, address in entries:
        if address == HOST_GATEWAY:
            if host_gateway is None:
                raise InvalidArgument(
                    f"--add-host {name}:host-gateway: this container has no gateway to the host",
                    hint="use a bridge network, or give the host's address")
            address = host_gateway
        out.append((name, address))
    return out


def hostname_line(hostname: str, domainname: str) -> str:
    if domainname:
        return f"{hostname}.{domainname} {hostname}"
    return hostname


def render_hosts(hostname: str, domainname: str, addresses: list[str],
                 extra_hosts: list[tuple[str, str]]) -> str:
    lines = [_LOCALHOST.rstrip("\n")]
    lines += [f"{address}\t{name}" for name, address in extra_hosts]
    names = hostname_line(hostname, domainname)
    lines += [f"{address}\t{names}" for address in addresses]
    return "\n".join(lines) + "\n"


def render_host_mode_hosts(host_hosts: str, extra_hosts: list[tuple[str, str]]) -> str:
    text = host_hosts if host_hosts.endswith("\n") or not host_hosts else host_hosts + "\n"
    return text + "".join(f"{address}\t{name}\n" for name, address in extra_hosts)
