"""How the registry client is configured: one typed options object, no globals."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

DEFAULT_REGISTRIES_CONF = "/etc/containers/registries.conf"
DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
REGISTRIES_CONF_ENV = "BERTH_REGISTRIES_CONF"
DAEMON_JSON_ENV = "BERTH_DAEMON_JSON"
CERTS_DIRS_ENV = "BERTH_CERTS_D"  # colon-separated list of certs.d directories
USER_AGENT = "berth/0.1 (+https://github.com/berth)"


@dataclass(kw_only=True)
class ClientOptions:
    """Everything a pull, push, login, search or manifest inspect may be told.

    Paths left as None take their environment variable (``BERTH_REGISTRIES_CONF``,
    ``BERTH_DAEMON_JSON``, ``DOCKER_CONFIG``, ``BERTH_CERTS_D``), then the system default; an
    empty string turns a file off. ``insecure`` and ``mirrors`` add to what the files say:
    ``insecure`` lists hosts (``host:port``) or CIDRs that may use plain HTTP and unverified TLS;
    ``mirrors`` maps a registry (``docker.io``) to mirror locations tried before it on pulls.
    """

    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    registries_conf: str | None = None
    daemon_json: str | None = None
    docker_config: str | None = None  # the directory holding config.json, like DOCKER_CONFIG
    certs_dirs: tuple[str, ...] | None = None
    insecure: list[str] = field(default_factory=list)
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    connect_timeout: float = 15.0
    read_timeout: float = 120.0
    retries: int = 4  # transient failures (connection errors, 429, 5xx) retried this often
    backoff: float = 0.5  # seconds before the first retry, doubled each time, at most 8 s
    upload_chunk_size: int = 0  # 0: monolithic uploads; else blobs above it go in PATCH chunks
    transport: httpx.BaseTransport | None = None  # for tests: replaces the network
