"""The facade the engine calls: networks, and the network side of a container's life.

Order of work, so that a crash at any point leaves only what ``teardown_container`` or
``cleanup_stale`` removes:

1. Everything that can be refused is checked first: names, addresses, host ports (each bound
   once and released), before anything is created.
2. One write transaction records the sandbox, its endpoints (address leases) and published
   ports, and renders the firewall table; the database lock is held while nft applies it.
3. Then the namespace, veth pairs, addresses and routes are made with netlink. If any step
   fails, the container's network is torn down again and the error raised: no half-created
   container.

Teardown goes the other way (links, namespace, then the rows and the rules) and does not mind
what is already missing.

Host-wide names derive from the store (:class:`berth.store.paths.StorePaths`): the default
store has table ``inet berth``, bridges ``berth0`` (the default network), ``berth1``...; another
store ``inet berth-1a2b3c``, ``berth0-1a2b3c``... Host veth ends are ``bv-`` + 12 hex (default
store) or ``bv1a2b3c`` + 7 hex, so each store recognises its own leftovers.
"""

from __future__ import annotations

import builtins
import ipaddress
import os

from berth.errors import (
    ContainerStateConflict,
    InvalidArgument,
    NameInUse,
    NetworkError,
    NetworkInUse,
    NetworkNotFound,
)
from berth.network import bridge, firewall, hosts, ipam, netlink, netns, ports, state
from berth.network.model import (
    BRIDGE,
    HOST,
    NONE,
    NULL_DRIVER,
    ContainerNetwork,
    DnsSettings,
    Endpoint,
    EndpointRequest,
    Network,
    PortMapping,
)
from berth.values import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    import sqlite3
    from collections.abc import Callable, Collection, Sequence

    from berth.network.dns import DnsServer
    from berth.store.db import Database
    from berth.store.paths import StorePaths

_NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"  # for re, imported where names are checked
_MTU_OPTIONS = ("com.docker.network.driver.mtu", "mtu")
_BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
PREDEFINED = (BRIDGE, HOST, NONE)


