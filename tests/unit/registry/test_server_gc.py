"""Garbage collection: what it deletes, what it keeps, and its protection of pushes in progress."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.errors import PathNotFound
from berth.registry.server.config import ServerConfig
from berth.registry.server.gc import collect
from berth.registry.server.storage import RegistryStorage
from tests.support.registry_server import OCI_MANIFEST, ThreadServer, sha256


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(storage=str(tmp_path / "berth-registry"))) as srv:
        yield srv


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201
    return sha256(data)


def push_image(client: httpx.Client, repo: str, ref: str, layers: list[bytes]) -> bytes:
    config = json.dumps({"layers": len(layers), "ref": ref}).encode()
    push_blob(client, repo, config)
    for layer in layers:
        push_blob(client, repo, layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(x), "size": len(x)} for x in layers],
    }).encode()
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return manifest


def age_everything(storage: str, seconds: float = 7200) -> None:
    """Make every file look written ``seconds`` ago (older than gc's grace)."""
    past = time.time() - seconds
    for dirpath, _dirs, files in os.walk(storage):
        for name in files:
            os.utime(os.path.join(dirpath, name), (past, past))


def blob_exists(storage: str, digest: str) -> bool:
    alg, hex_digest = digest.split(":")
    return os.path.exists(os.path.join(storage, "blobs", alg, hex_digest[:2], hex_digest))


def test_gc_deletes_only_unreferenced_old_blobs(server: ThreadServer) -> None:
    storage = server.config.storage
    with httpx.Client(base_url=server.url) as client:
        kept = push_image(client, "lib/a", "v1", [b"shared", b"only-a"])
        doomed = push_image(client, "lib/b", "v1", [b"shared", b"only-b"])
        stray = push_blob(client, "lib/c", b"never referenced")
        assert client.delete(f"/v2/lib/b/manifests/{sha256(doomed)}").status_code == 202
    age_everything(storage)
    dry = collect(storage, dry_run=True)
    assert dry.dry_run
    # lib/b's config is the same bytes as lib/a's, so it stays
    assert set(dry.blobs_deleted) == {sha256(doomed), sha256(b"only-b"), stray}
    assert blob_exists(storage, stray)  # a dry run deletes nothing
    result = collect(storage)
    assert set(result.blobs_deleted) == set(dry.blobs_deleted)
    assert result.bytes_freed > 0
    for digest in (sha256(kept), sha256(b"shared"), sha256(b"only-a")):
        assert blob_exists(storage, digest)
    for digest in (sha256(doomed), sha256(b"only-b"), stray):
        assert not blob_exists(storage, digest)
    assert result.links_removed >= 2  # lib/b's only-b and lib/c's stray
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v2/lib/a/manifests/v1").content == kept
        assert client.head(f"/v2/lib/a/blobs/{sha256(b'only-a')}").status_code == 200
        assert client.head(f"/v2/lib/c/blobs/{stray}").status_code == 404


def test_recent_blobs_of_a_push_in_progress_are_kept(server: ThreadServer) -> None:
    storage = server.config.storage
    with httpx.Client(base_url=server.url) as client:
        layer = push_blob(client, "lib/a", b"uploaded, manifest still to come")
        result = collect(storage)  # default grace: an hour
        assert blob_exists(storage, layer)
        assert result.blobs_protected == 1
        assert collect(storage, grace_seconds=0).blobs_deleted == [layer]


def test_an_old_blob_mounted_just_now_is_kept(server: ThreadServer) -> None:
    storage = server.config.storage
    with httpx.Client(base_url=server.url) as client:
        digest = push_blob(client, "lib/src", b"old unreferenced layer")
        age_everything(storage)
        r = client.post("/v2/lib/dst/blobs/uploads/", params={"mount": digest, "from": "lib/src"})
        assert r.status_code == 201
    collect(storage)
    assert blob_exists(storage, digest)


def test_referrers_and_index_children_are_roots(server: ThreadServer) -> None:
    storage = server.config.storage
    with httpx.Client(base_url=server.url) as client:
        child = push_image(client, "lib/a", "child", [b"child layer"])
        index = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(child),
                                           "size": len(child)}]}).encode()
        client.put("/v2/lib/a/manifests/multi", content=index,
                   headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
        client.delete("/v2/lib/a/manifests/child")  # untag the child: the index still needs it
    age_everything(storage)
    collect(storage)
    assert blob_exists(storage, sha256(child))
    assert blob_exists(storage, sha256(b"child layer"))


def test_manifest_pushed_while_gc_marks_keeps_its_blobs(
    server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second mark, under the lock, sees manifests linked after the first mark began."""
    storage = server.config.storage
    pushed = threading.Event()
    real_sweep_lock = RegistryStorage.sweep_lock

    def sweep_lock_after_the_push(self: RegistryStorage):  # type: ignore[no-untyped-def]
        pushed.wait(10)
        return real_sweep_lock(self)

    monkeypatch.setattr(RegistryStorage, "sweep_lock", sweep_lock_after_the_push)
    with httpx.Client(base_url=server.url) as client:
        push_blob(client, "lib/a", b'{"late":1}')
        push_blob(client, "lib/a", b"late layer")
        age_everything(storage)
        thread = threading.Thread(target=collect, args=(storage,))
        thread.start()  # gc marks (nothing), then waits before its sweep
        time.sleep(0.2)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(b'{"late":1}'), "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(b"late layer"), "size": 10}],
        }).encode()
        r = client.put("/v2/lib/a/manifests/late", content=manifest,
                       headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201
        pushed.set()
        thread.join(30)
    assert blob_exists(storage, sha256(b"late layer"))
    assert blob_exists(storage, sha256(b'{"late":1}'))


def test_gc_needs_a_registry_directory(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        collect(str(tmp_path / "berth-nothing-here"))
