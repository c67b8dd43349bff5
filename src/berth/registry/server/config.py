"""How a berth registry server is configured: one typed options object, no globals.

The CLI (``berth registry serve``) fills a :class:`ServerConfig` from its flags; tests build one
directly. Authentication is on when any of ``htpasswd``, ``token`` or ``acl`` is set:

- ``htpasswd`` alone: HTTP basic auth against bcrypt entries (``htpasswd -B``).
- ``token=True``: Docker's bearer-token flow. The registry answers 401 with
  ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; the realm is ``token_realm``, or
  this server's own ``/token`` endpoint when it is None, so one server can be both registry and
  token issuer. Tokens are HMAC-SHA256 signed JWTs; the key lives in ``token_key`` (created with
  a random value when missing), which a separate issuer must share.
- ``acl``: a JSON or YAML file of per-repository rights (see :mod:`.auth`); without one every
  authenticated account may pull, push and delete everywhere and anonymous requests may nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from berth.errors import UsageError

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_STORAGE = "/var/lib/berth/registry"
DEFAULT_HOST = "127.0.0.1"


@dataclass(kw_only=True)
class ServerConfig:
    addr: str = DEFAULT_ADDR
    storage: str = DEFAULT_STORAGE
    htpasswd: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # bearer tokens (Docker's token flow)
    token: bool = False
    token_realm: str | None = None
    token_service: str = "berth-registry"
    token_issuer: str = "berth-registry"
    token_key: str | None = None
    token_ttl: int = 300
    acl: str | None = None
    # behaviour
    read_only: bool = False
    delete_enabled: bool = True
    workers: int = 1
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_concurrent_requests: int = 0  # 0: no limit; above it requests get TOOMANYREQUESTS
    upload_expiry_seconds: int = 7 * 24 * 3600  # unfinished uploads older than this are purged
    access_log: bool = True

    @property
    def auth_enabled(self) -> bool:
        return bool(self.htpasswd or self.token or self.acl)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host_port(self) -> tuple[str, int]:
        """``addr`` split: an empty host means 127.0.0.1, never every interface."""
        return parse_addr(self.addr)

    @property
    def token_key_path(self) -> str:
        return self.token_key or os.path.join(self.storage, "_auth", "token.key")

    def validate(self) -> None:
        """Raise :class:`UsageError` for options that cannot work together."""
        parse_addr(self.addr)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("--tls-cert and --tls-key must be given together")
        for label, path in (
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
            ("--htpasswd", self.htpasswd),
            ("--acl", self.acl),
        ):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"{label} {path}: no such file")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers}")
        if self.token_ttl < 1:
            raise UsageError(f"the token lifetime must be positive, not {self.token_ttl}")
        if self.max_manifest_bytes < 1024:
            raise UsageError("the manifest size limit must be at least 1024 bytes")


def parse_addr(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:5000"``, ``"[::1]:5000"``, ``":5000"`` (127.0.0.1), ``"localhost:0"``."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(
            f"invalid address {addr!r}", hint="expected HOST:PORT, e.g. 127.0.0.1:5000"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or DEFAULT_HOST, int(port_text)
