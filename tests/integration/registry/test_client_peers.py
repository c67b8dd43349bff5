"""berth's registry client against peers nobody here wrote.

Debian's docker-registry (distribution 2.8) serves, with and without htpasswd auth; skopeo and
podman read what berth pushes and write what berth pulls; faults are made for real: a blob
corrupted in the registry's own storage, a pull killed mid-layer, a registry that is down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from berth.errors import DigestMismatch, ImageNotFound, RegistryAuthError, RegistryUnreachable
from berth.oci.digest import Digest
from berth.registry.client import login, pull, push
from berth.registry.client.progress import collecting_sink
from berth.store.images import ImageRecord
from berth.store.store import Store
from tests.support.peers import podman
from tests.support.registry_client import (
    RecordingTransport,
    berth_temp_dir,
    client_options,
    make_busybox,
    random_layer,
    sha256_digest,
)
from tests.support.registry_server import (
    DockerRegistry,
    busybox_layer,
    file_layer,
    skopeo,
    write_layout,
)

pytestmark = pytest.mark.peers


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("peers") as path:
        yield path


@pytest.fixture
def registry(tmp: str) -> Iterator[DockerRegistry]:
    work = os.path.join(tmp, "docker-registry")
    os.makedirs(work)
    with DockerRegistry(work) as server:
        yield server


def busybox_image(tmp: str, name: str) -> tuple[Store, ImageRecord]:
    store = Store.open(os.path.join(tmp, "source"))
    image = make_busybox(store, name)
    assert isinstance(image, ImageRecord)
    return store, image


def blob_file(registry: DockerRegistry, digest: str) -> str:
    hex_digest = digest.split(":", 1)[1]
    return os.path.join(
        registry.workdir, "storage", "docker", "registry", "v2", "blobs", "sha256",
        hex_digest[:2], hex_digest, "data",
    )


def test_push_to_docker_registry_and_pull_back(tmp: str, registry: DockerRegistry) -> None:
    name = f"{registry.host}/berth/busybox:1.0"
    store, image = busybox_image(tmp, name)
    result = push(store, name, options=client_options(tmp))
    assert result.digest == image.manifest_digest
    # skopeo reads what berth pushed: same digest, same bytes
    ref = f"docker://{name}"
    info = json.loads(skopeo("inspect", "--tls-verify=false", ref).stdout)
    assert info["Digest"] == str(image.manifest_digest)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", ref).stdout.encode()
    assert raw == store.blobs.read(image.manifest_digest)
    layout = os.path.join(tmp, "copied-layout")
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", ref, f"oci:{layout}:copied")
    with open(os.path.join(layout, "index.json")) as f:
        assert json.load(f)["manifests"][0]["digest"] == str(image.manifest_digest)
    # and berth pulls it into an empty store as the very same image
    target = Store.open(os.path.join(tmp, "target"))
    [pulled] = pull(target, name, options=client_options(tmp))
    assert pulled.image.id == image.id
    assert pulled.digest == image.manifest_digest
    assert pulled.image.repo_digests == (f"{registry.host}/berth/busybox@{image.manifest_digest}",)


@pytest.mark.root
def test_podman_pulls_what_berth_pushed(tmp: str, registry: DockerRegistry) -> None:
    name = f"{registry.host}/berth/for-podman:latest"
    store, image = busybox_image(tmp, name)
    push(store, name, options=client_options(tmp))
    with podman() as peer:
        peer.run("pull", "--tls-verify=false", name)
        out = peer.run("run", "--rm", "--net=none", name, "busybox", "echo", "hi").stdout
        assert out.strip() == b"hi"
        ident = peer.run("image", "inspect", "--format", "{{.Id}}", name).stdout.decode()
    assert ident.strip() == image.id.hex


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_pull_what_skopeo_pushed(tmp: str, registry: DockerRegistry, fmt: str) -> None:
    layout = write_layout(
        os.path.join(tmp, "layout"),
        "v1",
        [busybox_layer(), file_layer("etc/motd", b"from skopeo\n")],
    )
    name = f"{registry.host}/skopeo/{fmt}:v1"
    skopeo("copy", "--dest-tls-verify=false", "--format", fmt, f"oci:{layout.path}:v1",
           f"docker://{name}")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{name}").stdout)
    store = Store.open(os.path.join(tmp, "store"))
    [result] = pull(store, name, options=client_options(tmp))
    assert result.digest == Digest.parse(info["Digest"])
    assert result.image.id == Digest.parse(layout.config_digest)
    top = store.layers.stack(result.image.top_chain)[-1]
    with open(os.path.join(store.layers.diff_dir(top.chain_id), "etc", "motd"), "rb") as f:
        assert f.read() == b"from skopeo\n"


def test_cross_repository_mount_on_docker_registry(tmp: str, registry: DockerRegistry) -> None:
    from berth.oci.reference import parse_normalized

    first = f"{registry.host}/team/one:latest"
    store, image = busybox_image(tmp, first)
    push(store, first, options=client_options(tmp))
    second = f"{registry.host}/team/two:latest"
    store.tag(image, parse_normalized(second))
    events, sink = collecting_sink()
    push(store, second, progress=sink, options=client_options(tmp))
    assert "Mounted from team/one" in [e.status for e in events]


def test_htpasswd_basic_auth(tmp: str) -> None:
    htpasswd = os.path.join(tmp, "htpasswd")
    entry = subprocess.run(
        ["htpasswd", "-Bbn", "carol", "s3cret"], capture_output=True, text=True, check=True
    ).stdout
    with open(htpasswd, "w") as f:
        f.write(entry)
    work = os.path.join(tmp, "auth-registry")
    os.makedirs(work)
    with DockerRegistry(work, htpasswd=htpasswd) as registry:
        name = f"{registry.host}/carol/busybox:latest"
        store, image = busybox_image(tmp, name)
        options = client_options(tmp)
        with pytest.raises(RegistryAuthError) as info:
            push(store, name, options=options)
        assert f"berth login {registry.host}" in str(info.value)
        with pytest.raises(RegistryAuthError):
            login(registry.host, "carol", "wrong", options=options)
        login(registry.host, "carol", "s3cret", options=options)
        push(store, name, options=options)
        # a peer with the same credentials sees the image berth pushed
        out = skopeo("inspect", "--tls-verify=false", "--creds", "carol:s3cret",
                     f"docker://{name}").stdout
        assert json.loads(out)["Digest"] == str(image.manifest_digest)
        [pulled] = pull(Store.open(os.path.join(tmp, "target")), name, options=options)
        assert pulled.image.id == image.id
        anonymous = client_options(tmp, docker_config=os.path.join(tmp, "nobody"))
        with pytest.raises(RegistryAuthError) as info:
            pull(Store.open(os.path.join(tmp, "third")), name, options=anonymous)
        assert "requires authentication" in str(info.value)
        assert "\n" not in str(info.value)


def test_corrupted_blob_in_the_registry_is_refused(tmp: str, registry: DockerRegistry) -> None:
    layout = write_layout(
        os.path.join(tmp, "layout"), "v1", [busybox_layer(), random_layer("big", 3 << 20, 5)]
    )
    name = f"{registry.host}/damaged:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1", f"docker://{name}")
    victim = blob_file(registry, layout.layer_digests[1])
    with open(victim, "r+b") as f:
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    store = Store.open(os.path.join(tmp, "store"))
    with pytest.raises(DigestMismatch) as info:
        pull(store, name, options=client_options(tmp))
    assert layout.layer_digests[1] in str(info.value)
    assert registry.host in str(info.value)
    assert store.images.all() == []
    assert not store.blobs.has(Digest.parse(layout.layer_digests[1]))
    bad_hex = layout.layer_digests[1].split(":")[1]
    assert all(bad_hex not in name for name in os.listdir(store.paths.tmp))


def test_unknown_image_and_registry_down(tmp: str, registry: DockerRegistry) -> None:
    store = Store.open(os.path.join(tmp, "store"))
    with pytest.raises(ImageNotFound) as info:
        pull(store, f"{registry.host}/no/such:image", options=client_options(tmp))
    assert "manifest unknown" in str(info.value)
    host = registry.host
    registry.stop()
    with pytest.raises(RegistryUnreachable) as down:
        pull(store, f"{host}/no/such:image", options=client_options(tmp))
    assert str(down.value).startswith(f"cannot reach registry {host} while pulling")
    assert "connection refused" in str(down.value)


SLOW_PULL = """
import sys, time
import httpx
from berth.registry.client import pull
from berth.store.store import Store
sys.path.insert(0, sys.argv[4])
from tests.support.registry_client import client_options

