"""The same protocol checks against berth's registry and Debian's docker-registry (2.8).

Each check runs against both, to catch places where berth deviates from the reference
implementation. Where berth differs on purpose the check says so and asserts each side's answer:

- berth rejects a manifest whose descriptor sizes do not match the blobs (``MANIFEST_INVALID``);
  distribution 2.8 does not look at sizes.
- berth deletes a tag with ``DELETE /v2/<name>/manifests/<tag>`` (the spec's tag deletion);
  distribution 2.8 deletes by digest only.
- berth lists tags in lexical order (case-insensitively, as the spec words it) and pages them
  with ``n``/``last`` and a ``Link`` header; distribution 2.8 lists them in directory order and
  ignores ``n`` and ``last`` (tag pagination came with distribution 3).
- An upload URL without distribution's ``_state`` parameter is ``BLOB_UPLOAD_UNKNOWN`` on
  berth (its sessions live on disk), ``BLOB_UPLOAD_INVALID`` on distribution.
- berth serves the referrers API; distribution 2.8 has none (404).
- A chunk that does not start at the upload's offset (a retried chunk, say) is 416 with the
  current ``Range`` on berth, as the spec and its conformance suite require; distribution 2.8
  notices only that its ``_state`` token is stale and answers 404 ``BLOB_UPLOAD_INVALID``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import bcrypt
import httpx
import pytest

from berth.registry.server.config import ServerConfig
from tests.support.registry_server import (
    OCI_MANIFEST,
    DockerRegistry,
    ThreadServer,
    sha256,
)

pytestmark = pytest.mark.peers
IMPLEMENTATIONS = ["berth", "docker-registry"]


@pytest.fixture(params=IMPLEMENTATIONS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(implementation, base URL)."""
    if request.param == "berth":
        with ThreadServer(ServerConfig(storage=str(tmp_path / "berth-registry"))) as server:
            yield "berth", server.url
    else:
        with DockerRegistry(str(tmp_path / "berth-docker-registry")) as server:
            yield "docker-registry", server.url


@pytest.fixture
def client(registry: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry[1], timeout=30) as c:
        yield c


def code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def with_digest(location: str, digest: str) -> str:
    """The upload URL plus ``digest=`` (keeping distribution's ``_state`` parameter)."""
    return f"{location}{'&' if '?' in location else '?'}digest={quote(digest)}"


def upload(client: httpx.Client, repo: str, data: bytes) -> str:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    r = client.put(with_digest(r.headers["Location"], sha256(data)), content=data,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return sha256(data)


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(x), "size": len(x)} for x in layers],
    }).encode()


