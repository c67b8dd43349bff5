"""``python -m berth.registry.server serve|gc ...``: the server without the berth CLI.

Tests and benchmarks start the registry this way (the CLI's ``berth registry serve`` calls the
same :func:`berth.registry.server.serve`). ``serve`` prints the base URL on stdout once it
listens, so a caller that asked for port 0 learns the port.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from berth.errors import BerthError
from berth.registry.server import ServerConfig, serve
from berth.registry.server.config import DEFAULT_ADDR, DEFAULT_STORAGE
from berth.registry.server.gc import DEFAULT_GRACE_SECONDS, collect


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m berth.registry.server")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve a registry")
    run.add_argument("--addr", default=DEFAULT_ADDR)
    run.add_argument("--storage", default=DEFAULT_STORAGE)
    run.add_argument("--htpasswd")
    run.add_argument("--tls-cert")
    run.add_argument("--tls-key")
    run.add_argument("--token", action="store_true", help="bearer-token auth (Docker's flow)")
    run.add_argument("--token-realm")
    run.add_argument("--token-service", default="berth-registry")
    run.add_argument("--token-issuer", default="berth-registry")
    run.add_argument("--token-key")
    run.add_argument("--token-ttl", type=int, default=300)
    run.add_argument("--acl")
    run.add_argument("--read-only", action="store_true")
    run.add_argument("--no-delete", action="store_true")
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--max-concurrent-requests", type=int, default=0)
    run.add_argument("--no-access-log", action="store_true")
    gc = commands.add_parser("gc", help="garbage-collect a registry's storage")
    gc.add_argument("storage")
    gc.add_argument("--dry-run", action="store_true")
    gc.add_argument("--grace", type=float, default=DEFAULT_GRACE_SECONDS,
                    help="keep unreferenced blobs written less than this many seconds ago")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "gc":
            result = collect(args.storage, dry_run=args.dry_run, grace_seconds=args.grace)
            print(json.dumps(asdict(result)))
            return 0
        config = ServerConfig(
            addr=args.addr,
            storage=args.storage,
            htpasswd=args.htpasswd,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            token=args.token,
            token_realm=args.token_realm,
            token_service=args.token_service,
            token_issuer=args.token_issuer,
            token_key=args.token_key,
            token_ttl=args.token_ttl,
            acl=args.acl,
            read_only=args.read_only,
            delete_enabled=not args.no_delete,
            workers=args.workers,
            max_concurrent_requests=args.max_concurrent_requests,
            access_log=not args.no_access_log,
        )
        serve(config, ready=lambda url: print(url, flush=True))
    except BerthError as exc:
        print(f"berth registry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
