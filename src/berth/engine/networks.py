"""``engine.networks``: docker-py's ``client.networks``, over berth's NetworkManager."""

from __future__ import annotations

import builtins
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from berth.errors import ContainerStateConflict

if TYPE_CHECKING:
    from berth.engine import Engine
    from berth.network import Network, NetworkManager

NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")


class NetworkObject:
    def __init__(self, collection: NetworkCollection, network: Network) -> None:
        self.collection = collection
        self.network = network

    def __repr__(self) -> str:
        return f"<Network: {self.short_id}>"

    @property
    def id(self) -> str:
        return self.network.id

    @property
    def short_id(self) -> str:
        return self.network.id[:12]

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def attrs(self) -> dict[str, Any]:
        return self.collection.inspect(self.network)

    def connect(
        self,
        container: str,
        aliases: builtins.list[str] | None = None,
        ipv4_address: str | None = None,
    ) -> None:
        self.collection.connect(self.name, container, aliases or [], ipv4_address)

    def disconnect(self, container: str, force: bool = False) -> None:
        self.collection.disconnect(self.name, container)

    def remove(self) -> None:
        self.collection.manager.remove(self.name)


class NetworkCollection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @cached_property
    def manager(self) -> NetworkManager:
        from berth.network import NetworkManager

        return NetworkManager(self.engine.paths, self.engine.store.db)

    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        internal: bool = False,
        subnet: str | None = None,
        gateway: str | None = None,
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> NetworkObject:
        network = self.manager.create(
            name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            internal=internal,
            options=options,
            labels=labels,
        )
        _event(self, "create", network.id, name=network.name, type=network.driver)
        return NetworkObject(self, network)

    def get(self, name_or_id: str) -> NetworkObject:
        return NetworkObject(self, self.manager.get(name_or_id))

    def list(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[NetworkObject]:
        from berth.filters import Filters

        f = Filters(filters or {})
        f.validate(NETWORK_FILTERS)
        out = []
        for network in self.manager.list():
            predefined = network.predefined
            if not f.fuzzy_match("id", network.id) or not f.match("name", network.name):
                continue
            if not f.exact_match("driver", network.driver):
                continue
            if f.contains("type") and ("builtin" if predefined else "custom") not in f.get("type"):
                continue
            if not f.match_kv_list("label", network.labels):
                continue
            if f.contains("dangling"):
                dangling = not self.manager.endpoints(network.id) and not predefined
                if dangling != f.get_bool("dangling", False):
                    continue
            out.append(NetworkObject(self, network))
        return out

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> dict[str, Any]:
        from berth.filters import Filters

        f = Filters(filters or {})
        f.validate(("label", "label!", "until"))
        removed = self.manager.prune(keep=lambda n: not f.match_labels(n.labels))
        return {"NetworksDeleted": removed or None}

    def connect(
        self, network: str, container: str, aliases: builtins.list[str], ip: str | None
    ) -> None:
        record = self.engine.containers.get(container).record
        if not record.running:
            raise ContainerStateConflict(
                f"container {record.short_id} is not running: berth connects running "
                "containers only",
                hint="start it first, or give --network at run time",
            )
        self.manager.connect(record.id, network, aliases, ip)
        net = self.manager.get(network)
        _event(self, "connect", net.id, container=record.id, name=net.name, type=net.driver)

    def disconnect(self, network: str, container: str) -> None:
        record = self.engine.containers.get(container).record
        net = self.manager.get(network)
        self.manager.disconnect(record.id, network)
        _event(self, "disconnect", net.id, container=record.id, name=net.name, type=net.driver)

    def inspect(self, network: Network) -> dict[str, Any]:
        containers = {}
        for endpoint in self.manager.endpoints(network.id):
            try:
                name = self.engine.containers.records.get(endpoint.container_id).name
            except Exception:
                name = endpoint.container_id[:12]
            containers[endpoint.container_id] = {
                "Name": name,
                "EndpointID": f"{endpoint.container_id[:12]}-{network.id[:12]}",
                "MacAddress": endpoint.mac,
                "IPv4Address": f"{endpoint.ip}/{endpoint.prefixlen}",
                "IPv6Address": "",
            }
        config = [{"Subnet": network.subnet, "Gateway": network.gateway}] if network.subnet else []
        return {
            "Name": network.name,
            "Id": network.id,
            "Created": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(network.created)),
            "Scope": "local",
            "Driver": network.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": network.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(network.options)
            | ({"com.docker.network.bridge.name": network.bridge} if network.bridge else {}),
            "Labels": dict(network.labels),
        }


def _event(networks: NetworkCollection, action: str, network_id: str, **attrs: str) -> None:
    from berth.store.events import record_event

    record_event(networks.engine.store, "network", action, network_id, attrs)
