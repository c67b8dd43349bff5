"""What the cgroup v1 and v2 managers share: finding the hierarchies, paths, file access,
and the manager interface.

Layouts, found at run time from ``/proc/self/mountinfo`` (never assumed):

- ``v1``: one hierarchy per controller (or a few controllers together), e.g.
  ``/sys/fs/cgroup/memory``;
- ``hybrid``: v1 controllers plus a v2 hierarchy with no controllers (``/sys/fs/cgroup/unified``
  on this CI host): managed as v1, and the container is also put in the v2 hierarchy so its
  processes can be tracked there, as runc does;
- ``v2``: the unified hierarchy alone (most current distributions).

Every file is reached through a :class:`CgroupFS`, so tests can swap in a tree of plain files
that behaves like the kernel's (see ``tests/unit/runtime/test_cgroups_v2.py``).
"""

from __future__ import annotations

import abc
import errno
import os
import posixpath
import time
from collections.abc import Mapping

from berth.errors import ContainerError, HostError, InvalidArgument
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MOUNTINFO = "/proc/self/mountinfo"
PROC_CGROUP = "/proc/self/cgroup"

# Controllers a container is placed in on a v1 host (those the kernel has mounted).
V1_CONTROLLERS = (
    "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio", "hugetlb",
    "net_cls", "net_prio", "perf_event", "rdma", "misc",
)

FREEZE_TIMEOUT = 10.0
DESTROY_TIMEOUT = 10.0
UNLIMITED_V1 = 2**62  # a v1 memory limit at or above this means "no limit"


