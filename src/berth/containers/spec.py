"""A container record -> the OCI runtime spec (``config.json``) its runtime runs.

Docker's defaults, as Docker generates them: the 14 default capabilities, the default
seccomp profile, masked and read-only paths, /proc /dev /sys and friends, a 64 MiB /dev/shm,
the three files Docker manages (/etc/hosts, /etc/hostname, /etc/resolv.conf) bound in from the
container's dir; then what the user asked for on top. One berth difference, for least
privilege: ``no_new_privs`` is on unless ``--security-opt no-new-privileges=false``.
"""

from __future__ import annotations

import os
import stat

from berth.errors import ContainerError, InvalidArgument, PathNotFound
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.containers.users import ExecUser

SPEC_VERSION = "1.0.2"  # what Docker writes; runc, crun and berth all take it
DEFAULT_SHM = 64 * 1024 * 1024
INIT_BINARIES = (
    "/usr/bin/catatonit",
    "/usr/libexec/podman/catatonit",
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
)
INIT_PATH = "/sbin/docker-init"
# the files of /etc that the engine writes and binds into each container (from its dir)
ETC_FILES = ("resolv.conf", "hostname", "hosts")
RLIMIT_NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
)


class SpecInputs(FrozenValue):
    """What the spec needs beyond the record's documents."""

    __slots__ = ("cgroup_v2", "cgroups_path", "container_dir", "mounts", "netns", "rootfs", "user")
    rootfs: str
    user: ExecUser
    cgroups_path: str
    container_dir: str  # holds hosts, hostname, resolv.conf
    netns: str | None  # a network namespace to join; None: a new one (or host, see mode)
    mounts: list[dict[str, Any]]  # resolved Mounts (inspect shape) + "TmpfsOptions"
    cgroup_v2: bool

    def __init__(
        self,
        rootfs: str,
        user: ExecUser,
        cgroups_path: str,
        container_dir: str,
        netns: str | None,
        mounts: list[dict[str, Any]],
        cgroup_v2: bool = False,
    ) -> None:
        init_fields(
            self,
            rootfs=rootfs,
            user=user,
            cgroups_path=cgroups_path,
            container_dir=container_dir,
            netns=netns,
            mounts=mounts,
            cgroup_v2=cgroup_v2,
        )


def build_spec(
    config: dict[str, Any], host: dict[str, Any], extra: dict[str, Any], inputs: SpecInputs
) -> dict[str, Any]:
    privileged = bool(host.get("Privileged"))
    security = _security_options(host.get("SecurityOpt") or [])
    args = list(extra.get("Args") or [])
    path = extra.get("Path") or ""
    argv = [path, *args] if path else args
    if not argv:
        raise ContainerError(
            "no command specified",
            hint="the image has no CMD or ENTRYPOINT: give a command after the image name",
        )
    if host.get("Init"):
        argv = [INIT_PATH, "--", *argv]
    env = process_env(config, inputs.user)
    caps = capabilities(host, privileged)
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {
            "uid": inputs.user.uid,
            "gid": inputs.user.gid,
            "additionalGids": list(inputs.user.additional_gids),
        },
        "args": argv,
        "env": env,
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits(host.get("Ulimits") or []),
        "noNewPrivileges": security.get("no-new-privileges", "true") != "false",
    }
    if host.get("OomScoreAdj"):
        process["oomScoreAdj"] = int(host["OomScoreAdj"])
    network_mode = host.get("NetworkMode") or "none"
    spec: dict[str, Any] = {
        "ociVersion": SPEC_VERSION,
        "process": process,
        "root": {"path": inputs.rootfs, "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": config.get("Hostname") or "",
        "mounts": mounts(config, host, inputs, privileged, network_mode),
        "linux": linux_section(host, inputs, privileged, security, caps, network_mode),
    }
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if network_mode != "host" and not inputs.netns:
        spec["annotations"] = {"org.berth.network.loopback": "up"}
    if network_mode == "host":
        spec.pop("hostname")
    return spec


def process_env(config: dict[str, Any], user: ExecUser) -> list[str]:
    """Docker's order: PATH and HOSTNAME first, TERM with a tty, then the container's Env
    (which overrides), and HOME from the user's passwd entry when nothing set it."""
    values: dict[str, str] = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": config.get("Hostname") or "",
    }
    if config.get("Tty"):
        values["TERM"] = "xterm"
    for item in config.get("Env") or []:
        key, sep, value = item.partition("=")
        if sep:
            values[key] = value
        else:
            values.pop(key, None)
    values.setdefault("HOME", user.home or "/")
    return [f"{k}={v}" for k, v in values.items()]


