"""Image records, tags and repo digests, and Docker's rules for finding and deleting images."""

from __future__ import annotations

import time

from berth.errors import ImageInUse, ImageNotFound, InvalidReference
from berth.oci.digest import Digest
from berth.oci.reference import (
    ImageReference,
    looks_like_image_id,
    parse,
    parse_normalized,
)
from berth.store.db import Database
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence

RUNNING_STATES = ("running", "paused", "restarting")


class ImageRecord(FrozenValue):
    """An image as the store records it; immutable."""

    __slots__ = (
        "added",
        "created",
        "id",
        "index_digest",
        "manifest_digest",
        "manifest_media_type",
        "parent",
        "repo_digests",
        "size",
        "tags",
        "top_chain",
    )
    id: Digest
    manifest_digest: Digest
    manifest_media_type: str
    index_digest: Digest | None
    created: str
    size: int
    top_chain: Digest | None
    parent: str | None
    added: float
    tags: tuple[ImageReference, ...]
    repo_digests: tuple[str, ...]  # "docker.io/library/busybox@sha256:..."

    def __init__(
        self,
        id: Digest,
        manifest_digest: Digest,
        manifest_media_type: str,
        index_digest: Digest | None,
        created: str,
        size: int,
        top_chain: Digest | None,
        parent: str | None,
        added: float,
        tags: tuple[ImageReference, ...] = (),
        repo_digests: tuple[str, ...] = (),
    ) -> None:
        init_fields(
            self,
            id=id,
            manifest_digest=manifest_digest,
            manifest_media_type=manifest_media_type,
            index_digest=index_digest,
            created=created,
            size=size,
            top_chain=top_chain,
            parent=parent,
            added=added,
            tags=tags,
            repo_digests=repo_digests,
        )

    @property
    def short_id(self) -> str:
        return self.id.hex[:12]


class NewLayer(FrozenValue):
    __slots__ = ("blob_digest", "blob_size", "chain_id", "media_type")
    chain_id: Digest
    blob_digest: Digest
    media_type: str
    blob_size: int

    def __init__(
        self, chain_id: Digest, blob_digest: Digest, media_type: str, blob_size: int
    ) -> None:
        init_fields(
            self,
            chain_id=chain_id,
            blob_digest=blob_digest,
            media_type=media_type,
            blob_size=blob_size,
        )


