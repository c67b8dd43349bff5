"""The store: blobs, layers and image records under one root, behind one object."""

from __future__ import annotations

import errno
import os

from berth.errors import HostError, StoreError
from berth.oci.digest import Digest
from berth.oci.reference import ImageReference
from berth.store.blobs import TEMP_PREFIX, BlobStore
from berth.store.db import Database
from berth.store.images import ImageRecord, ImageStore, NewLayer
from berth.store.layers import LayerStore, remove_tree
from berth.store.leases import Lease, dead_leases, live_leased, process_start_time
from berth.store.paths import StorePaths
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Sequence

    GcRoots = Callable[[sqlite3.Connection], tuple[set[str], set[str]]]


class Removal(Value):
    """What a delete or prune removed, as ``docker rmi`` reports it."""

    __slots__ = ("reclaimed", "records")
    records: list[tuple[str, str]]
    reclaimed: int

    def __init__(self, records: list[tuple[str, str]] | None = None, reclaimed: int = 0) -> None:
        self.records = [] if records is None else records
        self.reclaimed = reclaimed


class Finding(FrozenValue):
    __slots__ = ("kind", "path", "what")
    kind: str  # "leftover" (safe to remove) or "damage"
    what: str
    path: str | None

    def __init__(self, kind: str, what: str, path: str | None = None) -> None:
        init_fields(self, kind=kind, what=what, path=path)


