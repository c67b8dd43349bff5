"""Helpers for the registry client's tests: temp dirs, stores, images, options, and two
network tools that sit between berth and a real registry (a recording transport and a TCP
proxy that cuts a blob download short)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from berth.registry.client.options import ClientOptions


@contextlib.contextmanager
def berth_temp_dir(kind: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=f"berth-test-client-{kind}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def client_options(workdir: str, **overrides: object) -> ClientOptions:
    """Options that read no host configuration: no registries.conf, no daemon.json, and a
    docker config dir of the test's own."""
    values: dict[str, object] = {
        "registries_conf": "",
        "daemon_json": "",
        "docker_config": os.path.join(workdir, "docker-config"),
        "certs_dirs": (),
        "backoff": 0.05,
    }
    values.update(overrides)
    return ClientOptions(**values)  # type: ignore[arg-type]


def make_busybox(store: object, name: str) -> object:
    """A busybox image made by berth itself (from Debian's busybox-static)."""
    from berth.bootstrap.busybox import bootstrap_busybox
    from berth.oci.reference import parse_normalized

    return bootstrap_busybox(store, [parse_normalized(name)])  # type: ignore[arg-type]


@dataclass
class RecordingTransport(httpx.BaseTransport):
    """The real HTTP transport, with every request and response status written down."""

    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    requests: list[httpx.Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        with self.lock:
            self.requests.append(request)
            self.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()

    def sent(self, method: str, contains: str = "") -> list[tuple[httpx.Request, int]]:
        with self.lock:
            return [
                (r, s)
                for r, s in zip(self.requests, self.statuses, strict=True)
                if r.method == method and contains in str(r.url)
            ]


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to a registry that, for the first ``cuts`` responses carrying
    a body of more than ``after`` bytes, closes the connection after ``after`` bytes."""

    def __init__(self, target: str, *, after: int, cuts: int = 1) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.after = after
        self.cuts = cuts
        self.cut_count = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._lock = threading.Lock()
        self._accept = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._accept.join(10)
        for thread in self._threads:
            thread.join(10)

    def _serve(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connection(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        up = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
        up.start()
        try:
            self._downstream(upstream, client)
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            up.join(10)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _downstream(self, upstream: socket.socket, client: socket.socket) -> None:
        """Forward one response (told to close the connection, so every request comes on a
        connection of its own); cut it short if it is one of the first big ones."""
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                data = upstream.recv(65536)
                if not data:
                    client.sendall(head)
                    return
                head += data
            header, body = head.split(b"\r\n\r\n", 1)
            length = 0
            lines = [line for line in header.split(b"\r\n")
                     if not line.lower().startswith(b"connection:")]
            for line in lines:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            with self._lock:
                cutting = length > self.after and self.cut_count < self.cuts
                if cutting:
                    self.cut_count += 1
            client.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n")
            sent = 0
            while True:
                if cutting and sent + len(body) >= self.after:
                    client.sendall(body[: self.after - sent])
                    return
                client.sendall(body)
                sent += len(body)
                if length and sent >= length:
                    return
                body = upstream.recv(65536)
                if not body:
                    return


# -- images put into a registry by hand, over the distribution API ---------------------------


@dataclass
class Uploaded:
    manifest: bytes
    digest: str
    config: bytes
    layers: list[bytes]


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(base_url: str, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    with httpx.Client(base_url=base_url, timeout=60) as client:
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        done = client.put(location, params={"digest": digest}, content=data,
                          headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
    return digest


def put_manifest(base_url: str, repo: str, reference: str, data: bytes, media_type: str) -> str:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        done = client.put(f"/v2/{repo}/manifests/{reference}", content=data,
                          headers={"Content-Type": media_type})
        assert done.status_code == 201, done.text
    return sha256_digest(data)


def upload_image(
    base_url: str,
    repo: str,
    tag: str | None,
    layers: list[bytes],
    *,
    architecture: str = "amd64",
    docker_types: bool = False,
    compressed: bool = True,
) -> Uploaded:
    """An image of ``layers`` (gzipped tars, or plain tars with ``compressed=False``)."""
    import gzip
    import json

    if docker_types:
        manifest_type = "application/vnd.docker.distribution.manifest.v2+json"
        config_type = "application/vnd.docker.container.image.v1+json"
        layer_type = "application/vnd.docker.image.rootfs.diff.tar"
        layer_type += ".gzip" if compressed else ""
    else:
        manifest_type = "application/vnd.oci.image.manifest.v1+json"
        config_type = "application/vnd.oci.image.config.v1+json"
        layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compressed else "")
    diff_ids = [sha256_digest(gzip.decompress(x) if compressed else x) for x in layers]
    config = json.dumps({
        "architecture": architecture, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "berth test"} for _ in layers],
    }, separators=(",", ":")).encode()
    for layer in layers:
        put_blob(base_url, repo, layer)
    config_digest = put_blob(base_url, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": sha256_digest(x), "size": len(x)}
                   for x in layers],
    }, separators=(",", ":")).encode()
    digest = put_manifest(base_url, repo, tag or sha256_digest(manifest), manifest, manifest_type)
    return Uploaded(manifest, digest, config, layers)


def upload_index(
    base_url: str, repo: str, tag: str, images: dict[str, Uploaded], *, docker_types: bool = False
) -> str:
    """An index (or Docker manifest list) of ``images`` keyed by ``os/arch``."""
    import json

    index_type = ("application/vnd.docker.distribution.manifest.list.v2+json" if docker_types
                  else "application/vnd.oci.image.index.v1+json")
    entries = []
    for platform, image in images.items():
        os_name, arch = platform.split("/")
        media_type = json.loads(image.manifest)["mediaType"]
        entries.append({"mediaType": media_type, "digest": image.digest,
                        "size": len(image.manifest),
                        "platform": {"os": os_name, "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries},
                       separators=(",", ":")).encode()
    return put_manifest(base_url, repo, tag, index, index_type)


def random_layer(name: str, size: int, seed: int = 0) -> bytes:
    """A gzipped tar holding one file of ``size`` incompressible bytes."""
    import random

    from tests.support.registry_server import file_layer

    return file_layer(name, random.Random(seed).randbytes(size))