class CgroupFS:
    """File access to a cgroup tree. Writes never create files, as on a real cgroupfs."""

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def write(self, path: str, value: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def mkdir(self, path: str) -> bool:
        """Make a directory; ``False`` if it was already there."""
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return False
        return True

    def rmdir(self, path: str) -> None:
        os.rmdir(path)


REAL_FS = CgroupFS()


class Layout(Value):
    """Where this host's cgroup hierarchies are mounted.

    ``mode``: "v1", "hybrid" or "v2". ``v1``: controller name -> mount point (controllers
    mounted together share one). ``v1_roots``: controller -> the cgroup path that mount shows
    (``/`` unless the mount is of a sub-tree, as inside a container). ``unified``: the v2 mount
    point, if any. ``named``: v1 hierarchies without controllers (``name=systemd``) -> (mount
    point, root); berth puts no container there, but runc and crun do, so the parents they
    leave are pruned there too.
    """

    __slots__ = ("mode", "named", "unified", "unified_root", "v1", "v1_roots")

    def __init__(
        self,
        mode: str,
        v1: dict[str, str] | None = None,
        v1_roots: dict[str, str] | None = None,
        unified: str | None = None,
        unified_root: str = "/",
        named: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.mode = mode
        self.v1 = {} if v1 is None else v1
        self.v1_roots = {} if v1_roots is None else v1_roots
        self.unified = unified
        self.unified_root = unified_root
        self.named = {} if named is None else named

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "v1": dict(self.v1), "v1_roots": dict(self.v1_roots),
                "unified": self.unified, "unified_root": self.unified_root}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        return cls(mode=str(data["mode"]), v1=dict(data.get("v1") or {}),
                   v1_roots=dict(data.get("v1_roots") or {}), unified=data.get("unified"),
                   unified_root=str(data.get("unified_root") or "/"))


def _unescape(field_text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out = []
    i = 0
    while i < len(field_text):
        if field_text[i] == "\\" and field_text[i + 1:i + 4].isdigit():
            out.append(chr(int(field_text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Layout:
    """The cgroup layout described by the text of a ``/proc/PID/mountinfo``."""
    v1: dict[str, str] = {}
    v1_roots: dict[str, str] = {}
    unified: str | None = None
    unified_root = "/"
    named: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or sep < 5:
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2" and unified is None:
            unified, unified_root = mount_point, root
        elif fstype == "cgroup":
            for option in super_options.split(","):
                if option in V1_CONTROLLERS and option not in v1:
                    v1[option] = mount_point
                    v1_roots[option] = root
                elif option.startswith("name=") and option[5:] not in named:
                    named[option[5:]] = (mount_point, root)
    if v1:
        mode = "hybrid" if unified else "v1"
    elif unified:
        mode = "v2"
    else:
        raise HostError(
            "no cgroup filesystem is mounted",
            hint="mount cgroup2 on /sys/fs/cgroup (or the v1 controllers under it)",
        )
    return Layout(mode, v1, v1_roots, unified, unified_root, named)


def detect_layout(mountinfo: str = MOUNTINFO) -> Layout:
    """This host's layout, read from ``mountinfo``."""
    try:
        with open(mountinfo) as f:
            text = f.read()
    except OSError as exc:
        raise HostError(f"cannot read {mountinfo}: {exc.strerror}",
                        hint="is /proc mounted?") from exc
    return parse_mountinfo(text)


def own_cgroups(proc_cgroup: str = PROC_CGROUP) -> dict[str, str]:
    """This process's cgroup per v1 controller, and ``""`` for the v2 hierarchy."""
    paths: dict[str, str] = {}
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers = parts[1].split(",") if parts[1] else [""]
        for controller in controllers:
            paths[controller] = parts[2]
    return paths


def resolve_cgroups_path(cgroups_path: str | None, container_id: str, parent: str) -> str:
    """The container's cgroup path, absolute within the hierarchy (``/berth/<id>``).

    Relative paths come back without a leading ``/`` (the caller places them under its own
    cgroup). The systemd driver's ``slice:prefix:name`` form is refused.
    """
    if cgroups_path is None or cgroups_path == "":
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup")
        cgroups_path = f"/{parent.strip('/')}/{container_id}"
    if not isinstance(cgroups_path, str):
        raise InvalidArgument(f"linux.cgroupsPath must be a string, got {cgroups_path!r}")
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise InvalidArgument(
            f"linux.cgroupsPath {cgroups_path!r} is in the systemd driver's "
            "slice:prefix:name form, and the systemd cgroup driver is not supported",
            hint="use a path such as /berth/<id> (berth manages cgroups through cgroupfs)",
        )
    if "\0" in cgroups_path or any(part == ".." for part in cgroups_path.split("/")):
        raise InvalidArgument(
            f"linux.cgroupsPath {cgroups_path!r} must not contain '..'",
            hint="give a path inside the cgroup hierarchy, such as /berth/<id>",
        )
    absolute = cgroups_path.startswith("/")
    clean = posixpath.normpath("/" + cgroups_path.strip("/"))
    if clean == "/":
        raise InvalidArgument(
            f"linux.cgroupsPath {cgroups_path!r} names the root cgroup",
            hint="a container needs a cgroup of its own, such as /berth/<id>",
        )
    return clean if absolute else clean.lstrip("/")


def join_cgroup(mount_point: str, mount_root: str, path: str) -> str:
    """The directory of cgroup ``path`` in a hierarchy mounted at ``mount_point``.

    ``mount_root`` is the cgroup the mount shows at its top (``/`` normally; a sub-tree
    inside a container whose cgroup namespace or bind mount hides the rest).
    """
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root):]
    return posixpath.join(mount_point, path.lstrip("/")).rstrip("/")


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``, ``memory.events``) -> dict."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value.strip())
        except ValueError:
            continue
    return values


def shares_to_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` (2..262144) -> v2 ``cpu.weight`` (1..10000).

    The linear mapping runc (before 1.3.2) and crun (before 1.23) use, so limits agree with
    the runc and crun installed here: 2 -> 1, 1024 -> 39, 262144 -> 10000.
    """
    if shares <= 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` (10..1000) -> v2 ``io.weight`` (1..10000)."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def device_rule_text(rule: Mapping[str, Any], where: str) -> tuple[bool, str]:
    """A spec ``devices`` rule -> (allow, ``"c 1:3 rwm"``) as ``devices.allow`` takes it."""
    allow = rule.get("allow")
    if not isinstance(allow, bool):
        raise InvalidArgument(f"{where}.allow must be true or false, got {allow!r}")
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"{where}.type must be a, b or c, got {kind!r}")
    numbers = []
    for key in ("major", "minor"):
        value = rule.get(key)
        if value is None or value == -1:
            numbers.append("*")
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            numbers.append(str(value))
        else:
            raise InvalidArgument(f"{where}.{key} must be a device number, got {value!r}")
    access = rule.get("access") or "rwm"
    if not isinstance(access, str) or set(access) - set("rwm"):
        raise InvalidArgument(f"{where}.access must combine r, w and m, got {access!r}")
    if kind == "a":
        return allow, "a"
    return allow, f"{kind} {numbers[0]}:{numbers[1]} {access}"


class CgroupManager(abc.ABC):
    """One container's cgroup, in whichever layout the host has."""

    version: int
    path: str

    # Whether the parents :meth:`create` makes stay when the cgroup is destroyed (berth's
    # engine keeps its store's parent, as Docker keeps /docker: making it again for each
    # container costs a mkdir and an rmdir per hierarchy, and the cpuset's CPUs and memory
    # nodes; `berth system reset` takes it away). By default they go once empty.
    keep_parents = False

    def __init__(self, path: str, fs: CgroupFS | None = None) -> None:
        self.path = path
        self.fs = fs or REAL_FS
        self.created: list[str] = []

    def _note_made(self, made: list[str], leaf: str) -> None:
        """Remember the directories :meth:`_mkdirs` made, for :meth:`destroy` to remove: the
        leaf, and the parents unless they are kept."""
        self.created += [d for d in made if d == leaf] if self.keep_parents else made

    # --- files ---------------------------------------------------------------------------

    def _read(self, directory: str, name: str) -> str:
        return self.fs.read(posixpath.join(directory, name))

    def _read_int(self, directory: str, name: str) -> int | None:
        try:
            text = self._read(directory, name).strip()
        except OSError:
            return None
        if text == "max":
            return None
        try:
            return int(text)
        except ValueError:
            return None

    def _has(self, directory: str, name: str) -> bool:
        return self.fs.exists(posixpath.join(directory, name))

    def _write(self, directory: str, name: str, value: str | int) -> None:
        target = posixpath.join(directory, name)
        try:
            self.fs.write(target, str(value))
        except OSError as exc:
            raise _write_error(target, value, exc) from exc

    def _mkdirs(self, mount_point: str, directory: str) -> list[str]:
        """Make ``directory`` and its missing parents below ``mount_point``; the new ones,
        top first."""
        parts = posixpath.relpath(directory, mount_point).split("/")
        made: list[str] = []
        try:  # the usual case: the parents are there (one mkdir, not one that fails each)
            return [directory] if self.fs.mkdir(directory) else []
        except OSError:
            pass  # a parent is missing (made below), or the walk below says what fails
        for _attempt in range(5):
            current = mount_point
            try:
                for part in parts:
                    current = posixpath.join(current, part)
                    if self.fs.mkdir(current):
                        made.append(current)
                return made
            except FileNotFoundError:
                continue  # a parent went away under us (a last container's destroy): again
            except OSError as exc:
                raise ContainerError(
                    f"cannot create cgroup {current}: {exc.strerror}",
                    hint="berth needs root (or a delegated cgroup) to make cgroups",
                ) from exc
        raise ContainerError(f"cannot create cgroup {directory}: its parents keep vanishing",
                             hint="retry")

    def _remove_dir(self, directory: str, deadline: float) -> None:
        """rmdir a cgroup, waiting while its last processes exit."""
        delay = 0.005
        while True:
            try:
                self.fs.rmdir(directory)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise ContainerError(
                        f"cannot remove cgroup {directory}: {exc.strerror}",
                        hint="processes are still in it; kill them (berth kill) and retry",
                    ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _prune(self, directories: Iterable[str]) -> None:
        """Remove directories this manager made as parents, deepest first, if now empty."""
        for directory in sorted(set(directories), key=len, reverse=True):
            try:
                self.fs.rmdir(directory)
            except OSError:
                continue  # still used by another container, or already gone

    # --- the interface -------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, resources: Mapping[str, Any] | None = None) -> None:
        """Make the cgroup and apply ``linux.resources``."""

    @abc.abstractmethod
    def update(self, resources: Mapping[str, Any]) -> None:
        """Apply (a part of) ``linux.resources`` to the existing cgroup."""

    @abc.abstractmethod
    def add_process(self, pid: int) -> None:
        """Move process ``pid`` (with its threads) into the cgroup."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Processes in the cgroup."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Freeze every process, and wait until they are frozen."""

    @abc.abstractmethod
    def thaw(self) -> None:
        """Let frozen processes run again."""

    @abc.abstractmethod
    def freezer_state(self) -> str:
        """``"THAWED"``, ``"FREEZING"`` or ``"FROZEN"``."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Usage counters in the shape of Docker's stats API.

        ``memory_stats``: ``usage``, ``max_usage`` (``None`` when unknown), ``limit``
        (``None`` when unlimited), ``cache``, ``failcnt``, ``stats`` (``memory.stat``);
        ``cpu_stats``: ``cpu_usage`` (``total_usage``, ``percpu_usage``, ``usage_in_usermode``,
        ``usage_in_kernelmode``, all ns) and ``throttling_data`` (``periods``,
        ``throttled_periods``, ``throttled_time`` ns); ``pids_stats``: ``current``, ``limit``
        (``None`` when unlimited); ``blkio_stats``: ``io_service_bytes_recursive``.
        """

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the cgroup (waiting for exiting processes), and the parents it made that
        are now empty (unless it keeps them: :attr:`keep_parents`)."""

    @abc.abstractmethod
    def to_state(self) -> dict[str, Any]:
        """What :func:`berth.runtime.cgroups.manager_from_state` needs to find it again."""

    def kill_all(self, sig: int) -> None:
        """Send ``sig`` to every process: freeze, signal each, thaw (so none forks away)."""
        try:
            self.freeze()
            frozen = True
        except (ContainerError, HostError):
            frozen = False
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
        finally:
            if frozen:
                self.thaw()

    def _wait_state(self, want: str, timeout: float = FREEZE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self.freezer_state() != want:
            if time.monotonic() > deadline:
                raise ContainerError(
                    f"cgroup {self.path} did not become {want} "
                    f"(still {self.freezer_state()})",
                    hint="a process may be stuck in the kernel (uninterruptible I/O); retry",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _write_error(target: str, value: str | int, exc: OSError) -> BaseException:
    name = posixpath.basename(target)
    if exc.errno == errno.ENOENT:
        return HostError(
            f"cannot set {name} to {value!r}: {target} does not exist",
            hint="this kernel lacks that cgroup feature or controller; remove the setting",
        )
    if exc.errno == errno.EBUSY and name.startswith("memory"):
        hint = "the container already uses more memory than the new limit"
    elif exc.errno in (errno.EINVAL, errno.ERANGE):
        hint = "the value is out of range for this kernel, or conflicts with a parent's limit"
    else:
        hint = "check the value and the parent cgroup's limits"
    return InvalidArgument(
        f"cannot set {name} to {value!r} in {posixpath.dirname(target)}: "
        f"{exc.strerror or exc}",
        hint=hint,
    )


def as_int(value: Any, where: str) -> int | None:
    """A resource value from the spec: an int, or ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{where} must be a whole number, got {value!r}")
    return value


def device_numbers(entry: Mapping[str, Any], where: str) -> str:
    """``"major:minor"`` of a spec's per-device entry (``blockIO.weightDevice``, ...)."""
    major = as_int(entry.get("major"), f"{where}.major")
    minor = as_int(entry.get("minor"), f"{where}.minor")
    if major is None or minor is None or major < 0 or minor < 0:
        raise InvalidArgument(f"{where} needs a device's major and minor numbers")
    return f"{major}:{minor}"


def section(resources: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    if not resources:
        return {}
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"linux.resources.{key} must be an object, got {value!r}")
    return value


def check_unified_key(key: Any) -> str:
    """A ``linux.resources.unified`` key must name a file of the container's own cgroup."""
    if (not isinstance(key, str) or not key or "/" in key or key.startswith(".")
            or "." not in key):
        raise InvalidArgument(
            f"linux.resources.unified: {key!r} is not a cgroup interface file name",
            hint="keys are file names such as memory.high or io.max",
        )
    if key in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill",
               "cgroup.freeze", "cgroup.type"):
        raise InvalidArgument(
            f"linux.resources.unified: {key!r} is managed by the runtime and cannot be set",
        )
    return key
