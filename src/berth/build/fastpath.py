"""The fully cached rebuild: proving nothing changed without parsing the Dockerfile.

A build that could be repeated from its cache records, at its end, what its result depended
on (:func:`record_build`): the Dockerfile text and options (hashed into the record's key),
each base or ``--from`` image's name and the image it resolved to, and the ``lstat`` of every
context entry the build looked at (the sources of COPY/ADD and ``RUN --mount=type=bind``, the
directories on their way, the ignore files, present or absent). :func:`replay` checks all of
that with a few SQLite queries and ``lstat`` calls; when everything matches, the image the
record names (still in the store, with its tags) is the answer and nothing else runs.

Why ``lstat`` suffices: a change to a file's content changes its ctime (which no user can
set back); a file added, removed or renamed changes its directory's mtime and ctime. Entries
changed within two seconds of the record (a racy timestamp) make the build not recordable,
as the context's digest cache does. Builds that must look outside (``--pull``, ``--no-cache``,
``ADD`` of a URL without ``--checksum``, a context sent as a tar on stdin) are never recorded.

This module imports nothing heavier than ``sqlite3`` (JSON goes through :mod:`berth.jsonio`):
it runs before the Dockerfile frontend is even imported, which is what makes a fully cached
``berth build`` cost little more than the interpreter's start.
"""

from __future__ import annotations

import os
import sqlite3
import time

from berth import jsonio
from berth.oci.digest import hex_digest

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds here
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["RACY_WINDOW_NS", "record_build", "record_key", "replay"]

RACY_WINDOW_NS = 2_000_000_000
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS build_records (key TEXT PRIMARY KEY, image_id TEXT NOT NULL, "
    "data TEXT NOT NULL, used REAL NOT NULL)"
)


def record_key(
    *,
    dockerfile: str,
    dockerfile_name: str,
    context_root: str | None,
    build_args: Mapping[str, str],
    target: str | None,
    labels: Mapping[str, str],
    network: str,
    platform: str | None,
) -> str:
    text = jsonio.dumps(
        [
            dockerfile,
            dockerfile_name,
            context_root,
            sorted(build_args.items()),
            target or "",
            sorted(labels.items()),
            network,
            platform or "",
        ]
    )
    return hex_digest("sha256", text.encode("utf-8", "surrogateescape"))


def stat_fields(st: os.stat_result) -> list[int]:
    return [
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_mode,
        st.st_uid,
        st.st_gid,
        st.st_nlink,
    ]


def record_build(
    db_path: str,
    key: str,
    *,
    image_id: str,
    bases: Sequence[tuple[str, str, str]],
    stats: Mapping[str, list[int] | None],
    tags: Mapping[str, str],
    vertices: Sequence[str],
    cache_keys: Sequence[str],
    warnings: Sequence[str] = (),
) -> bool:
    """Remember a finished build; False (nothing written) when a timestamp is racy.

    ``bases``: (name as written, how to check it: ``tag:<normalized>`` or ``id:<image id>``,
    the image id it was); ``stats``: host path -> :func:`stat_fields` (None: was absent);
    ``tags``: each ``-t`` as given -> its normalized name.
    """
    now = time.time_ns()
    for fields in stats.values():
        if fields is not None and now - max(fields[3], fields[4]) < RACY_WINDOW_NS:
            return False
    data = jsonio.dumps(
        {
            "bases": [list(b) for b in bases],
            "stats": stats,
            "tags": dict(tags),
            "vertices": list(vertices),
            "cache_keys": list(cache_keys),
            "warnings": list(warnings),
        }
    )
    conn = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    try:
        conn.execute(_SCHEMA)
        conn.execute(
            "INSERT OR REPLACE INTO build_records (key, image_id, data, used) VALUES (?, ?, ?, ?)",
            (key, image_id, data, time.time()),
        )
    finally:
        conn.close()
    return True


