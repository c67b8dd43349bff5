"""The store's event log: what ``berth events`` reports.

Engine operations call :func:`record_event` where they happen (a container started, an image
tagged, a network created...). Each event is one row of the ``events`` table in the store's
SQLite database, so every berth process (the CLI, the supervisor) writes to the same log and
``berth events`` in another process sees them as soon as they are committed. The table is
bounded: it keeps the last :data:`MAX_EVENTS` events.

Recording is best effort: a failure to write an event never fails the operation it
describes (a busy or read-only database is ignored). The table is created by the first
event written to a store; reading a store without it gives no events.
"""

from __future__ import annotations

# the C module (as berth.store.db): the sqlite3 package also imports datetime, about 3 ms
import _sqlite3 as sqlite3
import time

from berth import jsonio
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    from berth.store.db import Database

    class Store(Protocol):
        """Whatever holds the store's database: the Store, a NetworkManager..."""

        @property
        def db(self) -> Database: ...


__all__ = ["MAX_EVENTS", "StoredEvent", "latest_seq", "read_events", "record_event"]

MAX_EVENTS = 10_000
TRIM_EVERY = 128  # look for rows to drop once per this many events

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "time_ns INTEGER NOT NULL, "
    "type TEXT NOT NULL, "
    "action TEXT NOT NULL, "
    "actor TEXT NOT NULL, "
    "attrs TEXT NOT NULL DEFAULT '{}')"
)
_INSERT = "INSERT INTO events (time_ns, type, action, actor, attrs) VALUES (?, ?, ?, ?, ?)"


class StoredEvent:
    """One row of the log: ``seq`` orders events (it only grows), ``time_ns`` is Unix ns."""

    __slots__ = ("action", "actor", "attrs", "seq", "time_ns", "type")

    def __init__(
        self, seq: int, time_ns: int, type: str, action: str, actor: str, attrs: dict[str, str]
    ) -> None:
        self.seq = seq
        self.time_ns = time_ns
        self.type = type
        self.action = action
        self.actor = actor
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"StoredEvent({self.seq}, {self.type} {self.action} {self.actor[:12]})"


def record_event(
    store: Store,
    type: str,
    action: str,
    actor: str,
    attrs: Mapping[str, object] | None = None,
) -> None:
    """Append one event (``container start <id> {image, name}``); never raises."""
    text = jsonio.dumps({str(k): str(v) for k, v in (attrs or {}).items()})
    row = (time.time_ns(), type, action, actor, text)
    try:
        _append(store.db, row)
    except (BerthError, sqlite3.Error, OSError):  # locked, full, read-only: best effort
        pass


def _append(db: Database, row: tuple[int, str, str, str, str]) -> None:
    with db.write() as conn:
        try:
            seq = conn.execute(_INSERT, row).lastrowid
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            conn.execute(_SCHEMA)
            seq = conn.execute(_INSERT, row).lastrowid
        if seq is not None and seq % TRIM_EVERY == 0:
            conn.execute("DELETE FROM events WHERE seq <= ?", (seq - MAX_EVENTS,))


def read_events(
    store: Store,
    *,
    after_seq: int = 0,
    since_ns: int | None = None,
    until_ns: int | None = None,
    limit: int = 1000,
) -> list[StoredEvent]:
    """Events with ``seq > after_seq`` (and ``since_ns <= time_ns <= until_ns``), oldest first."""
    sql = "SELECT seq, time_ns, type, action, actor, attrs FROM events WHERE seq > ?"
    params: list[int] = [after_seq]
    if since_ns is not None:
        sql += " AND time_ns >= ?"
        params.append(since_ns)
    if until_ns is not None:
        sql += " AND time_ns <= ?"
        params.append(until_ns)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    try:
        rows = store.db.execute(sql, tuple(params)).fetchall()
    except Exception as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [StoredEvent(row[0], row[1], row[2], row[3], row[4], _attrs(row[5])) for row in rows]


def latest_seq(store: Store) -> int:
    """The ``seq`` of the newest event (0 when there is none)."""
    try:
        row = store.db.execute("SELECT MAX(seq) FROM events").fetchone()
    except Exception as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0] or 0)


def _attrs(text: str) -> dict[str, str]:
    try:
        value = jsonio.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
