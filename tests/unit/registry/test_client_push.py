"""Pushing to berth's own registry server (in a thread, on loopback), and logging in to it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import bcrypt
import httpx
import pytest

from berth.errors import ImageNotFound, RegistryAuthError, UsageError
from berth.registry.client import (
    LOGIN_SUCCEEDED,
    CredentialStore,
    format_manifest,
    inspect_manifest,
    login,
    logout,
    pull,
    push,
)
from berth.registry.client import progress as p
from berth.registry.client.progress import collecting_sink
from berth.registry.server import ServerConfig
from berth.store.images import ImageRecord
from berth.store.store import Store
from tests.support.registry_client import (
    RecordingTransport,
    berth_temp_dir,
    client_options,
    make_busybox,
    upload_image,
)
from tests.support.registry_server import ThreadServer, busybox_layer


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("push") as path:
        yield path


@pytest.fixture
def registry(tmp: str) -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(storage=os.path.join(tmp, "registry"))) as server:
        yield server


def busybox_store(tmp: str, name: str) -> tuple[Store, ImageRecord]:
    store = Store.open(os.path.join(tmp, "source"))
    image = make_busybox(store, name)
    assert isinstance(image, ImageRecord)
    return store, image


def test_push_then_pull_back_the_same_image(tmp: str, registry: ThreadServer) -> None:
    name = f"{registry.host}/berth/busybox:1"
    store, image = busybox_store(tmp, name)
    events, sink = collecting_sink()
    result = push(store, name, progress=sink, options=client_options(tmp))
    raw = store.blobs.read(image.manifest_digest)
    assert result.digest == image.manifest_digest  # pushed exactly as stored
    assert result.size == len(raw)
    assert result.lines == [f"1: digest: {image.manifest_digest} size: {len(raw)}"]
    statuses = [(e.id, e.status) for e in events if e.current is None]
    assert statuses[0] == ("", f"The push refers to repository [{registry.host}/berth/busybox]")
    assert statuses[-1] == ("", result.lines[0])
    layer_statuses = [s for i, s in statuses if i]
    assert layer_statuses == [p.PREPARING, p.PUSHED]
    assert any(e.status == p.PUSHING and e.current == e.total for e in events)
    record = store.images.get(image.id)
    assert record is not None
    assert record.repo_digests == (f"{registry.host}/berth/busybox@{image.manifest_digest}",)
    # what the registry holds is byte for byte the stored manifest
    served = httpx.get(
        f"{registry.url}/v2/berth/busybox/manifests/1",
        headers={"Accept": image.manifest_media_type},
    )
    assert served.content == raw
    # and berth pulls it back into an empty store as the same image
    [pulled] = pull(Store.open(os.path.join(tmp, "target")), name, options=client_options(tmp))
    assert pulled.image.id == image.id
    assert pulled.digest == image.manifest_digest


def test_second_push_finds_every_layer(tmp: str, registry: ThreadServer) -> None:
    name = f"{registry.host}/again:latest"
    store, _ = busybox_store(tmp, name)
    push(store, name, options=client_options(tmp))
    events, sink = collecting_sink()
    recorder = RecordingTransport()
    push(store, name, progress=sink, options=client_options(tmp, transport=recorder))
    assert p.LAYER_ALREADY_EXISTS in [e.status for e in events]
    assert recorder.sent("PUT", "/blobs/uploads/") == []


def test_cross_repository_mount(tmp: str, registry: ThreadServer) -> None:
    first = f"{registry.host}/team/one:latest"
    store, image = busybox_store(tmp, first)
    push(store, first, options=client_options(tmp))
    second = f"{registry.host}/team/two:latest"
    from berth.oci.reference import parse_normalized

    store.tag(image, parse_normalized(second))
    events, sink = collecting_sink()
    recorder = RecordingTransport()
    push(store, second, progress=sink, options=client_options(tmp, transport=recorder))
    assert "Mounted from team/one" in [e.status for e in events]
    mounts = recorder.sent("POST", "mount=")
    assert mounts and all(status == 201 for _, status in mounts)
    assert recorder.sent("PUT", "/blobs/uploads/") == []


def test_chunked_upload(tmp: str, registry: ThreadServer) -> None:
    name = f"{registry.host}/chunked:latest"
    store, image = busybox_store(tmp, name)
    recorder = RecordingTransport()
    push(store, name, options=client_options(tmp, transport=recorder, upload_chunk_size=300_000))
    patches = recorder.sent("PATCH")
    assert len(patches) >= 2 and all(status == 202 for _, status in patches)
    assert patches[0][0].headers["content-range"] == "0-299999"
    [pulled] = pull(Store.open(os.path.join(tmp, "target")), name, options=client_options(tmp))
    assert pulled.image.id == image.id


class BreakingFirstUpload(httpx.BaseTransport):
    """The real transport, except that the first blob PUT dies half-way (a dropped link)."""

    def __init__(self) -> None:
        self.inner = RecordingTransport()
        self.broken = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/blobs/uploads/" in str(request.url) and not self.broken:
            self.broken = True
            raise httpx.WriteError("connection reset by peer")
        return self.inner.handle_request(request)


def test_a_broken_upload_starts_over(tmp: str, registry: ThreadServer) -> None:
    name = f"{registry.host}/flaky:latest"
    store, image = busybox_store(tmp, name)
    transport = BreakingFirstUpload()
    push(store, name, options=client_options(tmp, transport=transport))
    assert transport.broken
    assert len(transport.inner.sent("POST", "/blobs/uploads/")) >= 2  # a fresh upload session
    [pulled] = pull(Store.open(os.path.join(tmp, "target")), name, options=client_options(tmp))
    assert pulled.image.id == image.id


def test_push_all_tags_and_usage_errors(tmp: str, registry: ThreadServer) -> None:
    from berth.oci.reference import parse_normalized

    name = f"{registry.host}/multi"
    store, image = busybox_store(tmp, f"{name}:a")
    store.tag(image, parse_normalized(f"{name}:b"))
    result = push(store, name, all_tags=True, options=client_options(tmp))
    assert [t.reference.tag for t in result.pushed] == ["a", "b"]
    with pytest.raises(UsageError):
        push(store, f"{name}:a", all_tags=True, options=client_options(tmp))
    with pytest.raises(UsageError, match="digest"):
        push(store, f"{name}@{image.manifest_digest}", options=client_options(tmp))


def test_push_of_a_missing_image(tmp: str, registry: ThreadServer) -> None:
    store = Store.open(os.path.join(tmp, "empty"))
    with pytest.raises(ImageNotFound, match="An image does not exist locally with the tag"):
        push(store, f"{registry.host}/nothing", options=client_options(tmp))


def test_manifest_inspect(tmp: str, registry: ThreadServer) -> None:
    uploaded = upload_image(registry.url, "inspect/me", "latest", [busybox_layer()])
    raw = inspect_manifest(f"{registry.host}/inspect/me", options=client_options(tmp))
    assert raw == uploaded.manifest
    assert inspect_manifest(
        f"{registry.host}/inspect/me@{uploaded.digest}", options=client_options(tmp)
    ) == uploaded.manifest
    text = format_manifest(raw)
    assert text.startswith('{\n   "schemaVersion": 2,')  # docker's three-space indent
    assert json.loads(text) == json.loads(raw)
    with pytest.raises(ImageNotFound):
        inspect_manifest(f"{registry.host}/inspect/me:nope", options=client_options(tmp))


# -- authentication: berth's server as registry and token issuer ------------------------------


def htpasswd_file(tmp: str, users: dict[str, str]) -> str:
    path = os.path.join(tmp, "htpasswd")
    with open(path, "w") as f:
        for user, password in users.items():
            f.write(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    return path


@pytest.fixture(params=["token", "basic"])
def auth_registry(tmp: str, request: pytest.FixtureRequest) -> Iterator[ThreadServer]:
    config = ServerConfig(
        storage=os.path.join(tmp, "registry"),
        htpasswd=htpasswd_file(tmp, {"alice": "wonderland"}),
        token=request.param == "token",
    )
    with ThreadServer(config) as server:
        yield server


def test_login_push_pull_logout(tmp: str, auth_registry: ThreadServer) -> None:
    host = auth_registry.host
    name = f"{host}/alice/busybox:latest"
    store, image = busybox_store(tmp, name)
    options = client_options(tmp)
    with pytest.raises(RegistryAuthError) as info:
        push(store, name, options=options)
    assert f"berth login {host}" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(RegistryAuthError):
        login(host, "alice", "wrong", options=options)
    assert CredentialStore(options.docker_config).get(host) is None
    assert login(host, "alice", "wonderland", options=options) == LOGIN_SUCCEEDED
    with open(os.path.join(str(options.docker_config), "config.json")) as f:
        assert host in json.load(f)["auths"]
    push(store, name, options=options)
    [pulled] = pull(Store.open(os.path.join(tmp, "target")), name, options=options)
    assert pulled.image.id == image.id
    assert logout(host, options=options) == f"Removing login credentials for {host}"
    assert logout(host, options=options) == f"Not logged in to {host}"
    with pytest.raises(RegistryAuthError):
        pull(Store.open(os.path.join(tmp, "third")), name, options=options)


def test_token_is_fetched_once_per_pull(tmp: str) -> None:
    config = ServerConfig(
        storage=os.path.join(tmp, "registry"),
        htpasswd=htpasswd_file(tmp, {"alice": "wonderland"}),
        token=True,
    )
    with ThreadServer(config) as server:
        name = f"{server.host}/alice/app:latest"
        store, _ = busybox_store(tmp, name)
        options = client_options(tmp)
        login(server.host, "alice", "wonderland", options=options)
        push(store, name, options=options)
        recorder = RecordingTransport()
        options.transport = recorder
        pull(Store.open(os.path.join(tmp, "target")), name, options=options)
        assert len(recorder.sent("GET", "/token")) == 1
        statuses = [s for r, s in zip(recorder.requests, recorder.statuses, strict=True)
                    if "/token" not in str(r.url) and r.url.path != "/v2/"]
        assert 401 not in statuses  # the token went with every request from the start
        manifest_get = recorder.sent("GET", "/manifests/")[0][0]
        assert manifest_get.headers["authorization"].startswith("Bearer ")


def test_pulled_docker_schema2_image_is_pushed_as_is_with_mounts(
    tmp: str, registry: ThreadServer
) -> None:
    from berth.oci.reference import parse_normalized

    uploaded = upload_image(registry.url, "origin/docker", "v1", [busybox_layer()],
                            docker_types=True)
    store = Store.open(os.path.join(tmp, "store"))
    options = client_options(tmp)
    [pulled] = pull(store, f"{registry.host}/origin/docker:v1", options=options)
    copy = f"{registry.host}/copies/docker:v1"
    store.tag(pulled.image, parse_normalized(copy))
    events, sink = collecting_sink()
    result = push(store, copy, progress=sink, options=options)
    assert str(result.digest) == uploaded.digest
    assert "Mounted from origin/docker" in [e.status for e in events]
    served = httpx.get(
        f"{registry.url}/v2/copies/docker/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert served.content == uploaded.manifest
    assert served.headers["content-type"].startswith(
        "application/vnd.docker.distribution.manifest.v2+json"
    )
