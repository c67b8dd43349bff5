"""Idle memory of detached containers, and the time to start them, berth vs podman.

    .venv/bin/python bench/bench_idle_memory.py [--count 100]

Starts COUNT ``busybox sleep 3600`` containers one after another with ``run -d --network
none``, with berth and with podman (a private --root/--runroot, busybox loaded from a
``berth save`` archive), and prints:

- the PSS and RSS of berth's own processes (the store's supervisor and its anchor: whatever
  berth runs besides the containers themselves) divided by COUNT, against the same for
  podman's conmon processes (one per container), and the ratio;
- apart, the fork server's PSS and RSS (``berth.cli.forkserver``: the process the CLI's
  commands are forked from, with its spares and the container init each forked ahead).
  It is not per container and leaves 120 s after the last command, so an idle host does not
  keep it;
- the total time to create and start the COUNT containers, and the ratio.

PSS comes from /proc/PID/smaps_rollup. Everything is removed afterwards: containers, the
supervisor and anchor (by PID), podman's private store.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.common import BERTH  # noqa: E402

PODMAN = "/usr/bin/podman"


def memory_of(pids: list[int]) -> tuple[int, int]:
    """Total (PSS, RSS) in KiB of ``pids``."""
    pss = rss = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
    return pss, rss


def pids_where(predicate: object) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            exe = os.readlink(f"/proc/{name}/exe")
        except OSError:
            continue
        if predicate(argv, exe):  # type: ignore[operator]
            found.append(int(name))
    return found


def children_of(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(name))
            except OSError:
                continue
    return found


# ----------------------------------------------------------------------------------- berth


class Berth:
    def __init__(self, work: str) -> None:
        self.root = os.path.join(work, "berth-store")
        # a fork server of the benchmark's own (berth.cli.forkserver), ended at cleanup
        self.forkserver_dir = os.path.join(work, "forkserver")
        self.env = dict(os.environ, BERTH_ROOT=self.root, BERTH_FORKSERVER_DIR=self.forkserver_dir)

    def __call__(self, *args: str) -> str:
        done = subprocess.run([BERTH, *args], env=self.env, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"berth {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def processes(self) -> list[int]:
        from berth.monitor.paths import MonitorPaths
        from berth.store.paths import StorePaths

        paths = StorePaths.at(self.root)
        anchor = MonitorPaths(paths.run_dir).anchor_binary
        root = paths.root.encode()
        return pids_where(
            lambda argv, exe: exe == anchor or (b"berth.monitor" in argv and root in argv)
        )

    def forkserver(self) -> list[int]:
        """The fork server, its children (the spares) and theirs (the container init each
        spare forked ahead, berth.runtime.preforked), if it runs."""
        from berth.cli.forkclient import running_servers

        servers = running_servers(self.forkserver_dir)
        if not servers:
            return []
        spares = children_of(servers[0])
        return [servers[0], *spares, *(pid for spare in spares for pid in children_of(spare))]

    def cleanup(self) -> None:
        ids = self("ps", "-aq").split()
        if ids:
            self("rm", "-f", *ids)
        with contextlib.suppress(SystemExit):
            self("system", "supervisor", "stop")
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.forkserver()[:1]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        from berth.store.paths import StorePaths

        shutil.rmtree(StorePaths.at(self.root).run_dir, ignore_errors=True)  # /run/berth-<hash>
        from berth.runtime.cgroups import prune_parent

        with contextlib.suppress(Exception):  # the store's parent cgroup, kept between runs
            prune_parent(StorePaths.at(self.root).host_name("berth"))


# ---------------------------------------------------------------------------------- podman


class Podman:
    def __init__(self, work: str) -> None:
        self.root = os.path.join(work, "podman-root")
        self.runroot = os.path.join(work, "podman-run")

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [
                PODMAN,
                "--root",
                self.root,
                "--runroot",
                self.runroot,
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                *args,
            ],
            capture_output=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise SystemExit(f"podman {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def conmons(self) -> list[int]:
        runroot = self.runroot.encode()
        return pids_where(
            lambda argv, exe: (
                os.path.basename(exe) == "conmon" and any(runroot in arg for arg in argv)
            )
        )

    def cleanup(self) -> None:
        self("rm", "-f", "-t", "0", "-a", check=False)
        self("system", "reset", "-f", check=False)


# ------------------------------------------------------------------------------------ main


def start_many(run: object, count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        run()  # type: ignore[operator]
    return time.perf_counter() - began


def report(count: int, label: str, pss: int, rss: int, seconds: float) -> None:
    print(
        f"  {label:<22} PSS {pss / 1024:8.2f} MiB total, {pss / 1024 / count:6.3f} MiB per "
        f"container;  RSS {rss / 1024:8.2f} MiB total, {rss / 1024 / count:6.3f} MiB per "
        f"container;  start {seconds:6.2f} s ({seconds / count * 1000:.0f} ms each)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--no-podman", action="store_true")
    options = parser.parse_args()
    count = options.count
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            os.path.join(os.path.dirname(HERE), "src", "berth"),
        ],
        check=False,
        capture_output=True,
    )
    work = tempfile.mkdtemp(prefix="berth-bench-idle-", dir="/var/tmp")
    berth = Berth(work)
    podman = Podman(work)
    use_podman = not options.no_podman and os.path.exists(PODMAN)
    try:
        berth("image", "bootstrap", "busybox")
        archive = os.path.join(work, "busybox.tar")
        berth("save", "-o", archive, "busybox")

        print(f"starting {count} detached busybox sleep containers with berth...")
        berth_time = start_many(
            lambda: berth("run", "-d", "--network", "none", "busybox", "sleep", "3600"), count
        )
        running = len(berth("ps", "-q").split())
        assert running == count, f"{running} berth containers run, not {count}"
        time.sleep(2)
        berth_pids = berth.processes()
        berth_pss, berth_rss = memory_of(berth_pids)
        forkserver_pids = berth.forkserver()
        forkserver_pss, forkserver_rss = memory_of(forkserver_pids)

        podman_pss = podman_rss = 0
        podman_time = 0.0
        if use_podman:
            podman("load", "-i", archive)
            print(f"starting {count} detached busybox sleep containers with podman...")
            podman_time = start_many(
                lambda: podman("run", "-d", "--network", "none", "busybox", "sleep", "3600"),
                count,
            )
            time.sleep(2)
            conmons = podman.conmons()
            assert len(conmons) == count, f"{len(conmons)} conmons, not {count}"
            podman_pss, podman_rss = memory_of(conmons)

        print(f"\n== idle memory of {count} detached containers (the runtimes' own processes)")
        report(count, f"berth ({len(berth_pids)} processes)", berth_pss, berth_rss, berth_time)
        print(
            f"  berth's fork server ({len(forkserver_pids)} processes, not per container; it "
            f"leaves 120 s after the last command): PSS {forkserver_pss / 1024:.2f} MiB, "
            f"RSS {forkserver_rss / 1024:.2f} MiB"
        )
        if use_podman:
            report(count, f"podman conmon ({count})", podman_pss, podman_rss, podman_time)
            print(f"  PSS per container, berth / podman: {berth_pss / podman_pss:.2f}")
            print(f"  RSS per container, berth / podman: {berth_rss / podman_rss:.2f}")
            print(f"  time to start {count}, berth / podman: {berth_time / podman_time:.2f}")
    finally:
        berth.cleanup()
        if use_podman:
            podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
