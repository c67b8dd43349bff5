"""``berth info``: what the host supports and what the store holds, as Docker's /info.

The probes read the kernel's own interfaces (``/proc``, ``/sys/fs/cgroup``) and never change
anything. :func:`info` assembles the Engine API's document (the keys ``docker info -f`` templates
use: ``.Containers``, ``.CgroupVersion``, ``.SecurityOptions``...); :func:`host_warnings` says
what is missing, one line each, as Docker's ``WARNING:`` lines.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.engine import Engine

CGROUP_ROOT = "/sys/fs/cgroup"
BACKING_FILESYSTEMS = {
    "ext2": "extfs",
    "ext3": "extfs",
    "ext4": "extfs",
    "xfs": "xfs",
    "btrfs": "btrfs",
    "tmpfs": "tmpfs",
    "zfs": "zfs",
    "f2fs": "f2fs",
    "overlay": "overlayfs",
}
EXTERNAL_RUNTIMES = ("crun", "runc")


@dataclass(frozen=True, slots=True)
class HostFeatures:
    """What the kernel and the host's libraries offer berth."""

    cgroup_version: int  # 1 or 2
    cgroup_hybrid: bool  # v1 controllers plus a v2 hierarchy at /sys/fs/cgroup/unified
    memory_limit: bool
    swap_limit: bool
    cpu_cfs: bool
    cpu_shares: bool
    cpuset: bool
    pids_limit: bool
    oom_kill_disable: bool
    overlay: bool
    seccomp: bool
    user_namespaces: bool
    ipv4_forwarding: bool
    bridge_nf_iptables: bool | None  # None: br_netfilter not loaded


# ----------------------------------------------------------------------------------- probes


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cgroup_version() -> int:
    return 2 if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else 1


