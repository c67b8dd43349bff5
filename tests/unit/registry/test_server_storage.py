"""The registry's storage and upload sessions, without HTTP: atomicity, crash repair, dedup."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.errors import UsageError
from berth.oci.digest import Digest
from berth.registry.server.config import ServerConfig, parse_addr
from berth.registry.server.errors import ERROR_CODES, DistributionError
from berth.registry.server.manifests import inspect_manifest
from berth.registry.server.storage import RegistryStorage
from berth.registry.server.uploads import UploadStore, receive


@pytest.fixture
def storage(tmp_path: Path) -> RegistryStorage:
    store = RegistryStorage(str(tmp_path / "berth-registry"))
    store.initialize()
    return store


def digest_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise ConnectionResetError("client went away")


# -- uploads ---------------------------------------------------------------------------------


def test_chunks_commit_and_finish_into_a_blob(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    data = os.urandom(3 * 1024 * 1024)
    upload = uploads.open("lib/a", upload_id)
    asyncio.run(receive(upload, chunks(data[:1000], data[1000:2_000_000])))
    upload.commit()
    upload.close()
    assert uploads.status("lib/a", upload_id).offset == 2_000_000
    upload = uploads.open("lib/a", upload_id)
    asyncio.run(receive(upload, chunks(data[2_000_000:])))
    upload.finish(digest_of(data))
    with open(storage.blob_path(digest_of(data)), "rb") as f:
        assert f.read() == data
    assert storage.blob_in_repo("lib/a", digest_of(data))
    assert not os.path.exists(os.path.join(storage.uploads_dir, upload_id))


def test_a_failed_chunk_is_rolled_back(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    upload = uploads.open("lib/a", upload_id)
    asyncio.run(receive(upload, chunks(b"a" * 10)))
    upload.commit()
    with pytest.raises(ConnectionResetError):
        asyncio.run(receive(upload, failing(b"b" * (2 << 20))))
    upload.close()
    assert uploads.status("lib/a", upload_id).offset == 10
    assert os.path.getsize(os.path.join(storage.uploads_dir, upload_id, "data")) == 10
    upload = uploads.open("lib/a", upload_id)
    asyncio.run(receive(upload, chunks(b"c" * 5)))
    upload.finish(digest_of(b"a" * 10 + b"c" * 5))


def test_crash_leftovers_are_cut_off_when_the_session_is_next_used(
    storage: RegistryStorage,
) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    upload = uploads.open("lib/a", upload_id)
    asyncio.run(receive(upload, chunks(b"committed")))
    upload.commit()
    upload.close()
    # a server killed mid-chunk leaves bytes past the committed offset
    with open(os.path.join(storage.uploads_dir, upload_id, "data"), "ab") as f:
        f.write(b"partial garbage")
    fresh = UploadStore(storage)  # a restarted server: no cached hash state
    upload = fresh.open("lib/a", upload_id)
    assert upload.committed == len(b"committed")
    asyncio.run(receive(upload, chunks(b"+more")))
    upload.finish(digest_of(b"committed+more"))


def test_recover_repairs_idle_sessions_and_purges_expired_ones(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    keep = uploads.create("lib/a")
    upload = uploads.open("lib/a", keep)
    asyncio.run(receive(upload, chunks(b"12345")))
    upload.commit()
    upload.close()
    with open(os.path.join(storage.uploads_dir, keep, "data"), "ab") as f:
        f.write(b"junk")
    old = uploads.create("lib/a")
    info_path = os.path.join(storage.uploads_dir, old, "info.json")
    with open(info_path, "w") as f:
        json.dump({"repository": "lib/a", "started": 1.0}, f)
    os.makedirs(os.path.join(storage.uploads_dir, "not-a-session"))
    repaired, removed = uploads.recover(expiry_seconds=3600)
    assert (repaired, removed) == (1, 2)
    assert os.path.getsize(os.path.join(storage.uploads_dir, keep, "data")) == 5
    assert not os.path.exists(os.path.join(storage.uploads_dir, old))


def test_a_locked_session_is_left_alone_by_recover(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    upload = uploads.open("lib/a", upload_id)
    upload.write(b"in flight, not committed")
    assert uploads.recover(expiry_seconds=0) == (0, 0)
    upload.close()


def test_digest_mismatch_removes_the_session(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    upload = uploads.open("lib/a", upload_id)
    upload.write(b"real")
    with pytest.raises(DistributionError) as error:
        upload.finish(digest_of(b"claimed"))
    assert error.value.code == "DIGEST_INVALID"
    assert not os.path.exists(storage.blob_path(digest_of(b"real")))
    assert not os.path.exists(storage.blob_path(digest_of(b"claimed")))
    with pytest.raises(DistributionError, match="unknown"):
        uploads.status("lib/a", upload_id)


def test_limit_stops_an_oversized_body(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload = uploads.open("lib/a", uploads.create("lib/a"))
    with pytest.raises(DistributionError) as error:
        asyncio.run(receive(upload, chunks(b"x" * 100), limit=10))
    assert error.value.code == "SIZE_INVALID"
    assert upload.size == 0
    upload.close()


def test_session_ids_are_checked(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    for bad in ("../../etc", "", "0" * 36):
        with pytest.raises(DistributionError):
            uploads.status("lib/a", bad)


def test_a_session_is_created_atomically(storage: RegistryStorage) -> None:
    uploads = UploadStore(storage)
    upload_id = uploads.create("lib/a")
    assert sorted(os.listdir(os.path.join(storage.uploads_dir, upload_id))) == [
        "data", "info.json", "offset"]
    assert os.listdir(storage.tmp_dir) == []


# -- storage ---------------------------------------------------------------------------------


def test_blobs_are_stored_once(storage: RegistryStorage) -> None:
    data = b"same bytes"
    storage.write_blob(data, digest_of(data))
    storage.write_blob(data, digest_of(data))
    storage.link_blob("a", digest_of(data))
    storage.link_blob("b", digest_of(data))
    assert storage.blob_in_repo("a", digest_of(data))
    assert storage.blob_in_repo("b", digest_of(data))
    assert not storage.blob_in_repo("c", digest_of(data))
    assert os.listdir(storage.tmp_dir) == []


def test_manifests_tags_and_listing(storage: RegistryStorage) -> None:
    raw = b'{"schemaVersion":2}'
    digest = digest_of(raw)
    storage.put_manifest("a/b", digest, "application/x", raw, tag="v1", subject=None,
                         referrer=None)
    assert storage.resolve_tag("a/b", "v1") == digest
    stored = storage.get_manifest("a/b", digest)
    assert stored is not None
    assert stored.content == raw
    assert stored.media_type == "application/x"
    assert storage.list_tags("a/b") == ["v1"]
    assert storage.list_tags("a/c") is None
    assert storage.list_repositories() == ["a/b"]
    assert storage.delete_manifest("a/b", digest)
    assert storage.list_tags("a/b") == []
    assert storage.resolve_tag("a/b", "v1") is None


# -- manifests -------------------------------------------------------------------------------


def test_inspect_manifest_names_what_must_exist() -> None:
    layer_with_urls = {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                       "digest": "sha256:" + "1" * 64, "size": 5, "urls": ["https://x/y"]}
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + "2" * 64, "size": 3},
        "layers": [layer_with_urls],
        "annotations": {"a": "b"},
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + "3" * 64, "size": 9},
    }).encode()
    facts = inspect_manifest(raw, "application/vnd.oci.image.manifest.v1+json; charset=x",
                             digest_of(raw))
    assert [str(d.digest) for d in facts.blobs] == ["sha256:" + "2" * 64]  # urls: not required
    assert facts.subject == Digest("sha256", "3" * 64)
    assert facts.referrer == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": str(digest_of(raw)), "size": len(raw),
        "artifactType": "application/vnd.oci.image.config.v1+json",
        "annotations": {"a": "b"},
    }


def test_inspect_manifest_uses_the_content_type_when_media_type_is_absent() -> None:
    raw = b'{"schemaVersion":2,"manifests":[]}'
    facts = inspect_manifest(raw, "application/vnd.oci.image.index.v1+json", digest_of(raw))
    assert facts.media_type == "application/vnd.oci.image.index.v1+json"
    assert facts.referrer is None


# -- configuration and errors ----------------------------------------------------------------


def test_addresses() -> None:
    assert parse_addr("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_addr(":5000") == ("127.0.0.1", 5000)
    assert parse_addr("[::1]:0") == ("::1", 0)
    for bad in ("5000", "host:", "host:99999", "host:x"):
        with pytest.raises(UsageError):
            parse_addr(bad)


def test_config_validation(tmp_path: Path) -> None:
    ServerConfig(storage=str(tmp_path)).validate()
    with pytest.raises(UsageError, match="together"):
        ServerConfig(storage=str(tmp_path), tls_cert="x").validate()
    with pytest.raises(UsageError, match="no such file"):
        ServerConfig(storage=str(tmp_path), htpasswd=str(tmp_path / "none")).validate()
    with pytest.raises(UsageError, match="workers"):
        ServerConfig(storage=str(tmp_path), workers=0).validate()
    assert not ServerConfig(storage=str(tmp_path)).auth_enabled
    assert ServerConfig(storage=str(tmp_path), token=True).auth_enabled


def test_error_codes_are_exactly_the_specs() -> None:
    assert set(ERROR_CODES) == {
        "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
        "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
    error = DistributionError("BLOB_UNKNOWN", detail={"digest": "sha256:x"})
    assert error.status == 404
    assert json.loads(error.body()) == {"errors": [{
        "code": "BLOB_UNKNOWN", "message": "blob unknown to registry",
        "detail": {"digest": "sha256:x"}}]}
    with pytest.raises(ValueError):
        DistributionError("NOT_A_CODE")
