"""Container networking: what a bridge costs at start, and TCP throughput through a published
port; berth side by side with podman in one run.

    .venv/bin/python bench/bench_network.py [--runs 30] [--mib 2048] [--rounds 5] [--no-podman]

1. Setup cost, in one warm process: berth's ``setup_container`` + ``teardown_container`` for
   ``--network none`` (a namespace with lo up), the default bridge, and the bridge with one
   published port. The bridge's extra cost = bridge - none. "bridge, wait" tears down with
   ``wait=True`` (the veth deleted before returning instead of by the kernel's namespace
   cleanup in the background).
2. The same as a fresh process each time (interpreter start and imports included, as the CLI
   pays them): ``python -c`` setting up and tearing down one container.
3. podman, for the same difference: ``podman run --rm --network none IMAGE true`` against
   ``podman run --rm IMAGE true`` (its default bridge), with a temporary ``--root``.
   podman runs inside a network namespace of its own (``unshare --net``), so its bridge and
   iptables rules never touch the host; the image is a busybox rootfs made from /bin/busybox.
4. TCP throughput of one connection from the host: to a receiver on the host's loopback (the
   limit), to the same receiver inside a berth container through a published port (on
   127.0.0.1, and on the host's primary address), and inside a podman container through
   ``podman run -p`` (measured in podman's namespace, whose loopback is measured too).
   The receiver is the same program everywhere (Debian's /usr/bin/python3 reading into a
   1 MiB buffer; podman's container gets /usr bind-mounted read-only).

Prints medians, the extra costs and their ratio (target: berth's extra <= 1/4 of podman's),
and throughput ratios (aim: berth >= 80% of loopback). Needs root. Leaves nothing behind (it
puts back ``net.ipv4.ip_forward`` too, which berth turns on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from berth.network import EndpointRequest, NetworkManager, parse_publish, state  # noqa: E402
from berth.store.db import Database  # noqa: E402
from berth.store.paths import StorePaths  # noqa: E402

PYTHON = sys.executable
FORWARDING_TURNED_ON: list[str] = []
SYSTEM_PYTHON = "/usr/bin/python3"
BUSYBOX = "/bin/busybox"

RECEIVER = r"""
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((sys.argv[1], int(sys.argv[2])))
sock.listen(8)
print("ready", flush=True)
buf = memoryview(bytearray(1 << 20))
while True:
    conn, _ = sock.accept()
    total = 0
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        total += n
    conn.sendall(str(total).encode())
    conn.close()
"""

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from berth.network import EndpointRequest, NetworkManager
from berth.store.db import Database
from berth.store.paths import StorePaths
t1 = time.perf_counter()
paths = StorePaths.at(sys.argv[1])
manager = NetworkManager(paths, Database(paths.db), host_resolv_conf=sys.argv[3])
t2 = time.perf_counter()
info = manager.setup_container(sys.argv[2], "bench", "bench", [EndpointRequest(sys.argv[4])])
t3 = time.perf_counter()
manager.teardown_container(sys.argv[2])
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "setup": t3 - t2, "teardown": t4 - t3}))
"""


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


# -- setup cost ------------------------------------------------------------------------------


