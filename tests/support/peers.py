"""Real peers for side-by-side tests: podman with a private store, a private dockerd."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

PODMAN = "/usr/bin/podman"
SKOPEO = "/usr/bin/skopeo"
DOCKERD = "/usr/sbin/dockerd"
DOCKER20 = "/usr/bin/docker"


def require(path: str, package: str) -> str:
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: install {package} (scripts/install does)")
    return path


class Podman:
    """podman with its own --root/--runroot (vfs), never the host's store."""

    def __init__(self, work: str) -> None:
        require(PODMAN, "podman")
        self.root = os.path.join(work, "root")
        self.runroot = os.path.join(work, "run")

    def run(self, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [PODMAN, "--root", self.root, "--runroot", self.runroot, "--storage-driver", "vfs",
             "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args],
            capture_output=True, check=check, input=input, timeout=timeout,
        )

    def reset(self) -> None:
        self.run("system", "reset", "-f", check=False)


@contextlib.contextmanager
def podman() -> Iterator[Podman]:
    work = tempfile.mkdtemp(prefix="berth-podman-", dir="/var/tmp")
    p = Podman(work)
    try:
        yield p
    finally:
        p.reset()
        shutil.rmtree(work, ignore_errors=True)


class Dockerd:
    """A private dockerd 20.10 (Debian's docker.io): own data root, socket and pid file,
    no iptables, no default bridge. Stopped by its pid; nothing shared with the host."""

    def __init__(self, work: str) -> None:
        require(DOCKERD, "docker.io")
        self.work = work
        self.socket = os.path.join(work, "docker.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(os.path.join(self.work, "dockerd.log"), "wb")
        self.process = subprocess.Popen(
            [DOCKERD, "--data-root", os.path.join(self.work, "data"),
             "--exec-root", os.path.join(self.work, "exec"),
             "--pidfile", os.path.join(self.work, "docker.pid"),
             "-H", f"unix://{self.socket}", "--iptables=false", "--ip6tables=false",
             "--bridge=none", "--storage-driver", "vfs"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited: see {self.work}/dockerd.log")
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer within 60 s")

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([DOCKER20, "-H", f"unix://{self.socket}", *args],
                              capture_output=True, check=check, input=input, env=full_env,
                              timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if self.work in line.split()[4]]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@contextlib.contextmanager
def dockerd() -> Iterator[Dockerd]:
    work = tempfile.mkdtemp(prefix="berth-dockerd-", dir="/var/tmp")
    d = Dockerd(work)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
