"""Linux capabilities: their names and numbers, and giving a container process its identity.

:func:`apply_identity` runs in the container's init (and in every ``exec``'d process) after the
mounts and ``pivot_root``, before seccomp and the final ``execve``. It does, in this order:

1. ``prctl(PR_SET_KEEPCAPS, 1)``, so the permitted set survives the switch to a non-root uid;
2. drops from the bounding set every capability the spec's ``bounding`` list lacks
   (capabilities the running kernel does not know are ignored);
3. ``setgroups(additionalGids)``, ``setgid(gid)``, ``setuid(uid)``;
4. ``capset(2)`` with the spec's effective, permitted and inheritable sets, exactly;
5. clears the ambient set and raises each capability of the spec's ``ambient`` list;
6. ``prctl(PR_SET_KEEPCAPS, 0)``.

Everything goes through ``ctypes`` (``capset``, ``capget``, ``prctl``): no external binary, and
nothing that needs a file of the host after ``pivot_root`` (``/proc/sys/kernel/cap_last_cap`` is
read through the container's own ``/proc`` when it is mounted, else the compiled-in table
stands).

``process.capabilities`` absent from the spec leaves the capability sets as they are: only
the uid and gids change (as runc does).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Mapping

from berth.errors import ContainerError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The capabilities Linux defines, by number (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_NAMES: dict[int, str] = {number: name for name, number in CAPABILITIES.items()}
LAST_KNOWN_CAP = max(CAP_NAMES)

CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def normalize_cap_name(name: str) -> str:
    """``"net_admin"``, ``"NET_ADMIN"`` or ``"CAP_NET_ADMIN"`` -> ``"CAP_NET_ADMIN"``.

    Raises :class:`InvalidArgument` for a name Linux does not define.
    """
    if not isinstance(name, str):
        raise InvalidArgument(f"capability name must be a string, got {name!r}")
    upper = name.strip().upper()
    canonical = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if canonical not in CAPABILITIES:
        raise InvalidArgument(
            f"unknown capability {name!r}",
            hint="capabilities are named like CAP_NET_BIND_SERVICE; known ones are "
            f"{', '.join(CAPABILITIES)}",
        )
    return canonical


def parse_cap_names(names: Iterable[str] | None, *, field: str = "capabilities") -> list[int]:
    """Capability numbers for ``names`` (sorted, without duplicates).

    ``field`` names the spec field being parsed, for the error message of a bad entry.
    """
    if names is None:
        return []
    if isinstance(names, str | Mapping) or not isinstance(names, Iterable):
        raise InvalidArgument(f"{field} must be a list of capability names, got {names!r}")
    numbers: set[int] = set()
    for name in names:
        try:
            numbers.add(CAPABILITIES[normalize_cap_name(name)])
        except InvalidArgument as exc:
            raise InvalidArgument(f"{field}: {exc.message}", hint=exc.hint) from None
    return sorted(numbers)


def caps_to_mask(numbers: Iterable[int]) -> int:
    mask = 0
    for number in numbers:
        mask |= 1 << number
    return mask


def mask_to_names(mask: int) -> list[str]:
    """Names of the capabilities set in ``mask`` (as in ``/proc/PID/status``'s ``Cap*:``)."""
    return [CAP_NAMES.get(n, f"CAP_{n}") for n in range(mask.bit_length()) if mask >> n & 1]


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number the running kernel knows (read once per process from
    ``/proc``: the kernel's, whichever mount of it)."""
    known = _last_cap_read.get(proc)
    if known is not None:
        return known
    try:
        with open(os.path.join(proc, "sys/kernel/cap_last_cap")) as f:
            known = int(f.read().strip())
    except (OSError, ValueError):
        return LAST_KNOWN_CAP
    _last_cap_read[proc] = known
    return known


_last_cap_read: dict[str, int] = {}


def process_capabilities(pid: int | str = "self", proc: str = "/proc") -> dict[str, int]:
    """A process's five sets as masks, read from ``/proc/PID/status`` (``CapBnd`` ->
    ``"bounding"``, and so on)."""
    keys = {
        "CapInh": "inheritable",
        "CapPrm": "permitted",
        "CapEff": "effective",
        "CapBnd": "bounding",
        "CapAmb": "ambient",
    }
    sets: dict[str, int] = {}
    with open(os.path.join(proc, str(pid), "status")) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                sets[keys[key]] = int(value.strip(), 16)
    return sets


def host_capabilities() -> list[str]:
    """The capabilities this process may hand on (its bounding set), by name.

    ``--privileged`` should grant these rather than every capability Linux defines: a host
    that withholds one (this CI host has no ``CAP_SYS_RESOURCE``) cannot give it away, and
    ``capset`` would fail.
    """
    bounding = process_capabilities()["bounding"]
    return [name for name in mask_to_names(bounding) if name in CAPABILITIES]


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = (
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
)
_libc.prctl.restype = ctypes.c_int
_libc.capget.argtypes = (ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
_libc.capget.restype = ctypes.c_int
_libc.capset.argtypes = (ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
_libc.capset.restype = ctypes.c_int


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    result: int = _libc.prctl(option, arg2, arg3, 0, 0)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def capget() -> dict[str, int]:
    """This thread's effective, permitted and inheritable masks, from ``capget(2)``."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    return {
        key: getattr(data[0], key) | getattr(data[1], key) << 32
        for key in ("effective", "permitted", "inheritable")
    }


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's three sets from masks, with ``capset(2)``."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        shift = 32 * index
        data[index].effective = effective >> shift & 0xFFFFFFFF
        data[index].permitted = permitted >> shift & 0xFFFFFFFF
        data[index].inheritable = inheritable >> shift & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _user_id(user: Mapping[str, Any], key: str) -> int:
    value = user.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32 - 1:
        raise InvalidArgument(
            f"process.user.{key} must be a number from 0 to 4294967294, got {value!r}",
            hint="the runtime takes numeric ids; names are resolved before the spec is written",
        )
    return value


def _parse_user(user: Mapping[str, Any] | None) -> tuple[int, int, list[int]]:
    if user is None:
        return 0, 0, []
    if not isinstance(user, Mapping):
        raise InvalidArgument(f"process.user must be an object, got {user!r}")
    uid = _user_id(user, "uid")
    gid = _user_id(user, "gid")
    extra = user.get("additionalGids") or []
    if not isinstance(extra, list):
        raise InvalidArgument(f"process.user.additionalGids must be a list, got {extra!r}")
    groups = [_user_id({"additionalGids": g}, "additionalGids") for g in extra]
    return uid, gid, groups


def _capability_masks(capabilities: Mapping[str, Any]) -> dict[str, int]:
    """The spec's five sets as masks, limited to what the running kernel knows."""
    if not isinstance(capabilities, Mapping):
        raise InvalidArgument(f"process.capabilities must be an object, got {capabilities!r}")
    known = caps_to_mask(range(last_cap() + 1))
    masks: dict[str, int] = {}
    for name in CAPABILITY_SETS:
        numbers = parse_cap_names(
            capabilities.get(name), field=f"process.capabilities.{name}"
        )
        masks[name] = caps_to_mask(numbers) & known
    return masks


def _setgroups(groups: list[int]) -> None:
    try:
        os.setgroups(groups)
    except PermissionError:
        # In a user namespace whose /proc/PID/setgroups says "deny" setgroups(2) always
        # fails; with no groups asked for there is nothing to do anyway.
        if groups or not _setgroups_denied():
            raise


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def _fail(step: str, exc: OSError, hint: str) -> ContainerError:
    return ContainerError(f"cannot set the container process's identity: {step}: "
                          f"{exc.strerror or exc}", hint=hint)


def apply_identity(user: dict[str, Any] | None, capabilities: dict[str, Any] | None) -> None:
    """Switch this process to the spec's ``process.user`` and ``process.capabilities``.

    ``user`` is the spec's ``process.user`` (numeric ``uid``, ``gid``, ``additionalGids``;
    ``umask`` is the caller's business). ``capabilities`` is ``process.capabilities`` with
    the lists ``bounding``, ``effective``, ``permitted``, ``inheritable``, ``ambient``; ``None``
    leaves the capability sets alone. Unknown capability names raise
    :class:`InvalidArgument`; a step the kernel refuses raises :class:`ContainerError`.
    """
    uid, gid, groups = _parse_user(user)
    masks = _capability_masks(capabilities) if capabilities is not None else None
    if masks is not None:
        _check_grantable(masks)
    try:
        _prctl(_PR_SET_KEEPCAPS, 1)
    except OSError as exc:
        raise _fail("prctl(PR_SET_KEEPCAPS)", exc, "is the runtime running as root?") from exc
    if masks is not None:
        _drop_bounding(masks["bounding"])
    try:
        _setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise _fail(
            f"switching to uid {uid}, gid {gid}, groups {groups}",
            exc,
            "in a user namespace every id must be mapped (linux.uidMappings/gidMappings)",
        ) from exc
    if masks is not None:
        try:
            capset(masks["effective"], masks["permitted"], masks["inheritable"])
        except OSError as exc:
            raise _fail(
                "capset(effective, permitted, inheritable)",
                exc,
                "effective must be within permitted, and inheritable within bounding",
            ) from exc
        _raise_ambient(masks)
    try:
        _prctl(_PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise _fail("prctl(PR_SET_KEEPCAPS, 0)", exc, "this should not happen") from exc


def rehearse(capabilities: dict[str, Any]) -> None:
    """What :func:`apply_identity` reads and works out, done ahead and changing nothing, in a
    process that will apply an identity later (an init forked ahead of time,
    :mod:`berth.runtime.preforked`): the kernel's last capability, the masks of
    ``capabilities``, this process's sets and bounding set. The pages and code this touches
    are then warm when the identity is applied."""
    masks = _capability_masks(capabilities)
    _check_grantable(masks)
    for number in range(last_cap() + 1):
        try:
            _prctl(_PR_CAPBSET_READ, number)
        except OSError:
            pass


def _check_grantable(masks: Mapping[str, int]) -> None:
    """Fail early, naming them, when the spec asks for capabilities this process lacks."""
    try:
        have = capget()["permitted"]
    except OSError:
        return
    wanted = masks["permitted"] | masks["effective"]
    missing = wanted & ~have
    if missing:
        names = ", ".join(mask_to_names(missing))
        raise ContainerError(
            f"the container asks for capabilities the runtime does not have: {names}",
            hint="the host withholds them from berth; drop them (--cap-drop) or run berth "
            "where they are granted",
        )


def _drop_bounding(keep: int) -> None:
    for number in range(last_cap() + 1):
        if keep >> number & 1:
            continue
        try:
            if _prctl(_PR_CAPBSET_READ, number) == 0:
                continue
            _prctl(_PR_CAPBSET_DROP, number)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a capability this kernel does not know
                continue
            raise _fail(
                f"dropping {CAP_NAMES.get(number, number)} from the bounding set",
                exc,
                "dropping from the bounding set needs CAP_SETPCAP",
            ) from exc


def _raise_ambient(masks: Mapping[str, int]) -> None:
    try:
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno == errno.EINVAL and not masks["ambient"]:
            return  # a kernel without ambient capabilities (before 4.3)
        raise _fail("clearing the ambient set", exc, "needs Linux 4.3 or later") from exc
    for number in range(masks["ambient"].bit_length()):
        if not masks["ambient"] >> number & 1:
            continue
        try:
            _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, number)
        except OSError as exc:
            raise _fail(
                f"raising {CAP_NAMES[number]} in the ambient set",
                exc,
                "an ambient capability must also be in the permitted and inheritable sets",
            ) from exc
