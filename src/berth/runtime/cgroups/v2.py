"""cgroup v2: one unified hierarchy (``/sys/fs/cgroup/berth/<id>``).

Files are those of the kernel's ``Documentation/admin-guide/cgroup-v2.rst``: ``cgroup.procs``,
``cgroup.subtree_control``, ``cgroup.controllers``, ``cgroup.freeze``, ``cgroup.events``,
``cgroup.kill``, ``memory.max``, ``memory.low``, ``memory.swap.max``, ``memory.events``,
``memory.current``, ``memory.peak``, ``memory.stat``, ``cpu.max``, ``cpu.max.burst``,
``cpu.weight``, ``cpu.idle``, ``cpu.stat``, ``cpuset.cpus``, ``cpuset.mems``, ``pids.max``,
``pids.current``, ``io.max``, ``io.weight`` (or ``io.bfq.weight``), ``io.stat``,
``hugetlb.<size>.max``.

Conversions from the runtime-spec's v1-shaped fields:

- ``cpu.shares`` -> ``cpu.weight`` by :func:`~berth.runtime.cgroups.common.shares_to_weight`;
- ``cpu.quota``/``cpu.period`` -> ``cpu.max`` as ``"<quota|max> <period>"``;
- ``memory.swap`` (memory+swap) -> ``memory.swap.max`` = swap - limit (``-1`` -> ``max``);
- ``memory.reservation`` -> ``memory.low``; ``blockIO`` -> ``io.*``.

Not available on v2, and reported in the log rather than failing the container: the devices
allowlist (enforced with an eBPF program on v2, which berth does not load yet),
``memory.swappiness``, ``disableOOMKiller``, kernel memory, network class and priorities.
Realtime CPU limits cannot be honoured and are refused.
"""

from __future__ import annotations

import errno
import posixpath
import signal
import time
from collections.abc import Mapping

from berth.errors import ContainerError, HostError, InvalidArgument
from berth.runtime.cgroups.common import (
    DESTROY_TIMEOUT,
    CgroupFS,
    CgroupManager,
    as_int,
    blkio_weight_to_io_weight,
    check_unified_key,
    device_numbers,
    parse_flat_keyed,
    section,
    shares_to_weight,
)
from berth.runtime.log import LazyLogger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = LazyLogger(__name__)

# Controllers a container's cgroup gets, where the parent offers them.
WANTED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids", "hugetlb", "misc", "rdma")
DEFAULT_CPU_PERIOD = 100000


def swap_max(limit: int | None, swap: int | None) -> str | None:
    """``memory.swap.max`` for the spec's ``limit`` and ``swap`` (memory+swap), or ``None``
    to leave it as it is."""
    if swap is None or swap == 0:
        return "max" if limit == -1 else None
    if swap == -1:
        return "max"
    if limit is None or limit == 0 or limit == -1:
        raise InvalidArgument(
            f"linux.resources.memory.swap ({swap}) needs a memory limit on cgroup v2",
            hint="set linux.resources.memory.limit too, or swap -1 for no swap limit",
        )
    if swap < limit:
        raise InvalidArgument(
            f"linux.resources.memory.swap ({swap}) is below memory.limit ({limit})",
            hint="swap is the memory+swap total and must be at least the memory limit",
        )
    return str(swap - limit)


