"""``berth run --rm --network none busybox true`` side by side with the peers, in one run
(issue 3's numbers), and the cost of the default bridge against podman's (issue 6's).

    .venv/bin/python bench/bench_run.py [--runs 30] [--back-to-back-blocks 6]
                                        [--quiet-runs 12] [--trace-runs 15] [--no-bridge]

1. Interleaved, fresh processes, ``--runs`` rounds (one warm-up round first), 0.15 s apart (so
   that what one command leaves to do in the background, berth's next spare or podman's
   cleanup, is done before the next command starts, whichever it is):
   - ``berth run --rm --network none busybox true`` (the virtual environment's ``berth``: the
     compiled client scripts/install builds, ``src/berth/cli/forkclient.c``; a store of its own
     in a temp root with busybox bootstrapped), served by berth's fork server
     (``berth.cli.forkserver``, a private one of the benchmark's, started and waited for
     first); the same through the Python launcher (the client is then an interpreter:
     ``berth.cli.forkclient``); the same through a second server started with
     ``BERTH_NO_PREFORK=1`` (its spares fork no container init ahead,
     ``berth.runtime.preforked``); the same with ``BERTH_NO_FORKSERVER=1`` (the whole command in
     its own process), and that with ``BERTH_NO_WARM=1`` too;
   - ``runc run`` and ``crun run`` of a bundle made from the same rootfs (berth's busybox
     layer, copied out), with ``runc spec``'s config running ``true``: its namespaces include
     a new, empty network namespace, which is what ``--network none`` gives; the same with the
     network namespace left out ("host netns") is shown too, and with the ``config.json`` berth
     runs (Docker's default seccomp profile, capabilities, masked and read-only paths);
   - ``podman run --rm --network none busybox true`` (its own temp ``--root``/``--runroot``;
     busybox loaded from a ``berth save`` archive of the same image);
   - a bare ``unshare -mupin true``, and the virtual environment's ``python -c pass`` (the floor
     of any Python command).
   Prints medians (and the CPU time of each command's whole process tree: for a command the
   fork server runs, only the client's, since the worker is not its child), ratios berth/runc,
   berth/crun and berth/podman, and the targets (berth no slower than runc; at most a fifth of
   podman).
   Throughout, a thread of the benchmark keeps the kernel's cgroup-migration lock warm (it
   writes its own pid into its own cgroup every 3 ms, as ``berth.runtime.cgroups.warm`` does):
   a process that joins a cgroup when nobody has for a while first waits for an RCU grace
   period (7-25 ms here), and without the thread, berth's own warm-up (its fork server keeps
   the lock warm for two seconds after each command, and the commands follow each other
   closely) would warm it for the peers' runs that follow berth's, and not for all of them
   alike. So this part
   compares the engines on a busy host, where the lock is always warm.
1b. Runs in a row, as a script makes them: ``berth``, ``runc`` and ``crun`` (the first rows of
   part 1), 10 runs of one with nothing in between, the three taking turns,
   ``--back-to-back-blocks`` blocks each (the lock kept warm). berth's fork server makes the
   next spare beside a command that follows another closely, and after one that came after a
   quiet spell (``berth.cli.forkserver``): this part measures the first case, part 1 the
   second. It also prints the host's busy CPU time a run (``/proc/stat``, every process and
   kernel thread, up to 0.15 s after each block): on two CPUs, runs in a row are bound by it.
2. The same on a quiet host: ``berth``, ``runc``, ``crun`` and ``podman`` (the first rows of
   part 1), interleaved, ``--quiet-runs`` rounds, each run after 2.5 s with no cgroup joined
   (longer than berth's warm-up lasts, and than a grace period): each pays the grace period as
   it would on its own, and takes off what its own design takes off (berth's warm-up while
   it prepares the container). Issue 3's own figure for ``runc run`` (39 ms) is a quiet-host
   one (here: 32-42 ms quiet, 20-27 ms warm).
3. Where berth's time goes, with and without the fork server: ``--trace-runs`` more runs each
   with ``BERTH_TRACE=1``
   (``berth.trace``); the median of each checkpoint's delta, plus the client's start (spawn
   to the first checkpoint) and its exit (the last checkpoint to the parent's ``wait``).
4. The default bridge: ``berth run --rm busybox true`` vs ``--network none`` (interleaved), and
   podman's bridge vs its ``--network none``; both engines run inside one network namespace of
   the benchmark's own (``nsenter``), so their bridges and firewall rules never touch the host
   and the host's own rules (or other stores' tables) do not weigh on them (the fork server
   refuses a client in another network namespace: these berth commands run in their own
   process). Target: berth's extra cost at most a quarter of podman's.

Byte-code is compiled first and ``PYTHONDONTWRITEBYTECODE`` is unset for the measured
processes, so the numbers are those of an installed berth. Needs root; leaves nothing behind
(stores, mounts, cgroups, bridges, the netns; ``net.ipv4.ip_forward`` is put back).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))
sys.path.insert(0, HERE)

from bench_runtime import CRUN, RUNC, ensure_hugetlb_v1, runc_spec  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
BERTH = os.path.join(VENV_BIN, "berth")
BERTH_PYTHON_LAUNCHER = os.path.join(sys.prefix, "libexec", "berth", "berth")
PODMAN = "/usr/bin/podman"
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "BERTH_TRACE")}
CGROUP_V1 = "/sys/fs/cgroup"
FORWARD = "/proc/sys/net/ipv4/ip_forward"


class Setup:
    """The temp dirs and commands of one benchmark run."""

    def __init__(self, work: str) -> None:
        self.work = work
        self.store = os.path.join(work, "store")
        # a fork server of the benchmark's own (berth.cli.forkserver), ended at cleanup
        self.forkserver_dir = os.path.join(work, "forkserver")
        self.env = {**ENV, "BERTH_ROOT": self.store, "BERTH_FORKSERVER_DIR": self.forkserver_dir}
        self.bundle = os.path.join(work, "bundle")
        self.bundle_hostnet = os.path.join(work, "bundle-hostnet")
        self.bundle_berth = os.path.join(work, "bundle-berth-config")
        self.podman_dir = os.path.join(work, "podman")
        self.netns = os.path.join(work, "netns")
        self.netns_made = False

    def podman(self) -> list[str]:
        return [
            PODMAN,
            "--root",
            f"{self.podman_dir}/root",
            "--runroot",
            f"{self.podman_dir}/run",
            "--storage-driver",
            "overlay",
            "--events-backend",
            "none",
        ]

    def berth(self, *args: str) -> list[str]:
        return [BERTH, *args]


def quiet(cmd: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")


def prepare(setup: Setup) -> None:
    quiet([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "src", "berth")])
    quiet(setup.berth("image", "bootstrap", "-q", "busybox"), setup.env)
    rootfs = os.path.join(setup.bundle, "rootfs")
    os.makedirs(rootfs)
    for layer in busybox_layers(setup.store):  # bottom layer first
        quiet(["cp", "-a", f"{layer}/.", rootfs])
    spec = runc_spec(["true"])
    with open(os.path.join(setup.bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    os.makedirs(setup.bundle_hostnet)
    spec["root"] = {"path": rootfs, "readonly": True}
    linux = spec["linux"]
    assert isinstance(linux, dict)
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    with open(os.path.join(setup.bundle_hostnet, "config.json"), "w") as f:
        json.dump(spec, f)
    archive = os.path.join(setup.work, "busybox.tar")
    quiet(setup.berth("save", "-o", archive, "busybox"), setup.env)
    quiet([*setup.podman(), "load", "-q", "-i", archive])
    berths_bundle(setup, rootfs)
    wait_for_forkserver(setup, {})
    wait_for_forkserver(setup, {"BERTH_NO_PREFORK": "1",
                                "BERTH_FORKSERVER_DIR": setup.forkserver_dir + "-no-prefork"})


def wait_for_forkserver(setup: Setup, env: dict[str, str]) -> None:
    """Start a fork server (the first command does) and wait until it serves."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proc = subprocess.run(setup.berth("version"),
                              env={**setup.env, **env, "BERTH_TRACE": "1"},
                              capture_output=True, text=True, check=False)
        if "forked by the fork server" in proc.stderr:
            return
        time.sleep(0.1)
    raise RuntimeError("berth's fork server did not start")