class Store:
    """``gc_roots``: functions naming (chain ids, blob digests) that something above the store
    keeps alive (the build cache), so garbage collection leaves them."""

    def __init__(self, paths: StorePaths, gc_roots: Sequence[GcRoots] = ()) -> None:
        self.paths = paths
        self.gc_roots = list(gc_roots)
        try:
            for directory in (
                paths.root,
                paths.blobs,
                paths.layers,
                paths.links,
                paths.tmp,
                paths.containers,
                paths.volumes,
            ):
                os.makedirs(directory, exist_ok=True)
        except PermissionError:
            raise HostError(
                f"cannot create the store at {paths.root}: permission denied",
                hint="run berth as root, or pick another store with --root",
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                from berth.errors import StorageFull

                raise StorageFull(f"no space left to create the store at {paths.root}") from None
            raise StoreError(f"cannot create the store at {paths.root}: {exc.strerror}") from None
        self.db = Database(paths.db)
        self.blobs = BlobStore(paths)
        self.layers = LayerStore(paths, self.db)
        self.images = ImageStore(self.db)

    @classmethod
    def open(cls, root: str | None = None) -> Store:
        return cls(StorePaths.at(root))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------- importing

    def lease(self) -> Lease:
        return Lease(self.db)

    def put_blob(self, lease: Lease, data: bytes, expected: Digest | None = None) -> Digest:
        """Store a small blob (manifest, config) under a lease."""
        digest = expected or Digest.of(data)
        lease.add("blob", str(digest))
        if not self.blobs.has(digest):
            self.blobs.put_bytes(data, digest)
        return digest

    def commit_image(
        self,
        lease: Lease,
        *,
        config_digest: Digest,
        manifest_digest: Digest,
        manifest_media_type: str,
        created: str,
        layers: Sequence[NewLayer],
        layer_sizes: Sequence[int],
        tags: Iterable[ImageReference] = (),
        repo_digests: Iterable[tuple[str, Digest]] = (),
        extra_blobs: Iterable[Digest] = (),
        index_digest: Digest | None = None,
        parent: str | None = None,
    ) -> ImageRecord:
        """Record an image, its tags and repo digests, and drop the lease, atomically."""
        with self.db.write() as conn:
            missing = [
                d
                for d in (config_digest, manifest_digest, *(x.blob_digest for x in layers))
                if not self.blobs.has(d)
            ]
            if missing:
                raise StoreError(
                    f"blob {missing[0]} vanished before the image was recorded",
                    hint="run the command again",
                )
            self.images.put_in(
                conn,
                config_digest=config_digest,
                manifest_digest=manifest_digest,
                manifest_media_type=manifest_media_type,
                created=created,
                layers=layers,
                layer_sizes=layer_sizes,
                extra_blobs=extra_blobs,
                index_digest=index_digest,
                parent=parent,
            )
            for ref in tags:
                self.images.tag_in(conn, str(config_digest), ref)
            for repository, digest in repo_digests:
                self.images.add_repo_digest_in(conn, str(config_digest), repository, digest)
            lease.release_in(conn)
        record = self.images.get(config_digest)
        assert record is not None
        return record

    def tag(self, image: ImageRecord, ref: ImageReference) -> None:
        with self.db.write() as conn:
            self.images.tag_in(conn, str(image.id), ref)

    # -------------------------------------------------------------- removing

    def delete_image(
        self, name: str, *, force: bool = False, prune_parents: bool = True
    ) -> Removal:
        removal = Removal()
        with self.db.write() as conn:
            removal.records = self.images.delete_in(
                conn, name, force=force, prune_parents=prune_parents
            )
            self._collect_in(conn, removal)
        self.layers.empty_trash()
        return removal

    def prune_images(self, *, all_images: bool, keep: Iterable[str] = ()) -> Removal:
        """Delete dangling images (all unused ones with ``all_images``), as ``image prune``."""
        removal = Removal()
        keep_ids = set(keep)
        with self.db.write() as conn:
            used = {r[0] for r in conn.execute("SELECT image_id FROM containers")}
            tagged = {r[0] for r in conn.execute("SELECT image_id FROM tags")}
            parents = {
                r[0] for r in conn.execute("SELECT parent FROM images WHERE parent IS NOT NULL")
            }
            for (image_id,) in conn.execute("SELECT id FROM images ORDER BY added DESC").fetchall():
                if image_id in used or image_id in keep_ids:
                    continue
                if not all_images and (image_id in tagged or image_id in parents):
                    continue
                if (
                    conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
                    is None
                ):
                    continue  # removed as the parent of an image pruned before it
                try:
                    removal.records += self.images.delete_in(conn, image_id, force=True)
                except StoreError:
                    continue
                except Exception:  # a conflict (child image, container): leave it alone
                    continue
            self._collect_in(conn, removal)
        self.layers.empty_trash()
        return removal

    def collect_garbage(self) -> Removal:
        removal = Removal()
        with self.db.write() as conn:
            self._collect_in(conn, removal)
        self.layers.empty_trash()
        return removal

    def abandon(self, lease: Lease) -> None:
        """A failed import: drop its lease and remove what it wrote that nothing else needs,
        so the store is left exactly as it was."""
        with self.db.write() as conn:
            rows = conn.execute(
                "SELECT kind, key FROM lease_resources WHERE lease_id = ?", (lease.id,)
            ).fetchall()
            lease.release_in(conn)
            self._collect_in(conn, Removal(), only={(kind, key) for kind, key in rows})
        self.layers.empty_trash()

    def _collect_in(
        self, conn: sqlite3.Connection, removal: Removal, only: set[tuple[str, str]] | None = None
    ) -> None:
        """Remove layers and blobs nothing references (leases of live processes count).

        With ``only``, consider just those (kind, key) resources.
        """
        referenced = {r[0] for r in conn.execute("SELECT DISTINCT chain_id FROM image_layers")}
        referenced |= {
            r[0]
            for r in conn.execute(
                """WITH RECURSIVE chain(c) AS (
                   SELECT top_chain FROM containers WHERE top_chain IS NOT NULL
                   UNION SELECT l.parent_chain FROM layers l JOIN chain ON l.chain_id = chain.c
                   WHERE l.parent_chain IS NOT NULL)
               SELECT c FROM chain"""
            )
        }
        extra_blobs: set[str] = set()
        for roots in self.gc_roots:
            chains, blobs = roots(conn)
            referenced |= chains
            extra_blobs |= blobs
        leased_layers = live_leased(conn, "layer")
        referenced |= leased_layers
        for chain in list(leased_layers):  # a leased layer keeps its parents too
            referenced |= {
                r[0]
                for r in conn.execute(
                    """WITH RECURSIVE chain(c) AS (SELECT ? UNION
                       SELECT l.parent_chain FROM layers l JOIN chain ON l.chain_id = chain.c
                       WHERE l.parent_chain IS NOT NULL) SELECT c FROM chain""",
                    (chain,),
                )
            }
        layers = conn.execute("SELECT chain_id, size FROM layers").fetchall()
        if only is not None:
            layers = [(c, size) for c, size in layers if ("layer", c) in only]
        for chain_id, size in layers:
            if chain_id not in referenced:
                self.layers.remove_in(conn, Digest.parse(chain_id))
                removal.records.append(("Deleted", chain_id))
                removal.reclaimed += size
        wanted = {r[0] for r in conn.execute("SELECT DISTINCT digest FROM image_blobs")}
        wanted |= live_leased(conn, "blob") | extra_blobs
        if only is not None:
            candidates = [Digest.parse(key) for kind, key in only if kind == "blob"]
        else:
            candidates = self.blobs.iter_digests()
        for digest in candidates:
            if str(digest) not in wanted:
                self.blobs.delete(digest)
        for lease_id in dead_leases(conn):
            conn.execute("DELETE FROM lease_resources WHERE lease_id = ?", (lease_id,))
            conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    # ------------------------------------------------------------ checking

    def check(self, *, repair: bool = False) -> list[Finding]:
        """Everything that is not as it should be; with ``repair``, remove the leftovers."""
        findings: list[Finding] = []
        with self.db.write() as conn:
            findings += self._leftover_temps()
            findings += [
                Finding("leftover", f"dead lease {lease_id}") for lease_id in dead_leases(conn)
            ]
            findings += self._check_layers(conn)
            findings += self._check_blobs(conn)
            try:
                trash = os.listdir(self.paths.trash)
            except FileNotFoundError:
                trash = []
            findings += [
                Finding(
                    "leftover", "removed dir awaiting deletion", os.path.join(self.paths.trash, n)
                )
                for n in trash
            ]
            if repair:
                self._repair(conn, findings)
        if repair:
            self.layers.empty_trash()
        return findings

    def _leftover_temps(self) -> list[Finding]:
        out: list[Finding] = []
        try:
            names = os.listdir(self.paths.tmp)
        except FileNotFoundError:
            return out
        for name in names:
            pid = _temp_owner(name)
            if pid is not None and process_start_time(pid) is not None:
                continue  # belongs to a berth process still at work
            out.append(
                Finding(
                    "leftover",
                    "temp file from an interrupted command",
                    os.path.join(self.paths.tmp, name),
                )
            )
        return out

    def _check_layers(self, conn: sqlite3.Connection) -> list[Finding]:
        out: list[Finding] = []
        rows = {r[0]: r[1] for r in conn.execute("SELECT chain_id, link FROM layers")}
        for chain_id, link in rows.items():
            diff = self.paths.layer_diff(chain_id.split(":", 1)[1])
            if not os.path.isdir(diff):
                out.append(
                    Finding(
                        "damage", f"layer {chain_id} is recorded but its files are missing", diff
                    )
                )
            link_path = os.path.join(self.paths.links, link)
            if not os.path.islink(link_path):
                out.append(Finding("leftover", f"layer {chain_id} lost its short link", link_path))
        known = {c.split(":", 1)[1] for c in rows}
        for name in _listdir(self.paths.layers):
            if name not in known:
                out.append(
                    Finding(
                        "leftover",
                        "layer dir no image or container records",
                        os.path.join(self.paths.layers, name),
                    )
                )
        targets = {link for link in rows.values()}
        for name in _listdir(self.paths.links):
            if name not in targets:
                out.append(
                    Finding(
                        "leftover", "short link to no layer", os.path.join(self.paths.links, name)
                    )
                )
        referenced = {r[0] for r in conn.execute("SELECT DISTINCT chain_id FROM image_layers")}
        for chain_id in referenced - set(rows):
            out.append(Finding("damage", f"an image needs layer {chain_id}, which is not recorded"))
        return out

    def _check_blobs(self, conn: sqlite3.Connection) -> list[Finding]:
        out: list[Finding] = []
        wanted = {r[0] for r in conn.execute("SELECT DISTINCT digest FROM image_blobs")}
        leased = live_leased(conn, "blob")
        present = {str(d) for d in self.blobs.iter_digests()}
        for digest in sorted(wanted - present):
            out.append(Finding("damage", f"an image needs blob {digest}, which is missing"))
        for digest in sorted(present - wanted - leased):
            algorithm, _, hex_digest = digest.partition(":")
            out.append(
                Finding(
                    "leftover",
                    f"blob {digest} no image references",
                    self.paths.blob(algorithm, hex_digest),
                )
            )
        return out

    def _repair(self, conn: sqlite3.Connection, findings: list[Finding]) -> None:
        for lease_id in dead_leases(conn):
            conn.execute("DELETE FROM lease_resources WHERE lease_id = ?", (lease_id,))
            conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        for finding in findings:
            if finding.kind != "leftover" or finding.path is None:
                continue
            if finding.what.startswith("layer ") and "short link" in finding.what:
                chain = finding.what.split()[1]
                os.makedirs(self.paths.links, exist_ok=True)
                os.symlink(
                    os.path.join("..", "layers", chain.split(":", 1)[1], "diff"), finding.path
                )
            elif os.path.dirname(finding.path) == self.paths.layers:
                self.layers.move_to_trash(finding.path)
            else:
                remove_tree(finding.path)


def _temp_owner(name: str) -> int | None:
    """The pid in ``berth-tmp-<pid>-...``, if the name carries one."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid_text = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    return int(pid_text) if pid_text.isdigit() else None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
