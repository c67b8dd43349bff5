"""Handlers of ``berth registry serve`` and ``berth registry gc``."""

from __future__ import annotations

import sys

from berth.cli.flags import Invocation


def serve(inv: Invocation) -> int:
    from berth.registry.server import serve as run_server
    from berth.registry.server.config import ServerConfig

    config = ServerConfig(
        addr=inv.get_str("addr"),
        storage=inv.get_str("storage"),
        htpasswd=inv.get_str("htpasswd") or None,
        tls_cert=inv.get_str("tls_cert") or None,
        tls_key=inv.get_str("tls_key") or None,
        token=inv.get_bool("token"),
        token_realm=inv.get_str("token_realm") or None,
        token_service=inv.get_str("token_service"),
        acl=inv.get_str("acl") or None,
        read_only=inv.get_bool("read_only"),
        workers=inv.get_int("workers"),
        access_log=not inv.get_bool("quiet"),
    )

    def ready(url: str) -> None:
        sys.stderr.write(f"berth registry listening on {url} (storage {config.storage})\n")
        sys.stderr.flush()

    run_server(config, ready=ready)
    return 0


def gc(inv: Invocation) -> int:
    from berth.registry.server.gc import collect

    result = collect(
        inv.args[0], dry_run=inv.get_bool("dry_run"), grace_seconds=inv.get_int("grace")
    )
    sys.stdout.write(result.summary() + "\n")
    return 0
