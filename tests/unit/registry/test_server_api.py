"""berth's registry over HTTP: the distribution spec's endpoints, statuses, headers and errors.

Each test talks to a real server (the aiohttp app in a thread, on 127.0.0.1) with httpx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from berth.registry.server.config import ServerConfig
from tests.support.registry_server import OCI_INDEX, OCI_MANIFEST, ThreadServer, sha256

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = sha256(EMPTY_JSON)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def server(tmp_path: Any) -> Iterator[ThreadServer]:
    storage = tmp_path / "berth-registry"
    with ThreadServer(ServerConfig(storage=str(storage))) as srv:
        yield srv


@pytest.fixture
def client(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }
    body.update(extra)
    return json.dumps(body).encode()


def push_image(client: httpx.Client, repo: str, ref: str, *, seed: bytes = b"") -> bytes:
    config = b'{"architecture":"amd64","os":"linux","seed":"' + seed + b'"}'
    layer = b"layer-bytes-" + seed
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    manifest = image_manifest(config, [layer])
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return manifest


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


# -- base ------------------------------------------------------------------------------------


def test_base_endpoint_answers_200_with_the_api_version_header(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert client.head("/v2/").status_code == 200


# -- blobs -----------------------------------------------------------------------------------


def test_monolithic_post_stores_a_blob_that_get_and_head_serve(client: httpx.Client) -> None:
    data = os.urandom(100_000)
    digest = push_blob(client, "lib/a", data)
    r = client.get(f"/v2/lib/a/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Type"] == "application/octet-stream"
    head = client.head(f"/v2/lib/a/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.content == b""


def test_post_then_put_uploads_a_blob(client: httpx.Client) -> None:
    r = client.post("/v2/lib/a/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    assert r.headers["Docker-Upload-UUID"] in location
    assert r.headers["Range"] == "0-0"
    data = b"x" * 5000
    r = client.put(location, params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/lib/a/blobs/{sha256(data)}"
    assert r.headers["Docker-Content-Digest"] == sha256(data)
    assert client.get(r.headers["Location"]).content == data


def test_chunked_upload_in_order_with_status_and_final_put(client: httpx.Client) -> None:
    data = os.urandom(30_000)
    first, second, third = data[:10_000], data[10_000:25_000], data[25_000:]
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    r = client.patch(location, content=first, headers={"Content-Range": "0-9999"})
    assert r.status_code == 202
    assert r.headers["Range"] == "0-9999"
    location = r.headers["Location"]
    r = client.get(location)
    assert r.status_code == 204
    assert r.headers["Range"] == "0-9999"
    r = client.patch(location, content=second, headers={"Content-Range": "10000-24999"})
    assert r.status_code == 202
    assert r.headers["Range"] == "0-24999"
    r = client.put(location, params={"digest": sha256(data)}, content=third,
                   headers={"Content-Range": "25000-29999"})
    assert r.status_code == 201
    assert client.get(f"/v2/lib/a/blobs/{sha256(data)}").content == data


def test_patch_without_content_range_streams_at_the_current_offset(client: httpx.Client) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    r = client.patch(location, content=iter([data[:1000], data[1000:]]))
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = client.put(r.headers["Location"], params={"digest": sha256(data)})
    assert r.status_code == 201


def test_out_of_order_chunk_is_416_with_the_current_range(client: httpx.Client) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    assert client.patch(location, content=b"a" * 10,
                        headers={"Content-Range": "0-9"}).status_code == 202
    r = client.patch(location, content=b"b" * 10, headers={"Content-Range": "20-29"})
    assert r.status_code == 416
    assert error_code(r) == "BLOB_UPLOAD_INVALID"
    assert r.headers["Range"] == "0-9"
    assert r.headers["Location"] == location
    # retrying the first chunk is out of order too
    r = client.patch(location, content=b"a" * 10, headers={"Content-Range": "0-9"})
    assert r.status_code == 416
    assert client.get(location).headers["Range"] == "0-9"


def test_content_range_that_disagrees_with_the_body_is_size_invalid(
    client: httpx.Client,
) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    r = client.patch(location, content=b"abc", headers={"Content-Range": "0-9"})
    assert r.status_code == 400
    assert error_code(r) == "SIZE_INVALID"
    assert client.get(location).headers["Range"] == "0-0"  # nothing committed


def test_malformed_content_range_is_blob_upload_invalid(client: httpx.Client) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    r = client.patch(location, content=b"abc", headers={"Content-Range": "zero-two"})
    assert r.status_code == 400
    assert error_code(r) == "BLOB_UPLOAD_INVALID"


def test_digest_mismatch_stores_nothing_and_ends_the_session(client: httpx.Client) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    claimed = sha256(b"something else")
    r = client.put(location, params={"digest": claimed}, content=b"the real bytes")
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/lib/a/blobs/{claimed}").status_code == 404
    assert client.head(f"/v2/lib/a/blobs/{sha256(b'the real bytes')}").status_code == 404
    assert error_code(client.get(location)) == "BLOB_UPLOAD_UNKNOWN"


def test_monolithic_post_with_wrong_digest_is_digest_invalid(client: httpx.Client) -> None:
    r = client.post("/v2/lib/a/blobs/uploads/", params={"digest": sha256(b"x")}, content=b"y")
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/lib/a/blobs/{sha256(b'x')}").status_code == 404


def test_put_without_digest_or_with_a_malformed_one_is_digest_invalid(
    client: httpx.Client,
) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    assert error_code(client.put(location, content=b"abc")) == "DIGEST_INVALID"
    r = client.put(location, params={"digest": "sha256:nothex"}, content=b"abc")
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"


def test_sha512_blobs_are_accepted(client: httpx.Client) -> None:
    import hashlib

    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    assert client.put(location, params={"digest": digest}, content=data).status_code == 201
    assert client.get(f"/v2/lib/a/blobs/{digest}").content == data


def test_unknown_upload_session_is_blob_upload_unknown(client: httpx.Client) -> None:
    bogus = "/v2/lib/a/blobs/uploads/0c1e44a5-5d54-4a1e-9b8f-1d1a6e0f2b3c"
    for r in (client.get(bogus), client.patch(bogus, content=b"x"),
              client.put(bogus, params={"digest": sha256(b"x")}, content=b"x"),
              client.delete(bogus), client.get("/v2/lib/a/blobs/uploads/../../etc")):
        assert r.status_code == 404, r.request
        assert error_code(r) == "BLOB_UPLOAD_UNKNOWN" or r.status_code == 404


def test_a_session_belongs_to_its_repository(client: httpx.Client) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    other = location.replace("/lib/a/", "/lib/b/")
    assert error_code(client.get(other)) == "BLOB_UPLOAD_UNKNOWN"


def test_delete_upload_cancels_it(client: httpx.Client) -> None:
    location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404


def test_empty_blob_by_single_post(client: httpx.Client) -> None:
    digest = sha256(b"")
    r = client.post("/v2/lib/a/blobs/uploads/", params={"digest": digest})
    assert r.status_code == 201
    r = client.get(f"/v2/lib/a/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""


def test_range_requests_get_206_and_416(client: httpx.Client) -> None:
    data = bytes(range(256)) * 4
    digest = push_blob(client, "lib/a", data)
    r = client.get(f"/v2/lib/a/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = client.get(f"/v2/lib/a/blobs/{digest}", headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.content == data[1000:]
    r = client.get(f"/v2/lib/a/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert r.content == data[-5:]
    r = client.get(f"/v2/lib/a/blobs/{digest}", headers={"Range": "bytes=5000-6000"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"


def test_blob_etag_is_the_digest_and_if_none_match_gives_304(client: httpx.Client) -> None:
    digest = push_blob(client, "lib/a", b"etag me")
    r = client.get(f"/v2/lib/a/blobs/{digest}")
    assert r.headers["ETag"] == f'"{digest}"'
    assert client.get(f"/v2/lib/a/blobs/{digest}",
                      headers={"If-None-Match": f'"{digest}"'}).status_code == 304


def test_unknown_blob_and_blob_of_another_repository_are_blob_unknown(
    client: httpx.Client,
) -> None:
    digest = push_blob(client, "lib/a", b"private to a")
    for url in (f"/v2/lib/b/blobs/{digest}", f"/v2/lib/a/blobs/{sha256(b'never pushed')}"):
        r = client.get(url)
        assert r.status_code == 404
        assert error_code(r) == "BLOB_UNKNOWN"
        assert client.head(url).status_code == 404


def test_invalid_blob_digest_is_digest_invalid(client: httpx.Client) -> None:
    r = client.get("/v2/lib/a/blobs/sha256:1234")
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "lib/source", b"shared layer")
    r = client.post("/v2/lib/dest/blobs/uploads/", params={"mount": digest, "from": "lib/source"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/lib/dest/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/lib/dest/blobs/{digest}").content == b"shared layer"


def test_mount_of_a_missing_blob_or_without_from_starts_an_upload(client: httpx.Client) -> None:
    digest = push_blob(client, "lib/source", b"layer")
    r = client.post("/v2/lib/dest/blobs/uploads/",
                    params={"mount": sha256(b"missing"), "from": "lib/source"})
    assert r.status_code == 202
    assert "/v2/lib/dest/blobs/uploads/" in r.headers["Location"]
    r = client.post("/v2/lib/dest/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 202
    assert client.head(f"/v2/lib/dest/blobs/{digest}").status_code == 404


def test_delete_blob_unlinks_it_from_the_repository_only(client: httpx.Client) -> None:
    digest = push_blob(client, "lib/a", b"deletable")
    push_blob(client, "lib/b", b"deletable")
    assert client.delete(f"/v2/lib/a/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/lib/a/blobs/{digest}").status_code == 404
    assert client.head(f"/v2/lib/b/blobs/{digest}").status_code == 200
    r = client.delete(f"/v2/lib/a/blobs/{digest}")
    assert r.status_code == 404
    assert error_code(r) == "BLOB_UNKNOWN"


def test_concurrent_uploads_dedupe_into_one_blob(server: ThreadServer,
                                                  client: httpx.Client) -> None:
    data = os.urandom(50_000)
    push_blob(client, "lib/a", data)
    push_blob(client, "lib/b", data)
    storage = server.config.storage
    files = [f for _, _, names in os.walk(os.path.join(storage, "blobs")) for f in names]
    assert files.count(sha256(data).split(":")[1]) == 1


# -- manifests -------------------------------------------------------------------------------


def test_manifest_push_and_pull_by_tag_and_digest(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    digest = sha256(manifest)
    for ref in ("v1", digest):
        r = client.get(f"/v2/lib/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == manifest
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["ETag"] == f'"{digest}"'
        head = client.head(f"/v2/lib/app/manifests/{ref}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(manifest))
        assert head.headers["Docker-Content-Digest"] == digest


def test_manifest_put_answers_201_with_location_and_digest(client: httpx.Client) -> None:
    config, layer = b'{"c":1}', b"layer"
    push_blob(client, "lib/app", config)
    push_blob(client, "lib/app", layer)
    manifest = image_manifest(config, [layer])
    r = client.put("/v2/lib/app/manifests/latest", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == sha256(manifest)
    assert r.headers["Location"] == f"/v2/lib/app/manifests/{sha256(manifest)}"
    assert "OCI-Subject" not in r.headers


def test_manifest_bytes_are_kept_exactly(client: httpx.Client) -> None:
    config, layer = b'{"c":2}', b"layer2"
    push_blob(client, "lib/app", config)
    push_blob(client, "lib/app", layer)
    pretty = json.dumps(json.loads(image_manifest(config, [layer])), indent=7).encode()
    client.put("/v2/lib/app/manifests/pretty", content=pretty,
               headers={"Content-Type": OCI_MANIFEST})
    assert client.get("/v2/lib/app/manifests/pretty").content == pretty


def test_docker_schema2_manifest_keeps_its_media_type(client: httpx.Client) -> None:
    config, layer = b'{"d":1}', b"docker layer"
    push_blob(client, "lib/docker", config)
    push_blob(client, "lib/docker", layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    r = client.put("/v2/lib/docker/manifests/1", content=manifest,
                   headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 201
    assert client.get("/v2/lib/docker/manifests/1").headers["Content-Type"] == DOCKER_MANIFEST


def test_manifest_with_a_missing_blob_is_manifest_blob_unknown(client: httpx.Client) -> None:
    config = b'{"only":"config"}'
    push_blob(client, "lib/app", config)
    manifest = image_manifest(config, [b"never uploaded"])
    r = client.put("/v2/lib/app/manifests/broken", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert sha256(b"never uploaded") in r.json()["errors"][0]["detail"]["digests"]
    assert client.get("/v2/lib/app/manifests/broken").status_code == 404


def test_blobs_of_another_repository_do_not_count(client: httpx.Client) -> None:
    config, layer = b'{"x":1}', b"elsewhere"
    push_blob(client, "lib/other", config)
    push_blob(client, "lib/other", layer)
    r = client.put("/v2/lib/app/manifests/v1", content=image_manifest(config, [layer]),
                   headers={"Content-Type": OCI_MANIFEST})
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"


def test_descriptor_size_must_match_the_blob(client: httpx.Client) -> None:
    config, layer = b'{"s":1}', b"sized"
    push_blob(client, "lib/app", config)
    push_blob(client, "lib/app", layer)
    body = json.loads(image_manifest(config, [layer]))
    body["layers"][0]["size"] = 999
    r = client.put("/v2/lib/app/manifests/v1", content=json.dumps(body).encode(),
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_INVALID"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}',
         "application/vnd.example.thing+json"),
        (b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
         "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', "application/octet-stream"),
    ],
    ids=["malformed-json", "not-an-object", "unsupported-type", "schema1", "no-config",
         "untyped"],
)
def test_bad_manifests_are_manifest_invalid(
    client: httpx.Client, content: bytes, content_type: str
) -> None:
    r = client.put("/v2/lib/app/manifests/bad", content=content,
                   headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_INVALID"


def test_content_type_contradicting_media_type_is_manifest_invalid(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    r = client.put("/v2/lib/app/manifests/v2", content=manifest,
                   headers={"Content-Type": DOCKER_MANIFEST})
    assert error_code(r) == "MANIFEST_INVALID"


def test_put_by_digest_must_match_the_body(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    r = client.put(f"/v2/lib/app/manifests/{sha256(b'other')}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"
    r = client.put(f"/v2/lib/app/manifests/{sha256(manifest)}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201


def test_oversized_manifest_is_413(tmp_path: Any) -> None:
    config = ServerConfig(storage=str(tmp_path / "berth-registry"), max_manifest_bytes=2048)
    with ThreadServer(config) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.put("/v2/lib/app/manifests/big", content=b" " * 4096,
                       headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 413
        assert error_code(r) == "SIZE_INVALID"


def test_unknown_manifest_is_manifest_unknown(client: httpx.Client) -> None:
    for ref in ("nope", sha256(b"nope")):
        r = client.get(f"/v2/lib/app/manifests/{ref}")
        assert r.status_code == 404
        assert error_code(r) == "MANIFEST_UNKNOWN"
        assert client.head(f"/v2/lib/app/manifests/{ref}").status_code == 404


def test_invalid_digest_reference_is_digest_invalid(client: httpx.Client) -> None:
    r = client.get("/v2/lib/app/manifests/sha256:totallywrong")
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"


def test_invalid_tag_on_put_is_manifest_invalid(client: httpx.Client) -> None:
    r = client.put("/v2/lib/app/manifests/-bad", content=b"{}",
                   headers={"Content-Type": OCI_MANIFEST})
    assert error_code(r) == "MANIFEST_INVALID"


def test_index_needs_its_manifests_in_the_repository(client: httpx.Client) -> None:
    child = push_image(client, "lib/multi", "amd64")
    missing = sha256(b"not a pushed manifest")
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(child), "size": len(child),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": missing, "size": 10,
             "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }).encode()
    r = client.put("/v2/lib/multi/manifests/latest", content=index,
                   headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["digests"] == [missing]
    good = json.loads(index)
    good["manifests"] = good["manifests"][:1]
    raw = json.dumps(good).encode()
    r = client.put("/v2/lib/multi/manifests/latest", content=raw,
                   headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201
    assert client.get("/v2/lib/multi/manifests/latest").headers["Content-Type"] == OCI_INDEX


def test_manifest_etag_gives_304(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    r = client.get("/v2/lib/app/manifests/v1", headers={"If-None-Match": f'"{sha256(manifest)}"'})
    assert r.status_code == 304


def test_manifest_is_also_readable_as_a_blob(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    assert client.get(f"/v2/lib/app/blobs/{sha256(manifest)}").content == manifest


def test_delete_manifest_by_digest_removes_its_tags(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    client.put("/v2/lib/app/manifests/also", content=manifest,
               headers={"Content-Type": OCI_MANIFEST})
    digest = sha256(manifest)
    assert client.delete(f"/v2/lib/app/manifests/{digest}").status_code == 202
    for ref in (digest, "v1", "also"):
        assert client.get(f"/v2/lib/app/manifests/{ref}").status_code == 404
    r = client.delete(f"/v2/lib/app/manifests/{digest}")
    assert r.status_code == 404
    assert error_code(r) == "MANIFEST_UNKNOWN"


def test_delete_by_tag_removes_only_the_tag(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "v1")
    assert client.delete("/v2/lib/app/manifests/v1").status_code == 202
    assert client.get("/v2/lib/app/manifests/v1").status_code == 404
    assert client.get(f"/v2/lib/app/manifests/{sha256(manifest)}").status_code == 200
    assert client.delete("/v2/lib/app/manifests/v1").status_code == 404


# -- tags and catalog ------------------------------------------------------------------------


def test_tags_list_is_sorted_and_paginates_with_link(client: httpx.Client) -> None:
    manifest = push_image(client, "lib/app", "b")
    for tag in ("a", "C", "d", "e"):
        client.put(f"/v2/lib/app/manifests/{tag}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    r = client.get("/v2/lib/app/tags/list")
    assert r.json() == {"name": "lib/app", "tags": ["a", "b", "C", "d", "e"]}
    assert "Link" not in r.headers
    r = client.get("/v2/lib/app/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/lib/app/tags/list?n=2&last=b>; rel="next"'
    r = client.get("/v2/lib/app/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["C", "d"]
    r = client.get("/v2/lib/app/tags/list", params={"n": 2, "last": "d"})
    assert r.json()["tags"] == ["e"]
    assert "Link" not in r.headers
    r = client.get("/v2/lib/app/tags/list", params={"last": "C"})
    assert r.json()["tags"] == ["d", "e"]
    r = client.get("/v2/lib/app/tags/list", params={"n": 0})
    assert r.json()["tags"] == []
    assert "Link" not in r.headers


def test_tags_of_unknown_repository_is_name_unknown(client: httpx.Client) -> None:
    r = client.get("/v2/lib/none/tags/list")
    assert r.status_code == 404
    assert error_code(r) == "NAME_UNKNOWN"


def test_bad_page_size_is_400(client: httpx.Client) -> None:
    push_image(client, "lib/app", "v1")
    assert client.get("/v2/lib/app/tags/list", params={"n": "-1"}).status_code == 400


def test_catalog_lists_repositories_with_manifests(client: httpx.Client) -> None:
    for repo in ("zeta", "alpha/one", "alpha/one/nested", "mid"):
        push_image(client, repo, "v1")
    push_blob(client, "blobs-only", b"no manifest here")
    r = client.get("/v2/_catalog")
    assert r.json() == {"repositories": ["alpha/one", "alpha/one/nested", "mid", "zeta"]}
    r = client.get("/v2/_catalog", params={"n": 3})
    assert r.json()["repositories"] == ["alpha/one", "alpha/one/nested", "mid"]
    assert r.headers["Link"] == '</v2/_catalog?n=3&last=mid>; rel="next"'
    assert client.get("/v2/_catalog", params={"last": "mid"}).json()["repositories"] == ["zeta"]


# -- names and methods -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UPPER", "a//b", "-a", "a_", "a/..", "x" * 256])
def test_invalid_repository_names_are_name_invalid(client: httpx.Client, name: str) -> None:
    r = client.get(f"/v2/{name}/tags/list")
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert error_code(r) == "NAME_INVALID"


def test_names_that_look_like_route_words_are_fine(client: httpx.Client) -> None:
    push_image(client, "blobs/manifests", "tags")
    assert client.get("/v2/blobs/manifests/manifests/tags").status_code == 200
    assert client.get("/v2/blobs/manifests/tags/list").json()["tags"] == ["tags"]


def test_unsupported_method_is_405_unsupported(client: httpx.Client) -> None:
    r = client.request("PATCH", "/v2/lib/app/manifests/v1")
    assert r.status_code == 405
    assert error_code(r) == "UNSUPPORTED"


# -- referrers -------------------------------------------------------------------------------


def push_artifact(client: httpx.Client, repo: str, subject: bytes, artifact_type: str,
                  annotations: dict[str, str] | None = None) -> bytes:
    push_blob(client, repo, EMPTY_JSON)
    blob = f"artifact {artifact_type}".encode()
    push_blob(client, repo, blob)
    body: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": sha256(blob), "size": len(blob)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }
    if annotations:
        body["annotations"] = annotations
    raw = json.dumps(body).encode()
    r = client.put(f"/v2/{repo}/manifests/{sha256(raw)}", content=raw,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == sha256(subject)
    return raw


def test_referrers_list_filter_and_delete(client: httpx.Client) -> None:
    subject = push_image(client, "lib/app", "v1")
    sbom = push_artifact(client, "lib/app", subject, "application/vnd.example.sbom",
                         {"org.example": "yes"})
    sig = push_artifact(client, "lib/app", subject, "application/vnd.example.sig")
    r = client.get(f"/v2/lib/app/referrers/{sha256(subject)}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    index = r.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sha256(sbom), sha256(sig)}
    assert by_digest[sha256(sbom)] == {
        "mediaType": OCI_MANIFEST, "digest": sha256(sbom), "size": len(sbom),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example": "yes"},
    }
    r = client.get(f"/v2/lib/app/referrers/{sha256(subject)}",
                   params={"artifactType": "application/vnd.example.sig"})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(sig)]
    assert client.delete(f"/v2/lib/app/manifests/{sha256(sig)}").status_code == 202
    r = client.get(f"/v2/lib/app/referrers/{sha256(subject)}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(sbom)]


def test_referrer_may_be_pushed_before_its_subject(client: httpx.Client) -> None:
    ghost = b'{"not":"pushed"}'
    push_artifact(client, "lib/app", ghost, "application/vnd.example.early")
    r = client.get(f"/v2/lib/app/referrers/{sha256(ghost)}")
    assert len(r.json()["manifests"]) == 1


def test_artifact_type_falls_back_to_the_config_media_type(client: httpx.Client) -> None:
    subject = push_image(client, "lib/app", "v1")
    config = b'{"kind":"signature"}'
    push_blob(client, "lib/app", config)
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config", "digest": sha256(config),
                   "size": len(config)},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }).encode()
    client.put("/v2/lib/app/manifests/cfg", content=raw, headers={"Content-Type": OCI_MANIFEST})
    r = client.get(f"/v2/lib/app/referrers/{sha256(subject)}")
    assert r.json()["manifests"][0]["artifactType"] == "application/vnd.example.config"


def test_index_with_subject_is_a_referrer_without_artifact_type(client: httpx.Client) -> None:
    subject = push_image(client, "lib/app", "v1")
    child = push_image(client, "lib/app", "child", seed=b"2")
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(child), "size": len(child)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }).encode()
    r = client.put(f"/v2/lib/app/manifests/{sha256(raw)}", content=raw,
                   headers={"Content-Type": OCI_INDEX})
    assert r.headers["OCI-Subject"] == sha256(subject)
    descriptors = client.get(f"/v2/lib/app/referrers/{sha256(subject)}").json()["manifests"]
    assert descriptors == [{"mediaType": OCI_INDEX, "digest": sha256(raw), "size": len(raw)}]


def test_referrers_of_nothing_is_an_empty_index_and_bad_digest_400(client: httpx.Client) -> None:
    r = client.get(f"/v2/lib/none/referrers/{sha256(b'x')}")
    assert r.status_code == 200
    assert r.json()["manifests"] == []
    assert client.get("/v2/lib/none/referrers/sha256:zz").status_code == 400


# -- modes -----------------------------------------------------------------------------------


def test_read_only_registry_refuses_writes(tmp_path: Any) -> None:
    storage = str(tmp_path / "berth-registry")
    with ThreadServer(ServerConfig(storage=storage)) as srv, httpx.Client(base_url=srv.url) as c:
        manifest = push_image(c, "lib/app", "v1")
    with ThreadServer(ServerConfig(storage=storage, read_only=True)) as srv, httpx.Client(
        base_url=srv.url
    ) as c:
        assert c.get("/v2/lib/app/manifests/v1").content == manifest
        r = c.post("/v2/lib/app/blobs/uploads/")
        assert r.status_code == 405
        assert error_code(r) == "UNSUPPORTED"
        assert c.delete("/v2/lib/app/manifests/v1").status_code == 405


def test_deletes_can_be_disabled(tmp_path: Any) -> None:
    config = ServerConfig(storage=str(tmp_path / "berth-registry"), delete_enabled=False)
    with ThreadServer(config) as srv, httpx.Client(base_url=srv.url) as c:
        push_image(c, "lib/app", "v1")
        r = c.delete("/v2/lib/app/manifests/v1")
        assert r.status_code == 405
        assert error_code(r) == "UNSUPPORTED"


def test_error_body_shape(client: httpx.Client) -> None:
    r = client.get("/v2/lib/app/manifests/missing")
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"errors"}
    assert set(body["errors"][0]) == {"code", "message", "detail"}
    assert body["errors"][0]["detail"] == {"tag": "missing"}


def test_too_many_requests(tmp_path: Any) -> None:
    import socket
    import time

    config = ServerConfig(storage=str(tmp_path / "berth-registry"), max_concurrent_requests=1)
    with ThreadServer(config) as srv, httpx.Client(base_url=srv.url) as client:
        location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
        host, port = srv.host.split(":")
        with socket.create_connection((host, int(port))) as slow:
            slow.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 1000000\r\n\r\n".encode() + b"x" * 100)
            deadline = time.monotonic() + 10
            while True:  # wait until the slow request is being handled
                r = client.get("/v2/")
                if r.status_code == 429 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "1"
            assert error_code(r) == "TOOMANYREQUESTS"
        deadline = time.monotonic() + 10
        while client.get("/v2/").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/v2/").status_code == 200
