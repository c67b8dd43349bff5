"""``docker stats``: resource usage samples of containers, in the Engine API's shape, and the
numbers the CLI shows from two of them.

A sample reads the container's cgroup (through its runtime), the host's CPU time (``/proc/stat``,
what ``system_cpu_usage`` means) and the interfaces of the container's network namespace
(``/proc/<pid>/net/dev``). CPU % needs two samples, as Docker computes it: the container's CPU
time over the host's in between, times the number of CPUs. A container that is not running
gives a sample of zeros.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.errors import BerthError

if TYPE_CHECKING:
    from berth.containers.records import ContainerRecord
    from berth.engine import Engine
    from berth.engine.containers import Container

ZERO_TIME = "0001-01-01T00:00:00Z"
NET_FIELDS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
)


@dataclass(frozen=True, slots=True)
class StatsLine:
    """What one line of ``docker stats`` shows for a container."""

    cpu_percent: float
    memory: float
    memory_limit: float
    memory_percent: float
    net_rx: float
    net_tx: float
    block_read: float
    block_write: float
    pids: int


# --------------------------------------------------------------------------------- the host


def host_cpu() -> tuple[int, int]:
    """(``system_cpu_usage``: the host's CPU time in ns, number of online CPUs)."""
    ticks = os.sysconf("SC_CLK_TCK") or 100
    total = 0
    cpus = 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                fields = [int(v) for v in line.split()[1:9]]  # user .. steal
                total = sum(fields) * 1_000_000_000 // ticks
            elif line.startswith("cpu"):
                cpus += 1
    return total, cpus


def host_memory() -> int:
    """MemTotal of /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def network_of(pid: int) -> dict[str, dict[str, int]]:
    """Counters of each interface but ``lo`` in the network namespace of ``pid``."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return {}
    return parse_net_dev(lines)


def parse_net_dev(lines: Sequence[str]) -> dict[str, dict[str, int]]:
    """``/proc/net/dev`` lines (headers removed) -> ``{"eth0": {"rx_bytes": ...}}``."""
    out: dict[str, dict[str, int]] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not name or name == "lo" or len(values) < 16:
            continue
        numbers = [int(v) for v in values]
        rx, tx = numbers[0:4], numbers[8:12]
        out[name] = dict(zip(NET_FIELDS, rx + tx, strict=True))
    return out


# ------------------------------------------------------------------------------ one sample


def sample(engine: Engine, record: ContainerRecord) -> dict[str, Any]:
    """One stats document (``precpu_stats`` empty) of the container as it is now."""
    from berth.containers.records import now_rfc3339

    system, cpus = host_cpu()
    document: dict[str, Any] = {
        "read": now_rfc3339(),
        "preread": ZERO_TIME,
        "id": record.id,
        "name": "/" + record.name,
        "num_procs": 0,
        "pids_stats": {},
        "blkio_stats": {"io_service_bytes_recursive": None},
        "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
        "memory_stats": {},
    }
    if not record.running:
        document["read"] = ZERO_TIME
        return document
    try:
        found = engine.containers.launcher.runtime(record).stats(record.id)
    except (BerthError, OSError):
        return document
    if "cpu_stats" not in found and "cpu" in found:
        found = from_runc_stats(found)
    cpu = dict(found.get("cpu_stats") or {})
    cpu["system_cpu_usage"] = system
    cpu["online_cpus"] = cpus
    memory = dict(found.get("memory_stats") or {})
    limit = memory.get("limit")
    total = host_memory()
    memory["limit"] = min(limit, total) if limit and total else (limit or total)
    document.update(
        cpu_stats=cpu,
        memory_stats=memory,
        pids_stats=dict(found.get("pids_stats") or {}),
        blkio_stats=dict(found.get("blkio_stats") or {}),
    )
    if str(record.host_config.get("NetworkMode") or "") != "host":
        pid = int(record.state.get("Pid") or 0)
        if pid:
            document["networks"] = network_of(pid)
    return document


def from_runc_stats(data: Mapping[str, Any]) -> dict[str, Any]:
    """``runc events --stats`` data (runc's and crun's shape) in the Engine API's shape."""
    cpu = data.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    memory = data.get("memory") or {}
    memory_usage = memory.get("usage") or {}
    limit = memory_usage.get("limit")
    raw = dict(memory.get("raw") or {})
    blkio = data.get("blkio") or {}
    return {
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": usage.get("total", 0),
                "percpu_usage": list(usage.get("percpu") or []),
                "usage_in_kernelmode": usage.get("kernel", 0),
                "usage_in_usermode": usage.get("user", 0),
            },
            "throttling_data": {
                "periods": throttling.get("periods", 0),
                "throttled_periods": throttling.get("throttledPeriods", 0),
                "throttled_time": throttling.get("throttledTime", 0),
            },
        },
        "memory_stats": {
            "usage": memory_usage.get("usage", 0),
            "max_usage": memory_usage.get("max"),
            "limit": None if not limit or limit >= 1 << 62 else limit,
            "failcnt": memory_usage.get("failcnt", 0),
            "cache": memory.get("cache", 0),
            "stats": raw,
        },
        "pids_stats": dict(data.get("pids") or {}),
        "blkio_stats": {
            "io_service_bytes_recursive": list(blkio.get("ioServiceBytesRecursive") or [])
        },
    }


