"""berth.oci.runtime_spec: the default spec, and validation that names the bad field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from berth.errors import InvalidArgument
from berth.oci.runtime_spec import default_spec, validate


def test_default_spec_is_like_runc_spec_and_valid() -> None:
    spec = default_spec()
    validate(spec)
    json.dumps(spec)
    assert spec["process"]["args"] == ["sh"]
    assert spec["process"]["terminal"] is True
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    types = [ns["type"] for ns in spec["linux"]["namespaces"]]
    assert {"pid", "network", "ipc", "uts", "mount"} <= set(types)
    assert "user" not in types
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]


def test_rootless_default_spec() -> None:
    spec = default_spec(rootless=True, uid=1000, gid=1000)
    validate(spec)
    types = [ns["type"] for ns in spec["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert "resources" not in spec["linux"]


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0",
                                     "1.3.0+dev", "1.2.0-rc.1"])
def test_supported_versions(version: str) -> None:
    spec = default_spec()
    spec["ociVersion"] = version
    validate(spec)


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = spec
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("ociVersion", _DELETE, "ociVersion"),
        ("ociVersion", "2.0.0", "ociVersion"),
        ("ociVersion", "1.4.0", "ociVersion"),
        ("ociVersion", 1.2, "ociVersion"),
        ("root", _DELETE, "root"),
        ("root.path", "", "root.path"),
        ("root.readonly", "yes", "root.readonly"),
        ("process.args", [], "process.args"),
        ("process.args", "sh", "process.args"),
        ("process.args", ["sh", 1], "process.args[1]"),
        ("process.cwd", "relative", "process.cwd"),
        ("process.cwd", _DELETE, "process.cwd"),
        ("process.env", ["NOEQUALS"], "process.env[0]"),
        ("process.user", _DELETE, "process.user"),
        ("process.user.uid", -1, "process.user.uid"),
        ("process.user.uid", "0", "process.user.uid"),
        ("process.user.gid", True, "process.user.gid"),
        ("process.user.additionalGids", [1, "x"], "process.user.additionalGids[1]"),
        ("process.capabilities.bounding", ["NET_ADMIN"], "process.capabilities.bounding[0]"),
        ("process.capabilities.ambient", "CAP_KILL", "process.capabilities.ambient"),
        ("process.rlimits", [{"type": "NOFILE", "soft": 1, "hard": 1}],
         "process.rlimits[0].type"),
        ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}],
         "process.rlimits[0]"),
        ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1}], "process.rlimits[0].hard"),
        ("process.terminal", "true", "process.terminal"),
        ("process.oomScoreAdj", 5000, "process.oomScoreAdj"),
        ("mounts", {}, "mounts"),
        ("mounts.0.destination", "proc", "mounts[0].destination"),
        ("mounts.0.options", "ro", "mounts[0].options"),
        ("hostname", 7, "hostname"),
        ("linux.namespaces", [{"type": "pid"}, {"type": "pid"}], "linux.namespaces[1].type"),
        ("linux.namespaces", [{"type": "vm"}], "linux.namespaces[0].type"),
        ("linux.namespaces", [{"type": "net", "path": "x"}], "linux.namespaces[0].type"),
        ("linux.uidMappings", [{"containerID": 0, "hostID": 0}], "linux.uidMappings[0].size"),
        ("linux.devices", [{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}],
         "linux.devices[0].type"),
        ("linux.resources.devices", [{"access": "rwm"}], "linux.resources.devices[0].allow"),
        ("linux.resources.devices", [{"allow": True, "access": "rwx"}],
         "linux.resources.devices[0].access"),
        ("linux.resources.memory", {"limit": "1g"}, "linux.resources.memory.limit"),
        ("linux.resources.memory", {"limit": -2}, "linux.resources.memory.limit"),
        ("linux.resources.cpu", {"cpus": 3}, "linux.resources.cpu.cpus"),
        ("linux.resources.pids", {"limit": "10"}, "linux.resources.pids.limit"),
        ("linux.resources.unified", {"memory.high": 5}, "linux.resources.unified"),
        ("linux.seccomp", {"syscalls": []}, "linux.seccomp.defaultAction"),
        ("linux.seccomp", {"defaultAction": "ALLOW"}, "linux.seccomp.defaultAction"),
        ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": []}]},
         "linux.seccomp.syscalls[0].names"),
        ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                         "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].op"),
        ("linux.maskedPaths", ["proc/kcore"], "linux.maskedPaths[0]"),
        ("linux.sysctl", {"net.ipv4.ip_forward": 1}, "linux.sysctl"),
        ("linux.rootfsPropagation", "everywhere", "linux.rootfsPropagation"),
        ("linux.cgroupsPath", 5, "linux.cgroupsPath"),
    ],
)
def test_bad_field_is_named(path: str, value: Any, named: str) -> None:
    spec = copy.deepcopy(default_spec())
    _set(spec, path, value)
    with pytest.raises(InvalidArgument) as info:
        validate(spec)
    assert named in str(info.value)


@pytest.mark.parametrize("bad", [None, [], "config", 5])
def test_not_an_object(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="JSON object"):
        validate(bad)


def test_unknown_fields_are_left_alone() -> None:
    spec = default_spec()
    spec["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}}
    spec["linux"]["personality"] = {"domain": "LINUX"}
    spec["annotations"] = {"org.example": "x"}
    validate(spec)


def test_process_is_optional() -> None:
    spec = default_spec()
    del spec["process"]
    validate(spec)
