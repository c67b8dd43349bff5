"""Leases: what an import in progress is about to write, protected from garbage collection.

An import writes blobs and layers before the image that references them is recorded. Without
protection a concurrent ``rmi`` or ``prune`` could see those blobs as unreferenced and delete
them in between. So the importer first records a lease (its pid and the resources), and the
collector skips every resource held by the lease of a live process. The image row is written,
and the lease dropped, in one transaction. A lease whose process died is dead and ignored.
"""

from __future__ import annotations

import os
import time

from berth.store.db import Database

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from types import TracebackType


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a live process from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses; fields resume after ")".
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[19].decode()


_own_start: tuple[int, str | None] = (-1, None)  # (pid, its start time), once per process


def _own_start_time() -> str | None:
    """This process's start time, read once per process (a forked child reads its own: a
    fork server's worker, or a program that forks after importing berth)."""
    global _own_start
    pid = os.getpid()
    if _own_start[0] != pid:
        _own_start = (pid, process_start_time(pid))
    return _own_start[1]


class Lease:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.id = os.urandom(8).hex()  # what secrets.token_hex(8) is
        self._released = False
        with db.write() as conn:
            conn.execute(
                "INSERT INTO leases (id, pid, pid_start, created) VALUES (?, ?, ?, ?)",
                (self.id, os.getpid(), _own_start_time() or "", time.time()),
            )

    def add(self, kind: str, key: str) -> None:
        """Protect a resource before writing it (or before relying on it existing)."""
        with self.db.write() as conn:
            self.add_in(conn, kind, key)

    def add_in(self, conn: sqlite3.Connection, kind: str, key: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
            (self.id, kind, key),
        )

    def release_in(self, conn: sqlite3.Connection) -> None:
        """Drop the lease inside the caller's transaction (the one that records the image)."""
        conn.execute("DELETE FROM lease_resources WHERE lease_id = ?", (self.id,))
        conn.execute("DELETE FROM leases WHERE id = ?", (self.id,))
        self._released = True

    def release(self) -> None:
        if not self._released:
            with self.db.write() as conn:
                self.release_in(conn)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def live_leased(conn: sqlite3.Connection, kind: str) -> set[str]:
    """Keys of ``kind`` held by leases of processes still alive."""
    live = {
        lease_id
        for lease_id, pid, start in conn.execute("SELECT id, pid, pid_start FROM leases")
        if _alive(pid, start)
    }
    if not live:
        return set()
    rows = conn.execute(
        "SELECT lease_id, key FROM lease_resources WHERE kind = ?", (kind,)
    ).fetchall()
    return {key for lease_id, key in rows if lease_id in live}


def dead_leases(conn: sqlite3.Connection) -> list[str]:
    return [
        lease_id
        for lease_id, pid, start in conn.execute("SELECT id, pid, pid_start FROM leases")
        if not _alive(pid, start)
    ]


def _alive(pid: int, start: str) -> bool:
    current = process_start_time(pid)
    return current is not None and (not start or current == start)
