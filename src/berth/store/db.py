"""The store's SQLite database: one file, WAL mode, serialised writers.

Every berth process opens its own connection. Readers never block; a writer takes the database
lock up front (``BEGIN IMMEDIATE``), so two processes changing the store at once are serialised
by SQLite rather than racing ("last writer wins" never happens). The schema is created on first
open and migrated by ``PRAGMA user_version``.
"""

from __future__ import annotations

# The C module that the sqlite3 package re-exports: sqlite3.dbapi2 also imports datetime
# (about 3 ms at every start) to register adapters for date objects, which berth never stores.
import _sqlite3
import _weakref  # what weakref.ref is, without importing weakref
from _thread import RLock  # what threading.RLock is, without importing threading

from berth.errors import StoreError, StoreLocked

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

SCHEMA_VERSION = 1
WAL_CHECKPOINT_PAGES = 64

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                -- config digest, "sha256:..."
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    index_digest TEXT,                  -- the index it was chosen from, if any
    created TEXT NOT NULL DEFAULT '',   -- config "created" (RFC 3339)
    size INTEGER NOT NULL,              -- bytes of all its layers, unpacked
    top_chain TEXT,                     -- chain id of its top layer, NULL if no layers
    parent TEXT,                        -- image it was built from (docker's "Parent")
    added REAL NOT NULL                 -- when it was stored (unix time)
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,              -- "docker.io/library/busybox:latest"
    repository TEXT NOT NULL,           -- "docker.io/library/busybox"
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id),
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,               -- manifest (or index) digest in that repository
    image_id TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS repo_digests_by_image ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    parent_chain TEXT,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,              -- bytes of file content, unpacked
    link TEXT NOT NULL UNIQUE,          -- short name under l/ for overlay lowerdir options
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_by_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id),
    digest TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_by_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,             -- not a foreign key: rmi -f may remove the image
    image_ref TEXT NOT NULL DEFAULT '', -- what the user asked for ("busybox")
    top_chain TEXT,                     -- keeps the image's layers alive
    status TEXT NOT NULL DEFAULT 'created',
    created REAL NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',  -- JSON: Docker's "Config"
    host_config TEXT NOT NULL DEFAULT '{}',  -- JSON: Docker's "HostConfig"
    state TEXT NOT NULL DEFAULT '{}',   -- JSON: Docker's "State"
    extra TEXT NOT NULL DEFAULT '{}'    -- JSON: Path, Args, Mounts, RestartCount, ...
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL DEFAULT 'local',
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS container_volumes (
    container_id TEXT NOT NULL,
    volume TEXT NOT NULL,
    PRIMARY KEY (container_id, volume)
);
CREATE INDEX IF NOT EXISTS container_volumes_by_volume ON container_volumes(volume);
CREATE INDEX IF NOT EXISTS containers_by_image ON containers(image_id);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,            -- /proc/PID/stat start time: guards against pid reuse
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                 -- "blob" or "layer"
    key TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, key)
);
CREATE INDEX IF NOT EXISTS lease_resources_by_key ON lease_resources(kind, key);
"""


class Database:
    """A connection to one store's database, usable from one thread at a time."""

    def __init__(self, path: str, *, timeout: float = 60.0) -> None:
        self.path = path
        try:
            self._conn = _sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except _sqlite3.Error as exc:
            raise StoreError(f"cannot open the store database {path}: {exc}") from None
        self._lock = RLock()
        self.is_open = True
        self._conn.row_factory = _sqlite3.Row
        self._depth = 0
        _remember(self)
        self._init()

    def _init(self) -> None:
        conn = self._conn
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            # Not stored in the file, unlike the journal mode: every connection says it. In WAL
            # mode NORMAL syncs at checkpoints only, not at each commit: a commit just before a
            # power cut may be lost, the database is never damaged. Blobs and layers are synced
            # before the rows that name them are written, so a lost row leaves unreferenced
            # files (``system check``), never a row naming missing data.
            conn.execute("PRAGMA synchronous=NORMAL")
            # Each berth process is usually the database's only connection, so its first
            # statement rebuilds the WAL's index by reading every frame since the last
            # checkpoint: ~2.5 ms for SQLite's default of 1000 pages. Checkpointing every
            # 64 pages (a few commands' worth) keeps that read to ~0.2 ms; a checkpoint that
            # small costs less than what it saves.
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            if version == SCHEMA_VERSION:
                conn.execute("PRAGMA foreign_keys=ON")
                return
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            with self.write():
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store at {self.path} was written by a newer berth "
                        f"(schema {version}, this berth knows {SCHEMA_VERSION})",
                        hint="upgrade berth, or use another --root",
                    )
                if version < 1:
                    for statement in _split_sql(_SCHEMA_V1):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except _sqlite3.OperationalError as exc:
            raise _translate(exc, self.path) from None

    def write(self) -> Transaction:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        return Transaction(self, write=True)

    def read(self) -> Transaction:
        """A consistent snapshot for several reads (``BEGIN DEFERRED``)."""
        return Transaction(self, write=False)

    def execute(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except _sqlite3.OperationalError as exc:
                raise _translate(exc, self.path) from None

    def close(self) -> None:
        self._conn.close()
        self.is_open = False


_connections: list[_weakref.ReferenceType[Database]] = []


def _remember(db: Database) -> None:
    if len(_connections) >= 32:
        _connections[:] = [ref for ref in _connections if ref() is not None]
    _connections.append(_weakref.ref(db))


def open_paths() -> list[str]:
    """The paths of the store databases this process has open."""
    return [db.path for db in (ref() for ref in _connections) if db is not None and db.is_open]


def close_all() -> None:
    """Close every store database this process still has open. A fork server's worker, at
    the end of its command, lets go of them as an exiting process would, before its client is
    told it is done (SQLite maps the WAL's index, and an unmount of the store's filesystem
    right after the command would find it busy), unless they are on the root filesystem's
    own mount (:mod:`berth.cli.forkworker`)."""
    for ref in _connections:
        db = ref()
        if db is not None:
            db.close()
    _connections.clear()


class Transaction:
    """What ``with db.write() as conn`` and ``with db.read() as conn`` enter: the database's
    lock is held until the end of the block; the outermost block begins the transaction and
    commits it (a write rolls back when the block raises), blocks inside it join it.

    A class rather than a :func:`contextlib.contextmanager` generator: contextlib's import
    (with :mod:`collections`) is a few ms of ``berth run``."""

    __slots__ = ("_db", "_nested", "_write")

    def __init__(self, db: Database, *, write: bool) -> None:
        self._db = db
        self._write = write
        self._nested = False

    def __enter__(self) -> sqlite3.Connection:
        db = self._db
        db._lock.acquire()
        try:
            if db._depth:
                db._depth += 1
                self._nested = True
                return db._conn
            if not self._write:
                db._conn.execute("BEGIN")
            else:
                try:
                    db._conn.execute("BEGIN IMMEDIATE")
                except _sqlite3.OperationalError as exc:
                    raise _translate(exc, db.path) from None
            db._depth = 1
            return db._conn
        except BaseException:
            db._lock.release()
            raise

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> None:
        db = self._db
        try:
            if self._nested:
                db._depth -= 1
                return
            db._depth = 0
            if not self._write:
                db._conn.execute("COMMIT")
            elif kind is not None:
                db._conn.execute("ROLLBACK")  # and the block's exception goes on
            else:
                try:
                    db._conn.execute("COMMIT")
                except _sqlite3.OperationalError as exc:
                    db._conn.execute("ROLLBACK")
                    raise _translate(exc, db.path) from None
        finally:
            db._lock.release()


def _split_sql(script: str) -> list[str]:
    statements = []
    for chunk in script.split(";"):
        lines = [line for line in chunk.splitlines() if line.strip()]
        if lines:
            statements.append("\n".join(lines))
    return statements


def _translate(exc: sqlite3.OperationalError, path: str) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreLocked(
            f"the store database {path} stayed locked by another berth process",
            hint="wait for it to finish, or find it with `fuser " + path + "`",
        )
    if "disk is full" in text or "database or disk is full" in text:
        from berth.errors import StorageFull

        return StorageFull(f"no space left for the store database {path}")
    if "readonly" in text:
        return StoreError(f"the store database {path} is read-only", hint="run berth as root")
    return StoreError(f"store database error in {path}: {text}")
