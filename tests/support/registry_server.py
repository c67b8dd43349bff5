"""Registries for tests: berth's server (in a thread or as a process) and Debian's docker-registry.

Every server listens on 127.0.0.1 on a free port and is stopped through the handle that started
it (``with ... as server:``), also when the test fails. Also here: small OCI image layouts for
skopeo to push, made by hand from Debian's busybox-static.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

PYTHON = sys.executable
DOCKER_REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
BUSYBOX = "/bin/busybox"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def require(path: str) -> str:
    """A peer tool; fails (never skips) when it is missing."""
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: install it (.ci/run does)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- berth's server in this process (a thread with its own event loop) ----------------------


class ThreadServer:
    """berth's registry app on 127.0.0.1:<free port>, served by a thread of this process."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="berth-test-registry", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        from aiohttp import web

        from berth.registry.server import make_app, ssl_context

        app = make_app(self.config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        site = web.SockSite(runner, sock, ssl_context=ssl_context(self.config))
        await site.start()
        scheme = "https" if self.config.tls_cert else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


# -- berth's server as a process -------------------------------------------------------------


@dataclass
class ProcessServer:
    """``python -m berth.registry.server serve`` on a free port; stopped on exit."""

    storage: str
    args: list[str] = field(default_factory=list)
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    stderr_path: str = ""

    def start(self) -> ProcessServer:
        self.stderr_path = os.path.join(os.path.dirname(self.storage) or ".",
                                        f"berth-registry-{os.getpid()}-{time.monotonic_ns()}.log")
        stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "berth.registry.server", "serve", "--addr", "127.0.0.1:0",
             "--storage", self.storage, *self.args],
            stdout=subprocess.PIPE, stderr=stderr,
        )
        stderr.close()
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith(("http://", "https://")):
            self.stop()
            raise RuntimeError(f"berth registry did not start: {self.log()}")
        self.url = line
        return self

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ProcessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- Debian's docker-registry (distribution 2.8) ---------------------------------------------


@dataclass
class DockerRegistry:
    """``docker-registry serve CONFIG`` with filesystem storage in ``workdir``."""

    workdir: str
    htpasswd: str | None = None
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> DockerRegistry:
        require(DOCKER_REGISTRY)
        port = free_port()
        storage = os.path.join(self.workdir, "storage")
        os.makedirs(storage, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "  secret: berth-test-secret",
        ]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm",
                      f"    path: {self.htpasswd}"]
        config = os.path.join(self.workdir, "config.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        log = open(os.path.join(self.workdir, "registry.log"), "wb")
        self.process = subprocess.Popen([DOCKER_REGISTRY, "serve", config],
                                        stdout=log, stderr=log)
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/v2/", timeout=1)
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log()}")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        with contextlib.suppress(FileNotFoundError), open(
            os.path.join(self.workdir, "registry.log"), encoding="utf-8", errors="replace"
        ) as f:
            return f.read()
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)

    def __enter__(self) -> DockerRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- OCI image layouts -----------------------------------------------------------------------


@dataclass
class Layout:
    path: str
    tag: str
    manifest_digest: str
    manifest: bytes
    config_digest: str
    layer_digests: list[str]


def busybox_layer() -> bytes:
    """A gzipped tar of bin/busybox and bin/sh (a symlink), deterministic."""
    require(BUSYBOX)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/sh")
        link.type = tarfile.SYMTYPE
        link.linkname = "busybox"
        tar.addfile(link)
    return gzip.compress(raw.getvalue(), mtime=0)


def file_layer(name: str, content: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0, compresslevel=1)


def write_layout(path: str, tag: str, layers: list[bytes]) -> Layout:
    """An OCI image layout at ``path`` holding one image (``layers``: gzipped tars) as ``tag``."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data: bytes) -> str:
        digest = sha256(data)
        target = os.path.join(blobs, digest.split(":", 1)[1])
        if not os.path.exists(target):
            with open(target, "wb") as f:
                f.write(data)
        return digest

    layer_digests = [put(layer) for layer in layers]
    diff_ids = [sha256(gzip.decompress(layer)) for layer in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "berth test"} for _ in layers],
    }, separators=(",", ":")).encode()
    config_digest = put(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": d, "size": len(layer)}
            for d, layer in zip(layer_digests, layers, strict=True)
        ],
    }, separators=(",", ":")).encode()
    manifest_digest = put(manifest)
    with open(os.path.join(path, "oci-layout"), "w", encoding="utf-8") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }
    with open(os.path.join(path, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f)
    return Layout(path, tag, manifest_digest, manifest, config_digest, layer_digests)


def skopeo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run skopeo; raise with its output when it fails."""
    require(SKOPEO)
    result = subprocess.run(
        [SKOPEO, *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