class NetworkManager:
    """Networks and container networking of one store.

    ``host_resolv_conf`` and ``host_hosts`` are where the host's resolver configuration and
    hosts file are read from (tests point them at files of their own).
    """

    def __init__(
        self,
        paths: StorePaths,
        db: Database,
        *,
        host_resolv_conf: str = "/etc/resolv.conf",
        host_hosts: str = "/etc/hosts",
    ) -> None:
        self.paths = paths
        self.db = db
        self.table = paths.host_name("berth")
        self.host_resolv_conf = host_resolv_conf
        self.host_hosts = host_hosts
        self._rtnl: netlink.RtNetlink | None = None
        state.ensure_schema(db)

    # -- names ----------------------------------------------------------------------------------

    def bridge_name(self, index: int) -> str:
        return self.paths.host_name(f"berth{index}")

    def _bridge_pattern(self) -> re.Pattern[str]:
        import re  # not at the top: a container's setup needs no regular expression

        if self.paths.is_default:
            return re.compile(r"^berth\d+$")
        return re.compile(rf"^berth\d+-{self.paths.suffix}$")

    @property
    def veth_prefix(self) -> str:
        return "bv-" if self.paths.is_default else f"bv{self.paths.suffix}"

    def _new_veth_name(self, taken: set[str]) -> str:
        while True:
            name = self.veth_prefix + os.urandom(8).hex()[: 15 - len(self.veth_prefix)]
            if name not in taken and bridge.link_index(name) is None:
                taken.add(name)
                return name

    @property
    def netns_dir(self) -> str:
        return os.path.join(self.paths.run_dir, "netns")

    def netns_path(self, container_id: str) -> str:
        return os.path.join(self.netns_dir, container_id)

    @property
    def rtnl(self) -> netlink.RtNetlink:
        if self._rtnl is None:
            self._rtnl = netlink.RtNetlink()
        return self._rtnl

    def close(self) -> None:
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None

    # -- networks -------------------------------------------------------------------------------

    def ensure_default(self) -> Network:
        """The predefined networks: ``bridge`` (the default, on bridge ``berth0``), ``host`` and
        ``none``; created on first use. Returns the default bridge network."""
        for net in state.list_networks(self.db):
            if net.is_default:
                self._ensure_bridge_up(net)
                return net
        return self._create(BRIDGE, subnet=None, gateway=None, internal=False, options={},
                            labels={}, default=True)

    def create(
        self,
        name: str,
        driver: str = BRIDGE,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Network:
        """``berth network create``: a user-defined bridge network (with name resolution)."""
        import re

        if not re.match(_NAME_RE, name):
            raise InvalidArgument(f"invalid network name {name!r}",
                                  hint="use letters, digits, '_', '.' and '-', starting with a "
                                  "letter or digit")
        if name in PREDEFINED:
            raise NameInUse(f"network name {name} is reserved: it is a predefined network",
                            hint="pick another name")
        if driver != BRIDGE:
            raise InvalidArgument(f"network driver {driver!r} is not supported",
                                  hint="berth has bridge networks: use -d bridge (the default)")
        if gateway and not subnet:
            raise InvalidArgument("--gateway needs --subnet", hint="pass both, or neither")
        if any(n.name == name for n in state.find_network(self.db, name)):
            raise NameInUse(f"network with name {name} already exists",
                            hint="pick another name, or remove it first (berth network rm)")
        return self._create(name, subnet=subnet, gateway=gateway, internal=internal,
                            options=dict(options or {}), labels=dict(labels or {}),
                            default=False)

    def _create(self, name: str, *, subnet: str | None, gateway: str | None, internal: bool,
                options: dict[str, str], labels: dict[str, str], default: bool) -> Network:
        mtu = _mtu(options)
        requested_bridge = options.get(_BRIDGE_NAME_OPTION)
        if requested_bridge is not None and (len(requested_bridge) > 15 or not requested_bridge
                                             or "/" in requested_bridge):
            raise InvalidArgument(f"invalid bridge name {requested_bridge!r}",
                                  hint="Linux interface names have 1 to 15 characters")
        with ipam.HostLock():
            taken_host = ipam.host_networks((r.network for r in self.rtnl.routes()),
                                            ipam.read_nameservers(self.host_resolv_conf))
            with self.db.write() as conn:
                existing = state.list_networks(conn)
                if any(n.name == name for n in existing):
                    if default:
                        return next(n for n in existing if n.name == name)
                    raise NameInUse(f"network with name {name} already exists",
                                    hint="pick another name, or remove it first")
                taken_store = [ipaddress.IPv4Network(n.subnet) for n in existing if n.subnet]
                if subnet:
                    chosen = ipam.parse_subnet(subnet)
                    ipam.check_subnet(chosen, taken_store, "another berth network")
                    ipam.check_subnet(chosen, taken_host, "a route of this host")
                else:
                    chosen = ipam.choose_subnet(taken_store + taken_host, default=default)
                gw = ipam.parse_gateway(gateway, chosen)
                bridge_name = requested_bridge or self._free_bridge_name(conn, default)
                if requested_bridge and (bridge.link_index(requested_bridge) is not None or
                                         requested_bridge in state.bridge_names(conn)):
                    raise NameInUse(f"a link named {requested_bridge} exists already",
                                    hint=f"pick another {_BRIDGE_NAME_OPTION}")
                net = Network(
                    id=os.urandom(32).hex(), name=name, driver=BRIDGE, bridge=bridge_name,
                    subnet=str(chosen), gateway=str(gw), internal=internal, is_default=default,
                    options=options, labels=labels, created=state.now(),
                )
                state.insert_network(conn, net)
                if default:
                    for extra, driver in ((HOST, HOST), (NONE, NULL_DRIVER)):
                        if not any(n.name == extra for n in existing):
                            state.insert_network(conn, Network(
                                os.urandom(32).hex(), extra, driver, None, None, None, False,
                                False, created=state.now()))
                state.bump_version(conn)
                self._apply_firewall(conn, f"create network {name}")
            try:
                self._bring_up(net, mtu)
            except BaseException:
                self._forget_network(net)
                raise
        return net

    def _free_bridge_name(self, conn: sqlite3.Connection, default: bool) -> str:
        used = state.bridge_names(conn)
        index = 0 if default else 1
        while True:
            name = self.bridge_name(index)
            if len(name) > 15:
                raise NetworkError("this store has used up its bridge names",
                                   hint="remove unused networks (berth network prune)")
            if name not in used and bridge.link_index(name) is None:
                return name
            index += 1

    def _bring_up(self, net: Network, mtu: int | None = None) -> int:
        assert net.bridge and net.subnet and net.gateway
        prefix = ipaddress.IPv4Network(net.subnet).prefixlen
        index = bridge.ensure_bridge(self.rtnl, net.bridge,
                                     ipaddress.IPv4Interface(f"{net.gateway}/{prefix}"))
        if mtu:
            self.rtnl.run([netlink.Request(netlink.RTM_NEWLINK, 0,
                                           netlink.ifinfo(index) +
                                           netlink.attr_u32(netlink.IFLA_MTU, mtu),
                                           f"set mtu of {net.bridge}")])
        if not net.internal and bridge.enable_ip_forward():
            with self.db.write() as conn:
                state.set_value(conn, "ip_forward_enabled_by_berth", "1")
        return index

    def _ensure_bridge_up(self, net: Network) -> int:
        """The bridge's ifindex, creating the bridge if it is missing (after a reboot)."""
        if net.bridge is None:
            raise InvalidArgument(f"network {net.name} has no bridge")
        index = bridge.link_index(net.bridge)
        if index is not None:
            return index
        return self._bring_up(net, _mtu(net.options))

    def _forget_network(self, net: Network) -> None:
        with self.db.write() as conn:
            state.delete_network(conn, net.id)
            state.bump_version(conn)
            self._apply_firewall(conn, f"remove network {net.name}")
        if net.bridge:
            bridge.delete_links(self.rtnl, [net.bridge])

    def list(self) -> builtins.list[Network]:
        """Every network, the predefined ones included (made on first use, as Docker's
        daemon makes docker0 when it starts)."""
        self.ensure_default()
        return state.list_networks(self.db)

    def get(self, name_or_id: str) -> Network:
        found = state.find_network(self.db, name_or_id)
        if not found and name_or_id in PREDEFINED:
            self.ensure_default()
            found = state.find_network(self.db, name_or_id)
        if not found:
            raise NetworkNotFound(f"network {name_or_id} not found",
                                  hint="`berth network ls` lists the networks")
        if len(found) > 1:
            raise NetworkNotFound(f"network id prefix {name_or_id} is ambiguous "
                                  f"({len(found)} networks match)", hint="give more of the id")
        return found[0]

    def endpoints(self, name_or_id: str) -> builtins.list[Endpoint]:
        """The containers on a network (``network inspect``'s Containers)."""
        return state.endpoints_of_network(self.db, self.get(name_or_id).id)

    def remove(self, name_or_id: str) -> None:
        net = self.get(name_or_id)
        if net.predefined:
            raise InvalidArgument(f"{net.name} is a pre-defined network and cannot be removed")
        with self.db.write() as conn:
            users = state.endpoints_of_network(conn, net.id)
            if users:
                names = sorted({self._container_label(conn, e.container_id) for e in users})
                raise NetworkInUse(
                    f"network {net.name} has active endpoints ({', '.join(names)})",
                    hint="stop or disconnect those containers first",
                )
            state.delete_network(conn, net.id)
            state.bump_version(conn)
            self._apply_firewall(conn, f"remove network {net.name}")
        if net.bridge:
            bridge.delete_links(self.rtnl, [net.bridge])
        from berth.store.events import record_event

        record_event(self, "network", "destroy", net.id, {"name": net.name, "type": net.driver})

    def prune(self, keep: Callable[[Network], bool] | None = None) -> builtins.list[str]:
        """Remove every user-defined network no container uses (and ``keep`` does not keep)."""
        removed = []
        for net in self.list():
            if net.predefined or (keep is not None and keep(net)):
                continue
            if state.endpoints_of_network(self.db, net.id):
                continue
            try:
                self.remove(net.id)
            except (NetworkInUse, NetworkNotFound):
                continue
            removed.append(net.name)
        return removed

    @staticmethod
    def _container_label(conn: sqlite3.Connection, container_id: str) -> str:
        sandbox = state.get_sandbox(conn, container_id)
        return sandbox.name if sandbox and sandbox.name else container_id[:12]

    # -- containers -----------------------------------------------------------------------------

    def setup_container(
        self,
        container_id: str,
        name: str,
        hostname: str,
        networks: Sequence[EndpointRequest],
        ports: Sequence[PortMapping] = (),
        *,
        domainname: str = "",
        extra_hosts: Sequence[str] = (),
        dns: DnsSettings | None = None,
    ) -> ContainerNetwork:
        """Prepare the network of a container about to start; see :class:`ContainerNetwork`.

        ``networks`` are the ``--network`` values (empty: the default network); ``host``,
        ``none`` and ``container:ID`` must come alone. ``extra_hosts`` are ``--add-host``
        values. Raises before creating anything when a name, address or port is refused.
        """
        dns = dns or DnsSettings()
        requests = list(networks) or [EndpointRequest(BRIDGE)]
        parsed_hosts = [hosts.parse_add_host(spec) for spec in extra_hosts]
        first = requests[0].network
        special = first in (HOST, NONE) or first.startswith("container:")
        if special and len(requests) > 1:
            raise InvalidArgument(f"--network {first} cannot be combined with other networks",
                                  hint="use one --network when it is host, none or container:ID")
        if first == HOST:
            return self._setup_host(container_id, name, hostname, ports, parsed_hosts, dns)
        if first == NONE:
            return self._setup_none(container_id, name, hostname, domainname, ports,
                                    parsed_hosts, dns)
        if first.startswith("container:"):
            return self._setup_joined(container_id, name, first.partition(":")[2], ports)
        return self._setup_bridge(container_id, name, hostname, domainname, requests, ports,
                                  parsed_hosts, dns)

    def _setup_bridge(self, container_id: str, name: str, hostname: str, domainname: str,
                      requests: builtins.list[EndpointRequest], mappings: Sequence[PortMapping],
                      extra_hosts: builtins.list[tuple[str, str]],
                      dns: DnsSettings) -> ContainerNetwork:
        nets = self._resolve_requests(requests)
        for net in nets:
            self._ensure_bridge_up(net)
        self.sweep_released(force=any(r.ip for r in requests))
        path = self.netns_path(container_id)
        with self.db.write() as conn:
            self._insert_sandbox(conn, container_id, name, hostname, BRIDGE, path, dns,
                                 extra_hosts, domainname)
            endpoints = self._allocate_endpoints(conn, container_id, nets, requests, 0)
            target = next((e.ip for e, n in zip(endpoints, nets, strict=True)
                           if not n.internal), None)
            published = self._reserve_ports(conn, container_id, target, mappings)
            state.bump_version(conn)
            self._apply_firewall(conn, f"set up container {name or container_id[:12]}")
        try:
            self._plumb(path, endpoints, nets, create=True)
        except BaseException:
            self.teardown_container(container_id, wait=True)
            raise
        resolv = self._resolv_conf_for(nets, endpoints, dns)
        host_gateway = next((n.gateway for n in nets if n.gateway), None)
        extra = hosts.resolve_extra_hosts(extra_hosts, host_gateway)
        return ContainerNetwork(
            container_id=container_id, mode=BRIDGE, netns_path=path, hostname=hostname,
            endpoints=tuple(endpoints), ports=tuple(published),
            hosts=hosts.render_hosts(hostname, domainname, [endpoints[0].ip], extra),
            hostname_file=hostname + "\n", resolv_conf=resolv,
        )

    def _resolve_requests(self, requests: builtins.list[EndpointRequest]) -> builtins.list[Network]:
        nets: builtins.list[Network] = []
        for request in requests:
            if request.network in (HOST, NONE) or request.network.startswith("container:"):
                raise InvalidArgument(f"--network {request.network} cannot be combined with "
                                      "other networks")
            net = self.ensure_default() if request.network == BRIDGE else self.get(
                request.network)
            if net.driver != BRIDGE:
                raise InvalidArgument(f"--network {request.network} cannot be combined with "
                                      "other networks")
            if any(n.id == net.id for n in nets):
                raise InvalidArgument(f"network {net.name} is given twice")
            if net.is_default and request.aliases:
                raise InvalidArgument("network-scoped aliases are only supported on "
                                      "user-defined networks",
                                      hint="create a network (berth network create) and use it")
            if net.is_default and request.ip:
                raise InvalidArgument("a user-specified IP address (--ip) is only supported on "
                                      "user-defined networks",
                                      hint="create a network with --subnet and use it")
            nets.append(net)
        return nets

    def _insert_sandbox(self, conn: sqlite3.Connection, container_id: str, name: str,
                        hostname: str, mode: str, path: str | None, dns: DnsSettings,
                        extra_hosts: Sequence[tuple[str, str]] = (),
                        domainname: str = "") -> None:
        if state.get_sandbox(conn, container_id) is not None:
            raise ContainerStateConflict(
                f"the network of container {name or container_id[:12]} is set up already",
                hint="tear it down first (stop the container)")
        state.insert_sandbox(conn, state.Sandbox(
            container_id, name, hostname, mode, path,
            {"servers": list(dns.servers), "search": list(dns.search),
             "options": list(dns.options), "domainname": [domainname] if domainname else [],
             "extra_hosts": [f"{n}={a}" for n, a in extra_hosts]}, state.now()))

    def _allocate_endpoints(self, conn: sqlite3.Connection, container_id: str,
                            nets: builtins.list[Network], requests: builtins.list[EndpointRequest],
                            first_position: int) -> builtins.list[Endpoint]:
        taken_veths = state.host_ifnames(conn)
        out = []
        for offset, (net, request) in enumerate(zip(nets, requests, strict=True)):
            assert net.subnet and net.gateway
            subnet = ipaddress.IPv4Network(net.subnet)
            gateway = ipaddress.IPv4Address(net.gateway)
            used = state.used_ips(conn, net.id)
            if request.ip:
                address = ipam.check_requested(request.ip, subnet, gateway, used, net.name)
            else:
                address = ipam.allocate(subnet, gateway, used, state.next_ip_cursor(conn, net.id))
                state.set_ip_cursor(conn, net.id, int(address))
            position = first_position + offset
            endpoint = Endpoint(
                container_id=container_id, network_id=net.id, network_name=net.name,
                ifname=f"eth{position}", host_ifname=self._new_veth_name(taken_veths),
                ip=str(address), prefixlen=subnet.prefixlen,
                gateway=None if net.internal else net.gateway, mac=ipam.mac_for(address),
                aliases=tuple(dict.fromkeys(request.aliases)),
            )
            state.insert_endpoint(conn, endpoint, position, int(address))
            out.append(endpoint)
        return out

    def _reserve_ports(self, conn: sqlite3.Connection, container_id: str, target: str | None,
                       mappings: Sequence[PortMapping]) -> builtins.list[PortMapping]:
        if not mappings:
            return []
        if target is None:
            raise InvalidArgument("cannot publish ports of a container that is only on "
                                  "internal networks",
                                  hint="add a non-internal network, or drop -p/-P")
        out = []
        for mapping in mappings:
            host_ip = mapping.host_ip
            if host_ip and ipaddress.ip_address(host_ip).version == 6:
                raise InvalidArgument(
                    f"cannot publish on IPv6 address {host_ip}: berth networks are IPv4 only",
                    hint=f"use an IPv4 address, e.g. -p 127.0.0.1:{mapping.host_port or ''}:"
                    f"{mapping.container_port}")
            port = mapping.host_port
            if not port or mapping.host_port_end:
                taken = state.taken_ports(conn, mapping.protocol)
                port = ports.free_port(host_ip, mapping.protocol, taken, mapping.host_port,
                                       mapping.host_port_end)
            else:
                holder = state.port_holder(conn, host_ip, port, mapping.protocol)
                if holder is not None:
                    owner = self._container_label(conn, holder.container_id)
                    raise NetworkError(
                        f"{ports.describe(host_ip, port, mapping.protocol)} is already "
                        f"published by container {owner}",
                        hint=f"pick another host port with -p OTHER:{mapping.container_port}")
                ports.probe(host_ip, port, mapping.protocol, mapping.container_port)
            row = state.PortRow(container_id, host_ip, port, mapping.protocol,
                                mapping.container_port, target)
            state.insert_port(conn, row)
            out.append(row.mapping())
        return out

    def _plumb(self, path: str, endpoints: Sequence[Endpoint], nets: Sequence[Network], *,
               create: bool, with_default_route: bool = True) -> None:
        if create:
            netns.remove(path)  # a leftover of a crash: the sandbox row did not exist
        inside = netns.create(path) if create else netns.open_netlink(path)
        fd = netns.open_fd(path)
        try:
            route_set = not with_default_route
            for endpoint, net in zip(endpoints, nets, strict=True):
                gateway = None
                if not route_set and endpoint.gateway:
                    gateway = ipaddress.IPv4Address(endpoint.gateway)
                    route_set = True
                bridge.add_veth(
                    self.rtnl, inside, fd, host_name=endpoint.host_ifname, ifname=endpoint.ifname,
                    bridge_index=self._ensure_bridge_up(net),
                    address=ipaddress.IPv4Interface(f"{endpoint.ip}/{endpoint.prefixlen}"),
                    mac=endpoint.mac, default_gateway=gateway, mtu=_mtu(net.options) or 1500,
                )
        finally:
            os.close(fd)
            inside.close()

    def _resolv_conf_for(self, nets: Sequence[Network], endpoints: Sequence[Endpoint],
                         dns: DnsSettings) -> str:
        host_conf = hosts.host_upstreams(hosts.read_resolv_conf(self.host_resolv_conf))
        dns_net = next((n for n in nets if n.has_dns), None)
        if dns_net is not None and dns_net.gateway:
            return hosts.resolv_conf_for_embedded_dns(dns_net.gateway, host_conf, dns)
        return hosts.resolv_conf_plain(host_conf, dns)

    def _setup_none(self, container_id: str, name: str, hostname: str, domainname: str,
                    mappings: Sequence[PortMapping], extra_hosts: builtins.list[tuple[str, str]],
                    dns: DnsSettings) -> ContainerNetwork:
        warnings = ("published ports are discarded with --network none",) if mappings else ()
        path = self.netns_path(container_id)
        with self.db.write() as conn:
            self._insert_sandbox(conn, container_id, name, hostname, NONE, path, dns,
                                 extra_hosts, domainname)
        try:
            netns.remove(path)  # a leftover of a crash: the sandbox row did not exist
            netns.create(path).close()
        except BaseException:
            self.teardown_container(container_id, wait=True)
            raise
        host_conf = hosts.host_upstreams(hosts.read_resolv_conf(self.host_resolv_conf))
        return ContainerNetwork(
            container_id=container_id, mode=NONE, netns_path=path, hostname=hostname,
            hosts=hosts.render_hosts(hostname, domainname, [],
                                     hosts.resolve_extra_hosts(extra_hosts, None)),
            hostname_file=hostname + "\n", resolv_conf=hosts.resolv_conf_plain(host_conf, dns),
            warnings=warnings,
        )

    def _setup_host(self, container_id: str, name: str, hostname: str,
                    mappings: Sequence[PortMapping], extra_hosts: builtins.list[tuple[str, str]],
                    dns: DnsSettings) -> ContainerNetwork:
        warnings = ("published ports are discarded when using host network mode",) \
            if mappings else ()
        with self.db.write() as conn:
            self._insert_sandbox(conn, container_id, name, hostname, HOST, None, dns,
                                 extra_hosts)
        try:
            with open(self.host_hosts) as handle:
                host_hosts = handle.read()
        except OSError:
            host_hosts = hosts.render_hosts(hostname, "", [], [])
        host_conf = hosts.read_resolv_conf(self.host_resolv_conf)
        extra = hosts.resolve_extra_hosts(extra_hosts, "127.0.0.1")
        return ContainerNetwork(
            container_id=container_id, mode=HOST, netns_path=None, hostname=hostname,
            hosts=hosts.render_host_mode_hosts(host_hosts, extra),
            hostname_file=hostname + "\n",
            resolv_conf=hosts.resolv_conf_plain(host_conf, dns, keep_loopback=True),
            warnings=warnings,
        )

    def _setup_joined(self, container_id: str, name: str, other: str,
                      mappings: Sequence[PortMapping]) -> ContainerNetwork:
        if mappings:
            raise InvalidArgument("conflicting options: port publishing and --network "
                                  f"container:{other}",
                                  hint="publish the ports on the container that owns the network")
        target = self._find_sandbox(other)
        if target.mode == HOST or target.netns is None:
            raise InvalidArgument(f"container {other} uses the host's network",
                                  hint="use --network host instead")
        owner_id = target.container_id
        if target.mode.startswith("container:"):
            owner_id = target.mode.partition(":")[2]
        with self.db.write() as conn:
            self._insert_sandbox(conn, container_id, name, target.hostname,
                                 f"container:{owner_id}", target.netns, DnsSettings())
        joined = self.container_network(owner_id)
        assert joined is not None
        return replace(joined, container_id=container_id, mode="container", ports=(),
                       warnings=())

    def _find_sandbox(self, id_or_name: str) -> state.Sandbox:
        sandbox = state.get_sandbox(self.db, id_or_name)
        if sandbox is None:
            for candidate in state.list_sandboxes(self.db):
                if candidate.name == id_or_name or candidate.container_id.startswith(id_or_name):
                    sandbox = candidate
                    break
        if sandbox is None or (sandbox.netns and not netns.exists(sandbox.netns)):
            raise ContainerStateConflict(
                f"cannot join the network of container {id_or_name}: it is not running",
                hint="start it first")
        return sandbox

    def container_network(self, container_id: str) -> ContainerNetwork | None:
        """The network of a set-up container as :meth:`setup_container` returned it (the
        files are rebuilt from the database; None when it has none)."""
        sandbox = state.get_sandbox(self.db, container_id)
        if sandbox is None:
            return None
        endpoints = state.endpoints_of_container(self.db, container_id)
        published = [row.mapping() for row in state.ports_of_container(self.db, container_id)]
        dns = DnsSettings(tuple(sandbox.dns.get("servers", ())),
                          tuple(sandbox.dns.get("search", ())),
                          tuple(sandbox.dns.get("options", ())))
        mode = sandbox.mode.partition(":")[0]
        nets = [self.get(e.network_id) for e in endpoints]
        host_conf = hosts.host_upstreams(hosts.read_resolv_conf(self.host_resolv_conf))
        resolv = (self._resolv_conf_for(nets, endpoints, dns) if mode == BRIDGE else
                  hosts.resolv_conf_plain(host_conf, dns, keep_loopback=mode == HOST))
        addresses = [endpoints[0].ip] if endpoints else []
        extra = [hosts.parse_add_host(entry) for entry in sandbox.dns.get("extra_hosts", ())]
        host_gateway = next((e.gateway for e in endpoints if e.gateway), None)
        extra = hosts.resolve_extra_hosts(extra, host_gateway or "127.0.0.1")
        domainname = "".join(sandbox.dns.get("domainname", ()))
        return ContainerNetwork(
            container_id=container_id, mode=mode, netns_path=sandbox.netns,
            hostname=sandbox.hostname, endpoints=tuple(endpoints), ports=tuple(published),
            hosts=hosts.render_hosts(sandbox.hostname, domainname, addresses, extra),
            hostname_file=sandbox.hostname + "\n", resolv_conf=resolv,
        )

    def teardown_container(self, container_id: str, *, wait: bool = False) -> None:
        """Release everything of a container's network; fine to call again, or after a crash
        left only part of it.

        Deleting a veth takes the kernel tens of milliseconds (RCU grace periods), so by
        default the namespace is only unbound: with the container's processes gone the kernel
        destroys it, and the veth pair with it, in the background. Until the host end is gone
        its address stays reserved (``net_released``); the next setup sweeps what is gone and
        deletes whatever lingers (something still holding the namespace) after a few seconds.
        ``wait=True`` deletes the veths before returning, as it also does when other
        containers share this one's namespace (``--network container:``).
        """
        sandbox = state.get_sandbox(self.db, container_id)
        endpoints = state.endpoints_of_container(self.db, container_id)
        owned = sandbox is None or sandbox.mode in (BRIDGE, NONE)
        joined = any(s.mode == f"container:{container_id}"
                     for s in state.list_sandboxes(self.db)) if endpoints else False
        synchronous = wait or joined or not owned or sandbox is None
        if synchronous:
            bridge.delete_links(self.rtnl, [e.host_ifname for e in endpoints])
        if owned:
            netns.remove(self.netns_path(container_id))
        if sandbox is None:
            return
        with self.db.write() as conn:
            had_rules = bool(state.endpoints_of_container(conn, container_id) or
                             state.ports_of_container(conn, container_id))
            if not synchronous:
                state.release_endpoints(conn, endpoints,
                                        [int(ipaddress.IPv4Address(e.ip)) for e in endpoints],
                                        state.now())
            state.delete_sandbox(conn, container_id)
            if had_rules:
                state.bump_version(conn)
                self._apply_firewall(conn, f"tear down container {container_id[:12]}")

    def sweep_released(self, *, force: bool = False, grace: float = 3.0) -> builtins.list[str]:
        """Forget released veths the kernel has removed; delete the ones still there after
        ``grace`` seconds (or at once with ``force``). Returns the names deleted."""
        pending = state.released(self.db)
        if not pending:
            return []
        gone, lingering = [], []
        now = state.now()
        for name, when in pending:
            if bridge.link_index(name) is None:
                gone.append(name)
            elif force or now - when > grace:
                lingering.append(name)
        bridge.delete_links(self.rtnl, lingering)
        if gone or lingering:
            with self.db.write() as conn:
                for name in gone + lingering:
                    state.forget_released(conn, name)
        return lingering

    def connect(self, container_id: str, network: str, aliases: Sequence[str] = (),
                ip: str | None = None) -> Endpoint:
        """``berth network connect`` of a running container."""
        sandbox = state.get_sandbox(self.db, container_id)
        if sandbox is None or sandbox.netns is None:
            raise ContainerStateConflict(
                f"container {container_id[:12]} has no network namespace to connect",
                hint="connect it when it runs, or give --network when creating it")
        if sandbox.mode != BRIDGE:
            raise InvalidArgument(f"container {sandbox.name or container_id[:12]} uses "
                                  f"--network {sandbox.mode}: it cannot join other networks")
        request = EndpointRequest(network, tuple(aliases), ip)
        (net,) = self._resolve_requests([request])
        self._ensure_bridge_up(net)
        self.sweep_released(force=ip is not None)
        with self.db.write() as conn:
            current = state.endpoints_of_container(conn, container_id)
            if any(e.network_id == net.id for e in current):
                raise NameInUse(f"container {sandbox.name or container_id[:12]} is already "
                                f"connected to network {net.name}")
            position = max((int(e.ifname[3:]) for e in current), default=-1) + 1
            (endpoint,) = self._allocate_endpoints(conn, container_id, [net], [request],
                                                   position)
            if not net.internal and not any(row.container_ip for row in
                                            state.ports_of_container(conn, container_id)):
                state.repoint_ports(conn, container_id, endpoint.ip)
            state.bump_version(conn)
            self._apply_firewall(conn, f"connect {container_id[:12]} to {net.name}")
        try:
            has_route = any(e.gateway for e in current)
            self._plumb(sandbox.netns, [endpoint], [net], create=False,
                        with_default_route=not has_route)
        except BaseException:
            self.disconnect(container_id, net.id)
            raise
        return endpoint

    def disconnect(self, container_id: str, network: str) -> None:
        net = self.get(network)
        endpoints = state.endpoints_of_container(self.db, container_id)
        endpoint = next((e for e in endpoints if e.network_id == net.id), None)
        if endpoint is None:
            raise NetworkError(f"container {container_id[:12]} is not connected to network "
                               f"{net.name}")
        bridge.delete_links(self.rtnl, [endpoint.host_ifname])
        with self.db.write() as conn:
            state.delete_endpoint(conn, container_id, net.id)
            remaining = state.endpoints_of_container(conn, container_id)
            target = next((e.ip for e in remaining if e.gateway), None)
            state.repoint_ports(conn, container_id, target)
            state.bump_version(conn)
            self._apply_firewall(conn, f"disconnect {container_id[:12]} from {net.name}")

    def port(self, container_id: str) -> builtins.list[PortMapping]:
        """``berth port``: the container's published ports."""
        return [row.mapping() for row in state.ports_of_container(self.db, container_id)]

    # -- firewall and DNS -----------------------------------------------------------------------

    def _firewall_state(self, conn: sqlite3.Connection | Database) -> firewall.FirewallState:
        dns_port = state.get_value(conn, "dns_port")
        return firewall.FirewallState(
            self.table, tuple(state.list_networks(conn)), tuple(state.all_ports(conn)),
            int(dns_port) if dns_port else None)

    def _apply_firewall(self, conn: sqlite3.Connection, what: str) -> None:
        firewall.apply(self._firewall_state(conn), what)

    def refresh_firewall(self) -> None:
        """Render the table again from the database (after a reboot, or to repair it)."""
        with self.db.write() as conn:
            self._apply_firewall(conn, "refresh berth's rules")

    def set_dns_port(self, port: int) -> None:
        """Point the firewall's DNS redirect at the embedded server's port."""
        with self.db.write() as conn:
            state.set_value(conn, "dns_port", str(port))
            # Only a network with name resolution needs the redirect; a store without one
            # gets no table on the host (making that network applies the rules, port included).
            if any(n.has_dns for n in state.list_networks(conn)):
                self._apply_firewall(conn, "redirect DNS to the embedded server")

    def dns_server(self, *, upstreams: Sequence[str] | None = None) -> DnsServer:
        """The embedded DNS server of this store, ready to ``start()`` or ``run()``."""
        from berth.network.dns import DnsServer
        from berth.network.records import StoreRecords

        return DnsServer(StoreRecords(self.db.path), upstreams=upstreams,
                         host_resolv_conf=self.host_resolv_conf, on_listen=self.set_dns_port)

    # -- maintenance ----------------------------------------------------------------------------

    def cleanup_stale(self, live: Collection[str] | Callable[[str], bool] | None = None
                      ) -> builtins.list[str]:
        """Remove what killed berth processes left behind; returns what was removed.

        ``live`` says which containers still need their network (ids, or a predicate); by
        default every container the store still has. Removes: networks of other containers,
        namespace files without a container, veths and bridges named like this store's that
        the database does not know, and rules for ports nobody holds (the table is rendered
        again from the database).
        """
        is_live = self._liveness(live)
        removed: builtins.list[str] = [f"link {name}" for name in
                                       self.sweep_released(force=True)]
        for sandbox in state.list_sandboxes(self.db):
            if not is_live(sandbox.container_id):
                self.teardown_container(sandbox.container_id, wait=True)
                removed.append(f"network of container {sandbox.container_id[:12]}")
        known_sandboxes = {s.container_id for s in state.list_sandboxes(self.db)}
        if os.path.isdir(self.netns_dir):
            for entry in os.listdir(self.netns_dir):
                if entry not in known_sandboxes:
                    netns.remove(os.path.join(self.netns_dir, entry))
                    removed.append(f"namespace {entry[:12]}")
        known_links = state.host_ifnames(self.db) | state.bridge_names(self.db)
        pattern = self._bridge_pattern()
        stale = [link.name for link in self.rtnl.links()
                 if link.name not in known_links
                 and (link.name.startswith(self.veth_prefix) or pattern.match(link.name))]
        bridge.delete_links(self.rtnl, stale)
        removed += [f"link {name}" for name in stale]
        self.refresh_firewall()
        return removed

    def _liveness(self, live: Collection[str] | Callable[[str], bool] | None
                  ) -> Callable[[str], bool]:
        if callable(live):
            return live
        if live is not None:
            ids = set(live)
            return lambda cid: cid in ids

        def in_store(cid: str) -> bool:
            try:
                row = self.db.execute("SELECT 1 FROM containers WHERE id=?", (cid,)).fetchone()
            except Exception:
                return True  # no containers table: keep everything
            return row is not None

        return in_store

    def reset(self) -> None:
        """Remove everything this store has on the host: container networks, bridges, the
        whole nft table (the user's ``berth-user`` chain too) and the network rows. For tests
        and for a full ``system reset``; the predefined networks come back on next use."""
        for sandbox in state.list_sandboxes(self.db):
            self.teardown_container(sandbox.container_id, wait=True)
        bridges = sorted(state.bridge_names(self.db))
        bridges += [link.name for link in self.rtnl.links()
                    if self._bridge_pattern().match(link.name) and link.name not in bridges]
        veths = [link.name for link in self.rtnl.links()
                 if link.name.startswith(self.veth_prefix)]
        bridge.delete_links(self.rtnl, veths + bridges)
        if os.path.isdir(self.netns_dir):
            for entry in os.listdir(self.netns_dir):
                netns.remove(os.path.join(self.netns_dir, entry))
        with self.db.write() as conn:
            conn.execute("DELETE FROM net_sandboxes")
            conn.execute("DELETE FROM net_released")
            conn.execute("DELETE FROM net_networks")
            state.set_value(conn, "dns_port", "")
            state.bump_version(conn)
            firewall.delete_table(self.table)


def _mtu(options: dict[str, str]) -> int | None:
    for key in _MTU_OPTIONS:
        if key in options:
            try:
                mtu = int(options[key])
            except ValueError:
                raise InvalidArgument(f"invalid MTU {options[key]!r} in option {key}") from None
            if not 68 <= mtu <= 65535:
                raise InvalidArgument(f"invalid MTU {mtu} in option {key}: use 68 to 65535")
            return mtu
    return None


