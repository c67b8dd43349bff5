"""What the network package hands out: networks, endpoints, published ports, a container's
network as the runtime and the engine need it."""

from __future__ import annotations

import os

from berth.values import FrozenValue, init_fields

BRIDGE = "bridge"  # driver of bridge networks, and the name of the default network
HOST = "host"
NONE = "none"
NULL_DRIVER = "null"  # Docker's driver name of the "none" network


class Network(FrozenValue):
    __slots__ = (
        "bridge",
        "created",
        "driver",
        "gateway",
        "id",
        "internal",
        "is_default",
        "labels",
        "name",
        "options",
        "subnet",
    )
    id: str
    name: str
    driver: str  # "bridge", "host" or "null"
    bridge: str | None  # the Linux bridge (None for host/none)
    subnet: str | None  # "172.18.0.0/16"
    gateway: str | None  # "172.18.0.1"
    internal: bool
    is_default: bool  # the default bridge network ("bridge"): no name resolution, like Docker's
    options: dict[str, str]
    labels: dict[str, str]
    created: float

    def __init__(
        self,
        id: str,
        name: str,
        driver: str,
        bridge: str | None,
        subnet: str | None,
        gateway: str | None,
        internal: bool,
        is_default: bool,
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        created: float = 0.0,
    ) -> None:
        init_fields(
            self,
            id=id,
            name=name,
            driver=driver,
            bridge=bridge,
            subnet=subnet,
            gateway=gateway,
            internal=internal,
            is_default=is_default,
            options={} if options is None else options,
            labels={} if labels is None else labels,
            created=created,
        )

    @property
    def predefined(self) -> bool:
        """bridge, host and none: made by berth, never removed."""
        return self.is_default or self.driver in (HOST, NULL_DRIVER)

    @property
    def has_dns(self) -> bool:
        """User-defined bridge networks resolve container names (Docker's rule)."""
        return self.driver == BRIDGE and not self.is_default


class EndpointRequest(FrozenValue):
    """One ``--network`` of ``berth run``: a network name or id (or ``none``, ``host``,
    ``container:ID``), with its ``--network-alias`` values and ``--ip``."""

    __slots__ = ("aliases", "ip", "network")
    network: str
    aliases: tuple[str, ...]
    ip: str | None

    def __init__(
        self,
        network: str,
        aliases: tuple[str, ...] = (),
        ip: str | None = None,
    ) -> None:
        init_fields(
            self,
            network=network,
            aliases=aliases,
            ip=ip,
        )


class Endpoint(FrozenValue):
    __slots__ = (
        "aliases",
        "container_id",
        "gateway",
        "host_ifname",
        "ifname",
        "ip",
        "mac",
        "network_id",
        "network_name",
        "prefixlen",
    )
    container_id: str
    network_id: str
    network_name: str
    ifname: str  # inside the container: eth0, eth1, ...
    host_ifname: str  # the host end of the veth pair
    ip: str
    prefixlen: int
    gateway: str | None
    mac: str
    aliases: tuple[str, ...]

    def __init__(
        self,
        container_id: str,
        network_id: str,
        network_name: str,
        ifname: str,
        host_ifname: str,
        ip: str,
        prefixlen: int,
        gateway: str | None,
        mac: str,
        aliases: tuple[str, ...] = (),
    ) -> None:
        init_fields(
            self,
            container_id=container_id,
            network_id=network_id,
            network_name=network_name,
            ifname=ifname,
            host_ifname=host_ifname,
            ip=ip,
            prefixlen=prefixlen,
            gateway=gateway,
            mac=mac,
            aliases=aliases,
        )


class PortMapping(FrozenValue):
    """One published port. ``host_ip`` "" means every host address (Docker's 0.0.0.0).
    Before setup, ``host_port`` 0 means "pick a free one", and ``host_port_end`` (when set)
    means "pick a free one from host_port to host_port_end"; after setup both are exact."""

    __slots__ = ("container_port", "host_ip", "host_port", "host_port_end", "protocol")
    container_port: int
    protocol: str  # "tcp", "udp" or "sctp"
    host_ip: str
    host_port: int
    host_port_end: int

    def __init__(
        self,
        container_port: int,
        protocol: str = "tcp",
        host_ip: str = "",
        host_port: int = 0,
        host_port_end: int = 0,
    ) -> None:
        init_fields(
            self,
            container_port=container_port,
            protocol=protocol,
            host_ip=host_ip,
            host_port=host_port,
            host_port_end=host_port_end,
        )

    def __str__(self) -> str:
        host = self.host_ip or "0.0.0.0"
        return f"{self.container_port}/{self.protocol} -> {host}:{self.host_port}"


class DnsSettings(FrozenValue):
    """``--dns``, ``--dns-search``, ``--dns-option`` of one container."""

    __slots__ = ("options", "search", "servers")
    servers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]

    def __init__(
        self,
        servers: tuple[str, ...] = (),
        search: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
    ) -> None:
        init_fields(
            self,
            servers=servers,
            search=search,
            options=options,
        )


class ContainerNetwork(FrozenValue):
    """Everything the engine needs to start a container on its networks.

    ``netns_path`` goes into the OCI spec as ``linux.namespaces[{"type": "network", "path":
    netns_path}]``; it is None for ``--network host`` (then the spec has no network namespace
    at all). ``hosts``, ``hostname`` and ``resolv_conf`` are the contents of the container's
    ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (see :meth:`write_files`).
    """

    __slots__ = (
        "container_id",
        "endpoints",
        "hostname",
        "hostname_file",
        "hosts",
        "mode",
        "netns_path",
        "ports",
        "resolv_conf",
        "warnings",
    )
    container_id: str
    mode: str  # "bridge", "none", "host" or "container"
    netns_path: str | None
    hostname: str
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortMapping, ...]
    hosts: str
    hostname_file: str
    resolv_conf: str
    warnings: tuple[str, ...]

    def __init__(
        self,
        container_id: str,
        mode: str,
        netns_path: str | None,
        hostname: str,
        endpoints: tuple[Endpoint, ...] = (),
        ports: tuple[PortMapping, ...] = (),
        hosts: str = "",
        hostname_file: str = "",
        resolv_conf: str = "",
        warnings: tuple[str, ...] = (),
    ) -> None:
        init_fields(
            self,
            container_id=container_id,
            mode=mode,
            netns_path=netns_path,
            hostname=hostname,
            endpoints=endpoints,
            ports=ports,
            hosts=hosts,
            hostname_file=hostname_file,
            resolv_conf=resolv_conf,
            warnings=warnings,
        )

    @property
    def ip(self) -> str | None:
        """The first endpoint's address (``NetworkSettings.IPAddress`` in docker inspect)."""
        return self.endpoints[0].ip if self.endpoints else None

    def write_files(self, directory: str) -> dict[str, str]:
        """Write hosts, hostname and resolv.conf into ``directory`` (each written to a temp file
        and renamed); returns {"/etc/hosts": path, ...} for bind mounts into the container."""
        os.makedirs(directory, exist_ok=True)
        out = {}
        for target, name, content in (
            ("/etc/hosts", "hosts", self.hosts),
            ("/etc/hostname", "hostname", self.hostname_file),
            ("/etc/resolv.conf", "resolv.conf", self.resolv_conf),
        ):
            path = os.path.join(directory, name)
            tmp = f"{path}.berth-tmp"
            with open(tmp, "w") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            out[target] = path
        return out
