"""berth.network: bridge networks, published ports, and name resolution between containers.

The engine uses :class:`NetworkManager`; the supervisor hosts :class:`DnsServer` (made by
``NetworkManager.dns_server()``). The rest of the package is reached through these.
"""

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