def berths_bundle(setup: Setup, rootfs: str) -> None:
    """A bundle with the config.json berth itself runs (Docker's default seccomp profile,
    capabilities, masked paths...), taken from a container of its own, for runc and crun."""
    quiet(
        setup.berth("run", "--network", "none", "--name", "bench-spec", "busybox", "true"),
        setup.env,
    )
    directory = subprocess.run(
        setup.berth("inspect", "-f", "{{.Id}}", "bench-spec"),
        env=setup.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    container = os.path.join(setup.store, "containers", directory)
    with open(os.path.join(container, "bundle", "config.json")) as f:
        spec = json.load(f)
    os.makedirs(setup.bundle_berth)
    for mount in spec["mounts"]:  # /etc/hosts, hostname, resolv.conf: keep copies
        if mount["source"].startswith(container):
            copy = os.path.join(setup.bundle_berth, os.path.basename(mount["source"]))
            shutil.copy(mount["source"], copy)
            mount["source"] = copy
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["ociVersion"] = "1.0.2"  # crun 1.8 knows no later one; nothing here is newer
    spec["linux"].pop("cgroupsPath", None)
    spec.pop("annotations", None)
    with open(os.path.join(setup.bundle_berth, "config.json"), "w") as f:
        json.dump(spec, f)
    quiet(setup.berth("rm", "bench-spec"), setup.env)


def busybox_layers(store: str) -> list[str]:
    from berth.engine import Engine
    from berth.store.rootfs import lower_dirs

    with Engine(store) as engine:
        image = engine.images.get("busybox")
        lowers = lower_dirs(engine.store, image.record.top_chain)
    return [os.path.realpath(path) for path in reversed(lowers)]


def main_commands(setup: Setup) -> dict[str, list[str]]:
    work = setup.work
    return {
        "berth run --rm --network none": setup.berth(
            "run", "--rm", "--network", "none", "busybox", "true"
        ),
        # the same with a Python interpreter as the fork server's client
        "berth run, Python client": [
            BERTH_PYTHON_LAUNCHER, "run", "--rm", "--network", "none", "busybox", "true"
        ],
        # the same through a second fork server whose spares fork no init ahead
        # (berth.runtime.preforked; the server has the environment of the command that
        # started it; through env(1): ~1 ms more)
        "berth run, no init forked ahead": [
            "/usr/bin/env", "BERTH_NO_PREFORK=1",
            f"BERTH_FORKSERVER_DIR={setup.forkserver_dir}-no-prefork",
            *setup.berth("run", "--rm", "--network", "none", "busybox", "true"),
        ],
        # the same in a process of its own, with no fork server (through env(1): ~1 ms more)
        "berth run, no fork server": [
            "/usr/bin/env", "BERTH_NO_FORKSERVER=1",
            *setup.berth("run", "--rm", "--network", "none", "busybox", "true"),
        ],
        # the same without berth.runtime.cgroups.warm (and so without the fork server, whose
        # spare keeps the lock warm before the command even comes)
        "berth run, no fork server, no warm-up": [
            "/usr/bin/env", "BERTH_NO_FORKSERVER=1", "BERTH_NO_WARM=1",
            *setup.berth("run", "--rm", "--network", "none", "busybox", "true"),
        ],
        "runc run": [RUNC, "--root", f"{work}/runc", "run", "--bundle", setup.bundle, "ID"],
        "crun run": [CRUN, "--root", f"{work}/crun", "run", "--bundle", setup.bundle, "ID"],
        "runc run (host netns)": [
            RUNC,
            "--root",
            f"{work}/runc",
            "run",
            "--bundle",
            setup.bundle_hostnet,
            "ID",
        ],
        "crun run (host netns)": [
            CRUN,
            "--root",
            f"{work}/crun",
            "run",
            "--bundle",
            setup.bundle_hostnet,
            "ID",
        ],
        "runc run (berth's config.json)": [
            RUNC,
            "--root",
            f"{work}/runc",
            "run",
            "--bundle",
            setup.bundle_berth,
            "ID",
        ],
        "crun run (berth's config.json)": [
            CRUN,
            "--root",
            f"{work}/crun",
            "run",
            "--bundle",
            setup.bundle_berth,
            "ID",
        ],
        "podman run --rm --network none": [
            *setup.podman(),
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "true",
        ],
        "unshare -mupin true": ["unshare", "-mupin", "true"],
        "python -c pass (the venv's)": [sys.executable, "-c", "pass"],
    }


def bridge_commands(setup: Setup) -> dict[str, list[str]]:
    ns = ["nsenter", f"--net={setup.netns}"]
    return {
        "berth --network none (own netns)": [
            *ns,
            *setup.berth("run", "--rm", "--network", "none", "busybox", "true"),
        ],
        "berth bridge (own netns)": [*ns, *setup.berth("run", "--rm", "busybox", "true")],
        "podman --network none (own netns)": [
            *ns,
            *setup.podman(),
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "true",
        ],
        "podman bridge (own netns)": [*ns, *setup.podman(), "run", "--rm", "busybox", "true"],
    }


def run_once(cmd: list[str], env: dict[str, str], round_id: int) -> tuple[float, float]:
    """Wall-clock seconds of one run, and the CPU seconds (user + system) of the whole process
    tree it made (what the kernel charges to reaped children)."""
    cmd = [f"bench-{round_id}" if part == "ID" else part for part in cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-500:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


CPU: dict[str, list[float]] = {}  # CPU seconds of each command's runs, beside the wall clock
HOST_CPU: dict[str, list[float]] = {}  # part 1b: the host's busy CPU seconds a run, per block


def interleaved(setup: Setup, cmds: dict[str, list[str]], runs: int, *, pause: float = 0.0
                ) -> dict[str, list[float]]:
    """Each command once per round, the order rotated every round; round 0 warms up.
    ``pause``: idle seconds before each run."""
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    names = list(cmds)
    for i in range(runs + 1):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            env = setup.env if {BERTH, BERTH_PYTHON_LAUNCHER} & set(cmds[name]) else ENV
            time.sleep(pause)
            elapsed, cpu = run_once(cmds[name], env, i)
            if i:
                samples[name].append(elapsed)
                CPU.setdefault(name, []).append(cpu)
    return samples


BUSY_PAUSE = 0.15  # seconds before each run of parts 1 and 4: what a command leaves to do in
# the background (berth's next spare, made after a lone command: ~20 ms; podman's cleanup)
# is done before the next command starts, whichever it is
QUIET_PAUSE = 2.5  # seconds before each run of part 2: past berth's warm-up (2 s) and a
# grace period
BACK_TO_BACK_ROWS = ("berth run --rm --network none", "runc run", "crun run")
BACK_TO_BACK_RUNS = 10
QUIET_ROWS = ("berth run --rm --network none", "runc run", "crun run",
              "podman run --rm --network none")


def busy_cpu_seconds() -> float:
    """The host's busy CPU time so far (``/proc/stat``: all CPUs, all processes and the
    kernel's own threads; not idle, iowait or steal)."""
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def back_to_back(setup: Setup, cmds: dict[str, list[str]], runs: int, blocks: int
                 ) -> dict[str, list[float]]:
    """Each command ``runs`` times in a row, as a script runs it (nothing in between), once
    per block; the commands take turns, the order rotated every block; block 0 warms up. The
    mean time of a run in each block; the host's busy CPU time a run goes to HOST_CPU (in a
    row, on two CPUs, that is what limits: berth's fork server works beside its commands)."""
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    names = list(cmds)
    run_id = 1000
    for block in range(blocks + 1):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            env = setup.env if {BERTH, BERTH_PYTHON_LAUNCHER} & set(cmds[name]) else ENV
            time.sleep(BUSY_PAUSE)
            start = time.perf_counter()
            busy = busy_cpu_seconds()
            for _ in range(runs):
                run_id += 1
                run_once(cmds[name], env, run_id)
            if block:
                samples[name].append((time.perf_counter() - start) / runs)
                # what the block left running (a spare being made) counts, up to the pause
                time.sleep(BUSY_PAUSE)
                HOST_CPU.setdefault(name, []).append((busy_cpu_seconds() - busy) / runs)
    return samples


class LockKeptWarm:
    """While entered: a thread writes this process's pid into its own cgroup every 3 ms
    (berth's own warm-up loop, with no deadline), so that no run finds the kernel's
    cgroup-migration lock cold (see part 1 of the module doc)."""

    def __init__(self) -> None:
        from berth.runtime.cgroups import warm

        path = warm.own_procs_file()
        if path is None:
            raise RuntimeError("cannot find this process's cgroup.procs to keep the lock warm")
        self.flag = [True]
        self.thread = threading.Thread(target=warm.write_until,
                                       args=(path, self.flag, [float("inf")]), daemon=True)

    def __enter__(self) -> LockKeptWarm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flag[0] = False
        self.thread.join()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def report(title: str, results: dict[str, list[float]], *, cpu_shown: bool = True
           ) -> dict[str, float]:
    """Print each command's median (and its CPU time, from part 1's runs); the medians."""
    print(f"\n== {title}")
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        cpu = f"  CPU {ms(statistics.median(CPU[name])).strip()}" \
            if cpu_shown and name in CPU else ""
        print(
            f"  {name:<36} median {ms(medians[name])}  (min {ms(min(values)).strip()}, "
            f"n={len(values)}){cpu}"
        )
    return medians


def report_targets(medians: dict[str, float]) -> None:
    for label, name in (("", "berth run --rm --network none"),
                        (", Python client", "berth run, Python client"),
                        (", no fork server", "berth run, no fork server")):
        report_ratios(label, medians[name], medians)


PEERS = (
    ("runc run", 1.0),
    ("crun run", None),
    ("runc run (host netns)", None),
    ("runc run (berth's config.json)", None),
    ("podman run --rm --network none", 0.2),
)


def report_ratios(label: str, berth: float, medians: dict[str, float]) -> None:
    print(f"\n== ratios (berth run --rm --network none busybox true{label})")
    for peer, target in PEERS:
        if peer not in medians:
            continue
        ratio = berth / medians[peer]
        goal = (
            ""
            if target is None
            else (f"  target <= {target:.2f}: {'met' if ratio <= target else 'NOT met'}")
        )
        print(f"  berth / {peer:<32} {ratio:5.2f}{goal}")


def trace_phases(setup: Setup, runs: int, forkserver: bool) -> None:
    """Median time of each ``BERTH_TRACE`` checkpoint over ``runs`` fresh runs."""
    cmd = setup.berth("run", "--rm", "--network", "none", "busybox", "true")
    env = {**setup.env, "BERTH_TRACE": "1"}
    if not forkserver:
        env["BERTH_NO_FORKSERVER"] = "1"
    rows: dict[str, list[float]] = {}
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            text=True,
        )
        end = time.perf_counter()
        walls.append(end - start)
        marks = sorted(
            (float(line.split()[1]), line.split("ms", 1)[1].strip())
            for line in proc.stderr.splitlines()
            if line.startswith("berth-trace ") and "worker imported" not in line
        )
        previous = start
        for i, (at, name) in enumerate(marks):
            label = "client start (spawn to its 1st line)" if i == 0 else name
            rows.setdefault(label, []).append(at - previous)
            previous = at
        rows.setdefault("client exit (to the parent's wait)", []).append(end - previous)
    how = "through the fork server" if forkserver else "no fork server"
    print(
        f"\n== 3. where berth's time goes, {how} (BERTH_TRACE=1, median of {runs} fresh runs; "
        f"each line: time since the previous checkpoint)"
    )
    total = 0.0
    for name, values in rows.items():
        median = statistics.median(values)
        total += median
        print(f"  {name:<40} {ms(median)}")
    print(f"  {'(sum of medians)':<40} {ms(total)}")
    print(f"  {'whole process, median':<40} {ms(statistics.median(walls))}")


def report_bridge(results: dict[str, list[float]]) -> None:
    medians = report("4. the default bridge vs --network none (interleaved)", results)
    berth_extra = medians["berth bridge (own netns)"] - medians["berth --network none (own netns)"]
    podman_extra = (
        medians["podman bridge (own netns)"] - medians["podman --network none (own netns)"]
    )
    print(f"  berth's bridge extra  {ms(berth_extra)}")
    print(f"  podman's bridge extra {ms(podman_extra)}")
    if podman_extra > 0:
        ratio = berth_extra / podman_extra
        print(
            f"  berth extra / podman extra {ratio:.2f}  target <= 0.25: "
            f"{'met' if ratio <= 0.25 else 'NOT met'}"
        )


def cleanup(setup: Setup, forward: str) -> None:
    from berth.store.paths import StorePaths

    paths = StorePaths.at(setup.store)
    from berth.cli.forkclient import running_servers

    servers = running_servers(setup.forkserver_dir)
    servers += running_servers(setup.forkserver_dir + "-no-prefork")
    for server in servers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGTERM)
    if os.path.isdir(setup.podman_dir):
        subprocess.run([*setup.podman(), "rmi", "-af"], capture_output=True, check=False)
        subprocess.run([*setup.podman(), "system", "reset", "-f"], capture_output=True, check=False)
    if setup.netns_made:
        subprocess.run(["umount", setup.netns], capture_output=True, check=False)
    unmount_under(setup.work)
    unmount_under(paths.run_dir)
    shutil.rmtree(paths.run_dir, ignore_errors=True)
    parent = paths.host_name("berth")
    for controller in os.listdir(CGROUP_V1):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(CGROUP_V1, controller, parent))
    shutil.rmtree(setup.work, ignore_errors=True)
    with open(FORWARD) as f:
        now = f.read().strip()
    if now != forward:
        with open(FORWARD, "w") as f:
            f.write(forward)