_COLUMNS = (
    "id, manifest_digest, manifest_media_type, index_digest, created, size, top_chain, "
    "parent, added"
)


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ----------------------------------------------------------------- reading

    def all(self) -> list[ImageRecord]:
        """Every image with its tags and repo digests (three queries, whatever the count)."""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM images").fetchall()
            tags = conn.execute(
                "SELECT image_id, repository, tag FROM tags ORDER BY name"
            ).fetchall()
            digests = conn.execute(
                "SELECT image_id, repository, digest FROM repo_digests ORDER BY repository"
            ).fetchall()
        tags_by: dict[str, list[ImageReference]] = {}
        for image_id, repository, tag in tags:
            tags_by.setdefault(image_id, []).append(_tag_ref(repository, tag))
        digests_by: dict[str, list[str]] = {}
        for image_id, repository, digest in digests:
            digests_by.setdefault(image_id, []).append(f"{repository}@{digest}")
        return [
            _record(row, tags_by.get(row["id"], ()), digests_by.get(row["id"], ())) for row in rows
        ]

    def get(self, image_id: Digest | str) -> ImageRecord | None:
        with self.db.read() as conn:
            return self._get_in(conn, str(image_id))

    def _get_in(self, conn: sqlite3.Connection, image_id: str) -> ImageRecord | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        tags = [
            _tag_ref(r, t)
            for r, t in conn.execute(
                "SELECT repository, tag FROM tags WHERE image_id = ? ORDER BY name", (image_id,)
            )
        ]
        digests = [
            f"{r}@{d}"
            for r, d in conn.execute(
                "SELECT repository, digest FROM repo_digests WHERE image_id = ? "
                "ORDER BY repository",
                (image_id,),
            )
        ]
        return _record(row, tags, digests)

    def resolve(self, name: str) -> ImageRecord:
        """Find an image the way Docker does: by reference, then by ID or unique ID prefix."""
        with self.db.read() as conn:
            image_id = self._resolve_id(conn, name)
            record = self._get_in(conn, image_id) if image_id else None
        if record is None:
            raise ImageNotFound(f"No such image: {_display(name)}")
        return record

    def _resolve_id(self, conn: sqlite3.Connection, name: str) -> str | None:
        if name.startswith("sha256:"):
            row = conn.execute("SELECT id FROM images WHERE id = ?", (name,)).fetchone()
            if row:
                return str(row[0])
            return self._by_prefix(conn, name[len("sha256:") :])
        if looks_like_image_id(name):
            row = conn.execute("SELECT id FROM images WHERE id = ?", (f"sha256:{name}",)).fetchone()
            return str(row[0]) if row else None
        try:
            ref = parse_normalized(name)
        except InvalidReference:
            if _is_hex(name):
                return self._by_prefix(conn, name)
            raise
        found = self._by_reference(conn, ref.with_default_tag())
        if found is None and _is_hex(name):
            found = self._by_prefix(conn, name)
        return found

    def _by_reference(self, conn: sqlite3.Connection, ref: ImageReference) -> str | None:
        if ref.digest is not None:
            row = conn.execute(
                "SELECT image_id FROM repo_digests WHERE repository = ? AND digest = ?",
                (ref.repository, str(ref.digest)),
            ).fetchone()
            if row is None:  # an image ID written as name@sha256:... is not a reference
                return None
            return str(row[0])
        row = conn.execute("SELECT image_id FROM tags WHERE name = ?", (str(ref),)).fetchone()
        return str(row[0]) if row else None

    def _by_prefix(self, conn: sqlite3.Connection, prefix: str) -> str | None:
        if not prefix or not _is_hex(prefix):
            return None
        rows = conn.execute(
            "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2",
            (f"sha256:{prefix}", f"sha256:{prefix}\x7f"),
        ).fetchall()
        if len(rows) > 1:
            raise ImageNotFound(
                f"multiple images found with ID prefix {prefix!r}",
                hint="give more characters of the ID",
            )
        return str(rows[0][0]) if rows else None

    def children(self, image_id: str) -> list[str]:
        return [
            r[0] for r in self.db.execute("SELECT id FROM images WHERE parent = ?", (image_id,))
        ]

    # ----------------------------------------------------------------- writing

    def put_in(
        self,
        conn: sqlite3.Connection,
        *,
        config_digest: Digest,
        manifest_digest: Digest,
        manifest_media_type: str,
        created: str,
        layers: Sequence[NewLayer],
        layer_sizes: Sequence[int],
        extra_blobs: Iterable[Digest] = (),
        index_digest: Digest | None = None,
        parent: str | None = None,
    ) -> None:
        """Record an image (inside the caller's write transaction); idempotent."""
        image_id = str(config_digest)
        exists = conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
        top = str(layers[-1].chain_id) if layers else None
        if exists:
            conn.execute(
                "UPDATE images SET manifest_digest = ?, manifest_media_type = ?, index_digest = ?, "
                "parent = COALESCE(?, parent) WHERE id = ?",
                (
                    str(manifest_digest),
                    manifest_media_type,
                    str(index_digest) if index_digest else None,
                    parent,
                    image_id,
                ),
            )
            conn.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
        else:
            conn.execute(
                f"INSERT INTO images ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    image_id,
                    str(manifest_digest),
                    manifest_media_type,
                    str(index_digest) if index_digest else None,
                    created,
                    sum(layer_sizes),
                    top,
                    parent,
                    time.time(),
                ),
            )
        conn.executemany(
            "INSERT INTO image_layers (image_id, position, chain_id, blob_digest, media_type, "
            "blob_size) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    image_id,
                    i,
                    str(layer.chain_id),
                    str(layer.blob_digest),
                    layer.media_type,
                    layer.blob_size,
                )
                for i, layer in enumerate(layers)
            ],
        )
        blobs = {
            str(config_digest),
            str(manifest_digest),
            *(str(d) for d in extra_blobs),
            *(str(layer.blob_digest) for layer in layers),
        }
        if index_digest:
            blobs.add(str(index_digest))
        conn.executemany(
            "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)",
            [(image_id, digest) for digest in sorted(blobs)],
        )

    def tag_in(self, conn: sqlite3.Connection, image_id: str, ref: ImageReference) -> None:
        ref = ref.with_default_tag()
        if ref.digest is not None:
            conn.execute(
                "INSERT OR REPLACE INTO repo_digests (repository, digest, image_id) "
                "VALUES (?, ?, ?)",
                (ref.repository, str(ref.digest), image_id),
            )
            return
        conn.execute(
            "INSERT OR REPLACE INTO tags (name, repository, tag, image_id, updated) "
            "VALUES (?, ?, ?, ?, ?)",
            (str(ref), ref.repository, ref.tag, image_id, time.time()),
        )

    def add_repo_digest_in(
        self, conn: sqlite3.Connection, image_id: str, repository: str, digest: Digest
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO repo_digests (repository, digest, image_id) VALUES (?, ?, ?)",
            (repository, str(digest), image_id),
        )

    # ---------------------------------------------------------------- deleting

    def delete_in(
        self, conn: sqlite3.Connection, name: str, *, force: bool, prune_parents: bool = True
    ) -> list[tuple[str, str]]:
        """Docker's image delete: untag, or untag and delete, with its conflict rules.

        Returns the report lines as (``Untagged``|``Deleted``, what). Layers are not removed
        here; the caller collects garbage in the same transaction.
        """
        image_id = self._resolve_id(conn, name)
        if image_id is None:
            raise ImageNotFound(f"No such image: {_display(name)}")
        records: list[tuple[str, str]] = []
        refs = self._references(conn, image_id)
        short = image_id.split(":", 1)[1][:12]
        removed_repository_ref = False
        if not _is_id_prefix(image_id, name):
            ref = parse_normalized(name).with_default_tag()
            user = self._first_container(conn, image_id)
            if user is not None and not force and len(refs) == 1:
                raise ImageInUse(
                    f"conflict: unable to remove repository reference {name!r} (must force) - "
                    f"container {user[0][:12]} is using its referenced image {short}"
                )
            records.append(("Untagged", self._untag(conn, ref)))
            refs = self._references(conn, image_id)
            if ref.digest is None and not any(
                r.digest is None and r.repository == ref.repository for r in refs
            ):  # only digest references to that repository remain: drop them too
                for r in [
                    r for r in refs if r.digest is not None and r.repository == ref.repository
                ]:
                    records.append(("Untagged", self._untag(conn, r)))
                refs = self._references(conn, image_id)
            if refs:
                return records
            removed_repository_ref = True
        elif _single_repository(refs):
            self._check_conflicts(conn, image_id, hard=True, soft=not force, ignore_refs=True)
            for r in refs:
                records.append(("Untagged", self._untag(conn, r)))
        self._delete_helper(
            conn,
            image_id,
            force=force,
            prune=prune_parents,
            quiet=removed_repository_ref,
            records=records,
        )
        return records

    def _delete_helper(
        self,
        conn: sqlite3.Connection,
        image_id: str,
        *,
        force: bool,
        prune: bool,
        quiet: bool,
        records: list[tuple[str, str]],
    ) -> None:
        conflict = self._conflict(conn, image_id, hard=True, soft=not force)
        if conflict is not None:
            if quiet and self._references(conn, image_id) == [] and not conflict[1]:
                return
            raise ImageInUse(conflict[0])
        parent = conn.execute("SELECT parent FROM images WHERE id = ?", (image_id,)).fetchone()[0]
        for ref in self._references(conn, image_id):
            records.append(("Untagged", self._untag(conn, ref)))
        conn.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM image_blobs WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        records.append(("Deleted", image_id))
        if not prune or not parent:
            return
        exists = conn.execute("SELECT 1 FROM images WHERE id = ?", (parent,)).fetchone()
        if (
            exists
            and not self._references(conn, parent)
            and self._conflict(conn, parent, hard=True, soft=True) is None
        ):
            self._delete_helper(conn, parent, force=False, prune=True, quiet=True, records=records)

    def _check_conflicts(
        self,
        conn: sqlite3.Connection,
        image_id: str,
        *,
        hard: bool,
        soft: bool,
        ignore_refs: bool = False,
    ) -> None:
        conflict = self._conflict(conn, image_id, hard=hard, soft=soft, ignore_refs=ignore_refs)
        if conflict is not None:
            raise ImageInUse(conflict[0])

    def _conflict(
        self,
        conn: sqlite3.Connection,
        image_id: str,
        *,
        hard: bool,
        soft: bool,
        ignore_refs: bool = False,
    ) -> tuple[str, bool] | None:
        """(message, image is used by a container) for the first conflict found, if any."""
        short = image_id.split(":", 1)[1][:12]
        if hard:
            child = conn.execute(
                "SELECT 1 FROM images WHERE parent = ? LIMIT 1", (image_id,)
            ).fetchone()
            if child:
                return (
                    f"conflict: unable to delete {short} (cannot be forced) - "
                    "image has dependent child images",
                    False,
                )
            running = conn.execute(
                f"SELECT id FROM containers WHERE image_id = ? AND status IN "
                f"({','.join('?' * len(RUNNING_STATES))}) LIMIT 1",
                (image_id, *RUNNING_STATES),
            ).fetchone()
            if running:
                return (
                    f"conflict: unable to delete {short} (cannot be forced) - "
                    f"image is being used by running container {running[0][:12]}",
                    True,
                )
        if soft:
            if not ignore_refs and len(self._references(conn, image_id)) > 1:
                return (
                    f"conflict: unable to delete {short} (must be forced) - "
                    "image is referenced in multiple repositories",
                    False,
                )
            stopped = conn.execute(
                "SELECT id FROM containers WHERE image_id = ? LIMIT 1", (image_id,)
            ).fetchone()
            if stopped:
                return (
                    f"conflict: unable to delete {short} (must be forced) - "
                    f"image is being used by stopped container {stopped[0][:12]}",
                    True,
                )
        return None

    def _first_container(self, conn: sqlite3.Connection, image_id: str) -> tuple[str, str] | None:
        row = conn.execute(
            "SELECT id, status FROM containers WHERE image_id = ? LIMIT 1", (image_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _references(self, conn: sqlite3.Connection, image_id: str) -> list[ImageReference]:
        refs = [
            _tag_ref(r, t)
            for r, t in conn.execute(
                "SELECT repository, tag FROM tags WHERE image_id = ? ORDER BY name", (image_id,)
            )
        ]
        for repository, digest in conn.execute(
            "SELECT repository, digest FROM repo_digests WHERE image_id = ? ORDER BY repository",
            (image_id,),
        ):
            refs.append(parse(f"{repository}@{digest}"))
        return refs

    def _untag(self, conn: sqlite3.Connection, ref: ImageReference) -> str:
        if ref.digest is not None:
            cursor = conn.execute(
                "DELETE FROM repo_digests WHERE repository = ? AND digest = ?",
                (ref.repository, str(ref.digest)),
            )
        else:
            cursor = conn.execute("DELETE FROM tags WHERE name = ?", (str(ref),))
        if cursor.rowcount == 0:
            raise ImageNotFound(f"No such image: {ref.familiar()}")
        return ref.familiar()


def _single_repository(refs: list[ImageReference]) -> bool:
    """Docker's isSingleReference: at most one tag, all references in one repository."""
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    return len({r.repository for r in refs}) <= 1


def _is_id_prefix(image_id: str, name: str) -> bool:
    hex_id = image_id.split(":", 1)[1]
    text = name[len("sha256:") :] if name.startswith("sha256:") else name
    return bool(text) and hex_id.startswith(text)


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def _tag_ref(repository: str, tag: str) -> ImageReference:
    domain, _, path = repository.partition("/")
    return ImageReference(domain=domain, path=path, tag=tag)


def _display(name: str) -> str:
    try:
        ref = parse_normalized(name)
    except InvalidReference:
        return name
    if looks_like_image_id(name) or (_is_hex(name) and len(name) < 64 and ref.tag is None):
        return name
    return ref.with_default_tag().familiar()


def _record(
    row: sqlite3.Row, tags: Iterable[ImageReference], digests: Iterable[str]
) -> ImageRecord:
    return ImageRecord(
        id=Digest.parse(row["id"]),
        manifest_digest=Digest.parse(row["manifest_digest"]),
        manifest_media_type=row["manifest_media_type"],
        index_digest=Digest.parse(row["index_digest"]) if row["index_digest"] else None,
        created=row["created"],
        size=row["size"],
        top_chain=Digest.parse(row["top_chain"]) if row["top_chain"] else None,
        parent=row["parent"],
        added=row["added"],
        tags=tuple(tags),
        repo_digests=tuple(digests),
    )
