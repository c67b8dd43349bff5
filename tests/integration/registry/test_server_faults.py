"""Faults: clients that vanish mid-upload, a server killed mid-push, slow clients, workers, gc.

The server runs as its own process (``python -m berth.registry.server serve``) so it can be
killed with SIGKILL and restarted on the same storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.registry.server.gc import collect
from tests.support.registry_server import OCI_MANIFEST, ProcessServer, sha256


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return str(tmp_path / "berth-registry")


@pytest.fixture
def server(storage: str) -> Iterator[ProcessServer]:
    with ProcessServer(storage) as srv:
        yield srv


def blob_files(storage: str) -> list[str]:
    return [name for _, _, names in os.walk(os.path.join(storage, "blobs")) for name in names]


def open_raw(url: str) -> socket.socket:
    host, port = url.split("://", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def send_partial(url: str, method: str, path: str, total: int, sent: int,
                 extra: str = "") -> socket.socket:
    """Start a request announcing ``total`` body bytes and send only ``sent`` of them."""
    sock = open_raw(url)
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {total}\r\n{extra}\r\n")
    sock.sendall(head.encode())
    sock.sendall(b"z" * sent)
    return sock


def wait_for(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_client_disconnect_mid_patch_commits_nothing(server: ProcessServer,
                                                     storage: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
        r = client.patch(location, content=b"a" * 1000, headers={"Content-Range": "0-999"})
        assert r.status_code == 202
        sock = send_partial(server.url, "PATCH", location, total=8 << 20, sent=3 << 20,
                            extra="Content-Range: 1000-8389607\r\n")
        time.sleep(0.3)
        sock.close()
        data_file = os.path.join(storage, "uploads", location.rsplit("/", 1)[1], "data")
        wait_for(lambda: os.path.getsize(data_file) == 1000)
        assert client.get(location).headers["Range"] == "0-999"
        rest = b"b" * 500
        r = client.put(location, params={"digest": sha256(b"a" * 1000 + rest)}, content=rest)
        assert r.status_code == 201
        assert client.get("/v2/").status_code == 200


def test_client_disconnect_mid_monolithic_push_stores_nothing(server: ProcessServer,
                                                              storage: str) -> None:
    data = os.urandom(4 << 20)
    sock = send_partial(server.url, "POST", f"/v2/lib/a/blobs/uploads/?digest={sha256(data)}",
                        total=len(data), sent=1 << 20)
    time.sleep(0.3)
    sock.close()
    with httpx.Client(base_url=server.url) as client:
        wait_for(lambda: not any(os.path.getsize(os.path.join(storage, "uploads", u, "data"))
                                 for u in os.listdir(os.path.join(storage, "uploads"))))
        assert client.head(f"/v2/lib/a/blobs/{sha256(data)}").status_code == 404
        assert blob_files(storage) == []


def test_server_killed_mid_push_serves_nothing_partial_after_restart(storage: str) -> None:
    data = os.urandom(6 << 20)
    digest = sha256(data)
    with ProcessServer(storage) as server:
        with httpx.Client(base_url=server.url) as client:
            location = client.post("/v2/lib/a/blobs/uploads/").headers["Location"]
            first = data[: 1 << 20]
            r = client.patch(location, content=first,
                             headers={"Content-Range": f"0-{len(first) - 1}"})
            assert r.status_code == 202
        upload_dir = os.path.join(storage, "uploads", location.rsplit("/", 1)[1])
        sock = send_partial(server.url, "PATCH", location, total=len(data) - len(first),
                            sent=3 << 20,
                            extra=f"Content-Range: {len(first)}-{len(data) - 1}\r\n")
        wait_for(lambda: os.path.getsize(os.path.join(upload_dir, "data")) > len(first))
        server.kill()
        sock.close()
        assert os.path.getsize(os.path.join(upload_dir, "data")) > len(first)
    # a finishing PUT of the partial data must not be possible, even right after the restart
    with ProcessServer(storage) as server, httpx.Client(base_url=server.url) as client:
        assert os.path.getsize(os.path.join(upload_dir, "data")) == len(first)  # repaired
        assert client.get(location).headers["Range"] == f"0-{len(first) - 1}"
        assert client.head(f"/v2/lib/a/blobs/{digest}").status_code == 404
        r = client.put(location, params={"digest": digest})
        assert r.status_code == 400  # what is there is not the blob
        assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert client.head(f"/v2/lib/a/blobs/{digest}").status_code == 404
        # a fresh, complete push works
        r = client.post("/v2/lib/a/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201
        assert hashlib.sha256(client.get(f"/v2/lib/a/blobs/{digest}").content).hexdigest() == \
            digest.split(":")[1]


def test_a_slow_upload_does_not_block_other_clients(server: ProcessServer) -> None:
    location = httpx.post(f"{server.url}/v2/lib/slow/blobs/uploads/").headers["Location"]
    sock = send_partial(server.url, "PATCH", location, total=10 << 20, sent=1024)
    done: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(10):
                data = os.urandom(256 * 1024) + bytes([i])
                r = client.post("/v2/lib/fast/blobs/uploads/", params={"digest": sha256(data)},
                                content=data)
                assert r.status_code == 201
                assert client.get(f"/v2/lib/fast/blobs/{sha256(data)}").content == data
                done.append(sha256(data))
        # the slow upload is still open and still progressing
        sock.sendall(b"z" * 1024)
        assert sock.fileno() != -1
    finally:
        sock.close()
    assert len(done) == 10


def test_concurrent_pushes_and_pulls(server: ProcessServer) -> None:
    errors: list[BaseException] = []
    blobs = [os.urandom(512 * 1024) for _ in range(8)]

    def worker(index: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                data = blobs[index]
                location = client.post(f"/v2/lib/c{index}/blobs/uploads/").headers["Location"]
                for start in range(0, len(data), 100_000):
                    chunk = data[start:start + 100_000]
                    r = client.patch(location, content=chunk, headers={
                        "Content-Range": f"{start}-{start + len(chunk) - 1}"})
                    assert r.status_code == 202
                    location = r.headers["Location"]
                r = client.put(location, params={"digest": sha256(data)})
                assert r.status_code == 201
                for _ in range(5):
                    assert client.get(f"/v2/lib/c{index}/blobs/{sha256(data)}").content == data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def push_image(client: httpx.Client, repo: str, tag: str, seed: int) -> list[str]:
    config = json.dumps({"seed": seed}).encode()
    layer = os.urandom(64 * 1024)
    digests = []
    for data in (config, layer):
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)},
                        content=data)
        assert r.status_code == 201
        digests.append(sha256(data))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    for _ in range(3):  # a gc sweep may have won the race: the client pushes again
        r = client.put(f"/v2/{repo}/manifests/{tag}", content=manifest,
                       headers={"Content-Type": OCI_MANIFEST})
        if r.status_code == 201:
            return digests
        assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    raise AssertionError("manifest push kept failing")


def test_gc_while_pushing_never_breaks_a_pushed_image(server: ProcessServer,
                                                      storage: str) -> None:
    stop = threading.Event()
    gc_runs = []

    def gc_loop() -> None:
        while not stop.is_set():
            gc_runs.append(collect(storage, grace_seconds=0.5))

    thread = threading.Thread(target=gc_loop)
    thread.start()
    pushed: dict[str, list[str]] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i in range(15):
                pushed[f"t{i}"] = push_image(client, "lib/gc", f"t{i}", i)
    finally:
        stop.set()
        thread.join(60)
    assert gc_runs
    collect(storage, grace_seconds=0)
    with httpx.Client(base_url=server.url) as client:
        for tag, digests in pushed.items():
            assert client.get(f"/v2/lib/gc/manifests/{tag}").status_code == 200
            for digest in digests:
                assert client.head(f"/v2/lib/gc/blobs/{digest}").status_code == 200, tag


def test_workers_share_one_port_and_one_storage(storage: str) -> None:
    with ProcessServer(storage, ["--workers", "3"]) as server:
        data = os.urandom(2 << 20)
        location = httpx.post(f"{server.url}/v2/lib/w/blobs/uploads/").headers["Location"]
        for start in range(0, len(data), 256 * 1024):
            chunk = data[start:start + 256 * 1024]
            # a new connection each time: the kernel spreads them over the workers
            r = httpx.patch(f"{server.url}{location}", content=chunk,
                            headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"})
            assert r.status_code == 202, r.text
        r = httpx.put(f"{server.url}{location}", params={"digest": sha256(data)})
        assert r.status_code == 201, r.text
        for _ in range(10):
            assert httpx.get(f"{server.url}/v2/lib/w/blobs/{sha256(data)}").content == data
        # a worker that dies is replaced
        assert server.process is not None
        children = _children(server.process.pid)
        assert len(children) == 3
        os.kill(children[0], signal.SIGKILL)
        parent = server.process.pid
        wait_for(lambda: len(_children(parent)) == 3 and children[0] not in _children(parent))
        for _ in range(10):
            assert httpx.get(f"{server.url}/v2/").status_code == 200
        workers = _children(server.process.pid)
    assert server.process is not None
    assert server.process.returncode == 0  # SIGTERM stopped the workers, then the parent
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found



def test_sigterm_stops_cleanly_even_with_an_upload_open(storage: str) -> None:
    with ProcessServer(storage) as server:
        location = httpx.post(f"{server.url}/v2/lib/a/blobs/uploads/").headers["Location"]
        sock = send_partial(server.url, "PATCH", location, total=1 << 20, sent=1000)
        time.sleep(0.2)
        try:
            server.stop()
        finally:
            sock.close()
        assert server.process is not None
        assert server.process.returncode == 0, server.log()
    upload_dir = os.path.join(storage, "uploads", location.rsplit("/", 1)[1])
    with open(os.path.join(upload_dir, "offset")) as f:
        assert f.read() == "0"  # the interrupted chunk was not committed