def push_image(client: httpx.Client, repo: str, tag: str) -> bytes:
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(1000)
    upload(client, repo, config)
    upload(client, repo, layer)
    manifest = manifest_for(config, [layer])
    r = client.put(f"/v2/{repo}/manifests/{tag}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return manifest


def test_base(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_blob_push_pull_head(client: httpx.Client) -> None:
    data = os.urandom(70_000)
    digest = upload(client, "conf/blob", data)
    r = client.get(f"/v2/conf/blob/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["Docker-Content-Digest"] == digest
    head = client.head(f"/v2/conf/blob/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))


def test_range_get(client: httpx.Client) -> None:
    data = bytes(range(200))
    digest = upload(client, "conf/range", data)
    r = client.get(f"/v2/conf/range/blobs/{digest}", headers={"Range": "bytes=50-59"})
    assert r.status_code == 206
    assert r.content == data[50:60]


def test_unknown_blob(client: httpx.Client) -> None:
    r = client.get(f"/v2/conf/none/blobs/{sha256(b'nothing')}")
    assert r.status_code == 404
    assert code(r) == "BLOB_UNKNOWN"


def test_chunked_upload_ranges(client: httpx.Client) -> None:
    data = os.urandom(20_000)
    r = client.post("/v2/conf/chunks/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202
    assert r.headers["Range"] == "0-0"
    r = client.patch(r.headers["Location"], content=data[:12_000],
                     headers={"Content-Range": "0-11999",
                              "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    assert r.headers["Range"] == "0-11999"
    status = client.get(r.headers["Location"])
    assert status.status_code == 204
    assert status.headers["Range"] == "0-11999"
    r = client.patch(r.headers["Location"], content=data[12_000:],
                     headers={"Content-Range": "12000-19999",
                              "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    r = client.put(with_digest(r.headers["Location"], sha256(data)))
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == sha256(data)


def test_stale_chunk_is_416(registry: tuple[str, str], client: httpx.Client) -> None:
    first = client.post("/v2/conf/stale/blobs/uploads/").headers["Location"]
    r = client.patch(first, content=b"a" * 100, headers={"Content-Range": "0-99",
                                                          "Content-Type":
                                                          "application/octet-stream"})
    assert r.status_code == 202
    # retrying the first chunk at the first upload URL
    r = client.patch(first, content=b"a" * 100, headers={"Content-Range": "0-99",
                                                          "Content-Type":
                                                          "application/octet-stream"})
    if registry[0] == "berth":
        assert r.status_code == 416  # as the spec (and its conformance suite) require
        assert r.headers["Range"] == "0-99"
    else:  # distribution 2.8: the stale _state token makes it BLOB_UPLOAD_INVALID, 404
        assert r.status_code == 404
        assert code(r) == "BLOB_UPLOAD_INVALID"


def test_digest_mismatch(client: httpx.Client) -> None:
    r = client.post("/v2/conf/mismatch/blobs/uploads/")
    claimed = sha256(b"claimed")
    r = client.put(with_digest(r.headers["Location"], claimed), content=b"actual")
    assert r.status_code == 400
    assert code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/conf/mismatch/blobs/{claimed}").status_code == 404


def test_manifest_round_trip(client: httpx.Client) -> None:
    manifest = push_image(client, "conf/app", "v1")
    r = client.get("/v2/conf/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.content == manifest
    assert r.headers["Content-Type"] == OCI_MANIFEST
    assert r.headers["Docker-Content-Digest"] == sha256(manifest)
    head = client.head(f"/v2/conf/app/manifests/{sha256(manifest)}",
                       headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(manifest))


def test_manifest_with_missing_blob(client: httpx.Client) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    upload(client, "conf/missing", config)
    r = client.put("/v2/conf/missing/manifests/v1",
                   content=manifest_for(config, [b"not uploaded"]),
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert code(r) == "MANIFEST_BLOB_UNKNOWN"


def test_malformed_manifest(client: httpx.Client) -> None:
    r = client.put("/v2/conf/bad/manifests/v1", content=b"{this is not json",
                   headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400
    assert code(r) == "MANIFEST_INVALID"


def test_unknown_manifest(client: httpx.Client) -> None:
    push_image(client, "conf/known", "v1")
    r = client.get("/v2/conf/known/manifests/nope", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404
    assert code(r) == "MANIFEST_UNKNOWN"


def test_tags_of_unknown_repository(client: httpx.Client) -> None:
    r = client.get("/v2/conf/nothing/tags/list")
    assert r.status_code == 404
    assert code(r) == "NAME_UNKNOWN"


def test_tags_pagination(registry: tuple[str, str], client: httpx.Client) -> None:
    manifest = push_image(client, "conf/tags", "b")
    for tag in ("c", "a"):
        client.put(f"/v2/conf/tags/manifests/{tag}", content=manifest,
                   headers={"Content-Type": OCI_MANIFEST})
    listed = client.get("/v2/conf/tags/tags/list").json()
    if registry[0] != "berth":  # distribution 2.8: directory order, and no n/last at all
        assert sorted(listed["tags"]) == ["a", "b", "c"]
        assert len(client.get("/v2/conf/tags/tags/list", params={"n": 2}).json()["tags"]) == 3
        return
    assert listed == {"name": "conf/tags", "tags": ["a", "b", "c"]}
    r = client.get("/v2/conf/tags/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    link = r.headers["Link"]
    assert link.endswith('>; rel="next"')
    target = urlparse(link[1:link.index(">")])
    assert target.path == "/v2/conf/tags/tags/list"
    assert parse_qs(target.query) == {"n": ["2"], "last": ["b"]}
    assert client.get("/v2/conf/tags/tags/list",
                      params={"n": 2, "last": "b"}).json()["tags"] == ["c"]


def test_catalog(client: httpx.Client) -> None:
    for repo in ("conf/cat-b", "conf/cat-a"):
        push_image(client, repo, "v1")
    assert client.get("/v2/_catalog").json()["repositories"] == ["conf/cat-a", "conf/cat-b"]
    r = client.get("/v2/_catalog", params={"n": 1})
    assert r.json()["repositories"] == ["conf/cat-a"]
    assert 'rel="next"' in r.headers["Link"]


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = upload(client, "conf/src", b"mount me")
    r = client.post("/v2/conf/dst/blobs/uploads/", params={"mount": digest, "from": "conf/src"})
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert urlparse(r.headers["Location"]).path == f"/v2/conf/dst/blobs/{digest}"
    assert client.get(f"/v2/conf/dst/blobs/{digest}").content == b"mount me"


def test_delete_manifest_and_blob(client: httpx.Client) -> None:
    manifest = push_image(client, "conf/del", "v1")
    digest = sha256(manifest)
    assert client.delete(f"/v2/conf/del/manifests/{digest}").status_code == 202
    r = client.get(f"/v2/conf/del/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404
    blob = upload(client, "conf/del", b"delete this blob")
    assert client.delete(f"/v2/conf/del/blobs/{blob}").status_code == 202
    assert client.head(f"/v2/conf/del/blobs/{blob}").status_code == 404


def test_delete_tag(registry: tuple[str, str], client: httpx.Client) -> None:
    push_image(client, "conf/deltag", "v1")
    r = client.delete("/v2/conf/deltag/manifests/v1")
    if registry[0] == "berth":
        assert r.status_code == 202
        assert client.get("/v2/conf/deltag/manifests/v1").status_code == 404
    else:  # distribution 2.8 deletes by digest only
        assert r.status_code in (400, 405)


def test_referrers_api(registry: tuple[str, str], client: httpx.Client) -> None:
    r = client.get(f"/v2/conf/ref/referrers/{sha256(b'x')}")
    if registry[0] == "berth":
        assert r.status_code == 200
        assert r.json()["manifests"] == []
    else:  # distribution 2.8 predates the referrers API
        assert r.status_code == 404


def test_descriptor_size_mismatch(registry: tuple[str, str], client: httpx.Client) -> None:
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"sized layer"
    upload(client, "conf/size", config)
    upload(client, "conf/size", layer)
    body = json.loads(manifest_for(config, [layer]))
    body["layers"][0]["size"] = 12345
    r = client.put("/v2/conf/size/manifests/v1", content=json.dumps(body).encode(),
                   headers={"Content-Type": OCI_MANIFEST})
    if registry[0] == "berth":
        assert r.status_code == 400
        assert code(r) == "MANIFEST_INVALID"
    else:  # distribution 2.8 does not compare sizes
        assert r.status_code == 201


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_basic_auth_challenge(implementation: str, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"user:{hashed}\n")
    if implementation == "berth":
        server: ThreadServer | DockerRegistry = ThreadServer(
            ServerConfig(storage=str(tmp_path / "berth-registry"), htpasswd=str(htpasswd)))
    else:
        server = DockerRegistry(str(tmp_path / "berth-docker-registry"), htpasswd=str(htpasswd))
    with server, httpx.Client(base_url=server.url) as client:
        r = client.get("/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert code(r) == "UNAUTHORIZED"
        assert client.get("/v2/", auth=("user", "wrong")).status_code == 401
        assert client.get("/v2/", auth=("user", "pw")).status_code == 200
        r = client.post("/v2/conf/auth/blobs/uploads/")
        assert r.status_code == 401
        assert code(r) == "UNAUTHORIZED"
