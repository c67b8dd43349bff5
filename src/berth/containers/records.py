"""Container records in the store: Docker's ``Config``, ``HostConfig`` and ``State`` documents.

A record is what ``inspect`` shows and what everything else reads: the spec generator, the
supervisor, ``ps``. State changes are read-modify-write inside one write transaction, so two
berth processes updating one container never lose each other's change.
"""

from __future__ import annotations

import os
import time

from berth import jsonio
from berth.errors import ContainerNotFound, NameInUse
from berth.oci.digest import Digest
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

    from berth.store.store import Store

ZERO_TIME = "0001-01-01T00:00:00Z"
RUNNING_STATUSES = ("running", "paused", "restarting")


def initial_state() -> dict[str, Any]:
    return {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


class ContainerRecord(Value):
    __slots__ = (
        "config",
        "created",
        "extra",
        "host_config",
        "id",
        "image_id",
        "image_ref",
        "name",
        "state",
        "status",
        "top_chain",
    )
    id: str
    name: str
    image_id: str
    image_ref: str
    top_chain: Digest | None
    status: str
    created: float
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: dict[str, Any]
    extra: dict[str, Any]

    def __init__(
        self,
        id: str,
        name: str,
        image_id: str,
        image_ref: str,
        top_chain: Digest | None,
        status: str,
        created: float,
        config: dict[str, Any] | None = None,
        host_config: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.image_id = image_id
        self.image_ref = image_ref
        self.top_chain = top_chain
        self.status = status
        self.created = created
        self.config = {} if config is None else config
        self.host_config = {} if host_config is None else host_config
        self.state = initial_state() if state is None else state
        self.extra = {} if extra is None else extra

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES

    @property
    def restart_count(self) -> int:
        return int(self.extra.get("RestartCount", 0))


class ContainerRecords:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # ------------------------------------------------------------------ paths

    def dir(self, container_id: str) -> str:
        return self.store.paths.container_dir(container_id)

    def log_path(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), f"{container_id}-json.log")

    def run_dir(self, container_id: str) -> str:
        """Runtime state of one container (FIFOs, sockets): tmpfs, gone after a reboot."""
        return os.path.join(self.store.paths.run_dir, "containers", container_id)

    # ---------------------------------------------------------------- reading

    def get(self, container_id: str) -> ContainerRecord:
        row = self.db.execute("SELECT * FROM containers WHERE id = ?", (container_id,)).fetchone()
        if row is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return _record(row)

    def find(self, name_or_id: str) -> ContainerRecord | None:
        with self.db.read() as conn:
            return self._find_in(conn, name_or_id)

    def resolve(self, name_or_id: str) -> ContainerRecord:
        """Docker's lookup: full ID, then name (``/`` optional), then a unique ID prefix."""
        record = self.find(name_or_id)
        if record is None:
            raise ContainerNotFound(f"No such container: {name_or_id}")
        return record

    def _find_in(self, conn: sqlite3.Connection, text: str) -> ContainerRecord | None:
        if not text:
            return None
        row = conn.execute("SELECT * FROM containers WHERE id = ?", (text,)).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT * FROM containers WHERE name = ?", (text.lstrip("/"),)
            ).fetchone()
        if row is None and all(c in "0123456789abcdef" for c in text):
            rows = conn.execute(
                "SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                (text, text + "g"),
            ).fetchall()
            if len(rows) > 1:
                raise ContainerNotFound(
                    f"multiple containers found with ID prefix {text!r}",
                    hint="give more characters of the ID, or the name",
                )
            row = rows[0] if rows else None
        return _record(row) if row is not None else None

    def all(self) -> list[ContainerRecord]:
        rows = self.db.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [_record(row) for row in rows]

    def name_taken(self, name: str) -> str | None:
        row = self.db.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    # ---------------------------------------------------------------- writing

    def insert(self, record: ContainerRecord, volumes: list[str]) -> None:
        with self.db.write() as conn:
            taken = conn.execute(
                "SELECT id FROM containers WHERE name = ?", (record.name,)
            ).fetchone()
            if taken is not None:
                raise name_in_use(record.name, taken[0])
            conn.execute(
                "INSERT INTO containers (id, name, image_id, image_ref, top_chain, status, "
                "created, config, host_config, state, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.name,
                    record.image_id,
                    record.image_ref,
                    str(record.top_chain) if record.top_chain else None,
                    record.status,
                    record.created,
                    _dump(record.config),
                    _dump(record.host_config),
                    _dump(record.state),
                    _dump(record.extra),
                ),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO container_volumes (container_id, volume) VALUES (?, ?)",
                [(record.id, v) for v in volumes],
            )

    def update_state(self, container_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into State; ``Status`` also sets the status column. Returns State."""
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT state, status FROM containers WHERE id = ?", (container_id,)
            ).fetchone()
            if row is None:
                raise ContainerNotFound(f"No such container: {container_id}")
            state = jsonio.loads(row[0]) or initial_state()
            state.update(fields)
            status = str(fields.get("Status", row[1]))
            conn.execute(
                "UPDATE containers SET state = ?, status = ? WHERE id = ?",
                (_dump(state), status, container_id),
            )
        return state

    def update_extra(self, container_id: str, **fields: Any) -> None:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT extra FROM containers WHERE id = ?", (container_id,)
            ).fetchone()
            if row is None:
                raise ContainerNotFound(f"No such container: {container_id}")
            extra = jsonio.loads(row[0])
            extra.update(fields)
            conn.execute(
                "UPDATE containers SET extra = ? WHERE id = ?", (_dump(extra), container_id)
            )

    def set_restart_count(self, container_id: str, count: int) -> None:
        self.update_extra(container_id, RestartCount=count)

    def update_documents(
        self,
        container_id: str,
        *,
        config: dict[str, Any] | None = None,
        host_config: dict[str, Any] | None = None,
    ) -> None:
        with self.db.write() as conn:
            if config is not None:
                conn.execute(
                    "UPDATE containers SET config = ? WHERE id = ?", (_dump(config), container_id)
                )
            if host_config is not None:
                conn.execute(
                    "UPDATE containers SET host_config = ? WHERE id = ?",
                    (_dump(host_config), container_id),
                )

    def rename(self, container_id: str, new_name: str) -> None:
        with self.db.write() as conn:
            taken = conn.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if taken is not None and taken[0] != container_id:
                raise name_in_use(new_name, taken[0])
            conn.execute("UPDATE containers SET name = ? WHERE id = ?", (new_name, container_id))

    def delete_in(self, conn: sqlite3.Connection, container_id: str) -> list[str]:
        """Forget a container (inside the caller's transaction); returns its volume names."""
        volumes = [
            r[0]
            for r in conn.execute(
                "SELECT volume FROM container_volumes WHERE container_id = ?", (container_id,)
            )
        ]
        conn.execute("DELETE FROM container_volumes WHERE container_id = ?", (container_id,))
        conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))
        return volumes


def name_in_use(name: str, owner: str) -> NameInUse:
    return NameInUse(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def now_rfc3339() -> str:
    """Docker's timestamps: RFC 3339 with nanoseconds, UTC."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def _dump(data: dict[str, Any]) -> str:
    return jsonio.dumps(data)  # json.dumps(data, separators=(",", ":")), without importing json


def _record(row: sqlite3.Row) -> ContainerRecord:
    top = row["top_chain"]
    return ContainerRecord(
        id=row["id"],
        name=row["name"],
        image_id=row["image_id"],
        image_ref=row["image_ref"],
        top_chain=Digest.parse(top) if top else None,
        status=row["status"],
        created=row["created"],
        config=jsonio.loads(row["config"]),
        host_config=jsonio.loads(row["host_config"]),
        state=jsonio.loads(row["state"]) or initial_state(),
        extra=jsonio.loads(row["extra"]),
    )