class SlowStream(httpx.SyncByteStream):
    def __init__(self, inner):
        self.inner = inner
    def __iter__(self):
        for chunk in self.inner:
            time.sleep(0.02)
            yield chunk
    def close(self):
        self.inner.close()

class Slow(httpx.BaseTransport):
    def __init__(self):
        self.inner = httpx.HTTPTransport()
    def handle_request(self, request):
        response = self.inner.handle_request(request)
        if "/blobs/" in str(request.url):
            response.stream = SlowStream(response.stream)
        return response

pull(Store.open(sys.argv[1]), sys.argv[2],
     options=client_options(sys.argv[3], transport=Slow(), max_concurrent_downloads=1))
"""


def test_killed_pull_resumes_where_it_stopped(tmp: str, registry: DockerRegistry) -> None:
    big = random_layer("big", 8 << 20, seed=11)
    layout = write_layout(os.path.join(tmp, "layout"), "v1", [big])
    name = f"{registry.host}/resumable:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:v1", f"docker://{name}")
    store_root = os.path.join(tmp, "store")
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_PULL, store_root, name, tmp, repo_root],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    partial = ""
    try:
        deadline = time.monotonic() + 120
        tmp_dir = os.path.join(store_root, "tmp")
        while time.monotonic() < deadline and child.poll() is None:
            names = [n for n in _listdir(tmp_dir) if f"-pull-sha256-{sha256_digest(big)[7:]}" in n]
            if names and os.path.getsize(os.path.join(tmp_dir, names[0])) > 1 << 20:
                partial = os.path.join(tmp_dir, names[0])
                break
            time.sleep(0.01)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert partial, f"the slow pull never got going: {child.stderr.read()!r}"  # type: ignore[union-attr]
    kept = os.path.getsize(partial)
    assert 0 < kept < len(big)
    recorder = RecordingTransport()
    store = Store.open(store_root)
    [result] = pull(store, name, options=client_options(tmp, transport=recorder))
    [(request, status)] = recorder.sent("GET", sha256_digest(big))
    assert request.headers["range"] == f"bytes={kept}-"
    assert status == 206
    assert result.image.id == Digest.parse(layout.config_digest)
    assert store.blobs.read(Digest.parse(sha256_digest(big))) == big
    assert not os.path.exists(partial)


def test_docker_hub_names_through_registries_conf_and_daemon_json(
    tmp: str, registry: DockerRegistry
) -> None:
    layout = write_layout(os.path.join(tmp, "layout"), "latest", [busybox_layer()])
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.path}:latest",
           f"docker://{registry.host}/library/busybox:latest")
    conf = os.path.join(tmp, "registries.conf")
    with open(conf, "w") as f:
        f.write(f'[[registry]]\nprefix = "docker.io"\nlocation = "{registry.host}"\n'
                "insecure = true\n")
    store = Store.open(os.path.join(tmp, "store"))
    [result] = pull(store, "busybox", options=client_options(tmp, registries_conf=conf))
    assert result.digest == Digest.parse(layout.manifest_digest)
    assert result.lines[-1] == "docker.io/library/busybox:latest"
    assert store.images.resolve("busybox").id == result.image.id
    # Docker's daemon.json: a Hub mirror on plain HTTP; registry-1.docker.io is never reached
    daemon = os.path.join(tmp, "daemon.json")
    with open(daemon, "w") as f:
        json.dump({"registry-mirrors": [f"http://{registry.host}"]}, f)
    other = Store.open(os.path.join(tmp, "other"))
    [mirrored] = pull(other, "library/busybox:latest",
                      options=client_options(tmp, daemon_json=daemon))
    assert mirrored.image.id == result.image.id


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
