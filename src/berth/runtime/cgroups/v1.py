"""cgroup v1: one directory per controller hierarchy (``/sys/fs/cgroup/memory/berth/<id>``...).

On a hybrid host the container is also placed in the (controller-less) v2 hierarchy, so that
``/proc/PID/cgroup`` reads as under runc and the v2 tree can tell when it empties.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

from berth.errors import ContainerError, HostError, InvalidArgument
from berth.runtime.cgroups.common import (
    DESTROY_TIMEOUT,
    FREEZE_TIMEOUT,
    UNLIMITED_V1,
    CgroupFS,
    CgroupManager,
    as_int,
    device_numbers,
    device_rule_text,
    parse_flat_keyed,
    section,
)
from berth.runtime.log import LazyLogger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

log = LazyLogger(__name__)

_UNLIMITED = 2**63  # stands for -1 when comparing limits


class V1Manager(CgroupManager):
    """A container's cgroup on a v1 (or hybrid) host.

    ``dirs``: controller -> the container's directory in that controller's hierarchy;
    ``mounts``: controller -> that hierarchy's mount point. ``unified_dir`` and
    ``unified_mount``: the same in the v2 hierarchy of a hybrid host.
    """

    version = 1

    def __init__(
        self,
        path: str,
        dirs: Mapping[str, str],
        mounts: Mapping[str, str],
        *,
        unified_dir: str | None = None,
        unified_mount: str | None = None,
        fs: CgroupFS | None = None,
        created: list[str] | None = None,
    ) -> None:
        super().__init__(path, fs)
        self.dirs = dict(dirs)
        self.mounts = dict(mounts)
        self.unified_dir = unified_dir
        self.unified_mount = unified_mount
        self.created = list(created or [])

    # --- placement -----------------------------------------------------------------------

    def _distinct(self) -> list[tuple[str, str]]:
        """(mount point, directory) pairs, each hierarchy once."""
        seen: dict[str, str] = {}
        for controller, directory in sorted(self.dirs.items()):
            seen.setdefault(directory, self.mounts[controller])
        pairs = [(mount, directory) for directory, mount in seen.items()]
        if self.unified_dir and self.unified_mount:
            pairs.append((self.unified_mount, self.unified_dir))
        return pairs

    def create(self, resources: Mapping[str, Any] | None = None) -> None:
        try:
            for mount, directory in self._distinct():
                self._note_made(self._mkdirs(mount, directory), directory)
            if "cpuset" in self.dirs:
                self._fill_cpusets(self.mounts["cpuset"], self.dirs["cpuset"])
            self._apply(resources or {}, creating=True)
        except BaseException:
            try:
                self.destroy()
            except ContainerError:
                log.warning("could not clean up cgroup %s after a failed create", self.path)
            raise

    def _fill_cpusets(self, mount: str, directory: str) -> None:
        """A new v1 cpuset starts with no CPUs and no memory nodes (no process may join it):
        give each level its parent's."""
        parts = posixpath.relpath(directory, mount).split("/")
        parent = mount
        for part in parts:
            current = posixpath.join(parent, part)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not self._read(current, name).strip():
                    self._write(current, name, self._read(parent, name).strip())
            parent = current

    def update(self, resources: Mapping[str, Any]) -> None:
        self._apply(resources, creating=False)

    def add_process(self, pid: int) -> None:
        for _, directory in self._distinct():
            try:
                self.fs.write(posixpath.join(directory, "cgroup.procs"), str(pid))
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    raise ContainerError(f"process {pid} exited before it joined its cgroup",
                                         hint="see the container's output for why") from exc
                raise ContainerError(
                    f"cannot move process {pid} into cgroup {directory}: {exc.strerror}",
                    hint="the cgroup may have been removed, or a cpuset has no CPUs",
                ) from exc

    def _procs_dir(self) -> str:
        for controller in ("freezer", "pids", "memory", "cpu", "devices"):
            if controller in self.dirs:
                return self.dirs[controller]
        if self.dirs:
            return next(iter(self.dirs.values()))
        raise HostError("no cgroup v1 controller is mounted")

    def pids(self) -> list[int]:
        try:
            text = self._read(self._procs_dir(), "cgroup.procs")
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    # --- resources -----------------------------------------------------------------------

    def _dir(self, controller: str, what: str) -> str:
        directory = self.dirs.get(controller)
        if directory is None:
            raise HostError(
                f"cannot apply {what}: the {controller} cgroup controller is not mounted",
                hint=f"mount it (cgroup v1: /sys/fs/cgroup/{controller}) or drop the setting",
            )
        return directory

    def _apply(self, resources: Mapping[str, Any], *, creating: bool) -> None:
        self._memory(section(resources, "memory"))
        self._cpu(section(resources, "cpu"))
        self._cpuset(section(resources, "cpu"))
        self._pids(section(resources, "pids"))
        self._blkio(section(resources, "blockIO"))
        self._hugetlb(resources.get("hugepageLimits"))
        self._network(section(resources, "network"))
        devices = resources.get("devices")
        if devices is not None:
            self._devices(devices, creating=creating)
        if resources.get("unified"):
            raise InvalidArgument(
                "linux.resources.unified needs cgroup v2, and this host manages its "
                "controllers with cgroup v1",
                hint="express the limits with the v1 fields (memory, cpu, pids, ...)",
            )

    def _memory(self, memory: Mapping[str, Any]) -> None:
        limit = as_int(memory.get("limit"), "linux.resources.memory.limit") or None
        swap = as_int(memory.get("swap"), "linux.resources.memory.swap") or None
        reservation = as_int(memory.get("reservation"),
                             "linux.resources.memory.reservation") or None
        swappiness = as_int(memory.get("swappiness"), "linux.resources.memory.swappiness")
        kernel_tcp = as_int(memory.get("kernelTCP"), "linux.resources.memory.kernelTCP")
        disable_oom = memory.get("disableOOMKiller")
        if not any(v is not None for v in (limit, swap, reservation, swappiness, kernel_tcp)) \
                and not disable_oom:
            return
        directory = self._dir("memory", "a memory limit")
        if limit is not None or swap is not None:
            self._memory_limits(directory, limit, swap)
        if reservation is not None:
            self._write(directory, "memory.soft_limit_in_bytes", reservation)
        if memory.get("kernel") not in (None, 0, -1):
            log.warning("cgroup %s: kernel memory limits are obsolete; ignored", self.path)
        if kernel_tcp:
            self._write(directory, "memory.kmem.tcp.limit_in_bytes", kernel_tcp)
        if swappiness is not None:
            if not 0 <= swappiness <= 100:
                raise InvalidArgument(
                    f"linux.resources.memory.swappiness must be 0 to 100, got {swappiness}"
                )
            self._write(directory, "memory.swappiness", swappiness)
        if disable_oom:
            self._write(directory, "memory.oom_control", 1)

    def _memory_limits(self, directory: str, limit: int | None, swap: int | None) -> None:
        has_memsw = self._has(directory, "memory.memsw.limit_in_bytes")
        if swap is not None and not has_memsw:
            log.warning("cgroup %s: this kernel does not account swap (no memsw); "
                        "the memory+swap limit is ignored", self.path)
            swap = None
        if swap is None and limit == -1 and has_memsw:
            swap = -1  # memory+swap may never be below memory: lift both
        if swap is not None and limit not in (None, -1) and swap != -1 and swap < limit:
            raise InvalidArgument(
                f"linux.resources.memory.swap ({swap}) is below memory.limit ({limit})",
                hint="swap is the memory+swap total and must be at least the memory limit",
            )
        current = self._read_int(directory, "memory.limit_in_bytes") or _UNLIMITED
        swap_first = swap is not None and (swap == -1 or swap >= current)
        if swap is not None and swap_first:
            self._write(directory, "memory.memsw.limit_in_bytes", swap)
        if limit is not None:
            self._write(directory, "memory.limit_in_bytes", limit)
        if swap is not None and not swap_first:
            self._write(directory, "memory.memsw.limit_in_bytes", swap)

    def _cpu(self, cpu: Mapping[str, Any]) -> None:
        shares = as_int(cpu.get("shares"), "linux.resources.cpu.shares") or None
        period = as_int(cpu.get("period"), "linux.resources.cpu.period") or None
        quota = as_int(cpu.get("quota"), "linux.resources.cpu.quota") or None
        burst = as_int(cpu.get("burst"), "linux.resources.cpu.burst")
        rt_period = as_int(cpu.get("realtimePeriod"), "linux.resources.cpu.realtimePeriod")
        rt_runtime = as_int(cpu.get("realtimeRuntime"), "linux.resources.cpu.realtimeRuntime")
        idle = as_int(cpu.get("idle"), "linux.resources.cpu.idle")
        if not any(v for v in (shares, period, quota, burst, rt_period, rt_runtime, idle)):
            return
        directory = self._dir("cpu", "a CPU limit")
        if shares is not None:
            if not 2 <= shares <= 262144:
                raise InvalidArgument(
                    f"linux.resources.cpu.shares must be 2 to 262144, got {shares}"
                )
            self._write(directory, "cpu.shares", shares)
        self._cfs(directory, period, quota)
        if burst:
            self._write(directory, "cpu.cfs_burst_us", burst)
        if rt_period:
            self._write(directory, "cpu.rt_period_us", rt_period)
        if rt_runtime:
            self._write(directory, "cpu.rt_runtime_us", rt_runtime)
        if idle:
            self._write(directory, "cpu.idle", idle)

    def _cfs(self, directory: str, period: int | None, quota: int | None) -> None:
        if quota is not None and quota > 0 and quota < 1000:
            raise InvalidArgument(
                f"linux.resources.cpu.quota must be at least 1000 (µs), got {quota}"
            )
        if period is not None and not 1000 <= period <= 1000000:
            raise InvalidArgument(
                f"linux.resources.cpu.period must be 1000 to 1000000 (µs), got {period}"
            )
        writes = []
        if period is not None:
            writes.append(("cpu.cfs_period_us", period))
        if quota is not None:
            writes.append(("cpu.cfs_quota_us", quota if quota > 0 else -1))
        try:
            for name, value in writes:
                self._write(directory, name, value)
        except InvalidArgument:
            # A new period can clash with the old quota (or the reverse): other order.
            for name, value in reversed(writes):
                self._write(directory, name, value)

    def _cpuset(self, cpu: Mapping[str, Any]) -> None:
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            value = cpu.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise InvalidArgument(f"linux.resources.cpu.{key} must be a string such as "
                                      f"'0-3,7', got {value!r}")
            self._write(self._dir("cpuset", f"cpu.{key}"), name, value)

    def _pids(self, pids: Mapping[str, Any]) -> None:
        limit = as_int(pids.get("limit"), "linux.resources.pids.limit")
        if not limit:
            return
        directory = self._dir("pids", "a pids limit")
        self._write(directory, "pids.max", "max" if limit < 0 else limit)

    def _blkio(self, blkio: Mapping[str, Any]) -> None:
        if not blkio:
            return
        directory = self._dir("blkio", "block I/O limits")
        weight = as_int(blkio.get("weight"), "linux.resources.blockIO.weight")
        prefix = "blkio.bfq." if not self._has(directory, "blkio.weight") else "blkio."
        if weight:
            self._write(directory, f"{prefix}weight", weight)
        leaf = as_int(blkio.get("leafWeight"), "linux.resources.blockIO.leafWeight")
        if leaf:
            if self._has(directory, "blkio.leaf_weight"):
                self._write(directory, "blkio.leaf_weight", leaf)
            else:
                log.warning("cgroup %s: blkio leaf weights are not supported; ignored",
                            self.path)
        for n, device in enumerate(blkio.get("weightDevice") or []):
            where = f"linux.resources.blockIO.weightDevice[{n}]"
            value = as_int(device.get("weight"), f"{where}.weight")
            if value:
                self._write(directory, f"{prefix}weight_device",
                            f"{device_numbers(device, where)} {value}")
        for key, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for n, device in enumerate(blkio.get(key) or []):
                where = f"linux.resources.blockIO.{key}[{n}]"
                rate = as_int(device.get("rate"), f"{where}.rate")
                self._write(directory, name, f"{device_numbers(device, where)} {rate or 0}")

    def _hugetlb(self, limits: Any) -> None:
        if not limits:
            return
        directory = self._dir("hugetlb", "huge page limits")
        for n, entry in enumerate(limits):
            where = f"linux.resources.hugepageLimits[{n}]"
            size = entry.get("pageSize")
            limit = as_int(entry.get("limit"), f"{where}.limit")
            if not isinstance(size, str) or not size:
                raise InvalidArgument(f"{where}.pageSize must be a size such as '2MB'")
            self._write(directory, f"hugetlb.{size}.limit_in_bytes", limit or 0)

    def _network(self, network: Mapping[str, Any]) -> None:
        class_id = as_int(network.get("classID"), "linux.resources.network.classID")
        if class_id:
            self._write(self._dir("net_cls", "a network class id"), "net_cls.classid",
                        class_id)
        for n, entry in enumerate(network.get("priorities") or []):
            where = f"linux.resources.network.priorities[{n}]"
            priority = as_int(entry.get("priority"), f"{where}.priority")
            self._write(self._dir("net_prio", "network priorities"), "net_prio.ifpriomap",
                        f"{entry.get('name')} {priority or 0}")

    def _devices(self, rules: Any, *, creating: bool) -> None:
        from berth.runtime.defaults import implicit_device_rules

        if not isinstance(rules, list):
            raise InvalidArgument(f"linux.resources.devices must be a list, got {rules!r}")
        directory = self.dirs.get("devices")
        if directory is None:
            log.warning("cgroup %s: no devices controller; device rules are not enforced",
                        self.path)
            return
        where = "linux.resources.devices"
        texts = [device_rule_text(rule, f"{where}[{n}]") for n, rule in enumerate(rules)]
        texts += [device_rule_text(rule, "implicit rule") for rule in implicit_device_rules()]
        for allow, text in texts:
            self._write(directory, "devices.allow" if allow else "devices.deny", text)

    # --- freezer -------------------------------------------------------------------------

    def freezer_state(self) -> str:
        directory = self.dirs.get("freezer")
        if directory is None:
            return "THAWED"
        try:
            return self._read(directory, "freezer.state").strip()
        except FileNotFoundError:
            return "THAWED"

    def freeze(self) -> None:
        directory = self._dir("freezer", "freeze")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.001
        while True:
            self._write(directory, "freezer.state", "FROZEN")
            if self.freezer_state() == "FROZEN":
                return
            if time.monotonic() > deadline:
                self.thaw()
                raise ContainerError(
                    f"cgroup {self.path} did not freeze",
                    hint="a process may be stuck in the kernel (uninterruptible I/O); retry",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        directory = self._dir("freezer", "thaw")
        self._write(directory, "freezer.state", "THAWED")
        self._wait_state("THAWED")

    # --- reading -------------------------------------------------------------------------

    def oom_killed(self) -> bool:
        directory = self.dirs.get("memory")
        if directory is None:
            return False
        try:
            control = parse_flat_keyed(self._read(directory, "memory.oom_control"))
        except FileNotFoundError:
            return False
        return control.get("oom_kill", 0) > 0 or control.get("under_oom", 0) > 0

    def stats(self) -> dict[str, Any]:
        return {
            "memory_stats": self._memory_stats(),
            "cpu_stats": self._cpu_stats(),
            "pids_stats": self._pids_stats(),
            "blkio_stats": self._blkio_stats(),
        }

    def _memory_stats(self) -> dict[str, Any]:
        directory = self.dirs.get("memory")
        if directory is None:
            return {}
        try:
            stat = parse_flat_keyed(self._read(directory, "memory.stat"))
        except FileNotFoundError:
            stat = {}
        limit = self._read_int(directory, "memory.limit_in_bytes")
        return {
            "usage": self._read_int(directory, "memory.usage_in_bytes") or 0,
            "max_usage": self._read_int(directory, "memory.max_usage_in_bytes"),
            "limit": None if limit is None or limit >= UNLIMITED_V1 else limit,
            "failcnt": self._read_int(directory, "memory.failcnt") or 0,
            "cache": stat.get("total_cache", stat.get("cache", 0)),
            "stats": stat,
        }

    def _cpu_stats(self) -> dict[str, Any]:
        usage: dict[str, Any] = {"total_usage": 0, "percpu_usage": [],
                                 "usage_in_usermode": 0, "usage_in_kernelmode": 0}
        directory = self.dirs.get("cpuacct")
        if directory is not None:
            usage["total_usage"] = self._read_int(directory, "cpuacct.usage") or 0
            try:
                usage["percpu_usage"] = [
                    int(v) for v in self._read(directory, "cpuacct.usage_percpu").split()
                ]
            except FileNotFoundError:
                pass
            user = self._read_int(directory, "cpuacct.usage_user")
            system = self._read_int(directory, "cpuacct.usage_sys")
            if user is None or system is None:
                user, system = self._cpuacct_ticks(directory)
            usage["usage_in_usermode"], usage["usage_in_kernelmode"] = user, system
        throttling = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        cpu_dir = self.dirs.get("cpu")
        if cpu_dir is not None:
            try:
                stat = parse_flat_keyed(self._read(cpu_dir, "cpu.stat"))
            except FileNotFoundError:
                stat = {}
            throttling = {
                "periods": stat.get("nr_periods", 0),
                "throttled_periods": stat.get("nr_throttled", 0),
                "throttled_time": stat.get("throttled_time", 0),
            }
        return {"cpu_usage": usage, "throttling_data": throttling}

    def _cpuacct_ticks(self, directory: str) -> tuple[int, int]:
        try:
            stat = parse_flat_keyed(self._read(directory, "cpuacct.stat"))
        except FileNotFoundError:
            return 0, 0
        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return stat.get("user", 0) * tick_ns, stat.get("system", 0) * tick_ns

    def _pids_stats(self) -> dict[str, Any]:
        directory = self.dirs.get("pids")
        if directory is None:
            return {}
        return {"current": self._read_int(directory, "pids.current") or 0,
                "limit": self._read_int(directory, "pids.max")}

    def _blkio_stats(self) -> dict[str, Any]:
        directory = self.dirs.get("blkio")
        entries: list[dict[str, Any]] = []
        if directory is not None:
            for name in ("blkio.throttle.io_service_bytes_recursive",
                         "blkio.io_service_bytes_recursive"):
                try:
                    text = self._read(directory, name)
                except FileNotFoundError:
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) != 3 or ":" not in parts[0]:
                        continue
                    major, minor = parts[0].split(":")
                    entries.append({"major": int(major), "minor": int(minor),
                                    "op": parts[1], "value": int(parts[2])})
                break
        return {"io_service_bytes_recursive": entries}

    # --- removal -------------------------------------------------------------------------

    def destroy(self) -> None:
        deadline = time.monotonic() + DESTROY_TIMEOUT
        leaves = [directory for _, directory in self._distinct()]
        for directory in leaves:
            self._remove_dir(directory, deadline)
        self._prune(d for d in self.created if d not in leaves)
        self.created = []

    def to_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "path": self.path,
            "dirs": dict(self.dirs),
            "mounts": dict(self.mounts),
            "unified_dir": self.unified_dir,
            "unified_mount": self.unified_mount,
            "created": list(self.created),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], fs: CgroupFS | None = None) -> V1Manager:
        return cls(
            str(state["path"]), dict(state["dirs"]), dict(state["mounts"]),
            unified_dir=state.get("unified_dir"), unified_mount=state.get("unified_mount"),
            fs=fs, created=list(state.get("created") or []),
        )

