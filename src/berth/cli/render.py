"""Printing lists and objects the way the docker CLI does: tables, ``--format``, JSON."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any


def write(text: str) -> None:
    sys.stdout.write(text)


def format_rows(
    rows: Sequence[Mapping[str, Any]], fmt: str, *, default_table: str, headers: Mapping[str, str]
) -> str:
    """Render list rows for ``--format``: "" or "table" (default columns), "table TEMPLATE",
    "json" (one JSON object per line), or a plain Go template (one line per row)."""
    from berth.cli import gotemplate

    fmt = fmt.strip() if fmt else ""
    if fmt in ("", "table"):
        fmt = default_table
    return gotemplate.format_table(fmt, list(rows), dict(headers))


def format_objects(objects: Sequence[Any], fmt: str) -> str:
    """``inspect``: a JSON array (4-space indent, as docker), or a template per object."""
    from berth.cli import gotemplate

    if not fmt or fmt == "json":
        import json

        return json.dumps(list(objects), indent=4) + "\n"
    return "".join(gotemplate.render(fmt, obj) + "\n" for obj in objects)


def inspect_each(names: Sequence[str], lookup: Callable[[str], Any], fmt: str) -> int:
    """docker's ``inspect`` of several objects: what was found is printed (JSON or the
    template), each name not found is one error line; exit 1 if any was missing."""
    from berth.errors import BerthError

    found: list[Any] = []
    errors: list[BerthError] = []
    for name in names:
        try:
            found.append(lookup(name))
        except BerthError as missing:
            errors.append(missing)
    if found or not errors:
        write(format_objects(found, fmt))
    for failure in errors:
        sys.stderr.write(f"Error: {failure}\n")
    return 1 if errors else 0


def act_on_each(names: Sequence[str], action: Callable[[str], object]) -> int:
    """docker's multi-object commands (``rm a b c``): each name acted on and echoed, each
    failure one line; exit 1 if any failed."""
    from berth.errors import BerthError

    failed = False
    for name in names:
        try:
            action(name)
            write(f"{name}\n")
        except BerthError as refused:
            sys.stderr.write(f"Error response from daemon: {refused}\n")
            failed = True
    return 1 if failed else 0