def replay(db_path: str, key: str, tags: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(image id, output lines)`` if the recorded build ``key`` still holds, else None.

    The lines are what the build prints (its warnings again, every step ``CACHED``), without
    their newlines."""
    if not os.path.exists(db_path):
        return None
    try:
        conn = sqlite3.connect(
            f"file:{db_path}?mode=rw", uri=True, timeout=60, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        return _replay(conn, key, tags)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _replay(
    conn: sqlite3.Connection, key: str, tags: Sequence[str]
) -> tuple[str, list[str]] | None:
    try:
        row = conn.execute(
            "SELECT image_id, data FROM build_records WHERE key = ?", (key,)
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # no table yet
    if row is None:
        return None
    image_id, data = row[0], jsonio.loads(row[1])
    if not _files_unchanged(data["stats"]):
        return None
    conn.execute("BEGIN")
    try:
        if not _bases_unchanged(conn, data["bases"]):
            return None
        if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
            return None
        known: Mapping[str, str] = data["tags"]
        for tag in tags:
            name = known.get(tag)
            if name is None:
                return None
            found = conn.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
            if found is None or found[0] != image_id:
                return None
    finally:
        conn.execute("COMMIT")
    _touch(conn, key, data["cache_keys"])
    warnings = [f"WARNING: {text}" for text in data.get("warnings", ())]
    return image_id, warnings + _output(image_id, data["vertices"], [known[t] for t in tags])


def _output(image_id: str, vertices: Sequence[str], names: Sequence[str]) -> list[str]:
    lines: list[str] = []
    number = 0
    for number, vertex in enumerate(vertices, 1):
        lines += [f"#{number} {vertex}", f"#{number} CACHED", ""]
    n = number + 1
    lines += [
        f"#{n} exporting to image",
        f"#{n} exporting layers done",
        f"#{n} writing image {image_id} done",
    ]
    lines += [f"#{n} naming to {name} done" for name in names]
    lines += [f"#{n} DONE 0.0s", ""]
    return lines


def _files_unchanged(stats: Mapping[str, list[int] | None]) -> bool:
    for path, fields in stats.items():
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if fields is None:
                continue
            return False
        except OSError:
            return False
        if fields is None or stat_fields(st) != fields:
            return False
    return True


def _bases_unchanged(conn: sqlite3.Connection, bases: Sequence[Any]) -> bool:
    for _name, check, image_id in bases:
        kind, _, value = check.partition(":")
        if kind == "tag":
            row = conn.execute("SELECT image_id FROM tags WHERE name = ?", (value,)).fetchone()
            if row is None or row[0] != image_id:
                return False
        elif kind == "id":
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                return False
        else:
            return False
    return True


def _touch(conn: sqlite3.Connection, key: str, cache_keys: Sequence[str]) -> None:
    now = time.time()
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE build_records SET used = ? WHERE key = ?", (now, key))
        conn.executemany(
            "UPDATE build_cache SET last_used = ? WHERE key = ?", [(now, k) for k in cache_keys]
        )
        conn.execute("COMMIT")
    except sqlite3.Error:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# -- the front ends' side -----------------------------------------------------------------------


def locate_dockerfile(context: str, dockerfile: str | None) -> str:
    """The Dockerfile ``docker build`` reads: ``-f`` (relative to the current directory), else
    ``CONTEXT/Dockerfile``, else ``CONTEXT/dockerfile``."""
    if dockerfile:
        return os.path.abspath(dockerfile)
    default = os.path.join(context, "Dockerfile")
    if not os.path.exists(default):
        lower = os.path.join(context, "dockerfile")
        if os.path.exists(lower):
            return lower
    return default


def attempt(
    root: str,
    *,
    context: str,
    dockerfile: str | None,
    build_args: Mapping[str, str],
    target: str | None,
    labels: Mapping[str, str],
    network: str,
    platform: str | None,
    tags: Sequence[str],
) -> tuple[str, list[str]] | None:
    """The fast path of ``berth build CONTEXT``: ``(image id, step names)`` or None.

    Anything unusual (stdin, a missing file, no record) is None: the full build then runs and
    reports problems properly.
    """
    if context == "-" or dockerfile == "-" or not os.path.isdir(context):
        return None
    path = locate_dockerfile(context, dockerfile)
    try:
        with open(path, "rb") as f:
            text = f.read(16 << 20).decode("utf-8", "surrogateescape")
    except OSError:
        return None
    key = record_key(
        dockerfile=text,
        dockerfile_name=os.path.basename(path),
        context_root=os.path.realpath(context),
        build_args=build_args,
        target=target,
        labels=labels,
        network=network,
        platform=platform,
    )
    return replay(os.path.join(os.path.abspath(root), "berth.db"), key, tags)
