"""Docker's defaults as berth writes them into a spec."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.oci.runtime_spec import validate
from berth.runtime import defaults
from berth.runtime.capabilities import CAPABILITIES


@pytest.fixture
def berth_tmp() -> Iterator[Path]:
    """A temp dir with "berth" in its name, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="berth-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_fourteen_docker_capabilities() -> None:
    assert len(defaults.DEFAULT_CAPABILITIES) == 14
    assert set(defaults.DEFAULT_CAPABILITIES) == {
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    }
    assert set(defaults.DEFAULT_CAPABILITIES) <= set(CAPABILITIES)


def test_capability_sets_as_docker_writes_them() -> None:
    sets = defaults.default_capabilities()
    assert set(sets) == {"bounding", "effective", "permitted"}  # no inheritable, no ambient
    for names in sets.values():
        assert names == list(defaults.DEFAULT_CAPABILITIES)


def test_masked_and_readonly_paths() -> None:
    assert "/proc/kcore" in defaults.MASKED_PATHS
    assert "/proc/keys" in defaults.MASKED_PATHS
    assert "/sys/firmware" in defaults.MASKED_PATHS
    assert "/proc/sys" in defaults.READONLY_PATHS
    assert "/proc/sysrq-trigger" in defaults.READONLY_PATHS
    assert not set(defaults.MASKED_PATHS) & set(defaults.READONLY_PATHS)


def test_masked_paths_add_this_hosts_thermal_throttle(berth_tmp: Path) -> None:
    sys_root = berth_tmp / "berth-sys"
    for cpu in ("cpu0", "cpu1"):
        (sys_root / "devices/system/cpu" / cpu / "thermal_throttle").mkdir(parents=True)
    (sys_root / "devices/system/cpu/cpufreq").mkdir()
    paths = defaults.masked_paths(str(sys_root))
    assert paths[: len(defaults.MASKED_PATHS)] == list(defaults.MASKED_PATHS)
    assert paths[len(defaults.MASKED_PATHS):] == [
        "/sys/devices/system/cpu/cpu0/thermal_throttle",
        "/sys/devices/system/cpu/cpu1/thermal_throttle",
    ]


def test_default_mounts() -> None:
    mounts = {m["destination"]: m for m in defaults.default_mounts()}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                            "/sys/fs/cgroup"]
    assert "ro" in mounts["/sys"]["options"]
    assert "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/dev"]["type"] == "tmpfs"
    assert "size=65536k" in mounts["/dev/shm"]["options"]
    assert "gid=5" in mounts["/dev/pts"]["options"]
    rootless = {m["destination"]: m for m in defaults.default_mounts(rootless=True)}
    assert "rbind" in rootless["/sys"]["options"]
    assert "gid=5" not in rootless["/dev/pts"]["options"]


def test_rlimits_never_exceed_the_host_hard_limit() -> None:
    assert defaults.default_rlimits(host_hard=20000) == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 20000}
    ]
    assert defaults.default_rlimits(host_hard=10**7) == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 524288}
    ]
    assert defaults.default_rlimits(host_hard=512) == [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}
    ]
    (here,) = defaults.default_rlimits()
    assert here["hard"] <= defaults.host_nofile_hard()


def test_clamp_rlimits() -> None:
    asked = [{"type": "RLIMIT_NOFILE", "soft": 65536, "hard": 1048576},
             {"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}]
    clamped = defaults.clamp_rlimits(asked, {"RLIMIT_NOFILE": 20000, "RLIMIT_NPROC": 100})
    assert clamped == [{"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000},
                       {"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}]


def test_device_rules() -> None:
    rules = defaults.default_device_rules()
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r.get("type"), r.get("major"), r.get("minor")) for r in rules if r["allow"]}
    assert {("c", 1, 3), ("c", 1, 5), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0)} <= allowed
    assert rules[-1] == {"allow": False, "type": "c", "major": 10, "minor": 229,
                         "access": "rwm"}
    implicit = defaults.implicit_device_rules()
    assert {"allow": True, "type": "c", "major": 136, "access": "rwm"} in implicit
    assert {"allow": True, "type": "c", "access": "m"} in implicit
    assert defaults.privileged_device_rules() == [{"allow": True, "access": "rwm"}]


def test_a_spec_built_from_the_defaults_validates() -> None:
    spec = {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {
            "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": list(defaults.DEFAULT_ENV),
            "capabilities": defaults.default_capabilities(),
            "rlimits": defaults.default_rlimits(),
        },
        "mounts": defaults.default_mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in defaults.DEFAULT_NAMESPACES],
            "maskedPaths": defaults.masked_paths(),
            "readonlyPaths": defaults.readonly_paths(),
            "resources": {"devices": defaults.default_device_rules()},
        },
    }
    validate(spec)
