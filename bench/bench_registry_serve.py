"""Serving pulls: berth's registry against Debian's docker-registry (distribution 2.8), same load.

Builds (once, cached in /var/tmp/berth-bench-registry-serve) a 212 MB OCI image layout: busybox
plus four 50 MiB layers of random-ish bytes, gzip-compressed. Pushes it with skopeo to each
registry (filesystem storage in a temp dir, on 127.0.0.1), then serves 16 concurrent pulls of
the whole image (manifest, config, every layer by GET; each pull fetches up to 3 layers at once,
as docker does) with the same client against each registry, a few rounds, alternating.

Clients:
- ``aiohttp`` (default): one asyncio process; bodies read and discarded (``--verify`` hashes
  them too, as a real puller would);
- ``skopeo``: 16 ``skopeo copy docker://... oci:DIR`` processes (they write and verify).

Prints the throughput of each registry (MB/s, best of the rounds, and the median) and the ratio
berth / docker-registry (above 1.0: berth serves faster).

    .venv/bin/python bench/bench_registry_serve.py [--rounds 3] [--pulls 16] [--workers 1 2]
        [--client aiohttp|skopeo] [--verify]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp

CACHE = "/var/tmp/berth-bench-registry-serve"
BUSYBOX = "/bin/busybox"
SKOPEO = "/usr/bin/skopeo"
DOCKER_REGISTRY = "/usr/bin/docker-registry"
MiB = 1 << 20
LAYER_BYTES = 50 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# -- the image -------------------------------------------------------------------------------


def _tar_gz(members: list[tuple[str, bytes, int]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def build_layout(path: str) -> int:
    """The benchmark image as an OCI layout at ``path``; returns its total blob bytes."""
    marker = os.path.join(path, "berth-bench-complete")
    if os.path.exists(marker):
        return int(open(marker).read())
    shutil.rmtree(path, ignore_errors=True)
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return f"sha256:{digest}"

    with open(BUSYBOX, "rb") as binary:
        layers = [_tar_gz([("bin/busybox", binary.read(), 0o755)])]
    for index in range(4):
        rng = random.Random(index)
        layers.append(_tar_gz([(f"data/blob{index}.bin", rng.randbytes(LAYER_BYTES), 0o644)]))
    diff_ids = [f"sha256:{hashlib.sha256(gzip.decompress(x)).hexdigest()}" for x in layers]
    layer_digests = [put(x) for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/busybox", "sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d,
                    "size": len(x)} for d, x in zip(layer_digests, layers, strict=True)],
    }).encode()
    manifest_digest = put(manifest)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)
    total = len(manifest) + len(config) + sum(len(x) for x in layers)
    with open(marker, "w") as f:
        f.write(str(total))
    return total


# -- the registries --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def berth_registry(workdir: str, workers: int) -> Iterator[str]:
    storage = os.path.join(workdir, f"berth-w{workers}")
    process = subprocess.Popen(
        [sys.executable, "-m", "berth.registry.server", "serve", "--addr", "127.0.0.1:0",
         "--storage", storage, "--workers", str(workers), "--no-access-log"],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise RuntimeError("berth registry did not start")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@contextlib.contextmanager
def docker_registry(workdir: str) -> Iterator[str]:
    port = free_port()
    storage = os.path.join(workdir, "docker-registry")
    config = os.path.join(workdir, "docker-registry.yml")
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: 127.0.0.1:{port}
  secret: berth-bench
""")
    process = subprocess.Popen([DOCKER_REGISTRY, "serve", config],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_listening(port, process)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def push(layout: str, url: str) -> float:
    host = url.split("://")[1]
    start = time.perf_counter()
    subprocess.run([SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:bench",
                    f"docker://{host}/bench/image:latest"], check=True)
    return time.perf_counter() - start


# -- the clients -----------------------------------------------------------------------------


@dataclass
class Round:
    seconds: float
    bytes: int

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


async def _pull_one(session: aiohttp.ClientSession, url: str, verify: bool) -> int:
    base = f"{url}/v2/bench/image"
    async with session.get(f"{base}/manifests/latest",
                           headers={"Accept": OCI_MANIFEST}) as response:
        response.raise_for_status()
        manifest = json.loads(await response.read())
    digests = [manifest["config"]["digest"]] + [x["digest"] for x in manifest["layers"]]
    limit = asyncio.Semaphore(3)

    async def blob(digest: str) -> int:
        async with limit, session.get(f"{base}/blobs/{digest}") as response:
            response.raise_for_status()
            hasher = hashlib.sha256() if verify else None
            received = 0
            async for chunk in response.content.iter_chunked(1 << 20):
                received += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
            if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
                raise RuntimeError(f"{digest} arrived corrupted")
            return received

    sizes = await asyncio.gather(*(blob(d) for d in digests))
    return sum(sizes) + len(json.dumps(manifest))


async def _pull_many(url: str, pulls: int, verify: bool) -> Round:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        sizes = await asyncio.gather(*(_pull_one(session, url, verify) for _ in range(pulls)))
        return Round(time.perf_counter() - start, sum(sizes))


def pull_aiohttp(url: str, pulls: int, verify: bool) -> Round:
    return asyncio.run(_pull_many(url, pulls, verify))


def pull_skopeo(url: str, pulls: int, workdir: str, total: int) -> Round:
    host = url.split("://")[1]
    targets = [os.path.join(workdir, f"pull-{i}") for i in range(pulls)]
    start = time.perf_counter()
    processes = [subprocess.Popen([SKOPEO, "copy", "--quiet", "--src-tls-verify=false",
                                   f"docker://{host}/bench/image:latest", f"oci:{t}:x"])
                 for t in targets]
    for p in processes:
        if p.wait() != 0:
            raise RuntimeError("skopeo copy failed")
    elapsed = time.perf_counter() - start
    for t in targets:
        shutil.rmtree(t, ignore_errors=True)
    return Round(elapsed, total * pulls)


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pulls", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="berth worker counts to measure (each against docker-registry)")
    parser.add_argument("--client", choices=["aiohttp", "skopeo"], default="aiohttp")
    parser.add_argument("--verify", action="store_true", help="hash every blob (aiohttp client)")
    args = parser.parse_args()

    for tool in (SKOPEO, DOCKER_REGISTRY, BUSYBOX):
        if not os.path.exists(tool):
            print(f"missing {tool}", file=sys.stderr)
            return 1
    layout = os.path.join(CACHE, "layout")
    os.makedirs(CACHE, exist_ok=True)
    total = build_layout(layout)
    print(f"image: {total / 1e6:.1f} MB in 6 blobs; {args.pulls} concurrent pulls, "
          f"{args.rounds} rounds, client {args.client}{' (verifying)' if args.verify else ''}, "
          f"{os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory(prefix="berth-bench-serve-", dir="/var/tmp") as workdir:
        with contextlib.ExitStack() as stack:
            servers = {"docker-registry": stack.enter_context(docker_registry(workdir))}
            for workers in args.workers:
                servers[f"berth (workers={workers})"] = stack.enter_context(
                    berth_registry(workdir, workers))
            for name, url in servers.items():
                print(f"push {name}: {push(layout, url):.2f} s (skopeo)")
            rounds: dict[str, list[Round]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, url in servers.items():
                    if args.client == "skopeo":
                        result = pull_skopeo(url, args.pulls, workdir, total)
                    else:
                        result = pull_aiohttp(url, args.pulls, args.verify)
                    rounds[name].append(result)
        print()
        print(f"{'registry':28} {'best MB/s':>10} {'median MB/s':>12} {'best s':>8}")
        best: dict[str, float] = {}
        for name, results in rounds.items():
            speeds = [r.mb_per_s for r in results]
            best[name] = max(speeds)
            fastest = min(r.seconds for r in results)
            print(f"{name:28} {max(speeds):10.0f} {statistics.median(speeds):12.0f} "
                  f"{fastest:8.2f}")
        print()
        reference = best["docker-registry"]
        for name, speed in best.items():
            if name != "docker-registry":
                print(f"ratio {name} / docker-registry: {speed / reference:.2f} "
                      f"(above 1.0: berth serves faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
