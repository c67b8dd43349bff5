"""Pulling from berth's own registry server (in a thread, on loopback) into fresh stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from berth.errors import DigestMismatch, ImageNotFound, RegistryUnreachable, UsageError
from berth.oci import mediatypes as mt
from berth.oci.config import ImageConfig
from berth.oci.digest import Digest
from berth.oci.platform import host_platform
from berth.registry.client import progress as p
from berth.registry.client import pull
from berth.registry.client.progress import collecting_sink
from berth.registry.server import ServerConfig
from berth.store.store import Store
from tests.support.registry_client import (
    CuttingProxy,
    RecordingTransport,
    berth_temp_dir,
    client_options,
    random_layer,
    sha256_digest,
    upload_image,
    upload_index,
)
from tests.support.registry_server import ThreadServer, busybox_layer, file_layer


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("pull") as path:
        yield path


@pytest.fixture
def registry(tmp: str) -> Iterator[ThreadServer]:
    with ThreadServer(ServerConfig(storage=os.path.join(tmp, "registry"))) as server:
        yield server


def new_store(tmp: str, name: str = "store") -> Store:
    return Store.open(os.path.join(tmp, name))


def layer_file(store: Store, image_top: Digest | None, path: str) -> str:
    stack = store.layers.stack(image_top)
    for layer in reversed(stack):
        candidate = os.path.join(store.layers.diff_dir(layer.chain_id), path)
        if os.path.lexists(candidate):
            return candidate
    raise AssertionError(f"{path} is in no layer")


def test_pull_by_tag_records_image_tag_and_repo_digest(tmp: str, registry: ThreadServer) -> None:
    base = busybox_layer()
    extra = file_layer("etc/motd", b"hello from berth\n")
    uploaded = upload_image(registry.url, "team/app", "1.0", [base, extra])
    store = new_store(tmp)
    events, sink = collecting_sink()
    [result] = pull(
        store, f"{registry.host}/team/app:1.0", progress=sink, options=client_options(tmp)
    )
    assert result.digest == Digest.parse(uploaded.digest)
    assert result.status == f"Downloaded newer image for {registry.host}/team/app:1.0"
    assert result.lines == [
        f"Digest: {uploaded.digest}",
        f"Status: Downloaded newer image for {registry.host}/team/app:1.0",
        f"{registry.host}/team/app:1.0",
    ]
    image = result.image
    assert image.id == Digest.parse(sha256_digest(uploaded.config))
    assert image.manifest_digest == Digest.parse(uploaded.digest)
    assert image.repo_digests == (f"{registry.host}/team/app@{uploaded.digest}",)
    assert [str(t) for t in image.tags] == [f"{registry.host}/team/app:1.0"]
    assert store.blobs.read(image.manifest_digest) == uploaded.manifest
    # ready to run: the layers are unpacked
    with open(layer_file(store, image.top_chain, "etc/motd"), "rb") as f:
        assert f.read() == b"hello from berth\n"
    assert os.access(layer_file(store, image.top_chain, "bin/busybox"), os.X_OK)
    # the events docker shows, per layer, in order
    statuses = [(e.id, e.status) for e in events if e.current is None]
    assert statuses[0] == ("", "1.0: Pulling from team/app")
    ident = sha256_digest(extra).split(":")[1][:12]
    mine = [s for i, s in statuses if i == ident]
    assert mine == [
        p.PULLING_FS_LAYER,
        p.VERIFYING_CHECKSUM,
        p.DOWNLOAD_COMPLETE,
        p.PULL_COMPLETE,
    ]
    assert statuses[-2:] == [
        ("", f"Digest: {uploaded.digest}"),
        ("", f"Status: Downloaded newer image for {registry.host}/team/app:1.0"),
    ]
    downloading = [e for e in events if e.id == ident and e.status == p.DOWNLOADING]
    assert downloading and downloading[-1].current == downloading[-1].total == len(extra)
    # nothing left in tmp
    assert os.listdir(store.paths.tmp) == []


def test_second_pull_is_up_to_date(tmp: str, registry: ThreadServer) -> None:
    upload_image(registry.url, "app", "latest", [busybox_layer()])
    store = new_store(tmp)
    options = client_options(tmp)
    [first] = pull(store, f"{registry.host}/app", options=options)
    recorder = RecordingTransport()
    options.transport = recorder
    [second] = pull(store, f"{registry.host}/app", options=options)
    assert second.status == f"Image is up to date for {registry.host}/app:latest"
    assert second.image.id == first.image.id
    assert recorder.sent("GET", "/blobs/") == []  # the manifest alone told it


def test_pull_by_digest_does_not_tag(tmp: str, registry: ThreadServer) -> None:
    uploaded = upload_image(registry.url, "app", "v1", [busybox_layer()])
    store = new_store(tmp)
    name = f"{registry.host}/app@{uploaded.digest}"
    [result] = pull(store, name, options=client_options(tmp))
    assert result.image.tags == ()
    assert result.image.repo_digests == (f"{registry.host}/app@{uploaded.digest}",)
    assert result.status == f"Downloaded newer image for {name}"
    assert store.images.resolve(name).id == result.image.id


def test_shared_layers_already_exist_and_are_not_fetched(
    tmp: str, registry: ThreadServer
) -> None:
    base = busybox_layer()
    upload_image(registry.url, "one", "latest", [base])
    upload_image(registry.url, "two", "latest", [base, file_layer("two", b"2")])
    store = new_store(tmp)
    options = client_options(tmp)
    pull(store, f"{registry.host}/one", options=options)
    recorder = RecordingTransport()
    options.transport = recorder
    events, sink = collecting_sink()
    pull(store, f"{registry.host}/two", progress=sink, options=options)
    base_id = sha256_digest(base).split(":")[1][:12]
    assert (base_id, p.ALREADY_EXISTS) in [(e.id, e.status) for e in events]
    assert recorder.sent("GET", sha256_digest(base)) == []


def test_a_blob_twice_in_one_image_is_fetched_once(tmp: str, registry: ThreadServer) -> None:
    twice = file_layer("same", b"same bytes")
    uploaded = upload_image(registry.url, "dup", "latest", [busybox_layer(), twice, twice])
    store = new_store(tmp)
    recorder = RecordingTransport()
    [result] = pull(store, f"{registry.host}/dup", options=client_options(tmp, transport=recorder))
    assert len(recorder.sent("GET", sha256_digest(twice))) == 1
    assert len(store.layers.stack(result.image.top_chain)) == 3
    assert result.image.manifest_digest == Digest.parse(uploaded.digest)


def test_index_picks_the_host_platform_or_the_asked_one(
    tmp: str, registry: ThreadServer
) -> None:
    here = host_platform().architecture
    other = "s390x" if here != "s390x" else "amd64"
    native = upload_image(registry.url, "multi", None, [busybox_layer()], architecture=here)
    foreign = upload_image(
        registry.url, "multi", None, [file_layer("foreign", b"x")], architecture=other
    )
    index_digest = upload_index(
        registry.url, "multi", "latest", {f"linux/{here}": native, f"linux/{other}": foreign}
    )
    store = new_store(tmp)
    options = client_options(tmp)
    [mine] = pull(store, f"{registry.host}/multi", options=options)
    assert mine.digest == Digest.parse(index_digest)  # the repo digest is the index's
    assert mine.image.index_digest == Digest.parse(index_digest)
    assert mine.image.manifest_digest == Digest.parse(native.digest)
    assert store.blobs.has(Digest.parse(index_digest))
    [theirs] = pull(new_store(tmp, "other"), f"{registry.host}/multi",
                    platform=f"linux/{other}", options=options)
    config = ImageConfig.from_bytes(foreign.config)
    assert theirs.image.id == Digest.parse(sha256_digest(foreign.config))
    assert config.architecture == other
    with pytest.raises(ImageNotFound) as info:
        pull(new_store(tmp, "third"), f"{registry.host}/multi", platform="linux/mips64le",
             options=options)
    assert "no matching manifest for linux/mips64le" in str(info.value)
    assert f"linux/{other}" in str(info.value)


def test_platform_mismatch_of_a_single_manifest(tmp: str, registry: ThreadServer) -> None:
    upload_image(registry.url, "single", "latest", [busybox_layer()], architecture="s390x")
    with pytest.raises(ImageNotFound, match="does not match the specified platform"):
        pull(new_store(tmp), f"{registry.host}/single", platform="linux/arm64",
             options=client_options(tmp))


def test_docker_schema2_and_manifest_list(tmp: str, registry: ThreadServer) -> None:
    here = host_platform().architecture
    image = upload_image(registry.url, "dockerish", None, [busybox_layer()],
                         architecture=here, docker_types=True)
    upload_index(registry.url, "dockerish", "latest", {f"linux/{here}": image}, docker_types=True)
    store = new_store(tmp)
    [result] = pull(store, f"{registry.host}/dockerish", options=client_options(tmp))
    assert result.image.manifest_media_type == mt.DOCKER_MANIFEST
    assert store.blobs.read(result.image.manifest_digest) == image.manifest


def test_uncompressed_layers(tmp: str, registry: ThreadServer) -> None:
    import gzip

    plain = gzip.decompress(busybox_layer())
    upload_image(registry.url, "plain", "latest", [plain], compressed=False)
    store = new_store(tmp)
    [result] = pull(store, f"{registry.host}/plain", options=client_options(tmp))
    assert os.path.exists(layer_file(store, result.image.top_chain, "bin/busybox"))


def test_all_tags(tmp: str, registry: ThreadServer) -> None:
    upload_image(registry.url, "tags", "a", [busybox_layer()])
    upload_image(registry.url, "tags", "b", [busybox_layer(), file_layer("b", b"b")])
    store = new_store(tmp)
    results = pull(store, f"{registry.host}/tags", all_tags=True, options=client_options(tmp))
    assert sorted(str(r.reference.tag) for r in results) == ["a", "b"]
    with pytest.raises(UsageError):
        pull(store, f"{registry.host}/tags:a", all_tags=True, options=client_options(tmp))


def test_unknown_image_and_repository(tmp: str, registry: ThreadServer) -> None:
    upload_image(registry.url, "known", "latest", [busybox_layer()])
    store = new_store(tmp)
    with pytest.raises(ImageNotFound) as info:
        pull(store, f"{registry.host}/known:nope", options=client_options(tmp))
    assert f"manifest for {registry.host}/known:nope not found" in str(info.value)
    with pytest.raises(ImageNotFound):
        pull(store, f"{registry.host}/unknown", options=client_options(tmp))
    assert store.images.all() == []


class Corrupting(httpx.BaseTransport):
    """The real transport, but one blob's bytes arrive with a byte flipped."""

    def __init__(self, digest: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.digest = digest

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET" or not str(request.url).endswith(self.digest):
            return response
        data = bytearray(response.read())
        data[len(data) // 2] ^= 0xFF
        return httpx.Response(response.status_code, headers=response.headers, content=bytes(data))


def test_wrong_bytes_are_refused_and_nothing_is_stored(tmp: str, registry: ThreadServer) -> None:
    bad = random_layer("big", 3 << 20, seed=7)
    upload_image(registry.url, "corrupt", "latest", [busybox_layer(), bad])
    store = new_store(tmp)
    options = client_options(tmp, transport=Corrupting(sha256_digest(bad)))
    with pytest.raises(DigestMismatch) as info:
        pull(store, f"{registry.host}/corrupt", options=options)
    text = str(info.value)
    assert sha256_digest(bad) in text and registry.host in text
    assert store.images.all() == []
    assert not store.blobs.has(Digest.parse(sha256_digest(bad)))
    # no partial file is kept for a wrong download (others may stay, for resuming)
    assert all(sha256_digest(bad).split(":")[1] not in n for n in os.listdir(store.paths.tmp))


def test_dropped_connection_resumes_with_a_range_request(
    tmp: str, registry: ThreadServer
) -> None:
    big = random_layer("big", 4 << 20, seed=1)
    uploaded = upload_image(registry.url, "resume", "latest", [busybox_layer(), big])
    store = new_store(tmp)
    with CuttingProxy(registry.host, after=1 << 20) as proxy:
        recorder = RecordingTransport()
        options = client_options(tmp, transport=recorder)
        [result] = pull(store, f"{proxy.host}/resume", options=options)
        assert proxy.cut_count == 1
    assert result.image.manifest_digest == Digest.parse(uploaded.digest)
    gets = recorder.sent("GET", sha256_digest(big))
    assert len(gets) == 2
    (first, first_status), (second, second_status) = gets
    assert "range" not in first.headers and first_status == 200
    assert second.headers["range"].startswith("bytes=") and second_status == 206
    offset = int(second.headers["range"][len("bytes="):-1])
    assert 0 < offset < len(big)
    assert os.listdir(store.paths.tmp) == []
    assert store.blobs.read(Digest.parse(sha256_digest(big))) == big


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_partial_download_of_a_dead_process_is_resumed(tmp: str, registry: ThreadServer) -> None:
    big = random_layer("big", 3 << 20, seed=2)
    upload_image(registry.url, "left", "latest", [busybox_layer(), big])
    store = new_store(tmp)
    digest = Digest.parse(sha256_digest(big))
    os.makedirs(store.paths.tmp, exist_ok=True)
    leftover = os.path.join(
        store.paths.tmp, f"berth-tmp-{dead_pid()}-pull-sha256-{digest.hex}"
    )
    with open(leftover, "wb") as f:
        f.write(big[:1234567])
    recorder = RecordingTransport()
    pull(store, f"{registry.host}/left", options=client_options(tmp, transport=recorder))
    [(request, status)] = recorder.sent("GET", str(digest))
    assert request.headers["range"] == "bytes=1234567-"
    assert status == 206
    assert not os.path.exists(leftover)
    assert store.blobs.read(digest) == big


class IgnoringRange(httpx.BaseTransport):
    """A registry that ignores Range headers (answers 200 with everything)."""

    def __init__(self) -> None:
        self.inner = RecordingTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "range" in request.headers:
            del request.headers["range"]
        return self.inner.handle_request(request)


def test_server_ignoring_range_means_starting_over(tmp: str, registry: ThreadServer) -> None:
    big = random_layer("big", 2 << 20, seed=3)
    upload_image(registry.url, "norange", "latest", [busybox_layer(), big])
    store = new_store(tmp)
    digest = Digest.parse(sha256_digest(big))
    os.makedirs(store.paths.tmp, exist_ok=True)
    with open(os.path.join(store.paths.tmp, f"berth-tmp-{dead_pid()}-pull-sha256-{digest.hex}"),
              "wb") as f:
        f.write(b"garbage that is not the start of the blob")
    pull(store, f"{registry.host}/norange", options=client_options(tmp, transport=IgnoringRange()))
    assert store.blobs.read(digest) == big


def test_registry_down(tmp: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RegistryUnreachable) as info:
        pull(new_store(tmp), f"127.0.0.1:{port}/app", options=client_options(tmp))
    text = str(info.value)
    assert f"cannot reach registry 127.0.0.1:{port} while pulling 127.0.0.1:{port}/app:latest" in (
        text
    )
    assert "connection refused" in text


def test_mirror_is_used_and_falls_back_to_the_registry(tmp: str, registry: ThreadServer) -> None:
    import socket

    uploaded = upload_image(registry.url, "library/busybox", "latest", [busybox_layer()])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    conf = os.path.join(tmp, "registries.conf")
    # docker.io lives at a dead host; its mirror is the live registry
    with open(conf, "w") as f:
        f.write(
            f'[[registry]]\nprefix = "docker.io"\nlocation = "{dead}"\n'
            f'[[registry.mirror]]\nlocation = "{registry.host}"\n'
        )
    store = new_store(tmp)
    [result] = pull(store, "busybox", options=client_options(tmp, registries_conf=conf))
    assert result.digest == Digest.parse(uploaded.digest)
    assert [str(t) for t in result.image.tags] == ["docker.io/library/busybox:latest"]
    assert result.image.repo_digests == (f"docker.io/library/busybox@{uploaded.digest}",)
    # a dead mirror first, the live registry behind it
    with open(conf, "w") as f:
        f.write(
            f'[[registry]]\nprefix = "docker.io"\nlocation = "{registry.host}"\n'
            f'[[registry.mirror]]\nlocation = "{dead}"\n'
        )
    events, sink = collecting_sink()
    [again] = pull(new_store(tmp, "second"), "busybox", progress=sink,
                   options=client_options(tmp, registries_conf=conf))
    assert again.image.id == result.image.id
    assert any(e.status.startswith(f"mirror {dead} failed") for e in events)


def test_docker_io_names_through_registries_conf(tmp: str, registry: ThreadServer) -> None:
    uploaded = upload_image(registry.url, "library/busybox", "latest", [busybox_layer()])
    conf = os.path.join(tmp, "registries.conf")
    with open(conf, "w") as f:
        f.write(f'[[registry]]\nprefix = "docker.io"\nlocation = "{registry.host}"\n'
                "insecure = true\n")
    store = new_store(tmp)
    [result] = pull(store, "busybox", options=client_options(tmp, registries_conf=conf))
    assert result.lines == [
        f"Digest: {uploaded.digest}",
        "Status: Downloaded newer image for busybox:latest",
        "docker.io/library/busybox:latest",
    ]
    assert store.images.resolve("busybox").id == result.image.id


def test_origins_are_remembered_for_mounts(tmp: str, registry: ThreadServer) -> None:
    layer = busybox_layer()
    upload_image(registry.url, "origin/app", "latest", [layer])
    store = new_store(tmp)
    pull(store, f"{registry.host}/origin/app", options=client_options(tmp))
    with open(os.path.join(store.paths.root, "registry-blobs.json")) as f:
        table = json.load(f)["blobs"]
    assert table[sha256_digest(layer)] == [[registry.host, "origin/app"]]


def test_up_to_date_only_for_the_same_platform(tmp: str, registry: ThreadServer) -> None:
    here = host_platform().architecture
    other = "s390x" if here != "s390x" else "amd64"
    native = upload_image(registry.url, "plat", None, [busybox_layer()], architecture=here)
    foreign = upload_image(registry.url, "plat", None, [file_layer("f", b"f")], architecture=other)
    platforms = {f"linux/{here}": native, f"linux/{other}": foreign}
    upload_index(registry.url, "plat", "latest", platforms)
    store = new_store(tmp)
    options = client_options(tmp)
    pull(store, f"{registry.host}/plat", options=options)
    [again] = pull(store, f"{registry.host}/plat", platform=f"linux/{other}", options=options)
    assert again.status.startswith("Downloaded newer image")
    assert again.image.id == Digest.parse(sha256_digest(foreign.config))
    [same] = pull(store, f"{registry.host}/plat", platform=f"linux/{other}", options=options)
    assert same.status.startswith("Image is up to date")


def test_complete_partial_download_needs_no_request(tmp: str, registry: ThreadServer) -> None:
    big = random_layer("big", 1 << 20, seed=4)
    upload_image(registry.url, "complete", "latest", [busybox_layer(), big])
    store = new_store(tmp)
    digest = Digest.parse(sha256_digest(big))
    os.makedirs(store.paths.tmp, exist_ok=True)
    with open(os.path.join(store.paths.tmp, f"berth-tmp-{dead_pid()}-pull-sha256-{digest.hex}"),
              "wb") as f:
        f.write(big)
    recorder = RecordingTransport()
    pull(store, f"{registry.host}/complete", options=client_options(tmp, transport=recorder))
    assert recorder.sent("GET", str(digest)) == []
    assert store.blobs.read(digest) == big
    assert os.listdir(store.paths.tmp) == []
