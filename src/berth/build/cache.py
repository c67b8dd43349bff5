"""The build step cache: what a layer-making step produced, looked up by what went into it.

A build's filesystem state is named by a *state key*: the base image's ID (its config digest,
which covers every layer's diff id) or ``scratch``, then, for every step that makes a layer
(RUN, COPY, ADD, WORKDIR), ``sha256(previous state key + the step's inputs)``. The inputs are
the instruction as expanded with everything that can change its result: a RUN's argv, its
environment (so a changed ``--build-arg`` used by a RUN misses from its first use), user,
working directory, mounts and network; a COPY's sources' content digest
(:func:`berth.build.context.checksum`), destination, owner and mode flags; a ``--from``
stage's state key. Secrets never enter a key. Metadata-only steps (ENV, LABEL, CMD, ...) make
no layer: they are recomputed on every build (they cost nothing) and reach a later step's key
only through what they change in its inputs (ENV through the environment, USER through the
user...), as in BuildKit.

Each entry (a row of the ``build_cache`` table in the store's database, created here with
``CREATE TABLE IF NOT EXISTS``) names a layer already in the store: its chain id, diff id,
blob, sizes and the time the step first ran (history ``created`` times come from there, so a
fully cached rebuild produces the very same image ID). A hit reuses that layer as it is: no
copy, no mount, no process. An entry whose layer or blob has gone (``berth rmi`` collects
layers no image uses) is a miss.

Bounded: when the layers the cache holds exceed :data:`DEFAULT_MAX_BYTES` (10 GiB, or
``BERTH_BUILD_CACHE_MAX``, e.g. ``20GB``), the least recently used entries are dropped after a
build until it fits. ``berth builder prune`` drops entries on demand. Dropped entries' layers
and blobs are deleted when nothing else (an image, a container, another entry) uses them.
"""

from __future__ import annotations

import _json
import os
import sqlite3
import time

from berth.oci.digest import Digest, hex_digest
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from berth.store.store import Removal, Store

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BuildCache",
    "CacheEntry",
    "PruneResult",
    "StepLayer",
    "cache_references",
    "max_bytes_from_env",
    "step_key",
]

DEFAULT_MAX_BYTES = 10 * 1024**3
MAX_ENV = "BERTH_BUILD_CACHE_MAX"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,          -- sha256 of the parent state key and the step's inputs
    chain_id TEXT NOT NULL,        -- the layer the step produced (with its parents below)
    parent_chain TEXT,
    diff_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    size INTEGER NOT NULL,         -- bytes of file content in the layer
    created TEXT NOT NULL,         -- RFC 3339: when the step first ran (history "created")
    description TEXT NOT NULL,     -- the instruction, for builder prune and du
    added REAL NOT NULL,
    last_used REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS build_cache_by_chain ON build_cache(chain_id)",
    "CREATE INDEX IF NOT EXISTS build_cache_by_use ON build_cache(last_used)",
)


class StepLayer(FrozenValue):
    """A layer in the store that a step produced (or a base image brought)."""

    __slots__ = (
        "blob_digest",
        "blob_size",
        "chain_id",
        "created",
        "diff_id",
        "media_type",
        "parent_chain",
        "size",
    )
    chain_id: Digest
    parent_chain: Digest | None
    diff_id: Digest
    blob_digest: Digest
    media_type: str
    blob_size: int
    size: int
    created: str

    def __init__(
        self,
        chain_id: Digest,
        parent_chain: Digest | None,
        diff_id: Digest,
        blob_digest: Digest,
        media_type: str,
        blob_size: int,
        size: int,
        created: str = "",
    ) -> None:
        init_fields(
            self,
            chain_id=chain_id,
            parent_chain=parent_chain,
            diff_id=diff_id,
            blob_digest=blob_digest,
            media_type=media_type,
            blob_size=blob_size,
            size=size,
            created=created,
        )


class CacheEntry(FrozenValue):
    __slots__ = ("description", "key", "last_used", "layer")
    key: str
    layer: StepLayer
    description: str
    last_used: float

    def __init__(self, key: str, layer: StepLayer, description: str, last_used: float) -> None:
        init_fields(self, key=key, layer=layer, description=description, last_used=last_used)


