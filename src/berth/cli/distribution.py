"""Handlers of pull, push, login, logout, search and manifest inspect."""

from __future__ import annotations

import sys

from berth.cli.flags import Invocation
from berth.cli.render import write
from berth.engine import Engine
from berth.errors import InvalidArgument, UsageError


def pull(inv: Invocation) -> int:
    from berth.cli.progress import ProgressRenderer
    from berth.oci.reference import parse_normalized
    from berth.registry.client import pull as pull_image

    name = inv.args[0]
    quiet = inv.get_bool("quiet")
    all_tags = inv.get_bool("all_tags")
    ref = parse_normalized(name)
    if ref.is_name_only and not all_tags and not quiet:
        write("Using default tag: latest\n")
    renderer = ProgressRenderer(quiet=quiet)
    results = pull_image(
        Engine().store,
        name,
        platform=inv.get_str("platform") or None,
        all_tags=all_tags,
        progress=renderer,
    )
    renderer.close()
    for result in results:  # the Digest/Status lines came with the progress events
        write(str(result.reference) + "\n")
    return 0


def push(inv: Invocation) -> int:
    from berth.cli.progress import ProgressRenderer
    from berth.registry.client import push as push_image

    quiet = inv.get_bool("quiet")
    renderer = ProgressRenderer(quiet=quiet)
    result = push_image(
        Engine().store, inv.args[0], all_tags=inv.get_bool("all_tags"), progress=renderer
    )
    renderer.close()
    if quiet:
        write(f"{result.digest}\n")
    return 0


def login(inv: Invocation) -> int:
    from berth.registry.client import login as registry_login

    server = inv.args[0] if inv.args else None
    username = inv.get_str("username")
    password = inv.get_str("password")
    if inv.get_bool("password_stdin"):
        if password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        sys.stderr.write(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
        )
    if not username:
        if not sys.stdin.isatty():
            raise UsageError("Error: Cannot perform an interactive login from a non TTY device")
        username = input("Username: ").strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    write(registry_login(server, username, password) + "\n")
    return 0


def logout(inv: Invocation) -> int:
    from berth.registry.client import logout as registry_logout

    write(registry_logout(inv.args[0] if inv.args else None) + "\n")
    return 0


def search(inv: Invocation) -> int:
    from berth.registry.client import format_table
    from berth.registry.client import search as registry_search

    results = registry_search(
        inv.args[0], limit=inv.get_int("limit"), filters=inv.get_list("filter")
    )
    fmt = inv.get_str("format")
    if fmt:
        from berth.cli.render import format_rows

        rows = [
            {
                "Name": r.name,
                "Description": r.description,
                "StarCount": str(r.star_count),
                "IsOfficial": "[OK]" if r.is_official else "",
            }
            for r in results
        ]
        write(
            format_rows(
                rows,
                fmt,
                default_table="",
                headers={
                    "Name": "NAME",
                    "Description": "DESCRIPTION",
                    "StarCount": "STARS",
                    "IsOfficial": "OFFICIAL",
                },
            )
        )
        return 0
    write(format_table(results, no_trunc=inv.get_bool("no_trunc")))
    return 0


def manifest_inspect(inv: Invocation) -> int:
    from berth.registry.client import format_manifest, inspect_manifest

    name = inv.args[-1]
    write(format_manifest(inspect_manifest(name)) + "\n")
    return 0
