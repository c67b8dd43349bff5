"""Garbage collection of a registry's storage: mark and sweep, safe while the server serves.

**Mark.** Every manifest linked in any repository is a root (tagged or not: referrers are
untagged by design, and an index's children are usually untagged too). Each root marks itself,
its config and layers, or, for an index, its child manifests. Blobs are shared by all
repositories, so the mark is global.

**Sweep.** Every blob in ``blobs/`` that is not marked is deleted, unless it is protected.
Then repository links to blobs that no longer exist are removed, unfinished uploads older than
the upload expiry are purged, and stale temp files removed.

**Running beside a live server.** Three rules keep content that is in flight:

1. *Timestamps.* A push uploads blobs first and the manifest last, so a blob of a push in
   progress is referenced by nothing yet. A blob is protected if its file, or a repository's link
   to it, was written within ``grace_seconds`` before the collection started (the server sets
   both mtimes whenever it stores, re-stores, links or mounts a blob). Uploads still in progress
   live in ``uploads/`` and are not blobs yet, so they are never swept.
2. *A lock.* The sweep holds ``gc.lock`` exclusively; the server holds it shared while it
   checks that a manifest's blobs exist and stores the manifest, and while it moves a finished
   upload or a mount into place. So a manifest can never be accepted on the strength of a blob
   the sweep is about to delete: either the sweep ran first (the push then gets
   ``MANIFEST_BLOB_UNKNOWN`` and uploads the blob again) or the manifest is stored first.
3. *A second mark.* Under the lock, before deleting anything, manifests linked since the mark
   phase began (their link's mtime says so) are marked too, so a manifest pushed during the mark
   keeps its blobs.

Readers are never disturbed: a blob being sent when it is deleted stays readable through its open
file until the response ends.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from berth.errors import InvalidArgument, PathNotFound
from berth.oci.digest import Digest
from berth.registry.server.storage import RegistryStorage
from berth.registry.server.uploads import UploadStore

DEFAULT_GRACE_SECONDS = 3600.0
DEFAULT_UPLOAD_EXPIRY_SECONDS = 7 * 24 * 3600.0
_CLOCK_SLACK = 2.0


@dataclass
class GcResult:
    dry_run: bool
    manifests_marked: int = 0
    blobs_marked: int = 0
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    blobs_protected: int = 0  # unreferenced, but recent: kept for pushes in progress
    links_removed: int = 0
    uploads_removed: int = 0
    tmp_removed: int = 0

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"marked {self.blobs_marked} blobs from {self.manifests_marked} manifests; "
            f"{verb} {len(self.blobs_deleted)} blobs ({self.bytes_freed} bytes), "
            f"kept {self.blobs_protected} recent unreferenced blobs; "
            f"removed {self.links_removed} dangling links, {self.uploads_removed} expired "
            f"uploads, {self.tmp_removed} temp files"
        )


def collect(
    storage: str,
    *,
    dry_run: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    upload_expiry_seconds: float = DEFAULT_UPLOAD_EXPIRY_SECONDS,
) -> GcResult:
    """Delete the blobs no manifest references; see the module doc for what is kept."""
    if not os.path.isdir(os.path.join(storage, "blobs")):
        raise PathNotFound(
            f"{storage} is not a registry storage directory (it has no blobs/)",
            hint="pass the directory given to `berth registry serve --storage`",
        )
    store = RegistryStorage(storage)
    result = GcResult(dry_run=dry_run)
    started = time.time()
    cutoff = started - grace_seconds
    marked: set[Digest] = set()
    roots: set[tuple[str, Digest]] = set()
    _mark_manifests(store, marked, roots, since=None)
    with store.sweep_lock():
        _mark_manifests(store, marked, roots, since=started - _CLOCK_SLACK)
        result.manifests_marked = len(roots)
        result.blobs_marked = len(marked)
        for _name, digest, _path, mtime in store.iter_layer_links():
            if mtime >= cutoff and digest not in marked:
                marked.add(digest)
                result.blobs_protected += 1
        for digest, path, st in store.iter_blobs():
            if digest in marked:
                continue
            if st.st_mtime >= cutoff:
                result.blobs_protected += 1
                continue
            if not dry_run:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            result.blobs_deleted.append(str(digest))
            result.bytes_freed += st.st_size
        deleted = set(result.blobs_deleted)
        for _name, digest, path, _mtime in store.iter_layer_links():
            gone = str(digest) in deleted or not os.path.exists(store.blob_path(digest))
            if gone:
                if not dry_run:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        continue
                result.links_removed += 1
    if not dry_run:
        _repaired, result.uploads_removed = UploadStore(store).recover(upload_expiry_seconds)
        result.tmp_removed = store.clean_tmp(older_than=cutoff)
    return result


def _mark_manifests(
    store: RegistryStorage,
    marked: set[Digest],
    roots: set[tuple[str, Digest]],
    *,
    since: float | None,
) -> None:
    """Mark every linked manifest (modified at or after ``since``) and what it references."""
    for name, digest, mtime in store.iter_manifest_links():
        if since is not None and mtime < since:
            continue
        roots.add((name, digest))
        marked.add(digest)
        marked.update(_references(store, digest))


def _references(store: RegistryStorage, digest: Digest) -> list[Digest]:
    try:
        with open(store.blob_path(digest), "rb") as f:
            data = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    descriptors: list[object] = []
    if isinstance(data.get("config"), dict):
        descriptors.append(data["config"])
    for key in ("layers", "manifests", "blobs"):
        if isinstance(data.get(key), list):
            descriptors.extend(data[key])
    found: list[Digest] = []
    for descriptor in descriptors:
        if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
            try:
                found.append(Digest.parse(descriptor["digest"]))
            except InvalidArgument:
                continue
    return found