class PruneResult(Value):
    __slots__ = ("deleted", "reclaimed")

    def __init__(self, deleted: list[str], reclaimed: int) -> None:
        self.deleted = deleted
        self.reclaimed = reclaimed


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(value, sort_keys=True, separators=(",", ":")) without importing json: the same
# C encoder json.dumps uses (importing json costs every build a few milliseconds)
_encode_sorted = _json.make_encoder(
    None, _not_json, _json.encode_basestring_ascii, None, ":", ",", True, False, True
)


def step_key(parent: str, kind: str, inputs: object) -> str:
    """The state key after a step: ``sha256`` of the parent key, the kind and the inputs.

    ``inputs`` is anything JSON can encode (tuples become lists); dictionaries are sorted.
    """
    text = "".join(_encode_sorted([parent, kind, inputs], 0))
    return "sha256:" + hex_digest("sha256", text.encode("utf-8", "surrogateescape"))


def max_bytes_from_env() -> int:
    """The cache's size limit: ``BERTH_BUILD_CACHE_MAX`` (``20GB``, ``512MiB``) or 10 GiB."""
    text = os.environ.get(MAX_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    from berth.units import from_human_size

    return from_human_size(text)


class BuildCache:
    """The ``build_cache`` table of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._used: dict[str, float] = {}
        row = store.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'build_cache'"
        ).fetchone()
        if row is None:
            with store.db.write() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)

    # -- lookups ------------------------------------------------------------------------------

    def get(self, key: str) -> StepLayer | None:
        """The layer cached under ``key``, if it and its blob are still in the store."""
        row = self.store.db.execute(
            "SELECT c.chain_id, c.parent_chain, c.diff_id, c.blob_digest, c.media_type, "
            "c.blob_size, c.size, c.created FROM build_cache c "
            "JOIN layers l ON l.chain_id = c.chain_id WHERE c.key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        layer = _layer(row)
        if not self.store.blobs.has(layer.blob_digest):
            return None
        self._used[key] = time.time()
        return layer

    def put(self, key: str, layer: StepLayer, description: str) -> None:
        now = time.time()
        with self.store.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_cache (key, chain_id, parent_chain, diff_id, "
                "blob_digest, media_type, blob_size, size, created, description, added, "
                "last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    str(layer.chain_id),
                    str(layer.parent_chain) if layer.parent_chain else None,
                    str(layer.diff_id),
                    str(layer.blob_digest),
                    layer.media_type,
                    layer.blob_size,
                    layer.size,
                    layer.created,
                    description[:1000],
                    now,
                    now,
                ),
            )

    def flush_usage(self) -> None:
        """Record when the entries hit in this build were used (one write for all)."""
        if not self._used:
            return
        used, self._used = self._used, {}
        with self.store.db.write() as conn:
            conn.executemany(
                "UPDATE build_cache SET last_used = ? WHERE key = ?",
                [(when, key) for key, when in used.items()],
            )

    def entries(self) -> list[CacheEntry]:
        rows = self.store.db.execute(
            "SELECT key, chain_id, parent_chain, diff_id, blob_digest, media_type, blob_size, "
            "size, created, description, last_used FROM build_cache ORDER BY last_used"
        ).fetchall()
        return [CacheEntry(r["key"], _layer(r), r["description"], r["last_used"]) for r in rows]

    def total_size(self) -> int:
        """Bytes of the distinct layers the cache holds."""
        row = self.store.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT chain_id, size FROM build_cache)"
        ).fetchone()
        return int(row[0])

    # -- pruning ------------------------------------------------------------------------------

    def prune(
        self,
        *,
        all_entries: bool = False,
        until: float | None = None,
        keep_bytes: int | None = None,
    ) -> PruneResult:
        """Drop entries, least recently used first, and delete what only they kept alive.

        Without ``all_entries`` only entries whose layer no image uses are dropped; ``until``
        (unix time) spares those used since; ``keep_bytes`` stops once the cache is that small.
        """
        entries = self.entries()
        in_images = _chains_in_images(self.store)
        total = sum({e.layer.chain_id: e.layer.size for e in entries}.values())
        doomed: list[CacheEntry] = []
        for entry in entries:
            if keep_bytes is not None and total <= keep_bytes:
                break
            if until is not None and entry.last_used >= until:
                continue
            if not all_entries and str(entry.layer.chain_id) in in_images:
                continue
            doomed.append(entry)
            total -= entry.layer.size
        return self._drop(doomed)

    def enforce_limit(self, max_bytes: int | None = None) -> PruneResult:
        """Drop least recently used entries until the cache holds at most ``max_bytes``."""
        limit = max_bytes_from_env() if max_bytes is None else max_bytes
        if self.total_size() <= limit:
            return PruneResult([], 0)
        return self.prune(all_entries=True, keep_bytes=limit)

    def _drop(self, doomed: Sequence[CacheEntry]) -> PruneResult:
        if not doomed:
            return PruneResult([], 0)
        from berth.basics import suppress
        from berth.store.store import Removal

        keys = [e.key for e in doomed]
        removal = Removal()
        with self.store.db.write() as conn:
            conn.executemany("DELETE FROM build_cache WHERE key = ?", [(k,) for k in keys])
            # fully cached rebuilds recorded by berth.build.fastpath relied on these entries
            with suppress(sqlite3.OperationalError):
                conn.execute("DELETE FROM build_records")
            kept_layers, kept_blobs = cache_references(conn)
            candidates: set[tuple[str, str]] = set()
            for entry in doomed:
                for chain in _ancestry(conn, str(entry.layer.chain_id)):
                    if chain not in kept_layers:
                        candidates.add(("layer", chain))
                        blob = _blob_of_chain(conn, chain)
                        if blob and blob not in kept_blobs:
                            candidates.add(("blob", blob))
                if str(entry.layer.blob_digest) not in kept_blobs:
                    candidates.add(("blob", str(entry.layer.blob_digest)))
            _collect_only(self.store, conn, removal, candidates)
        self.store.layers.empty_trash()
        return PruneResult(keys, removal.reclaimed)


def cache_references(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """Chain ids (with every parent below them) and blob digests the cache keeps alive.

    The store's garbage collector should count these as referenced (see the module doc).
    """
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'build_cache'"
    ).fetchone()
    if exists is None:
        return set(), set()
    layers = {
        r[0]
        for r in conn.execute(
            """WITH RECURSIVE chain(c) AS (SELECT chain_id FROM build_cache
               UNION SELECT l.parent_chain FROM layers l JOIN chain ON l.chain_id = chain.c
               WHERE l.parent_chain IS NOT NULL) SELECT c FROM chain"""
        )
    }
    blobs = {r[0] for r in conn.execute("SELECT DISTINCT blob_digest FROM build_cache")}
    return layers, blobs


def _ancestry(conn: sqlite3.Connection, chain: str) -> Iterator[str]:
    for (c,) in conn.execute(
        """WITH RECURSIVE chain(c) AS (SELECT ? UNION
           SELECT l.parent_chain FROM layers l JOIN chain ON l.chain_id = chain.c
           WHERE l.parent_chain IS NOT NULL) SELECT c FROM chain""",
        (chain,),
    ).fetchall():
        yield c


def _blob_of_chain(conn: sqlite3.Connection, chain: str) -> str | None:
    row = conn.execute(
        "SELECT blob_digest FROM build_cache WHERE chain_id = ? LIMIT 1", (chain,)
    ).fetchone()
    return str(row[0]) if row else None


def _chains_in_images(store: Store) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT DISTINCT chain_id FROM image_layers")}


def _collect_only(
    store: Store, conn: sqlite3.Connection, removal: Removal, only: Iterable[tuple[str, str]]
) -> None:
    """Delete the given layers and blobs unless an image, container or live lease uses them.

    Shim: this calls the store's collector restricted to ``only``; once the store's own
    collector counts :func:`cache_references`, this is what ``Store.collect_garbage`` does.
    """
    from berth.basics import suppress

    wanted = set(only)
    if not wanted:
        return
    with suppress(AttributeError):
        store._collect_in(conn, removal, only=wanted)


def _layer(row: sqlite3.Row) -> StepLayer:
    parent = row["parent_chain"]
    return StepLayer(
        chain_id=Digest.parse(row["chain_id"]),
        parent_chain=Digest.parse(parent) if parent else None,
        diff_id=Digest.parse(row["diff_id"]),
        blob_digest=Digest.parse(row["blob_digest"]),
        media_type=row["media_type"],
        blob_size=row["blob_size"],
        size=row["size"],
        created=row["created"],
    )