def unmount_under(directory: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(directory + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--back-to-back-blocks", type=int, default=6)
    parser.add_argument("--quiet-runs", type=int, default=12)
    parser.add_argument("--trace-runs", type=int, default=15)
    parser.add_argument("--no-bridge", action="store_true")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    ensure_hugetlb_v1()
    with open(FORWARD) as f:
        forward = f.read().strip()
    setup = Setup(tempfile.mkdtemp(prefix="berth-bench-run-", dir="/var/tmp"))
    try:
        prepare(setup)
        commands = main_commands(setup)
        with LockKeptWarm():
            results = interleaved(setup, commands, options.runs, pause=BUSY_PAUSE)
        medians = report("1. one container running `true`, fresh process each (interleaved, "
                         f"{BUSY_PAUSE} s apart; a busy host: the cgroup lock kept warm)",
                         results)
        report_targets(medians)
        if options.back_to_back_blocks:
            with LockKeptWarm():
                in_a_row = back_to_back(
                    setup, {name: commands[name] for name in BACK_TO_BACK_ROWS},
                    BACK_TO_BACK_RUNS, options.back_to_back_blocks)
            row_medians = report(f"1b. the same, {BACK_TO_BACK_RUNS} runs in a row (a script; "
                                 "the mean run of each block, median of the blocks)",
                                 in_a_row, cpu_shown=False)
            report_ratios(", runs in a row", row_medians["berth run --rm --network none"],
                          row_medians)
            print("  the host's busy CPU a run (/proc/stat, all processes, the benchmark's "
                  "own and its warm-up thread included), median of the blocks:")
            for name, values in HOST_CPU.items():
                print(f"    {name:<34} {ms(statistics.median(values))}")
        if options.quiet_runs:
            quiet_results = interleaved(
                setup, {name: commands[name] for name in QUIET_ROWS}, options.quiet_runs,
                pause=QUIET_PAUSE)
            quiet_medians = report(f"2. the same on a quiet host ({QUIET_PAUSE} s idle before "
                                   "each run)", quiet_results, cpu_shown=False)
            report_ratios(", quiet host", quiet_medians["berth run --rm --network none"],
                          quiet_medians)
        if options.trace_runs:
            trace_phases(setup, options.trace_runs, forkserver=True)
            trace_phases(setup, options.trace_runs, forkserver=False)
        if not options.no_bridge:
            with open(setup.netns, "w"):
                pass
            quiet(["unshare", f"--net={setup.netns}", "true"])
            setup.netns_made = True
            with LockKeptWarm():
                report_bridge(interleaved(setup, bridge_commands(setup), options.runs,
                                          pause=BUSY_PAUSE))
    finally:
        cleanup(setup, forward)
    return 0


if __name__ == "__main__":
    sys.exit(main())
