"""berth.network: bridge networks, published ports, and name resolution between containers.

The engine uses :class:`NetworkManager`; the supervisor hosts :class:`DnsServer` (made by
``NetworkManager.dns_server()``). The rest of the package is reached through these. Names are
imported on first use, so ``berth run`` pays only for what it touches (the DNS server's asyncio
stays out of the CLI).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.network.dns import DnsServer
    from berth.network.manager import NetworkManager
    from berth.network.model import (
        ContainerNetwork,
        DnsSettings,
        Endpoint,
        EndpointRequest,
        Network,
        PortMapping,
    )
    from berth.network.ports import parse_publish, parse_publish_all, publish_all

_WHERE = {
    "ContainerNetwork": "model",
    "DnsServer": "dns",
    "DnsSettings": "model",
    "Endpoint": "model",
    "EndpointRequest": "model",
    "Network": "model",
    "NetworkManager": "manager",
    "PortMapping": "model",
    "parse_publish": "ports",
    "parse_publish_all": "ports",
    "publish_all": "ports",
}

__all__ = [
    "ContainerNetwork",
    "DnsServer",
    "DnsSettings",
    "Endpoint",
    "EndpointRequest",
    "Network",
    "NetworkManager",
    "PortMapping",
    "parse_publish",
    "parse_publish_all",
    "publish_all",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'berth.network' has no attribute {name!r}")
    full = f"berth.network.{module}"
    __import__(full)  # what importlib.import_module does, without importing importlib
    return getattr(sys.modules[full], name)