class V2Manager(CgroupManager):
    """A container's cgroup on a v2 host: ``directory`` under the hierarchy at ``mount``."""

    version = 2

    def __init__(
        self,
        path: str,
        mount: str,
        directory: str,
        *,
        fs: CgroupFS | None = None,
        created: list[str] | None = None,
    ) -> None:
        super().__init__(path, fs)
        self.mount = mount
        self.directory = directory
        self.created = list(created or [])

    def create(self, resources: Mapping[str, Any] | None = None) -> None:
        try:
            parent = posixpath.dirname(self.directory)
            if parent != self.mount:
                self._note_made(self._mkdirs(self.mount, parent), self.directory)
            self._enable_controllers()  # before the leaf exists, so it has every file
            self._note_made(self._mkdirs(self.mount, self.directory), self.directory)
            self._apply(resources or {}, updating=False)
        except BaseException:
            try:
                self.destroy()
            except ContainerError:
                log.warning("could not clean up cgroup %s after a failed create", self.path)
            raise

    def _enable_controllers(self) -> None:
        """Turn the wanted controllers on in every ancestor's ``cgroup.subtree_control``."""
        relative = posixpath.relpath(posixpath.dirname(self.directory), self.mount)
        levels = [self.mount]
        if relative != ".":
            for part in relative.split("/"):
                levels.append(posixpath.join(levels[-1], part))
        for level in levels:
            available = self._read(level, "cgroup.controllers").split()
            enabled = self._read(level, "cgroup.subtree_control").split()
            for controller in WANTED_CONTROLLERS:
                if controller not in available or controller in enabled:
                    continue
                try:
                    self.fs.write(posixpath.join(level, "cgroup.subtree_control"),
                                  f"+{controller}")
                except OSError as exc:
                    log.warning("cgroup %s: cannot enable the %s controller: %s",
                                level, controller, exc.strerror)

    def update(self, resources: Mapping[str, Any]) -> None:
        self._apply(resources, updating=True)

    def add_process(self, pid: int) -> None:
        try:
            self.fs.write(posixpath.join(self.directory, "cgroup.procs"), str(pid))
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ContainerError(f"process {pid} exited before it joined its cgroup",
                                     hint="see the container's output for why") from exc
            raise ContainerError(
                f"cannot move process {pid} into cgroup {self.directory}: {exc.strerror}",
                hint="the cgroup may have been removed",
            ) from exc

    def pids(self) -> list[int]:
        try:
            text = self._read(self.directory, "cgroup.procs")
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    # --- resources -----------------------------------------------------------------------

    def _apply(self, resources: Mapping[str, Any], *, updating: bool) -> None:
        self._memory(section(resources, "memory"), updating=updating)
        self._cpu(section(resources, "cpu"))
        self._cpuset(section(resources, "cpu"))
        self._pids(section(resources, "pids"))
        self._io(section(resources, "blockIO"))
        self._hugetlb(resources.get("hugepageLimits"))
        self._unsupported(resources)
        self._unified(resources.get("unified"))

    def _memory(self, memory: Mapping[str, Any], *, updating: bool) -> None:
        directory = self.directory
        limit = as_int(memory.get("limit"), "linux.resources.memory.limit") or None
        swap = as_int(memory.get("swap"), "linux.resources.memory.swap") or None
        reservation = as_int(memory.get("reservation"),
                             "linux.resources.memory.reservation") or None
        if limit is not None:
            if updating and memory.get("checkBeforeUpdate") and limit != -1:
                current = self._read_int(directory, "memory.current") or 0
                if limit < current:
                    raise InvalidArgument(
                        f"memory limit {limit} is below the container's current usage "
                        f"({current})",
                        hint="raise the limit, or free memory in the container first",
                    )
            self._write(directory, "memory.max", "max" if limit == -1 else limit)
        swap_value = swap_max(limit, swap)
        if swap_value is not None:
            if self._has(directory, "memory.swap.max"):
                self._write(directory, "memory.swap.max", swap_value)
            elif swap_value != "max":
                log.warning("cgroup %s: this kernel does not account swap "
                            "(no memory.swap.max); the swap limit is ignored", self.path)
        if reservation is not None:
            self._write(directory, "memory.low", "max" if reservation == -1 else reservation)

    def _cpu(self, cpu: Mapping[str, Any]) -> None:
        directory = self.directory
        shares = as_int(cpu.get("shares"), "linux.resources.cpu.shares")
        if shares:
            self._write(directory, "cpu.weight", shares_to_weight(shares))
        quota = as_int(cpu.get("quota"), "linux.resources.cpu.quota")
        period = as_int(cpu.get("period"), "linux.resources.cpu.period") or None
        if quota or period:
            current = self._read(directory, "cpu.max").split()
            old_quota = current[0] if current else "max"
            old_period = int(current[1]) if len(current) > 1 else DEFAULT_CPU_PERIOD
            new_quota = old_quota if not quota else ("max" if quota < 0 else str(quota))
            self._write(directory, "cpu.max", f"{new_quota} {period or old_period}")
        burst = as_int(cpu.get("burst"), "linux.resources.cpu.burst")
        if burst is not None:
            self._write(directory, "cpu.max.burst", burst)
        idle = as_int(cpu.get("idle"), "linux.resources.cpu.idle")
        if idle:
            self._write(directory, "cpu.idle", idle)
        for key in ("realtimeRuntime", "realtimePeriod"):
            if as_int(cpu.get(key), f"linux.resources.cpu.{key}"):
                raise InvalidArgument(
                    f"linux.resources.cpu.{key} cannot be honoured: cgroup v2 has no "
                    "realtime CPU limits",
                    hint="remove the realtime settings (--cpu-rt-runtime, --cpu-rt-period)",
                )

    def _cpuset(self, cpu: Mapping[str, Any]) -> None:
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            value = cpu.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise InvalidArgument(f"linux.resources.cpu.{key} must be a string such as "
                                      f"'0-3,7', got {value!r}")
            self._write(self.directory, name, value)

    def _pids(self, pids: Mapping[str, Any]) -> None:
        limit = as_int(pids.get("limit"), "linux.resources.pids.limit")
        if limit:
            self._write(self.directory, "pids.max", "max" if limit < 0 else limit)

    def _io(self, blkio: Mapping[str, Any]) -> None:
        if not blkio:
            return
        directory = self.directory
        bfq = self._has(directory, "io.bfq.weight")
        weight = as_int(blkio.get("weight"), "linux.resources.blockIO.weight")
        if weight:
            if bfq:
                self._write(directory, "io.bfq.weight", weight)
            else:
                self._write(directory, "io.weight", blkio_weight_to_io_weight(weight))
        for n, device in enumerate(blkio.get("weightDevice") or []):
            where = f"linux.resources.blockIO.weightDevice[{n}]"
            value = as_int(device.get("weight"), f"{where}.weight")
            if not value:
                continue
            if bfq:
                self._write(directory, "io.bfq.weight", f"{device_numbers(device, where)} {value}")
            else:
                self._write(directory, "io.weight",
                            f"{device_numbers(device, where)} {blkio_weight_to_io_weight(value)}")
        for key, limit_key in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for n, device in enumerate(blkio.get(key) or []):
                where = f"linux.resources.blockIO.{key}[{n}]"
                rate = as_int(device.get("rate"), f"{where}.rate")
                setting = "max" if not rate else str(rate)
                self._write(directory, "io.max",
                            f"{device_numbers(device, where)} {limit_key}={setting}")

    def _hugetlb(self, limits: Any) -> None:
        for n, entry in enumerate(limits or []):
            where = f"linux.resources.hugepageLimits[{n}]"
            size = entry.get("pageSize")
            limit = as_int(entry.get("limit"), f"{where}.limit")
            if not isinstance(size, str) or not size:
                raise InvalidArgument(f"{where}.pageSize must be a size such as '2MB'")
            self._write(self.directory, f"hugetlb.{size}.max", limit or 0)

    def _unsupported(self, resources: Mapping[str, Any]) -> None:
        devices = resources.get("devices")
        if devices and devices != [{"allow": True, "access": "rwm"}]:
            log.warning(
                "cgroup %s: the devices allowlist is not enforced on cgroup v2 (it needs an "
                "eBPF program, which berth does not load yet); the container still sees "
                "only the device nodes created in its /dev", self.path)
        memory = section(resources, "memory")
        if memory.get("swappiness") is not None:
            log.warning("cgroup %s: memory.swappiness does not exist on cgroup v2; ignored",
                        self.path)
        if memory.get("disableOOMKiller"):
            log.warning("cgroup %s: the OOM killer cannot be disabled on cgroup v2; ignored",
                        self.path)
        if section(resources, "network"):
            log.warning("cgroup %s: network class and priorities do not exist on cgroup v2; "
                        "ignored", self.path)

    def _unified(self, unified: Any) -> None:
        if not unified:
            return
        if not isinstance(unified, Mapping):
            raise InvalidArgument(f"linux.resources.unified must be an object, got {unified!r}")
        for key, value in unified.items():
            name = check_unified_key(key)
            if not self._has(self.directory, name):
                raise InvalidArgument(
                    f"linux.resources.unified: {name} is not a file of the container's cgroup",
                    hint="check the name, and that its controller is enabled on this host",
                )
            self._write(self.directory, name, str(value))

    # --- freezer -------------------------------------------------------------------------

    def freezer_state(self) -> str:
        try:
            events = parse_flat_keyed(self._read(self.directory, "cgroup.events"))
        except FileNotFoundError:
            return "THAWED"
        if events.get("frozen") == 1:
            return "FROZEN"
        if self._read_int(self.directory, "cgroup.freeze") == 1:
            return "FREEZING"
        return "THAWED"

    def _set_freeze(self, value: int) -> None:
        if not self._has(self.directory, "cgroup.freeze"):
            raise HostError("this kernel cannot freeze cgroup v2 groups (no cgroup.freeze)",
                            hint="cgroup v2 freezing needs Linux 5.2 or later")
        self._write(self.directory, "cgroup.freeze", value)

    def freeze(self) -> None:
        self._set_freeze(1)
        try:
            self._wait_state("FROZEN")
        except ContainerError:
            self._set_freeze(0)
            raise

    def thaw(self) -> None:
        self._set_freeze(0)
        self._wait_state("THAWED")

    def kill_all(self, sig: int) -> None:
        if sig == signal.SIGKILL and self._has(self.directory, "cgroup.kill"):
            self._write(self.directory, "cgroup.kill", 1)
            return
        super().kill_all(sig)

    # --- reading -------------------------------------------------------------------------

    def _flat(self, name: str) -> dict[str, int]:
        try:
            return parse_flat_keyed(self._read(self.directory, name))
        except FileNotFoundError:
            return {}

    def oom_killed(self) -> bool:
        return self._flat("memory.events").get("oom_kill", 0) > 0

    def stats(self) -> dict[str, Any]:
        directory = self.directory
        memory_stat = self._flat("memory.stat")
        cpu_stat = self._flat("cpu.stat")
        return {
            "memory_stats": {
                "usage": self._read_int(directory, "memory.current") or 0,
                "max_usage": self._read_int(directory, "memory.peak"),
                "limit": self._read_int(directory, "memory.max"),
                "failcnt": self._flat("memory.events").get("max", 0),
                "cache": memory_stat.get("file", 0),
                "stats": memory_stat,
            },
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": cpu_stat.get("usage_usec", 0) * 1000,
                    "percpu_usage": [],
                    "usage_in_usermode": cpu_stat.get("user_usec", 0) * 1000,
                    "usage_in_kernelmode": cpu_stat.get("system_usec", 0) * 1000,
                },
                "throttling_data": {
                    "periods": cpu_stat.get("nr_periods", 0),
                    "throttled_periods": cpu_stat.get("nr_throttled", 0),
                    "throttled_time": cpu_stat.get("throttled_usec", 0) * 1000,
                },
            },
            "pids_stats": {
                "current": self._read_int(directory, "pids.current") or 0,
                "limit": self._read_int(directory, "pids.max"),
            },
            "blkio_stats": {"io_service_bytes_recursive": self._io_stats()},
        }

    def _io_stats(self) -> list[dict[str, Any]]:
        try:
            text = self._read(self.directory, "io.stat")
        except FileNotFoundError:
            return []
        entries: list[dict[str, Any]] = []
        for line in text.splitlines():
            device, *pairs = line.split()
            if ":" not in device:
                continue
            major, minor = (int(n) for n in device.split(":"))
            values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if key in values:
                    entries.append({"major": major, "minor": minor, "op": op,
                                    "value": int(values[key])})
        return entries

    # --- removal -------------------------------------------------------------------------

    def destroy(self) -> None:
        deadline = time.monotonic() + DESTROY_TIMEOUT
        self._remove_dir(self.directory, deadline)
        self._prune(d for d in self.created if d != self.directory)
        self.created = []

    def to_state(self) -> dict[str, Any]:
        return {"version": 2, "path": self.path, "mount": self.mount,
                "dir": self.directory, "created": list(self.created)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], fs: CgroupFS | None = None) -> V2Manager:
        return cls(str(state["path"]), str(state["mount"]), str(state["dir"]), fs=fs,
                   created=list(state.get("created") or []))