@contextlib.contextmanager
def berth_store() -> Iterator[tuple[StorePaths, NetworkManager, str]]:
    root = tempfile.mkdtemp(prefix="berth-bench-net-")
    resolv = os.path.join(root, "resolv.conf")
    with open(resolv, "w") as handle:
        handle.write("nameserver 127.0.0.53\n")
    paths = StorePaths.at(root)
    db = Database(paths.db)
    manager = NetworkManager(paths, db, host_resolv_conf=resolv)
    try:
        yield paths, manager, resolv
    finally:
        if state.get_value(db, "ip_forward_enabled_by_berth") == "1":
            FORWARDING_TURNED_ON.append(root)
        manager.reset()
        manager.close()
        db.close()
        shutil.rmtree(paths.run_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def warm_setup_costs(manager: NetworkManager, runs: int) -> dict[str, dict[str, float]]:
    manager.ensure_default()
    cases: dict[str, Callable[[str], object]] = {
        "none": lambda cid: manager.setup_container(cid, "b", "b", [EndpointRequest("none")]),
        "bridge": lambda cid: manager.setup_container(cid, "b", "b", [EndpointRequest("bridge")]),
        "bridge -p": lambda cid: manager.setup_container(cid, "b", "b",
                                                         [EndpointRequest("bridge")],
                                                         parse_publish("80")),
    }
    cases["bridge, wait"] = cases["bridge"]
    out: dict[str, dict[str, float]] = {}
    for name, setup in cases.items():
        setups, teardowns = [], []
        for i in range(runs + 2):
            cid = f"{i:064x}"
            t0 = time.perf_counter()
            setup(cid)
            t1 = time.perf_counter()
            manager.teardown_container(cid, wait=name.endswith("wait"))
            t2 = time.perf_counter()
            if i >= 2:  # the first two warm caches up
                setups.append(t1 - t0)
                teardowns.append(t2 - t1)
        out[name] = {"setup": median_ms(setups), "teardown": median_ms(teardowns),
                     "total": median_ms([a + b for a, b in zip(setups, teardowns, strict=True)])}
    return out


def many_containers(manager: NetworkManager, count: int) -> dict[str, float]:
    """``count`` containers with a published port each, set up one after another (every
    change renders the whole table, so this shows how that scales), then torn down."""
    cids = [f"e{i:063x}" for i in range(count)]
    t0 = time.perf_counter()
    setups = []
    for cid in cids:
        t = time.perf_counter()
        manager.setup_container(cid, "m", "m", [EndpointRequest("bridge")],
                                parse_publish("80"))
        setups.append(time.perf_counter() - t)
    t1 = time.perf_counter()
    for cid in cids:
        manager.teardown_container(cid)
    t2 = time.perf_counter()
    return {"setup total": (t1 - t0) * 1000, "first": setups[0] * 1000,
            "last": setups[-1] * 1000, "teardown total": (t2 - t1) * 1000}


def cold_setup_costs(paths: StorePaths, resolv: str, runs: int) -> dict[str, dict[str, float]]:
    # as an installed berth runs: with its bytecode cached (this shell may say otherwise)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.path.join(REPO, "src")
    subprocess.run([PYTHON, "-c", "import berth.network.manager"], env=env, check=True)
    walls: dict[str, list[float]] = {"none": [], "bridge": []}
    parts: dict[str, dict[str, list[float]]] = {"none": {}, "bridge": {}}
    for i in range(runs):
        for mode in ("none", "bridge"):  # alternated, so drift hits both alike
            cid = f"{mode[0]}{i:063x}"
            t0 = time.perf_counter()
            proc = subprocess.run([PYTHON, "-c", COLD, paths.root, cid, resolv, mode],
                                  capture_output=True, text=True, env=env, check=True)
            walls[mode].append(time.perf_counter() - t0)
            for key, value in json.loads(proc.stdout).items():
                parts[mode].setdefault(key, []).append(value)
    out: dict[str, dict[str, float]] = {}
    for mode in ("none", "bridge"):
        out[mode] = {"wall": median_ms(walls[mode])} | {
            k: median_ms(v) for k, v in parts[mode].items()}
    bare = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    out["interpreter"] = {"wall": median_ms(bare)}
    return out


# -- podman --------------------------------------------------------------------------------------


def make_rootfs(path: str, directory: str) -> None:
    with tarfile.open(path, "w") as tar:
        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

        def add_link(name: str, target: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)

        for name in ("bin", "usr", "proc", "sys", "dev", "etc", "tmp", "bench", "root"):
            add_dir(name)
        tar.add(BUSYBOX, "bin/busybox")
        for name in ("sh", "true", "sleep"):
            add_link(f"bin/{name}", "busybox")
        add_link("lib", "usr/lib")
        add_link("lib64", "usr/lib64")
    with open(os.path.join(directory, "recv.py"), "w") as handle:
        handle.write(RECEIVER)


def run_checked(cmd: list[str], attempts: int = 1) -> None:
    for attempt in range(attempts):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        if attempt + 1 == attempts:
            raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {proc.stderr.strip()[-300:]}")
        time.sleep(1)


def podman_child(workdir: str, runs: int, mib: int, rounds: int) -> None:
    """Runs inside ``unshare --net``: podman's numbers, as JSON on stdout."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    base = ["podman", "--root", os.path.join(workdir, "root"),
            "--runroot", os.path.join(workdir, "runroot")]
    image = "localhost/berth-bench-busybox"
    run_checked([*base, "import", os.path.join(workdir, "rootfs.tar"), image], attempts=3)
    result: dict[str, object] = {}
    try:
        for name, extra in (("none", ["--network", "none"]), ("bridge", [])):
            run_checked([*base, "run", "--rm", *extra, image, "true"])  # warm up
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                run_checked([*base, "run", "--rm", *extra, image, "true"])
                times.append(time.perf_counter() - t0)
            result[name] = median_ms(times)
        with loopback_receiver() as port:
            result["loopback"] = throughput("127.0.0.1", port, mib, rounds)
        host_port = free_port()
        name = "berth-bench-recv"
        run_checked([*base, "run", "-d", "--name", name, "-p", f"{host_port}:5001",
                     "-v", "/usr:/usr:ro", "-v", f"{workdir}:/bench:ro", image,
                     "/usr/bin/python3", "/bench/recv.py", "0.0.0.0", "5001"])
        try:
            wait_for_port("127.0.0.1", host_port)
            result["published"] = throughput("127.0.0.1", host_port, mib, rounds)
        finally:
            subprocess.run([*base, "rm", "-f", name], capture_output=True, check=False)
    finally:
        subprocess.run([*base, "rmi", "-af"], capture_output=True, check=False)
    print(json.dumps(result))


def podman_numbers(runs: int, mib: int, rounds: int) -> dict[str, float] | str:
    if shutil.which("podman") is None:
        return "podman is not installed"
    workdir = tempfile.mkdtemp(prefix="berth-bench-podman-")
    try:
        make_rootfs(os.path.join(workdir, "rootfs.tar"), workdir)
        proc = subprocess.run(["unshare", "--net", PYTHON, os.path.abspath(__file__),
                               "--podman-child", workdir, "--runs", str(runs), "--mib",
                               str(mib), "--rounds", str(rounds)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            return "podman failed: " + (lines[-1] if lines else f"exit {proc.returncode}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def unmount_under(directory: str) -> None:
    """Unmount whatever podman left mounted below ``directory`` (deepest first)."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    for point in sorted((p for p in points if p.startswith(directory + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# -- throughput ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.shutdown(socket.SHUT_WR)
                sock.recv(16)
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers on {host}:{port}")


def throughput(host: str, port: int, mib: int, rounds: int) -> float:
    """Median MiB/s of ``rounds`` transfers of ``mib`` MiB over one TCP connection each."""
    chunk = memoryview(bytes(1 << 20))
    rates = []
    for _ in range(rounds):
        with socket.create_connection((host, port)) as sock:
            t0 = time.perf_counter()
            for _ in range(mib):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            received = int(sock.recv(64).decode() or 0)
            elapsed = time.perf_counter() - t0
        if received != mib << 20:
            raise RuntimeError(f"the receiver got {received} bytes of {mib << 20}")
        rates.append(mib / elapsed)
    return statistics.median(rates)


@contextlib.contextmanager
def loopback_receiver(netns_path: str | None = None, bind: str = "127.0.0.1",
                      port: int | None = None) -> Iterator[int]:
    port = port or free_port()
    cmd = [SYSTEM_PYTHON, "-c", RECEIVER, bind, str(port)]
    if netns_path:
        cmd = ["nsenter", f"--net={netns_path}", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
        yield port
    finally:
        proc.kill()
        proc.wait()


def primary_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # no packet is sent: only a route lookup
        return str(sock.getsockname()[0])


def berth_throughput(manager: NetworkManager, mib: int, rounds: int) -> dict[str, float]:
    host_port = free_port()
    info = manager.setup_container("f" * 64, "recv", "recv", [EndpointRequest("bridge")],
                                   parse_publish(f"{host_port}:5001"))
    try:
        assert info.netns_path
        with loopback_receiver(info.netns_path, "0.0.0.0", 5001):
            wait_for_port("127.0.0.1", host_port)
            return {
                "published 127.0.0.1": throughput("127.0.0.1", host_port, mib, rounds),
                "published host address": throughput(primary_address(), host_port, mib,
                                                     rounds),
            }
    finally:
        manager.teardown_container("f" * 64)


# -- report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-podman", action="store_true")
    parser.add_argument("--podman-child", metavar="DIR")
    args = parser.parse_args()
    if args.podman_child:
        podman_child(args.podman_child, args.runs, args.mib, args.rounds)
        return
    if os.geteuid() != 0:
        sys.exit("bench_network.py needs root")
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        forward = handle.read().strip()
    try:
        run(args)
    finally:
        if FORWARDING_TURNED_ON:  # berth turned it on, as Docker does: put back what was
            with open("/proc/sys/net/ipv4/ip_forward", "w") as handle:
                handle.write(forward)


def run(args: argparse.Namespace) -> None:
    with berth_store() as (paths, manager, resolv):
        warm = warm_setup_costs(manager, args.runs)
        many = many_containers(manager, 100)
        cold = cold_setup_costs(paths, resolv, max(5, args.runs // 3))
        with loopback_receiver() as port:
            loopback = throughput("127.0.0.1", port, args.mib, args.rounds)
        berth_rates = berth_throughput(manager, args.mib, args.rounds)
    podman = (podman_numbers(max(5, args.runs // 3), args.mib, args.rounds)
              if not args.no_podman else "skipped (--no-podman)")

    print("== setup + teardown of a container's network, one warm process (median ms)")
    for name, row in warm.items():
        print(f"  {name:12s} setup {row['setup']:7.2f}  teardown {row['teardown']:7.2f}  "
              f"total {row['total']:7.2f}")
    extra_setup = warm["bridge"]["setup"] - warm["none"]["setup"]
    extra_total = warm["bridge"]["total"] - warm["none"]["total"]
    print(f"  bridge extra over none: setup {extra_setup:.2f} ms, setup+teardown "
          f"{extra_total:.2f} ms")
    print("== 100 containers with a published port each, one after another (ms)")
    print("  " + "  ".join(f"{k} {v:.1f}" for k, v in many.items()))
    print("== the same as a fresh process each time (median ms)")
    for name, row in cold.items():
        print("  " + f"{name:12s}" + "  ".join(f"{k} {v:7.2f}" for k, v in row.items()))
    cold_wall_extra = cold["bridge"]["wall"] - cold["none"]["wall"]
    cold_extra = (cold["bridge"]["setup"] + cold["bridge"]["teardown"]
                  - cold["none"]["setup"] - cold["none"]["teardown"])
    print(f"  bridge extra over none: setup+teardown {cold_extra:.2f} ms; whole process wall "
          f"{cold_wall_extra:.2f} ms (imports vary by more than that)")
    if isinstance(podman, dict):
        podman_extra = podman["bridge"] - podman["none"]
        print("== podman run --rm IMAGE true (median ms)")
        print(f"  none {podman['none']:.1f}  bridge {podman['bridge']:.1f}  "
              f"extra {podman_extra:.1f}")
        print(f"  berth extra / podman extra: {extra_total / podman_extra:.3f} "
              f"(warm, setup+teardown), {cold_extra / podman_extra:.3f} (fresh process); "
              "target <= 0.25")
    else:
        print(f"== podman: {podman}")
    print(f"== TCP throughput, one connection, {args.mib} MiB x {args.rounds} (median MiB/s)")
    print(f"  host loopback            {loopback:9.0f}")
    for name, rate in berth_rates.items():
        print(f"  berth {name:22s} {rate:9.0f}  = {rate / loopback:.2f} of loopback")
    if isinstance(podman, dict):
        print(f"  podman loopback (its ns) {podman['loopback']:9.0f}")
        print(f"  podman published         {podman['published']:9.0f}  = "
              f"{podman['published'] / podman['loopback']:.2f} of its loopback")
        best = berth_rates["published 127.0.0.1"]
        print(f"  berth / podman (published 127.0.0.1): {best / podman['published']:.2f}")


if __name__ == "__main__":
    main()
