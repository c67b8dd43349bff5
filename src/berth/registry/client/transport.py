"""HTTP clients for registries: TLS, certificates, timeouts, retries, and network errors in words.

TLS is verified against the system's CAs plus, per registry, the files of
``/etc/containers/certs.d/<host[:port]>/`` and ``/etc/docker/certs.d/<host[:port]>/`` (Docker's
layout: ``*.crt`` are CA certificates, ``*.cert`` with ``*.key`` a client certificate). An
insecure registry's certificate is not verified, and plain HTTP is tried when TLS fails.
"""

from __future__ import annotations

import email.utils
import glob
import os
import ssl
import threading
import time

import httpx

from berth.registry.client.options import (
    CERTS_DIRS_ENV,
    DEFAULT_CERTS_DIRS,
    USER_AGENT,
    ClientOptions,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0

_schemes: dict[str, str] = {}  # host -> "https" | "http", learnt by probing, per process
_schemes_lock = threading.Lock()


def certs_dirs(options: ClientOptions) -> tuple[str, ...]:
    if options.certs_dirs is not None:
        return options.certs_dirs
    configured = os.environ.get(CERTS_DIRS_ENV)
    if configured is not None:
        return tuple(d for d in configured.split(":") if d)
    return DEFAULT_CERTS_DIRS


def ssl_context(host: str, options: ClientOptions, *, verify: bool) -> ssl.SSLContext:
    """A client TLS context for ``host`` (``host[:port]``) with its certs.d files."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for directory in certs_dirs(options):
        host_dir = os.path.join(directory, host)
        if not os.path.isdir(host_dir):
            continue
        for ca in sorted(glob.glob(os.path.join(host_dir, "*.crt"))):
            if verify:
                context.load_verify_locations(cafile=ca)
        for cert in sorted(glob.glob(os.path.join(host_dir, "*.cert"))):
            key = cert[: -len(".cert")] + ".key"
            if os.path.exists(key):
                context.load_cert_chain(cert, key)
    return context


def make_client(
    host: str, options: ClientOptions, *, verify: bool, connections: int
) -> httpx.Client:
    """An HTTP/1.1 client for one registry host, sized for ``connections`` parallel requests."""
    timeout = httpx.Timeout(
        connect=options.connect_timeout,
        read=options.read_timeout,
        write=options.read_timeout,
        pool=None,
    )
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=30
    )
    return httpx.Client(
        verify=ssl_context(host, options, verify=verify),
        timeout=timeout,
        limits=limits,
        transport=options.transport,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


def known_scheme(host: str) -> str | None:
    with _schemes_lock:
        return _schemes.get(host)


def remember_scheme(host: str, scheme: str) -> None:
    with _schemes_lock:
        _schemes[host] = scheme


def forget_schemes() -> None:
    with _schemes_lock:
        _schemes.clear()


def retry_delay(attempt: int, options: ClientOptions, response: httpx.Response | None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): Retry-After, else doubling backoff."""
    if response is not None:
        after = response.headers.get("retry-after")
        if after:
            seconds: float | None = None
            if after.strip().isdigit():
                seconds = float(after.strip())
            else:
                try:
                    seconds = email.utils.parsedate_to_datetime(after).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = None
            if seconds is not None:
                return min(max(seconds, 0.0), 60.0)
    return float(min(options.backoff * (2**attempt), MAX_BACKOFF))


def is_tls_mismatch(exc: BaseException) -> bool:
    """True when a TLS handshake met a server that speaks plain HTTP."""
    text = _chain_text(exc).lower()
    return any(
        marker in text
        for marker in (
            "wrong version number",
            "record layer failure",
            "packet length too long",
            "unknown protocol",
            "http request",
            "unexpected eof while reading",
        )
    )


def is_tls_error(exc: BaseException) -> bool:
    text = _chain_text(exc)
    return "SSL" in text or "TLS" in text or "certificate" in text.lower()


def describe(exc: BaseException) -> str:
    """A network failure in a few words: "connection refused", "TLS certificate not trusted"."""
    text = _chain_text(exc)
    lower = text.lower()
    if "refused" in lower:
        return "connection refused"
    if "certificate verify failed" in lower or "certificate_verify_failed" in lower:
        detail = text.split("certificate verify failed:", 1)[-1].split(")", 1)[0].strip()
        return "TLS certificate not trusted" + (f" ({detail})" if detail and detail != text else "")
    if is_tls_mismatch(exc):
        return "the registry does not speak HTTPS"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return "timed out waiting for the registry"
    if "name or service not known" in lower or "nodename nor servname" in lower or (
        "temporary failure in name resolution" in lower
    ):
        return "host name not found"
    if "network is unreachable" in lower or "no route to host" in lower:
        return "network unreachable"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "the connection was closed unexpectedly"
    return text.strip() or type(exc).__name__


def _chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(p for p in parts if p)
