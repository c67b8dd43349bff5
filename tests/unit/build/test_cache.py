"""The build step cache: keys, lookups that survive processes, pruning, the size limit."""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
import time

import pytest

from berth.build.cache import BuildCache, StepLayer, cache_references, max_bytes_from_env, step_key
from berth.oci import mediatypes as mt
from berth.store.ingest import ingest_layer
from berth.store.store import Store


@pytest.fixture
def store(store_root: str):
    s = Store.open(store_root)
    yield s
    s.close()


def _layer(store: Store, name: str, size: int, parent: StepLayer | None = None) -> StepLayer:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))
    buffer.seek(0)
    with store.lease() as lease:
        added = ingest_layer(
            store,
            lease,
            buffer,
            media_type=mt.OCI_LAYER,
            parent_chain=parent.chain_id if parent else None,
        )
    return StepLayer(
        added.layer.chain_id,
        added.layer.parent_chain,
        added.diff_id,
        added.blob_digest,
        mt.OCI_LAYER,
        added.blob_size,
        added.layer.size,
        "2024-01-02T03:04:05Z",
    )


def test_step_keys_depend_on_parent_kind_and_inputs():
    base = step_key("image:sha256:" + "a" * 64, "run", {"argv": ["sh", "-c", "x"]})
    assert base == step_key("image:sha256:" + "a" * 64, "run", {"argv": ["sh", "-c", "x"]})
    assert base != step_key("image:sha256:" + "b" * 64, "run", {"argv": ["sh", "-c", "x"]})
    assert base != step_key("image:sha256:" + "a" * 64, "copy", {"argv": ["sh", "-c", "x"]})
    assert base != step_key("image:sha256:" + "a" * 64, "run", {"argv": ["sh", "-c", "y"]})
    # dictionary order does not matter, tuples and lists are the same
    assert step_key("p", "k", {"a": 1, "b": (1, 2)}) == step_key("p", "k", {"b": [1, 2], "a": 1})
    assert base.startswith("sha256:") and len(base) == 71


def test_entries_survive_a_new_process(store, store_root):
    layer = _layer(store, "f", 10)
    BuildCache(store).put("k1", layer, "RUN x")
    other = Store.open(store_root)
    try:
        assert BuildCache(other).get("k1") == layer
        assert BuildCache(other).get("k2") is None
    finally:
        other.close()


def test_an_entry_whose_layer_or_blob_is_gone_is_a_miss(store):
    layer = _layer(store, "f", 10)
    cache = BuildCache(store)
    cache.put("k", layer, "RUN x")
    os.unlink(store.blobs.path(layer.blob_digest))
    assert cache.get("k") is None


def test_usage_is_recorded_in_one_write(store):
    layer = _layer(store, "f", 10)
    cache = BuildCache(store)
    cache.put("k", layer, "RUN x")
    store.db.execute("UPDATE build_cache SET last_used = 1")
    assert cache.get("k") is not None
    assert cache.entries()[0].last_used == 1
    cache.flush_usage()
    assert cache.entries()[0].last_used > time.time() - 60


def test_prune_all_removes_entries_layers_and_blobs(store):
    first = _layer(store, "a", 100)
    second = _layer(store, "b", 200, parent=first)
    cache = BuildCache(store)
    cache.put("k1", first, "RUN a")
    cache.put("k2", second, "RUN b")
    assert cache.total_size() == 300
    result = cache.prune(all_entries=True)
    assert sorted(result.deleted) == ["k1", "k2"]
    assert result.reclaimed == 300
    assert store.layers.get(first.chain_id) is None
    assert store.layers.get(second.chain_id) is None
    assert not store.blobs.has(second.blob_digest)


def test_a_parent_layer_used_by_another_entry_is_kept(store):
    first = _layer(store, "a", 100)
    second = _layer(store, "b", 200, parent=first)
    cache = BuildCache(store)
    cache.put("k1", first, "RUN a")
    cache.put("k2", second, "RUN b")
    store.db.execute("UPDATE build_cache SET last_used = 1 WHERE key = 'k1'")
    cache.prune(all_entries=True, keep_bytes=200)  # drops k1 only (least recently used)
    assert [e.key for e in cache.entries()] == ["k2"]
    assert store.layers.get(first.chain_id) is not None  # still under k2's layer
    assert cache.get("k2") is not None


def test_the_size_limit_evicts_least_recently_used(store, monkeypatch):
    cache = BuildCache(store)
    for i in range(3):
        cache.put(f"k{i}", _layer(store, f"f{i}", 1000), f"RUN {i}")
        store.db.execute("UPDATE build_cache SET last_used = ? WHERE key = ?", (i, f"k{i}"))
    monkeypatch.setenv("BERTH_BUILD_CACHE_MAX", "2kB")
    assert max_bytes_from_env() == 2000
    result = cache.enforce_limit()
    assert result.deleted == ["k0"]
    assert [e.key for e in cache.entries()] == ["k1", "k2"]
    assert cache.enforce_limit().deleted == []


def test_without_all_only_entries_no_image_uses_are_pruned(store):
    layer = _layer(store, "f", 10)
    cache = BuildCache(store)
    cache.put("k", layer, "RUN x")
    with store.db.write() as conn:
        conn.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, size, "
            "added) VALUES ('sha256:' || hex(randomblob(32)), 'm', 't', 0, 0)"
        )
        image_id = conn.execute("SELECT id FROM images").fetchone()[0]
        conn.execute(
            "INSERT INTO image_layers VALUES (?, 0, ?, ?, ?, 0)",
            (image_id, str(layer.chain_id), str(layer.blob_digest), mt.OCI_LAYER),
        )
    assert cache.prune().deleted == []
    assert cache.prune(all_entries=True).deleted == ["k"]
    assert store.layers.get(layer.chain_id) is not None  # the image still needs it


def test_until_spares_recently_used_entries(store):
    cache = BuildCache(store)
    cache.put("old", _layer(store, "a", 10), "RUN a")
    cache.put("new", _layer(store, "b", 10), "RUN b")
    store.db.execute("UPDATE build_cache SET last_used = 100 WHERE key = 'old'")
    assert cache.prune(all_entries=True, until=time.time() - 3600).deleted == ["old"]


def test_cache_references_include_parents(store):
    first = _layer(store, "a", 10)
    second = _layer(store, "b", 10, parent=first)
    BuildCache(store).put("k", second, "RUN b")
    conn = sqlite3.connect(store.paths.db)
    try:
        layers, blobs = cache_references(conn)
    finally:
        conn.close()
    assert layers == {str(first.chain_id), str(second.chain_id)}
    assert blobs == {str(second.blob_digest)}