def _v2_controllers() -> set[str]:
    return set(_read(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split())


def probe_features() -> HostFeatures:
    version = cgroup_version()
    if version == 2:
        controllers = _v2_controllers()
        memory = "memory" in controllers
        swap = memory and (
            os.path.exists(os.path.join(CGROUP_ROOT, "memory.swap.max"))
            or _any_child_has("memory.swap.max")
        )
        cpu = "cpu" in controllers
        cpuset = "cpuset" in controllers
        pids = "pids" in controllers
        oom_disable = False
        hybrid = False
    else:
        memory = os.path.isdir(os.path.join(CGROUP_ROOT, "memory"))
        swap = os.path.exists(os.path.join(CGROUP_ROOT, "memory", "memory.memsw.limit_in_bytes"))
        cpu = os.path.exists(os.path.join(CGROUP_ROOT, "cpu", "cpu.cfs_quota_us"))
        cpuset = os.path.isdir(os.path.join(CGROUP_ROOT, "cpuset"))
        pids = os.path.isdir(os.path.join(CGROUP_ROOT, "pids"))
        oom_disable = os.path.exists(os.path.join(CGROUP_ROOT, "memory", "memory.oom_control"))
        hybrid = os.path.exists(os.path.join(CGROUP_ROOT, "unified", "cgroup.controllers"))
    bridge_nf = _read("/proc/sys/net/bridge/bridge-nf-call-iptables").strip()
    return HostFeatures(
        cgroup_version=version,
        cgroup_hybrid=hybrid,
        memory_limit=memory,
        swap_limit=bool(swap),
        cpu_cfs=cpu,
        cpu_shares=cpu,
        cpuset=cpuset,
        pids_limit=pids,
        oom_kill_disable=oom_disable,
        overlay=overlay_supported(),
        seccomp=seccomp_supported(),
        user_namespaces=user_namespaces_supported(),
        ipv4_forwarding=_read("/proc/sys/net/ipv4/ip_forward").strip() == "1",
        bridge_nf_iptables=None if not bridge_nf else bridge_nf == "1",
    )


def _any_child_has(name: str) -> bool:
    try:
        entries = os.listdir(CGROUP_ROOT)
    except OSError:
        return False
    return any(os.path.exists(os.path.join(CGROUP_ROOT, e, name)) for e in entries)


def overlay_supported() -> bool:
    """overlayfs is built in, loaded, or loadable as a module."""
    if any(line.split()[-1] == "overlay" for line in _read("/proc/filesystems").splitlines()):
        return True
    release = os.uname().release
    return any(
        os.path.exists(f"/lib/modules/{release}/kernel/fs/overlayfs/overlay.ko{suffix}")
        for suffix in ("", ".xz", ".zst", ".gz")
    )


def seccomp_supported() -> bool:
    """The kernel filters system calls, and libseccomp (through pyseccomp) is there."""
    if "Seccomp:" not in _read("/proc/self/status"):
        return False
    try:
        from berth.runtime import seccomp
    except ImportError:
        return False
    return bool(seccomp.available())


def user_namespaces_supported() -> bool:
    text = _read("/proc/sys/user/max_user_namespaces").strip()
    if not os.path.exists("/proc/self/ns/user"):
        return False
    return not text or int(text) > 0


def operating_system() -> tuple[str, str]:
    """(PRETTY_NAME, VERSION_ID) of /etc/os-release."""
    fields: dict[str, str] = {}
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    return fields.get("PRETTY_NAME", "Linux"), fields.get("VERSION_ID", "")


def total_memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def backing_filesystem(path: str) -> str:
    """The filesystem ``path`` is on, named as Docker names it (``extfs``, ``xfs``...)."""
    real = os.path.realpath(path)
    best, fstype = "", ""
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        try:
            mount_point = fields[4]
            kind = fields[fields.index("-") + 1]
        except (ValueError, IndexError):
            continue
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, kind
    return BACKING_FILESYSTEMS.get(fstype, fstype or "unknown")


def runtimes() -> dict[str, dict[str, str]]:
    """berth's own runtime, and the runc-compatible ones installed."""
    found = {"berth": {"path": "berth-runtime"}}
    for name in EXTERNAL_RUNTIMES:
        path = shutil.which(name)
        if path:
            found[name] = {"path": path}
    return dict(sorted(found.items()))


# ------------------------------------------------------------------------------ the document


def host_warnings(features: HostFeatures) -> list[str]:
    """What is missing or limited, as Docker's WARNING lines."""
    warnings = []
    if not features.overlay:
        warnings.append(
            "WARNING: overlayfs is not available: containers cannot start (modprobe overlay)"
        )
    if not features.seccomp:
        warnings.append(
            "WARNING: No seccomp support: containers run without a system call filter "
            "(install libseccomp2)"
        )
    if not features.user_namespaces:
        warnings.append(
            "WARNING: No user namespaces support (/proc/sys/user/max_user_namespaces is 0): "
            "--userns and rootless use are unavailable"
        )
    if not features.memory_limit:
        warnings.append("WARNING: No memory limit support")
    elif not features.swap_limit:
        warnings.append("WARNING: No swap limit support")
    if not features.cpu_cfs:
        warnings.append("WARNING: No cpu cfs quota support")
        warnings.append("WARNING: No cpu cfs period support")
    if not features.cpu_shares:
        warnings.append("WARNING: No cpu shares support")
    if not features.cpuset:
        warnings.append("WARNING: No cpuset support")
    if not features.pids_limit:
        warnings.append("WARNING: No pids limit support")
    if features.cgroup_version == 1:
        note = (
            " (hybrid: v1 controllers, the v2 hierarchy unused)" if features.cgroup_hybrid else ""
        )
        warnings.append(
            f"WARNING: This host runs cgroup v1{note}; berth supports it, but cgroup v2 is "
            "the kernel's current interface"
        )
    if not features.ipv4_forwarding:
        warnings.append("WARNING: IPv4 forwarding is disabled")
    if features.bridge_nf_iptables is False:
        warnings.append("WARNING: bridge-nf-call-iptables is disabled")
    return warnings


def security_options(features: HostFeatures) -> list[str]:
    options = []
    if features.seccomp:
        options.append("name=seccomp,profile=builtin")
    options.append("name=no-new-privileges")
    if features.cgroup_version == 2:
        options.append("name=cgroupns")
    return options


def container_counts(engine: Engine) -> dict[str, int]:
    rows = engine.store.db.execute("SELECT status FROM containers").fetchall()
    statuses = [str(r[0]) for r in rows]
    running = sum(1 for s in statuses if s in ("running", "restarting"))
    paused = sum(1 for s in statuses if s == "paused")
    return {
        "Containers": len(statuses),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(statuses) - running - paused,
    }


def info(engine: Engine) -> dict[str, Any]:
    """The Engine API's /info document for this store and host."""
    from berth import __version__
    from berth.units import format_rfc3339_nano

    features = probe_features()
    images = engine.store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    pretty, version = operating_system()
    root = engine.paths.root
    now = time.time_ns()
    return {
        "ID": _store_id(engine),
        **container_counts(engine),
        "Images": int(images),
        "Driver": "overlay",
        "DriverStatus": [
            ["Backing Filesystem", backing_filesystem(root)],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Authorization": None,
            "Log": ["json-file", "local", "none"],
        },
        "MemoryLimit": features.memory_limit,
        "SwapLimit": features.swap_limit,
        "CpuCfsPeriod": features.cpu_cfs,
        "CpuCfsQuota": features.cpu_cfs,
        "CPUShares": features.cpu_shares,
        "CPUSet": features.cpuset,
        "PidsLimit": features.pids_limit,
        "IPv4Forwarding": features.ipv4_forwarding,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": features.oom_kill_disable,
        "NGoroutines": 0,
        "SystemTime": format_rfc3339_nano(now, time.localtime().tm_gmtoff),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": str(features.cgroup_version),
        "NEventsListener": 0,
        "KernelVersion": os.uname().release,
        "OperatingSystem": pretty,
        "OSVersion": version,
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "IndexConfigs": {},
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "Mirrors": [],
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": total_memory(),
        "GenericResources": None,
        "DockerRootDir": root,
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": runtimes(),
        "DefaultRuntime": "berth",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive"},
        "LiveRestoreEnabled": True,  # containers outlive every berth process
        "Isolation": "",
        "InitBinary": "berth-init",
        "SecurityOptions": security_options(features),
        "Warnings": host_warnings(features),
    }


def _store_id(engine: Engine) -> str:
    """A stable ID for the store: made once, kept in its root."""
    path = os.path.join(engine.paths.root, "engine-id")
    try:
        with open(path) as f:
            existing = f.read().strip()
        if existing:
            return existing
    except OSError:
        pass
    new = os.urandom(16).hex()
    text = "-".join((new[:8], new[8:12], new[12:16], new[16:20], new[20:]))
    try:
        with open(path, "x") as f:
            f.write(text + "\n")
    except FileExistsError:
        with open(path) as f:
            return f.read().strip() or text
    except OSError:
        pass
    return text
