"""Push and pull of a 212 MB image over loopback: berth side by side with skopeo and podman.

    .venv/bin/python bench/bench_pull_push.py [--runs N] [--keep-fixture]

The image is busybox plus four layers of 50 MB of random bytes (gzip), made once and cached as
an OCI layout under /var/tmp/berth-bench-pullpush-v1. It is served by Debian's docker-registry
on 127.0.0.1. Measured, each run from a clean state:

- push: ``berth push`` of the image from a berth store vs ``skopeo copy oci:... docker://...``
  of the same blobs, each to a registry with empty storage;
- pull: ``berth pull`` (download, verify, unpack: ready to run) into an empty store vs
  ``podman pull --tls-verify=false`` into an empty ``--root``.

berth runs as a separate process with the venv interpreter, as the CLI would (its start-up
time counts, as podman's and skopeo's do). Prints every time, the medians and the ratios
berth/peer (below 1.0: berth is faster). Needs root (podman's overlay storage).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO_ROOT, ".venv", "bin", "python")
FIXTURE = "/var/tmp/berth-bench-pullpush-v1"
LAYOUT = os.path.join(FIXTURE, "oci")
REGISTRY = "/usr/bin/docker-registry"
LAYER_MB = 50
RANDOM_LAYERS = 4
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


# ---------------------------------------------------------------------------- fixture


def build_fixture() -> None:
    """An OCI layout (tag ``bench``): busybox + four 50 MB random layers, gzip."""
    if os.path.exists(os.path.join(FIXTURE, "done")):
        return
    print(f"building the fixture in {FIXTURE} (once)...", flush=True)
    shutil.rmtree(FIXTURE, ignore_errors=True)
    os.makedirs(os.path.join(LAYOUT, "blobs", "sha256"))
    layers: list[tuple[str, int, str]] = []  # (blob digest, size, diff id)
    with tempfile.TemporaryDirectory(prefix="berth-bench-rootfs-") as rootfs:
        sys.path.insert(0, os.path.join(REPO_ROOT, "src"))
        from berth.bootstrap.busybox import find_static_busybox, make_rootfs

        make_rootfs(rootfs, find_static_busybox())
        tar_path = os.path.join(FIXTURE, "busybox.tar")
        subprocess.run(
            ["tar", "-C", rootfs, "--numeric-owner", "-cf", tar_path, "."], check=True
        )
        layers.append(_add_layer(tar_path))
    for number in range(RANDOM_LAYERS):
        with tempfile.TemporaryDirectory(prefix="berth-bench-layer-") as content:
            os.makedirs(os.path.join(content, f"data{number}"))
            for i in range(LAYER_MB):
                with open(os.path.join(content, f"data{number}", f"blob{i:03d}"), "wb") as f:
                    f.write(os.urandom(1 << 20))
            tar_path = os.path.join(FIXTURE, f"layer{number}.tar")
            subprocess.run(
                ["tar", "-C", content, "--numeric-owner", "-cf", tar_path, "."], check=True
            )
            layers.append(_add_layer(tar_path))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench"} for _ in layers],
    }
    config_digest, config_size = _add_blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": d, "size": s} for d, s, _ in layers
        ],
    }
    manifest_digest, manifest_size = _add_blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    with open(os.path.join(LAYOUT, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(LAYOUT, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(FIXTURE, "done"), "w") as f:
        f.write("ok\n")


def _add_layer(tar_path: str) -> tuple[str, int, str]:
    diff = hashlib.sha256()
    gz_path = tar_path + ".gz"
    with open(tar_path, "rb") as src, gzip.open(gz_path, "wb", compresslevel=1) as dst:
        while chunk := src.read(1 << 20):
            diff.update(chunk)
            dst.write(chunk)
    os.unlink(tar_path)
    digest = hashlib.sha256()
    with open(gz_path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    blob = f"sha256:{digest.hexdigest()}"
    size = os.path.getsize(gz_path)
    os.rename(gz_path, os.path.join(LAYOUT, "blobs", "sha256", digest.hexdigest()))
    return blob, size, f"sha256:{diff.hexdigest()}"


def _add_blob(data: bytes) -> tuple[str, int]:
    hex_digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(LAYOUT, "blobs", "sha256", hex_digest), "wb") as f:
        f.write(data)
    return f"sha256:{hex_digest}", len(data)


# ---------------------------------------------------------------------------- peers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def docker_registry(workdir: str) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port with fresh storage; stopped by PID."""
    port = free_port()
    storage = os.path.join(workdir, f"registry-{port}")
    config = os.path.join(workdir, f"registry-{port}.yml")
    with open(config, "w") as f:
        f.write(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    proc = subprocess.Popen(
        [REGISTRY, "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(storage, ignore_errors=True)


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed:\n{done.stdout}\n{done.stderr}")


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


BERTH_ENV_KEYS = {"BERTH_REGISTRIES_CONF": "", "BERTH_DAEMON_JSON": ""}

BERTH_PUSH = """
import sys
from berth.store.store import Store
from berth.registry.client import ClientOptions, push
store = Store.open(sys.argv[1])
push(store, sys.argv[2], options=ClientOptions(docker_config=sys.argv[3]))
"""

BERTH_PULL = """
import sys
from berth.store.store import Store
from berth.registry.client import ClientOptions, pull
store = Store.open(sys.argv[1])
pull(store, sys.argv[2], options=ClientOptions(docker_config=sys.argv[3]))
"""

BERTH_IMPORT = """
import json, os, sys
from berth.store.store import Store
from berth.store.image_writer import LayerSource, ManifestSource, write_image
from berth.oci.digest import Digest
from berth.oci.reference import parse_normalized
layout, root, name = sys.argv[1:4]
def blob(d):
    return os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
mdesc = index["manifests"][0]
raw = open(blob(mdesc["digest"]), "rb").read()
manifest = json.loads(raw)
store = Store.open(root)
layers = [
    LayerSource(lambda p=blob(l["digest"]): open(p, "rb"), l["mediaType"],
                Digest.parse(l["digest"]), l["size"])
    for l in manifest["layers"]
]
write_image(store, config_bytes=open(blob(manifest["config"]["digest"]), "rb").read(),
            layers=layers, manifest=ManifestSource(raw, manifest["mediaType"]),
            tags=[parse_normalized(name)])
"""


def berth_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(BERTH_ENV_KEYS)
    env["PYTHONPATH"] = os.path.join(REPO_ROOT, "src")
    return env


def bench_push(workdir: str, runs: int) -> tuple[list[float], list[float]]:
    berth_times: list[float] = []
    skopeo_times: list[float] = []
    env = berth_env()
    docker_config = os.path.join(workdir, "docker-config")
    for number in range(runs):
        with docker_registry(workdir) as registry:
            target = f"docker://{registry}/bench/skopeo:latest"
            skopeo = ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{LAYOUT}:bench", target]
            skopeo_times.append(timed(partial(run, skopeo)))
        with docker_registry(workdir) as registry:
            store_root = os.path.join(workdir, f"berth-push-store-{number}")
            name = f"{registry}/bench/berth:latest"
            run([PYTHON, "-c", BERTH_IMPORT, LAYOUT, store_root, name], env)
            berth = [PYTHON, "-c", BERTH_PUSH, store_root, name, docker_config]
            berth_times.append(timed(partial(run, berth, env)))
            remove_store(store_root)
        print(f"  push run {number + 1}: berth {berth_times[-1]:.2f} s, "
              f"skopeo {skopeo_times[-1]:.2f} s", flush=True)
    return berth_times, skopeo_times


def bench_pull(workdir: str, runs: int) -> tuple[list[float], list[float]]:
    berth_times: list[float] = []
    podman_times: list[float] = []
    env = berth_env()
    docker_config = os.path.join(workdir, "docker-config")
    with docker_registry(workdir) as registry:
        name = f"{registry}/bench/big:latest"
        run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{LAYOUT}:bench", f"docker://{name}"])
        for number in range(runs):
            root = os.path.join(workdir, f"podman-root-{number}")
            runroot = tempfile.mkdtemp(prefix="berth-pr-", dir="/tmp")  # podman: <= 50 chars
            podman = ["podman", "--root", root, "--runroot", runroot, "--storage-driver", "overlay"]
            podman_pull = [*podman, "pull", "--quiet", "--tls-verify=false", name]
            podman_times.append(timed(partial(run, podman_pull)))
            run([*podman, "system", "reset", "--force"])
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(runroot, ignore_errors=True)
            store_root = os.path.join(workdir, f"berth-pull-store-{number}")
            berth = [PYTHON, "-c", BERTH_PULL, store_root, name, docker_config]
            berth_times.append(timed(partial(run, berth, env)))
            remove_store(store_root)
            print(f"  pull run {number + 1}: berth {berth_times[-1]:.2f} s, "
                  f"podman {podman_times[-1]:.2f} s", flush=True)
    return berth_times, podman_times


def remove_store(root: str) -> None:
    subprocess.run(["rm", "-rf", root], check=False)


def report(what: str, berth: list[float], peer_name: str, peer: list[float]) -> None:
    b, q = statistics.median(berth), statistics.median(peer)
    print(
        f"{what:<6} berth median {b:6.2f} s   {peer_name} median {q:6.2f} s   "
        f"ratio berth/{peer_name} {b / q:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["push", "pull"], default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: podman's overlay storage needs it")
    build_fixture()
    size = sum(
        os.path.getsize(os.path.join(LAYOUT, "blobs", "sha256", n))
        for n in os.listdir(os.path.join(LAYOUT, "blobs", "sha256"))
    )
    print(f"image: {size / 1e6:.0f} MB of blobs, {args.runs} runs each")
    workdir = tempfile.mkdtemp(prefix="berth-bench-pullpush-", dir="/var/tmp")
    try:
        results = {}
        if args.only in (None, "push"):
            results["push"] = ("skopeo", *bench_push(workdir, args.runs))
        if args.only in (None, "pull"):
            results["pull"] = ("podman", *bench_pull(workdir, args.runs))
        print()
        for what, (peer_name, berth, peer) in results.items():
            report(what, berth, peer_name, peer)
    finally:
        subprocess.run(["rm", "-rf", workdir], check=False)


if __name__ == "__main__":
    main()