def with_previous(current: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """``current`` with ``precpu_stats`` and ``preread`` taken from the sample before it."""
    if previous is not None:
        current["precpu_stats"] = dict(previous.get("cpu_stats") or {})
        current["preread"] = previous.get("read", ZERO_TIME)
    return current


def stream(
    engine: Engine, container: Container, *, interval: float = 1.0
) -> Iterator[dict[str, Any]]:
    """A sample every ``interval`` seconds, each with the one before as ``precpu_stats``."""
    from berth.engine.container_ops import current_record

    previous: dict[str, Any] | None = None
    while True:
        current = with_previous(sample(engine, current_record(engine, container)), previous)
        yield current
        previous = current
        time.sleep(interval)


def stats_once(engine: Engine, container: Container, *, interval: float = 1.0) -> dict[str, Any]:
    """docker-py's ``stats(stream=False)``: one sample, with ``precpu_stats`` from
    ``interval`` seconds before (so CPU % can be computed from it)."""
    from berth.engine.container_ops import current_record

    first = sample(engine, current_record(engine, container))
    if not current_record(engine, container).running:
        return first
    time.sleep(interval)
    return with_previous(sample(engine, current_record(engine, container)), first)


# ------------------------------------------------------------------------------ the numbers


def stats_line(document: Mapping[str, Any]) -> StatsLine:
    """The numbers ``docker stats`` prints, from a document with ``precpu_stats``."""
    cpu = document.get("cpu_stats") or {}
    pre = document.get("precpu_stats") or {}
    memory = document.get("memory_stats") or {}
    usage = memory_usage(memory)
    limit = float(memory.get("limit") or 0)
    net_rx = net_tx = 0.0
    for counters in (document.get("networks") or {}).values():
        net_rx += counters.get("rx_bytes", 0)
        net_tx += counters.get("tx_bytes", 0)
    read = write = 0.0
    for entry in (document.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    return StatsLine(
        cpu_percent=cpu_percent(cpu, pre),
        memory=usage,
        memory_limit=limit,
        memory_percent=usage / limit * 100.0 if limit else 0.0,
        net_rx=net_rx,
        net_tx=net_tx,
        block_read=read,
        block_write=write,
        pids=int((document.get("pids_stats") or {}).get("current") or 0),
    )


def cpu_percent(cpu: Mapping[str, Any], pre: Mapping[str, Any]) -> float:
    """Docker's CPU %: the container's CPU time over the host's between two samples, times
    the number of CPUs (so one busy CPU is 100%)."""
    total = float((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
    pre_total = float((pre.get("cpu_usage") or {}).get("total_usage") or 0)
    system = float(cpu.get("system_cpu_usage") or 0)
    pre_system = float(pre.get("system_cpu_usage") or 0)
    online = float(cpu.get("online_cpus") or 0)
    if not online:
        online = float(len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []))
    cpu_delta = total - pre_total
    system_delta = system - pre_system
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(memory: Mapping[str, Any]) -> float:
    """Usage without the page cache that could be dropped (Docker's rule: cgroup v1's
    ``total_inactive_file``, v2's ``inactive_file``)."""
    usage = float(memory.get("usage") or 0)
    stat = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in stat and stat[key] < usage:
            return usage - float(stat[key])
    return usage
