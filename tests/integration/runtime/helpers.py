"""Helpers for the runtime's integration tests: bundles from a busybox rootfs, a spec like
``runc spec`` writes, running a container with its output captured, host sanity checks."""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from berth.runtime.container import Runtime
from tests.support.rootfs import make_busybox_rootfs, write_bundle

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"

DEFAULT_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
]
RUNC_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def runc_like_spec(args: list[str], rootfs: str = "rootfs") -> dict[str, Any]:
    """What ``runc spec`` writes (runc 1.1), without a terminal and without ambient
    capabilities (which runc silently fails to raise when inheritable is empty)."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": [ENV_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(RUNC_CAPS),
                "effective": list(RUNC_CAPS),
                "permitted": list(RUNC_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "runc",
        "mounts": copy.deepcopy(DEFAULT_MOUNTS),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def new_id(prefix: str = "berth-t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def make_workdir(prefix: str = "berth-rt-") -> str:
    """A temp dir (0755, so a user namespace's root can reach a bundle inside)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def make_rootfs(parent: str) -> str:
    rootfs = os.path.join(parent, "rootfs")
    os.makedirs(rootfs)
    make_busybox_rootfs(rootfs)
    return rootfs


def copy_rootfs(template: str, dest: str) -> str:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def make_bundle(parent: str, spec: dict[str, Any], name: str = "bundle") -> str:
    bundle = os.path.join(parent, name)
    os.makedirs(bundle, exist_ok=True)
    write_bundle(bundle, spec)
    return bundle


class Captured:
    """Exit code and output of one container run."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def __repr__(self) -> str:
        return f"Captured(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_captured(
    runtime: Runtime, bundle: str, container_id: str | None = None, stdin: str | None = None
) -> Captured:
    """``runtime.run`` with the container's stdout and stderr captured (stdin /dev/null or
    the given text)."""
    container_id = container_id or new_id()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if stdin is not None:
            r, w = os.pipe()
            os.write(w, stdin.encode())
            os.close(w)
        else:
            r = os.open(os.devnull, os.O_RDONLY)
        try:
            code = runtime.run(container_id, bundle, stdio=(r, out.fileno(), err.fileno()))
        finally:
            os.close(r)
        out.seek(0)
        err.seek(0)
        return Captured(code, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))


def berth_runtime_cli(state_root: str) -> list[str]:
    return [sys.executable, "-m", "berth.runtime.cli", "--root", state_root]


def run_cli(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(args, check=False, **kwargs)


def dev_null_is_sane() -> bool:
    """The host's /dev/null is still the null device, root's, mode 0666."""
    st = os.stat("/dev/null")
    return (
        stat.S_ISCHR(st.st_mode)
        and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
        and (st.st_uid, st.st_gid) == (0, 0)
        and stat.S_IMODE(st.st_mode) == 0o666
    )


def mounts_under(path: str) -> list[str]:
    """Mount points (in this, the host's, mount namespace) at or below ``path``."""
    found = []
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if (point + "/").startswith(prefix):
                found.append(point)
    return found


def cleanup_runtime(runtime: Runtime) -> list[str]:
    """Delete (with force) every container left in the runtime's root; their ids."""
    left = []
    for state in runtime.list_containers():
        left.append(state["id"])
        try:
            runtime.delete(state["id"], force=True)
        except Exception:
            pass
    return left


def ensure_hugetlb_v1() -> str:
    """crun on this v1/v2 hybrid wants a v1 hugetlb hierarchy; mount it idempotently.
    Returns what happened, for the report."""
    target = "/sys/fs/cgroup/hugetlb"
    if os.path.ismount(target):
        return "already mounted"
    os.makedirs(target, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", target],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        return f"cannot mount: {result.stderr.strip()}"
    return "mounted"


class BundleFactory:
    """``bundle(args)`` -> a bundle dir with a runc-like spec over the shared rootfs;
    ``bundle.spec(args)`` gives the spec to change before ``bundle.write(spec)``."""

    def __init__(self, workdir: str, rootfs: str) -> None:
        self.workdir = workdir
        self.rootfs = rootfs
        self.count = 0

    def spec(self, args: list[str]) -> dict[str, Any]:
        return runc_like_spec(args, rootfs=self.rootfs)

    def write(self, spec: dict[str, Any]) -> str:
        self.count += 1
        return make_bundle(self.workdir, spec, f"bundle{self.count}")

    def __call__(self, args: list[str]) -> str:
        return self.write(self.spec(args))

    def private_rootfs(self) -> str:
        """A writable copy of the rootfs, for tests that change it."""
        self.count += 1
        return copy_rootfs(self.rootfs, os.path.join(self.workdir, f"rootfs{self.count}"))


@contextmanager
def namespace_holder(*kinds: str) -> Iterator[int]:
    """A process in new namespaces of ``kinds`` (names under /proc/PID/ns: "net", "uts",
    "ipc"), for a spec to join by path; yields its pid once they are made, kills it after."""
    flags = {"net": "--net", "uts": "--uts", "ipc": "--ipc"}
    holder = subprocess.Popen(["unshare", *(flags[kind] for kind in kinds), "sleep", "1000"])
    try:
        deadline = time.monotonic() + 10
        for kind in kinds:
            while os.stat(f"/proc/{holder.pid}/ns/{kind}").st_ino == \
                    os.stat(f"/proc/self/ns/{kind}").st_ino:
                assert time.monotonic() < deadline, f"unshare did not make its {kind} namespace"
                time.sleep(0.01)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
