"""The OCI runtime-spec ``config.json``: a default one, and checking one before it is run.

:func:`default_spec` is what ``berth-runtime spec`` writes (as ``runc spec`` does): run
``sh`` on a terminal in ``./rootfs``, with namespaces, the standard mounts, masked and
read-only paths, and the few capabilities a shell needs.

:func:`validate` checks the shape of a spec (versions 1.0 to 1.3): required fields, types,
and values a runtime cannot run, naming the bad field (``process.user.uid``,
``linux.namespaces[2].type``, ...). Fields it does not know are left alone, as the
runtime-spec asks; what the host can or cannot do is for the runtime to find out.

Pure data: no I/O (the caller passes the host's uid and gid for a rootless spec).
"""

from __future__ import annotations

from collections.abc import Mapping

from berth.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC_VERSION = "1.2.0"
MAX_MINOR = 3

_VERSION = r"^1\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$"  # patterns, for re when validating

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
SECCOMP_OPERATORS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
_RLIMIT = r"^RLIMIT_[A-Z]+$"
_CAP = r"^CAP_[A-Z_]+$"
_U32 = 2**32
_U64 = 2**64

_BASE_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults, which runc's and berth's default specs share. Masked paths are hidden
# (a file under /dev/null, a directory under an empty read-only tmpfs); read-only paths are
# bound read-only over themselves.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def default_mounts(*, rootless: bool = False, shm_size: int = DEFAULT_SHM_SIZE
                   ) -> list[dict[str, Any]]:
    """The standard filesystems: ``/proc``, ``/dev`` (tmpfs), ``/dev/pts``, ``/dev/shm``,
    ``/dev/mqueue``, ``/sys`` (read-only) and ``/sys/fs/cgroup`` (read-only).

    ``rootless``: a user namespace cannot mount sysfs without its own network namespace, so
    ``/sys`` is a read-only recursive bind of the host's, and devpts gets no ``gid=5`` (the
    tty group may not be mapped).
    """
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts.append("gid=5")
    sys_mount: dict[str, Any] = {
        "destination": "/sys", "type": "sysfs", "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    }
    if rootless:
        sys_mount = {
            "destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size // 1024}k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        sys_mount,
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def default_spec(*, rootless: bool = False, uid: int = 0, gid: int = 0) -> dict[str, Any]:
    """A spec to start from, as ``berth-runtime spec`` writes it.

    ``rootless``: for a runtime run by an unprivileged user: a user namespace mapping
    container root to ``uid``/``gid`` (the caller's ids), no network namespace, ``/sys``
    bound from the host, and no cgroup device rules.
    """
    mounts = default_mounts(rootless=rootless)
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if rootless:
        linux["namespaces"] = [
            {"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup", "user")
        ]
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_BASE_CAPS),
                "effective": list(_BASE_CAPS),
                "permitted": list(_BASE_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "berth",
        "mounts": mounts,
        "linux": linux,
    }


# --- validation -------------------------------------------------------------------------


def _bad(field: str, problem: str, hint: str | None = None) -> InvalidArgument:
    return InvalidArgument(f"invalid runtime spec: {field} {problem}", hint=hint)


def _object(value: Any, field: str, *, required: bool = False) -> Mapping[str, Any] | None:
    if value is None:
        if required:
            raise _bad(field, "is required")
        return None
    if not isinstance(value, Mapping):
        raise _bad(field, f"must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, field: str, *, required: bool = False) -> list[Any]:
    if value is None:
        if required:
            raise _bad(field, "is required")
        return []
    if not isinstance(value, list):
        raise _bad(field, f"must be a list, not {type(value).__name__}")
    return value


def _string(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _bad(field, "is required")
        return None
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {type(value).__name__}")
    return value


def _int(value: Any, field: str, *, required: bool = False, low: int | None = None,
         high: int | None = None) -> int | None:
    if value is None:
        if required:
            raise _bad(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, f"must be a whole number, not {value!r}")
    if (low is not None and value < low) or (high is not None and value >= high):
        raise _bad(field, f"is out of range: {value}")
    return value


def _bool(value: Any, field: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise _bad(field, f"must be true or false, not {value!r}")


def _strings(value: Any, field: str, *, required: bool = False) -> list[str]:
    items = _list(value, field, required=required)
    for n, item in enumerate(items):
        _string(item, f"{field}[{n}]", required=True)
    return items


def _absolute(value: str | None, field: str) -> None:
    if value is not None and not value.startswith("/"):
        raise _bad(field, f"must be an absolute path, not {value!r}")


def _matches(pattern: str, text: str) -> bool:
    import re  # not at the top: building a spec needs no regular expression

    return re.match(pattern, text) is not None


def _version(spec: Mapping[str, Any]) -> None:
    version = _string(spec.get("ociVersion"), "ociVersion", required=True)
    assert version is not None
    import re

    match = re.match(_VERSION, version)
    if not match or int(match.group(1)) > MAX_MINOR:
        raise _bad(
            "ociVersion", f"{version!r} is not supported",
            hint=f"berth runs runtime-spec 1.0 to 1.{MAX_MINOR}",
        )


def _root(spec: Mapping[str, Any]) -> None:
    root = _object(spec.get("root"), "root", required=True)
    assert root is not None
    path = _string(root.get("path"), "root.path", required=True)
    if not path:
        raise _bad("root.path", "must not be empty")
    _bool(root.get("readonly"), "root.readonly")


def _user(user: Mapping[str, Any] | None) -> None:
    if user is None:
        raise _bad("process.user", "is required")
    _int(user.get("uid"), "process.user.uid", required=True, low=0, high=_U32)
    _int(user.get("gid"), "process.user.gid", required=True, low=0, high=_U32)
    _int(user.get("umask"), "process.user.umask", low=0, high=0o10000)
    for n, gid in enumerate(_list(user.get("additionalGids"), "process.user.additionalGids")):
        _int(gid, f"process.user.additionalGids[{n}]", required=True, low=0, high=_U32)


def _capabilities(caps: Mapping[str, Any] | None) -> None:
    if caps is None:
        return
    for key in CAPABILITY_SETS:
        for n, name in enumerate(_strings(caps.get(key), f"process.capabilities.{key}")):
            if not _matches(_CAP, name):
                raise _bad(f"process.capabilities.{key}[{n}]",
                           f"is not a capability name: {name!r}",
                           hint="capabilities are named like CAP_NET_BIND_SERVICE")


def _rlimits(rlimits: list[Any]) -> None:
    seen: set[str] = set()
    for n, rlimit in enumerate(rlimits):
        field = f"process.rlimits[{n}]"
        entry = _object(rlimit, field, required=True)
        assert entry is not None
        kind = _string(entry.get("type"), f"{field}.type", required=True)
        assert kind is not None
        if not _matches(_RLIMIT, kind):
            raise _bad(f"{field}.type", f"is not an rlimit name: {kind!r}",
                       hint="rlimits are named like RLIMIT_NOFILE")
        if kind in seen:
            raise _bad(f"{field}.type", f"repeats {kind}")
        seen.add(kind)
        soft = _int(entry.get("soft"), f"{field}.soft", required=True, low=0, high=_U64)
        hard = _int(entry.get("hard"), f"{field}.hard", required=True, low=0, high=_U64)
        if soft is not None and hard is not None and soft > hard:
            raise _bad(field, f"has soft {soft} above hard {hard}")


def _process(spec: Mapping[str, Any]) -> None:
    process = _object(spec.get("process"), "process")
    if process is None:
        return
    _bool(process.get("terminal"), "process.terminal")
    _bool(process.get("noNewPrivileges"), "process.noNewPrivileges")
    args = _strings(process.get("args"), "process.args")
    if not args and process.get("commandLine") is None:
        raise _bad("process.args", "must name a program to run")
    cwd = _string(process.get("cwd"), "process.cwd", required=True)
    _absolute(cwd, "process.cwd")
    for n, item in enumerate(_strings(process.get("env"), "process.env")):
        if "=" not in item:
            raise _bad(f"process.env[{n}]", f"must be KEY=value, not {item!r}")
    _user(_object(process.get("user"), "process.user"))
    _capabilities(_object(process.get("capabilities"), "process.capabilities"))
    _rlimits(_list(process.get("rlimits"), "process.rlimits"))
    _int(process.get("oomScoreAdj"), "process.oomScoreAdj", low=-1000, high=1001)
    console = _object(process.get("consoleSize"), "process.consoleSize")
    if console is not None:
        _int(console.get("height"), "process.consoleSize.height", required=True, low=0,
             high=_U32)
        _int(console.get("width"), "process.consoleSize.width", required=True, low=0,
             high=_U32)
    for key in ("apparmorProfile", "selinuxLabel"):
        _string(process.get(key), f"process.{key}")


def _mounts(spec: Mapping[str, Any]) -> None:
    for n, mount in enumerate(_list(spec.get("mounts"), "mounts")):
        field = f"mounts[{n}]"
        entry = _object(mount, field, required=True)
        assert entry is not None
        destination = _string(entry.get("destination"), f"{field}.destination", required=True)
        _absolute(destination, f"{field}.destination")
        _string(entry.get("type"), f"{field}.type")
        _string(entry.get("source"), f"{field}.source")
        _strings(entry.get("options"), f"{field}.options")


def _namespaces(linux: Mapping[str, Any]) -> None:
    seen: set[str] = set()
    for n, ns in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        field = f"linux.namespaces[{n}]"
        entry = _object(ns, field, required=True)
        assert entry is not None
        kind = _string(entry.get("type"), f"{field}.type", required=True)
        if kind not in NAMESPACE_TYPES:
            raise _bad(f"{field}.type", f"is not a namespace type: {kind!r}",
                       hint=f"use one of {', '.join(NAMESPACE_TYPES)}")
        if kind in seen:
            raise _bad(f"{field}.type", f"repeats {kind}")
        seen.add(kind)
        _absolute(_string(entry.get("path"), f"{field}.path"), f"{field}.path")
    for key in ("uidMappings", "gidMappings"):
        for n, mapping in enumerate(_list(linux.get(key), f"linux.{key}")):
            field = f"linux.{key}[{n}]"
            entry = _object(mapping, field, required=True)
            assert entry is not None
            for part in ("containerID", "hostID", "size"):
                _int(entry.get(part), f"{field}.{part}", required=True, low=0, high=_U32)


def _devices(linux: Mapping[str, Any]) -> None:
    for n, device in enumerate(_list(linux.get("devices"), "linux.devices")):
        field = f"linux.devices[{n}]"
        entry = _object(device, field, required=True)
        assert entry is not None
        _absolute(_string(entry.get("path"), f"{field}.path", required=True), f"{field}.path")
        kind = _string(entry.get("type"), f"{field}.type", required=True)
        if kind not in ("c", "b", "u", "p"):
            raise _bad(f"{field}.type", f"must be c, b, u or p, not {kind!r}")
        needs_numbers = kind != "p"
        _int(entry.get("major"), f"{field}.major", required=needs_numbers, low=0)
        _int(entry.get("minor"), f"{field}.minor", required=needs_numbers, low=0)
        _int(entry.get("fileMode"), f"{field}.fileMode", low=0, high=0o10000)
        _int(entry.get("uid"), f"{field}.uid", low=0, high=_U32)
        _int(entry.get("gid"), f"{field}.gid", low=0, high=_U32)


def _device_rules(resources: Mapping[str, Any]) -> None:
    for n, rule in enumerate(_list(resources.get("devices"), "linux.resources.devices")):
        field = f"linux.resources.devices[{n}]"
        entry = _object(rule, field, required=True)
        assert entry is not None
        if not isinstance(entry.get("allow"), bool):
            raise _bad(f"{field}.allow", "is required and must be true or false")
        kind = _string(entry.get("type"), f"{field}.type")
        if kind is not None and kind not in ("a", "b", "c"):
            raise _bad(f"{field}.type", f"must be a, b or c, not {kind!r}")
        _int(entry.get("major"), f"{field}.major")
        _int(entry.get("minor"), f"{field}.minor")
        access = _string(entry.get("access"), f"{field}.access")
        if access is not None and (not access or set(access) - set("rwm")):
            raise _bad(f"{field}.access", f"must combine r, w and m, not {access!r}")


def _resources(linux: Mapping[str, Any]) -> None:
    resources = _object(linux.get("resources"), "linux.resources")
    if resources is None:
        return
    _device_rules(resources)
    memory = _object(resources.get("memory"), "linux.resources.memory")
    if memory is not None:
        for key in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
            _int(memory.get(key), f"linux.resources.memory.{key}", low=-1)
        _int(memory.get("swappiness"), "linux.resources.memory.swappiness", low=0, high=_U64)
        _bool(memory.get("disableOOMKiller"), "linux.resources.memory.disableOOMKiller")
    cpu = _object(resources.get("cpu"), "linux.resources.cpu")
    if cpu is not None:
        for key in ("shares", "period", "realtimePeriod", "burst"):
            _int(cpu.get(key), f"linux.resources.cpu.{key}", low=0, high=_U64)
        for key in ("quota", "realtimeRuntime", "idle"):
            _int(cpu.get(key), f"linux.resources.cpu.{key}")
        _string(cpu.get("cpus"), "linux.resources.cpu.cpus")
        _string(cpu.get("mems"), "linux.resources.cpu.mems")
    pids = _object(resources.get("pids"), "linux.resources.pids")
    if pids is not None:
        _int(pids.get("limit"), "linux.resources.pids.limit")
    unified = _object(resources.get("unified"), "linux.resources.unified")
    for key, value in (unified or {}).items():
        _string(value, f"linux.resources.unified[{key!r}]", required=True)


def _seccomp(linux: Mapping[str, Any]) -> None:
    seccomp = _object(linux.get("seccomp"), "linux.seccomp")
    if seccomp is None:
        return
    action = _string(seccomp.get("defaultAction"), "linux.seccomp.defaultAction",
                     required=True)
    if action not in SECCOMP_ACTIONS:
        raise _bad("linux.seccomp.defaultAction", f"is not a seccomp action: {action!r}",
                   hint=f"use one of {', '.join(SECCOMP_ACTIONS)}")
    _int(seccomp.get("defaultErrnoRet"), "linux.seccomp.defaultErrnoRet", low=0)
    _strings(seccomp.get("architectures"), "linux.seccomp.architectures")
    _strings(seccomp.get("flags"), "linux.seccomp.flags")
    for n, rule in enumerate(_list(seccomp.get("syscalls"), "linux.seccomp.syscalls")):
        field = f"linux.seccomp.syscalls[{n}]"
        entry = _object(rule, field, required=True)
        assert entry is not None
        if not _strings(entry.get("names"), f"{field}.names", required=True):
            raise _bad(f"{field}.names", "must name at least one syscall")
        if entry.get("action") not in SECCOMP_ACTIONS:
            raise _bad(f"{field}.action", f"is not a seccomp action: {entry.get('action')!r}",
                       hint=f"use one of {', '.join(SECCOMP_ACTIONS)}")
        _int(entry.get("errnoRet"), f"{field}.errnoRet", low=0)
        for m, arg in enumerate(_list(entry.get("args"), f"{field}.args")):
            at = f"{field}.args[{m}]"
            cond = _object(arg, at, required=True)
            assert cond is not None
            _int(cond.get("index"), f"{at}.index", required=True, low=0, high=6)
            _int(cond.get("value"), f"{at}.value", required=True, low=0, high=_U64)
            _int(cond.get("valueTwo"), f"{at}.valueTwo", low=0, high=_U64)
            if cond.get("op") not in SECCOMP_OPERATORS:
                raise _bad(f"{at}.op", f"is not a comparison: {cond.get('op')!r}",
                           hint=f"use one of {', '.join(SECCOMP_OPERATORS)}")


def _linux(spec: Mapping[str, Any]) -> None:
    linux = _object(spec.get("linux"), "linux")
    if linux is None:
        return
    _namespaces(linux)
    _devices(linux)
    _resources(linux)
    _seccomp(linux)
    _string(linux.get("cgroupsPath"), "linux.cgroupsPath")
    for key in ("maskedPaths", "readonlyPaths"):
        for n, path in enumerate(_strings(linux.get(key), f"linux.{key}")):
            _absolute(path, f"linux.{key}[{n}]")
    sysctl = _object(linux.get("sysctl"), "linux.sysctl")
    for key, value in (sysctl or {}).items():
        _string(value, f"linux.sysctl[{key!r}]", required=True)
    propagation = _string(linux.get("rootfsPropagation"), "linux.rootfsPropagation")
    if propagation not in (None, "private", "shared", "slave", "unbindable"):
        raise _bad("linux.rootfsPropagation",
                   f"must be private, shared, slave or unbindable, not {propagation!r}")


def validate(spec: Any) -> None:
    """Raise :class:`InvalidArgument` naming the first malformed field of ``spec``."""
    if not isinstance(spec, Mapping):
        raise InvalidArgument(
            f"invalid runtime spec: must be a JSON object, not {type(spec).__name__}"
        )
    _version(spec)
    _root(spec)
    _process(spec)
    _mounts(spec)
    _string(spec.get("hostname"), "hostname")
    _string(spec.get("domainname"), "domainname")
    _object(spec.get("annotations"), "annotations")
    _object(spec.get("hooks"), "hooks")
    _linux(spec)