def capabilities(host: dict[str, Any], privileged: bool) -> list[str]:
    from berth.runtime.defaults import DEFAULT_CAPABILITIES

    if privileged:
        from berth.runtime.capabilities import host_capabilities

        return sorted(host_capabilities())
    caps = list(DEFAULT_CAPABILITIES)
    drop = [_cap(c) for c in host.get("CapDrop") or []]
    add = [_cap(c) for c in host.get("CapAdd") or []]
    if "CAP_ALL" in drop:
        caps = []
    else:
        caps = [c for c in caps if c not in drop]
    if "CAP_ALL" in add:
        from berth.runtime.capabilities import host_capabilities

        caps = sorted(set(host_capabilities()) - set(drop))
    else:
        caps += [c for c in add if c not in caps]
    return caps


def _cap(name: str) -> str:
    from berth.runtime.capabilities import normalize_cap_name

    upper = name.upper()
    if upper in ("ALL", "CAP_ALL"):
        return "CAP_ALL"
    try:
        return normalize_cap_name(upper)
    except Exception:
        raise InvalidArgument(f"unknown capability: {name!r}") from None


def rlimits(ulimits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's default open-file limit, then ``--ulimit``s, never above the host's hard
    limits (root here may lack CAP_SYS_RESOURCE)."""
    from berth.runtime.defaults import clamp_rlimits, default_rlimits

    limits = {r["type"]: r for r in default_rlimits()}
    for ulimit in ulimits:
        name = str(ulimit["Name"]).lower()
        if name not in RLIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {ulimit['Name']}")
        key = f"RLIMIT_{name.upper()}"
        limits[key] = {"type": key, "soft": int(ulimit["Soft"]), "hard": int(ulimit["Hard"])}
    return clamp_rlimits(list(limits.values()))


def mounts(
    config: dict[str, Any],
    host: dict[str, Any],
    inputs: SpecInputs,
    privileged: bool,
    network_mode: str,
) -> list[dict[str, Any]]:
    from berth.oci.runtime_spec import default_mounts

    shm_size = int(host.get("ShmSize") or DEFAULT_SHM)
    out = default_mounts(shm_size=shm_size)
    if inputs.cgroup_v2 or privileged:
        for mount in out:
            if mount["destination"] == "/sys/fs/cgroup":
                mount["type"] = "cgroup2" if inputs.cgroup_v2 else "cgroup"
                if privileged:
                    mount["options"] = [o for o in mount["options"] if o != "ro"]
    if privileged:
        for mount in out:
            if mount["destination"] == "/sys":
                mount["options"] = [o for o in mount["options"] if o != "ro"]
    user_targets = {m["Destination"] for m in inputs.mounts}
    for name in ETC_FILES:
        target = f"/etc/{name}"
        if target in user_targets:
            continue
        out.append(
            {
                "destination": target,
                "type": "bind",
                "source": os.path.join(inputs.container_dir, name),
                "options": ["rbind", "rprivate"],
            }
        )
    if host.get("Init"):
        out.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": find_init(),
                "options": ["bind", "ro", "nosuid", "nodev"],
            }
        )
    for mount in sorted(inputs.mounts, key=lambda m: m["Destination"].count("/")):
        out.append(_user_mount(mount))
    return out


def _user_mount(mount: dict[str, Any]) -> dict[str, Any]:
    if mount["Type"] == "tmpfs":
        options = ["nosuid", "nodev", "noexec"]
        options += list(mount.get("TmpfsOptions") or [])
        if mount.get("TmpfsSize"):
            options.append(f"size={int(mount['TmpfsSize']) // 1024}k")
        options.append(f"mode={oct(mount.get('TmpfsMode') or 0o1777)[2:]}")
        return {
            "destination": mount["Destination"],
            "type": "tmpfs",
            "source": "tmpfs",
            "options": options,
        }
    options = [
        "rbind",
        mount.get("Propagation") or "rprivate",
        "rw" if mount.get("RW", True) else "ro",
    ]
    return {
        "destination": mount["Destination"],
        "type": "bind",
        "source": mount["Source"],
        "options": options,
    }


def linux_section(
    host: dict[str, Any],
    inputs: SpecInputs,
    privileged: bool,
    security: dict[str, str],
    caps: list[str],
    network_mode: str,
) -> dict[str, Any]:
    from berth.oci.runtime_spec import MASKED_PATHS, READONLY_PATHS

    namespaces: list[dict[str, Any]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network_mode != "host":
        ns: dict[str, Any] = {"type": "network"}
        if inputs.netns:
            ns["path"] = inputs.netns
        namespaces.append(ns)
    if inputs.cgroup_v2:
        namespaces.append({"type": "cgroup"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": inputs.cgroups_path,
        "resources": resources(host, privileged),
    }
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    seccomp = security.get("seccomp", "")
    if not privileged and seccomp != "unconfined":
        if seccomp:
            linux["seccomp"] = _seccomp_file(seccomp)
        else:
            from berth.runtime.seccomp_profile import docker_default_profile

            linux["seccomp"] = docker_default_profile(caps)
    if host.get("Sysctls"):
        linux["sysctl"] = dict(host["Sysctls"])
    devices = [_device(d) for d in host.get("Devices") or []]
    if devices:
        linux["devices"] = [d[0] for d in devices]
        linux["resources"]["devices"] += [d[1] for d in devices]
    propagations = {m.get("Propagation") for m in inputs.mounts}
    if propagations & {"shared", "rshared"}:
        linux["rootfsPropagation"] = "shared"
    elif propagations & {"slave", "rslave"}:
        linux["rootfsPropagation"] = "slave"
    return linux


def resources(host: dict[str, Any], privileged: bool) -> dict[str, Any]:
    from berth.runtime.defaults import default_device_rules, privileged_device_rules

    out: dict[str, Any] = {
        "devices": privileged_device_rules() if privileged else default_device_rules(),
    }
    memory: dict[str, Any] = {}
    if host.get("Memory"):
        memory["limit"] = int(host["Memory"])
        swap = int(host.get("MemorySwap") or 0)
        if swap == 0:
            swap = 2 * memory["limit"]  # Docker: swap as large as the memory limit
        memory["swap"] = swap
    if host.get("MemoryReservation"):
        memory["reservation"] = int(host["MemoryReservation"])
    if host.get("MemorySwappiness") is not None:
        memory["swappiness"] = int(host["MemorySwappiness"])
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if host.get("CpuShares"):
        cpu["shares"] = int(host["CpuShares"])
    if host.get("NanoCpus"):
        cpu["period"] = 100_000
        cpu["quota"] = int(host["NanoCpus"]) * 100_000 // 1_000_000_000
    if host.get("CpuPeriod"):
        cpu["period"] = int(host["CpuPeriod"])
    if host.get("CpuQuota"):
        cpu["quota"] = int(host["CpuQuota"])
    if host.get("CpusetCpus"):
        cpu["cpus"] = host["CpusetCpus"]
    if host.get("CpusetMems"):
        cpu["mems"] = host["CpusetMems"]
    if cpu:
        out["cpu"] = cpu
    pids = host.get("PidsLimit")
    if pids and int(pids) > 0:
        out["pids"] = {"limit": int(pids)}
    if host.get("BlkioWeight"):
        out["blockIO"] = {"weight": int(host["BlkioWeight"])}
    return out


def _device(device: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    host_path = device["PathOnHost"]
    try:
        st = os.stat(host_path)
    except FileNotFoundError:
        raise PathNotFound(
            f"error gathering device information while adding custom device "
            f'"{host_path}": no such file or directory'
        ) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"{host_path} is not a device node")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    perms = device.get("CgroupPermissions") or "rwm"
    node = {
        "path": device.get("PathInContainer") or host_path,
        "type": kind,
        "major": major,
        "minor": minor,
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": 0,
        "gid": 0,
    }
    rule = {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}
    return node, rule


def _security_options(options: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for option in options:
        if option == "no-new-privileges":
            out["no-new-privileges"] = "true"
            continue
        key, sep, value = option.partition("=" if "=" in option else ":")
        if not sep:
            raise InvalidArgument(f"invalid --security-opt: {option!r}")
        if key not in ("seccomp", "no-new-privileges", "apparmor", "label"):
            raise InvalidArgument(
                f"invalid --security-opt {key!r}",
                hint="berth knows seccomp=, no-new-privileges, apparmor=, label=",
            )
        out[key] = value
    return out


def _seccomp_file(path: str) -> dict[str, Any]:
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {exc}") from None
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise InvalidArgument(f"seccomp profile {path} has no defaultAction")
    out: dict[str, Any] = {"defaultAction": data["defaultAction"]}
    if "defaultErrnoRet" in data:
        out["defaultErrnoRet"] = data["defaultErrnoRet"]
    arches = data.get("architectures") or [
        a
        for m in data.get("archMap") or []
        for a in [m["architecture"], *m.get("subArchitectures", [])]
    ]
    if arches:
        out["architectures"] = arches
    syscalls = []
    for rule in data.get("syscalls") or []:
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = rule["args"]
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def find_init() -> str:
    for path in INIT_BINARIES:
        if os.path.exists(path):
            return path
    raise ContainerError(
        "--init needs a static init binary (catatonit or tini)",
        hint="install it: apt-get install catatonit",
    )
