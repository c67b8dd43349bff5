"""What a container gets when nobody says otherwise: Docker's defaults, as berth writes them.

These feed the spec berth generates for ``berth run`` (and ``berth-runtime spec``): the
capability set, the paths hidden or made read-only under ``/proc`` and ``/sys``, the standard
mounts, the rlimits, the device-cgroup rules and the environment.
"""

from __future__ import annotations

import os
import resource

from berth.oci.runtime_spec import (
    DEFAULT_SHM_SIZE,
    MASKED_PATHS,
    READONLY_PATHS,
    default_mounts,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_NODES",
    "DEFAULT_ENV",
    "DEFAULT_NAMESPACES",
    "DEFAULT_PATH",
    "DEFAULT_SHM_SIZE",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "clamp_rlimits",
    "default_capabilities",
    "default_device_rules",
    "default_mounts",
    "default_rlimits",
    "host_nofile_hard",
    "implicit_device_rules",
    "masked_paths",
    "privileged_device_rules",
    "readonly_paths",
]

# Docker's 14 default capabilities, in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_ENV: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)

DEFAULT_NAMESPACES: tuple[str, ...] = ("mount", "network", "uts", "pid", "ipc")

# The device nodes every container's /dev holds (the runtime-spec's "default devices"), as
# (name, type, major, minor); each is mode 0666, owned by root.
DEFAULT_DEVICE_NODES: tuple[tuple[str, str, int, int], ...] = (
    ("null", "c", 1, 3),
    ("zero", "c", 1, 5),
    ("full", "c", 1, 7),
    ("random", "c", 1, 8),
    ("urandom", "c", 1, 9),
    ("tty", "c", 5, 0),
)

# Open-files limit a container gets from Docker 25 on (dockerd no longer raises it, so
# containers inherit systemd's default, 1024 soft and 524288 hard).
NOFILE_SOFT = 1024
NOFILE_HARD = 524288


def default_capabilities(caps: tuple[str, ...] | list[str] = DEFAULT_CAPABILITIES
                         ) -> dict[str, list[str]]:
    """``process.capabilities`` as Docker writes it: ``caps`` in the bounding, permitted and
    effective sets, none inheritable (Docker stopped that for CVE-2022-24769), no ambient."""
    return {
        "bounding": list(caps),
        "effective": list(caps),
        "permitted": list(caps),
    }


def masked_paths(sys_root: str = "/sys") -> list[str]:
    """:data:`MASKED_PATHS`, plus each CPU's ``thermal_throttle`` directory this host has
    (Docker masks those too: they leak the host's load)."""
    import glob

    paths = list(MASKED_PATHS)
    pattern = os.path.join(sys_root, "devices/system/cpu/cpu[0-9]*/thermal_throttle")
    for found in sorted(glob.glob(pattern)):
        paths.append("/sys" + found[len(sys_root):])
    return paths


def readonly_paths() -> list[str]:
    return list(READONLY_PATHS)


def host_nofile_hard() -> int:
    """This process's hard ``RLIMIT_NOFILE``: without ``CAP_SYS_RESOURCE`` (this CI host
    withholds it) no container can be given more."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return NOFILE_HARD if hard == resource.RLIM_INFINITY else hard


def default_rlimits(host_hard: int | None = None) -> list[dict[str, Any]]:
    """``process.rlimits`` for a container: ``RLIMIT_NOFILE`` 1024 soft, 524288 hard, both
    clamped to ``host_hard`` (default: this process's hard limit)."""
    ceiling = host_nofile_hard() if host_hard is None else host_hard
    hard = min(NOFILE_HARD, ceiling)
    return [{"type": "RLIMIT_NOFILE", "soft": min(NOFILE_SOFT, hard), "hard": hard}]


def clamp_rlimits(rlimits: list[dict[str, Any]], host_hard: dict[str, int] | None = None
                  ) -> list[dict[str, Any]]:
    """``rlimits`` with each ``hard`` (and ``soft``) lowered to what this process can grant.

    ``host_hard`` maps ``RLIMIT_*`` names to hard limits; missing names are read from this
    process. An unlimited host limit clamps nothing.
    """
    out: list[dict[str, Any]] = []
    for rlimit in rlimits:
        kind = str(rlimit["type"])
        ceiling = (host_hard or {}).get(kind)
        if ceiling is None:
            number = getattr(resource, kind, None)
            if number is None:
                out.append(dict(rlimit))
                continue
            ceiling = resource.getrlimit(number)[1]
        if ceiling == resource.RLIM_INFINITY or ceiling < 0:
            out.append(dict(rlimit))
            continue
        hard = min(int(rlimit["hard"]), ceiling)
        out.append({**rlimit, "hard": hard, "soft": min(int(rlimit["soft"]), hard)})
    return out


def _rule(allow: bool, kind: str = "a", major: int | None = None, minor: int | None = None,
          access: str = "rwm") -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow}
    if kind != "a":
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


def default_device_rules() -> list[dict[str, Any]]:
    """``linux.resources.devices`` as Docker writes it: deny everything, then allow the
    standard nodes, ``/dev/console`` (5:1), and keep ``/dev/fuse`` (10:229) denied."""
    return [
        _rule(False),
        _rule(True, "c", 1, 5),
        _rule(True, "c", 1, 3),
        _rule(True, "c", 1, 9),
        _rule(True, "c", 1, 8),
        _rule(True, "c", 5, 0),
        _rule(True, "c", 5, 1),
        _rule(False, "c", 10, 229),
    ]


def implicit_device_rules() -> list[dict[str, Any]]:
    """Rules an OCI runtime adds after the spec's own (runc does): ``mknod`` of any node, the
    default devices, ``/dev/pts/*`` (136:*) and ``/dev/ptmx`` (5:2); so a spec that denies
    everything still has a working ``/dev``."""
    rules = [_rule(True, "c", None, None, "m"), _rule(True, "b", None, None, "m")]
    rules += [_rule(True, kind, major, minor) for _, kind, major, minor in DEFAULT_DEVICE_NODES]
    rules += [_rule(True, "c", 136, None), _rule(True, "c", 5, 2)]
    return rules


def privileged_device_rules() -> list[dict[str, Any]]:
    """``--privileged``: every device."""
    return [_rule(True)]
