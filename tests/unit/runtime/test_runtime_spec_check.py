"""Checking config.json before anything is forked (no root needed)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest

from berth.errors import InvalidArgument, NotFound
from berth.runtime import spec as spec_module

GOOD: dict[str, Any] = {
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs", "readonly": True},
    "process": {"args": ["sh"], "cwd": "/", "env": ["A=1"], "user": {"uid": 0, "gid": 0}},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    target: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()


def test_good_spec_passes() -> None:
    spec_module.check_spec(copy.deepcopy(GOOD))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("ociVersion", "2.0.0", "not supported"),
        ("ociVersion", _DELETE, "ociVersion must be a string"),
        ("root", _DELETE, "root must be an object"),
        ("root.path", 3, "root.path must be a string, not an integer"),
        ("process.args", [], "must name the program"),
        ("process.args", ["sh", 1], r"process.args\[1\] must be a string"),
        ("process.cwd", "relative", "must be an absolute path"),
        ("process.user.uid", -1, "must not be negative"),
        ("process.user.uid", True, "must be an integer, not a boolean"),
        ("mounts", [{"destination": "proc"}], "must be an absolute path"),
        ("linux.namespaces", [{"type": "pid"}, {"type": "pid"}], "listed twice"),
        ("linux.namespaces", [{"type": "bogus"}], "is unknown"),
        ("linux.uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}],
         "need a user namespace"),
        ("linux.rootfsPropagation", "sideways", "is unknown"),
        ("linux.devices", [{"path": "/dev/x", "type": "z"}], "must be one of"),
        ("hooks", {"prestop": []}, "unknown hook stage"),
        ("hooks", {"prestart": [{"path": "rel"}]}, "must be absolute"),
        ("hooks", {"prestart": [{"path": "/x", "timeout": 0}]}, "must be positive"),
    ],
)
def test_bad_fields_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        spec_module.check_spec(_with(path, value), where="config.json")


def test_load_bundle_spec(tmp_path: Any) -> None:
    bundle = str(tmp_path)
    with pytest.raises(NotFound, match=r"no config\.json"):
        spec_module.load_bundle_spec(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        spec_module.load_bundle_spec(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(GOOD, f)
    loaded = spec_module.load_bundle_spec(bundle)
    assert spec_module.rootfs_path(loaded, bundle) == os.path.join(bundle, "rootfs")
    assert spec_module.has_namespace(loaded, "pid")
    assert not spec_module.has_namespace(loaded, "user")
