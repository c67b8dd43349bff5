"""Reading and checking a bundle's ``config.json`` (runtime-spec 1.x, up to 1.3).

The spec stays a plain dict (the shape of the JSON): it is handed to hooks, stored in the
state directory and read again by ``exec``. What is checked here is what the runtime relies on
before it forks; a value the kernel rejects later is reported by the step that uses it.
"""

from __future__ import annotations

import os

from berth import jsonio
from berth.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_NAMES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def load_bundle_spec(bundle: str) -> Spec:
    """Read and check ``<bundle>/config.json``."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(
            f"no config.json in bundle {bundle}",
            hint="pass the bundle directory with --bundle, or create one with 'berth-runtime spec'",
        ) from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    try:
        spec = jsonio.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{path} is not valid JSON: {exc}") from None
    check_spec(spec, where=path)
    return spec  # type: ignore[no-any-return]


def _fail(where: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{where}: {message}", hint="fix the bundle's config.json")


def _expect(value: object, kind: type | tuple[type, ...], where: str, name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise _fail(where, f"{name} must be {wanted}, not {_json_type(value)}")


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in _JSON_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _string_list(value: object, where: str, name: str) -> None:
    _expect(value, list, where, name)
    assert isinstance(value, list)
    for i, item in enumerate(value):
        _expect(item, str, where, f"{name}[{i}]")


def check_spec(spec: object, where: str = "config.json") -> None:
    """Raise :class:`InvalidArgument` naming the first field the runtime cannot use."""
    _expect(spec, dict, where, "the document")
    assert isinstance(spec, dict)
    version = spec.get("ociVersion")
    _expect(version, str, where, "ociVersion")
    assert isinstance(version, str)
    if not version.startswith("1."):
        raise _fail(where, f"ociVersion {version!r} is not supported (runtime-spec 1.x is)")
    root = spec.get("root")
    _expect(root, dict, where, "root")
    assert isinstance(root, dict)
    _expect(root.get("path"), str, where, "root.path")
    if "readonly" in root:
        _expect(root["readonly"], bool, where, "root.readonly")
    process = spec.get("process")
    if process is not None:
        check_process(process, where, "process")
    if "hostname" in spec:
        _expect(spec["hostname"], str, where, "hostname")
    if "domainname" in spec:
        _expect(spec["domainname"], str, where, "domainname")
    for i, m in enumerate(spec.get("mounts") or []):
        _check_mount(m, where, f"mounts[{i}]")
    _check_hooks(spec.get("hooks"), where)
    _check_linux(spec.get("linux"), where)


def check_process(process: object, where: str, name: str = "process") -> None:
    _expect(process, dict, where, name)
    assert isinstance(process, dict)
    args = process.get("args")
    _string_list(args, where, f"{name}.args")
    assert isinstance(args, list)
    if not args:
        raise _fail(where, f"{name}.args must name the program to run")
    cwd = process.get("cwd", "/")
    _expect(cwd, str, where, f"{name}.cwd")
    if not cwd.startswith("/"):
        raise _fail(where, f"{name}.cwd {cwd!r} must be an absolute path")
    if "env" in process:
        _string_list(process["env"], where, f"{name}.env")
    user = process.get("user", {})
    _expect(user, dict, where, f"{name}.user")
    for key in ("uid", "gid", "umask"):
        if key in user:
            _expect(user[key], int, where, f"{name}.user.{key}")
            if user[key] < 0:
                raise _fail(where, f"{name}.user.{key} must not be negative")
    for i, gid in enumerate(user.get("additionalGids") or []):
        _expect(gid, int, where, f"{name}.user.additionalGids[{i}]")
    for i, rlimit in enumerate(process.get("rlimits") or []):
        _expect(rlimit, dict, where, f"{name}.rlimits[{i}]")
        _expect(rlimit.get("type"), str, where, f"{name}.rlimits[{i}].type")
        for key in ("soft", "hard"):
            _expect(rlimit.get(key), int, where, f"{name}.rlimits[{i}].{key}")
    if "terminal" in process:
        _expect(process["terminal"], bool, where, f"{name}.terminal")
    if "oomScoreAdj" in process:
        _expect(process["oomScoreAdj"], int, where, f"{name}.oomScoreAdj")


def _check_mount(m: object, where: str, name: str) -> None:
    _expect(m, dict, where, name)
    assert isinstance(m, dict)
    dest = m.get("destination")
    _expect(dest, str, where, f"{name}.destination")
    assert isinstance(dest, str)
    if not dest.startswith("/"):
        raise _fail(where, f"{name}.destination {dest!r} must be an absolute path")
    if "options" in m:
        _string_list(m["options"], where, f"{name}.options")
    for key in ("type", "source"):
        if key in m:
            _expect(m[key], str, where, f"{name}.{key}")


def _check_hooks(hooks: object, where: str) -> None:
    if hooks is None:
        return
    _expect(hooks, dict, where, "hooks")
    assert isinstance(hooks, dict)
    for stage, entries in hooks.items():
        if stage not in HOOK_NAMES:
            raise _fail(where, f"unknown hook stage {stage!r} (known: {', '.join(HOOK_NAMES)})")
        _expect(entries, list, where, f"hooks.{stage}")
        for i, hook in enumerate(entries):
            _expect(hook, dict, where, f"hooks.{stage}[{i}]")
            path = hook.get("path")
            _expect(path, str, where, f"hooks.{stage}[{i}].path")
            if not path.startswith("/"):
                raise _fail(where, f"hooks.{stage}[{i}].path {path!r} must be absolute")
            if "timeout" in hook:
                _expect(hook["timeout"], int, where, f"hooks.{stage}[{i}].timeout")
                if hook["timeout"] <= 0:
                    raise _fail(where, f"hooks.{stage}[{i}].timeout must be positive")


def _check_linux(linux: object, where: str) -> None:
    if linux is None:
        return
    _expect(linux, dict, where, "linux")
    assert isinstance(linux, dict)
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        _expect(ns, dict, where, f"linux.namespaces[{i}]")
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise _fail(
                where,
                f"linux.namespaces[{i}].type {kind!r} is unknown "
                f"(known: {', '.join(NAMESPACE_TYPES)})",
            )
        if kind in seen:
            raise _fail(where, f"the {kind} namespace is listed twice")
        seen.add(kind)
        if "path" in ns:
            _expect(ns["path"], str, where, f"linux.namespaces[{i}].path")
    for key in ("uidMappings", "gidMappings"):
        for i, mapping in enumerate(linux.get(key) or []):
            _expect(mapping, dict, where, f"linux.{key}[{i}]")
            for field in ("containerID", "hostID", "size"):
                _expect(mapping.get(field), int, where, f"linux.{key}[{i}].{field}")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise _fail(where, "uidMappings/gidMappings need a user namespace in linux.namespaces")
    for key in ("maskedPaths", "readonlyPaths"):
        if key in linux:
            _string_list(linux[key], where, f"linux.{key}")
    if "sysctl" in linux:
        _expect(linux["sysctl"], dict, where, "linux.sysctl")
    for i, dev in enumerate(linux.get("devices") or []):
        _expect(dev, dict, where, f"linux.devices[{i}]")
        _expect(dev.get("path"), str, where, f"linux.devices[{i}].path")
        if dev.get("type") not in ("c", "b", "u", "p"):
            raise _fail(where, f"linux.devices[{i}].type must be one of c, b, u, p")
    prop = linux.get("rootfsPropagation")
    if prop is not None and prop not in ROOTFS_PROPAGATION:
        raise _fail(
            where,
            f"linux.rootfsPropagation {prop!r} is unknown "
            f"(known: {', '.join(sorted(ROOTFS_PROPAGATION))})",
        )


ROOTFS_PROPAGATION = frozenset(
    ("shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable")
)


def namespaces(spec: Spec) -> list[dict[str, str]]:
    linux = spec.get("linux") or {}
    return list(linux.get("namespaces") or [])


def has_namespace(spec: Spec, kind: str) -> bool:
    return any(ns.get("type") == kind for ns in namespaces(spec))


def rootfs_path(spec: Spec, bundle: str) -> str:
    """The root filesystem, absolute (``root.path`` is relative to the bundle when relative)."""
    path: str = spec["root"]["path"]
    return os.path.normpath(os.path.join(os.path.abspath(bundle), path))


def hooks(spec: Spec, stage: str) -> list[dict[str, Any]]:
    return list((spec.get("hooks") or {}).get(stage) or [])
