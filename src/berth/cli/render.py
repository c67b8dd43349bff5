"""Printing lists and objects the way the docker CLI does: tables, ``--format``, JSON."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
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
