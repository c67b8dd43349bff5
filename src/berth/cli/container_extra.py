"""Handlers of ``top``, ``stats``, ``cp``, ``commit``, ``export``, ``diff``, ``update`` and
``attach``: parse, call the engine, print as docker prints."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from berth.cli.flags import Invocation
from berth.cli.render import write
from berth.engine import Engine
from berth.engine.containers import Container
from berth.errors import BerthError, ContainerStateConflict, InvalidArgument

STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
    "{{.BlockIO}}\t{{.PIDs}}"
)
STATS_INTERVAL = 1.0
CLEAR_SCREEN = "\033[2J\033[H"


# ------------------------------------------------------------------------------------ top


def top(inv: Invocation) -> int:
    from berth.cli.tabwriter import align
    from berth.engine.container_ops import top as container_top

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    result = container_top(engine, container, inv.args[1:])
    lines = ["\t".join(result["Titles"])]
    lines += ["\t".join(process) for process in result["Processes"]]
    write(align("\n".join(lines) + "\n", minwidth=20, tabwidth=1, padding=3))
    return 0


# ---------------------------------------------------------------------------------- stats


def stats(inv: Invocation) -> int:
    from berth.engine import container_stats

    engine = Engine()
    named = list(inv.args)
    fmt = inv.get_str("format")
    no_trunc = inv.get_bool("no_trunc")
    stream = not inv.get_bool("no_stream")
    terminal = stream and sys.stdout.isatty()
    previous: dict[str, dict[str, Any]] = {}
    failed = False
    while True:
        watched, errors = _stats_targets(engine, named, inv.get_bool("all"))
        if errors and not stream:
            for error in errors:
                sys.stderr.write(f"Error response from daemon: {error}\n")
            failed = True
        samples = {c.id: container_stats.sample(engine, c.record) for _, c in watched}
        waiting = [c.id for _, c in watched if c.id not in previous and c.record.running]
        if waiting:  # CPU % needs a sample from before
            time.sleep(STATS_INTERVAL)
            for _label, container in watched:
                if container.id in waiting:
                    previous[container.id] = samples[container.id]
                    container.reload()
                    samples[container.id] = container_stats.sample(engine, container.record)
        rows = []
        for label, container in watched:
            document = container_stats.with_previous(
                samples[container.id], previous.get(container.id)
            )
            rows.append(_stats_row(label, container, document, no_trunc))
        previous = samples
        frame = _render_stats(rows, fmt)
        if terminal:
            frame = CLEAR_SCREEN + frame
        write(frame)
        sys.stdout.flush()
        if not stream:
            return 1 if failed else 0
        time.sleep(STATS_INTERVAL)


def _stats_targets(
    engine: Engine, named: list[str], all_containers: bool
) -> tuple[list[tuple[str, Container]], list[BerthError]]:
    """(label, container) to show: the ones named, else the running (or all) ones."""
    if not named:
        found = engine.containers.list(all=all_containers)
        found.sort(key=lambda c: c.record.created)
        return [(c.short_id, c) for c in found], []
    watched: list[tuple[str, Container]] = []
    errors: list[BerthError] = []
    for name in named:
        try:
            watched.append((name, engine.containers.get(name)))
        except BerthError as exc:
            errors.append(exc)
    return watched, errors


def _stats_row(
    label: str, container: Container, document: dict[str, Any], no_trunc: bool
) -> dict[str, str]:
    from berth.engine.container_stats import stats_line
    from berth.units import bytes_size, human_size

    line = stats_line(document)
    return {
        "BlockIO": f"{human_size(line.block_read)} / {human_size(line.block_write)}",
        "CPUPerc": f"{line.cpu_percent:.2f}%",
        "Container": label,
        "ID": container.id if no_trunc else container.short_id,
        "MemPerc": f"{line.memory_percent:.2f}%",
        "MemUsage": f"{bytes_size(line.memory)} / {bytes_size(line.memory_limit)}",
        "Name": container.name,
        "NetIO": f"{human_size(line.net_rx)} / {human_size(line.net_tx)}",
        "PIDs": str(line.pids),
    }


def _render_stats(rows: list[dict[str, str]], fmt: str) -> str:
    from berth.cli.render import format_rows

    return format_rows(rows, fmt, default_table=STATS_TABLE, headers=STATS_HEADERS)


# ------------------------------------------------------------------------------------- cp


def split_copy_argument(text: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path -> (None, path).

    As docker: a path starting with ``/`` or ``.`` is local whatever it contains, so
    ``./a:b`` names a local file.
    """
    if text.startswith(("/", ".")) or text == "-":
        return None, text
    container, colon, path = text.partition(":")
    if not colon or not container:
        return None, text
    return container, path


def cp(inv: Invocation) -> int:
    from berth.engine import container_archive as archive

    src_container, src = split_copy_argument(inv.args[0])
    dest_container, dest = split_copy_argument(inv.args[1])
    if src_container and dest_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dest_container:
        raise InvalidArgument("must specify at least one container source")
    follow = inv.get_bool("follow_link")
    keep_owners = inv.get_bool("archive")
    engine = Engine()
    if src_container:
        container = engine.containers.get(src_container)
        if dest == "-":
            archive.archive_from_container(engine, container, src, sys.stdout.buffer, follow=follow)
            sys.stdout.buffer.flush()
            return 0
        result = archive.copy_from_container(
            engine, container, src, dest, follow=follow, archive=keep_owners
        )
    else:
        assert dest_container is not None
        container = engine.containers.get(dest_container)
        if src == "-":
            archive.extract_into_container(
                engine, container, dest, sys.stdin.buffer, archive=keep_owners
            )
            return 0
        result = archive.copy_to_container(
            engine, container, src, dest, follow=follow, archive=keep_owners
        )
    if not inv.get_bool("quiet") and sys.stderr.isatty():
        from berth.units import human_size

        sys.stderr.write(f"Successfully copied {human_size(result.size)} to {result.destination}\n")
    return 0


# --------------------------------------------------------------------------- commit, diff


def commit(inv: Invocation) -> int:
    from berth.engine.container_ops import commit as container_commit

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    image = container_commit(
        engine,
        container,
        inv.args[1] if len(inv.args) > 1 else None,
        message=inv.get_str("message"),
        author=inv.get_str("author"),
        changes=inv.get_list("change"),
        pause=inv.get_bool("pause"),
    )
    write(image.id + "\n")
    return 0


def diff(inv: Invocation) -> int:
    from berth.engine.container_ops import changes_of, current_record

    engine = Engine()
    record = current_record(engine, engine.containers.get(inv.args[0]))
    write("".join(f"{c.kind} {c.path}\n" for c in changes_of(engine, record)))
    return 0


# --------------------------------------------------------------------------------- export


def export(inv: Invocation) -> int:
    from berth.engine.container_archive import export as container_export

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    output = inv.get_str("output")
    _write_output(output, lambda out: container_export(engine, container, out))
    return 0


def _write_output(output: str, produce: Callable[[Any], None]) -> None:
    """Write to stdout (never a terminal), to a device or fifo as it is, or to a regular
    file through a temp file renamed into place (``save``'s rule)."""
    if not output:
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        produce(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    if os.path.exists(output) and not os.path.isfile(output):
        with open(output, "wb") as out:
            produce(out)
        return
    directory = os.path.dirname(os.path.abspath(output))
    temp = os.path.join(directory, f".{os.path.basename(output)}.berth-tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as out:
            produce(out)
        os.replace(temp, output)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# --------------------------------------------------------------------------------- update


def update_changes(inv: Invocation) -> dict[str, Any]:
    """The HostConfig changes ``update``'s flags ask for."""
    from berth.units import parse_ram_size

    changes: dict[str, Any] = {}
    for flag, key in (
        ("blkio_weight", "BlkioWeight"),
        ("cpu_period", "CpuPeriod"),
        ("cpu_quota", "CpuQuota"),
        ("cpu_rt_period", "CpuRealtimePeriod"),
        ("cpu_rt_runtime", "CpuRealtimeRuntime"),
        ("cpu_shares", "CpuShares"),
        ("memory", "Memory"),
        ("memory_reservation", "MemoryReservation"),
        ("pids_limit", "PidsLimit"),
    ):
        if inv.is_set(flag):
            changes[key] = inv.options[flag]
    for flag, key in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if inv.is_set(flag):
            changes[key] = inv.get_str(flag)
    if inv.is_set("cpus"):
        text = inv.get_str("cpus")
        try:
            changes["NanoCpus"] = round(float(text) * 1e9)
        except ValueError:
            raise inv.usage_error(f'invalid argument "{text}" for "--cpus" flag') from None
    if inv.is_set("memory_swap"):
        swap = inv.get_str("memory_swap")
        changes["MemorySwap"] = -1 if swap == "-1" else parse_ram_size(swap)
    if inv.is_set("restart"):
        from berth.containers.flagvalues import parse_restart

        policy = parse_restart(inv.get_str("restart"))
        changes["RestartPolicy"] = {
            "Name": policy.name,
            "MaximumRetryCount": policy.maximum_retry_count,
        }
    return changes


def update(inv: Invocation) -> int:
    from berth.engine.container_ops import update as container_update

    changes = update_changes(inv)
    if not changes:
        raise InvalidArgument("you must provide one or more flags when using this command")
    engine = Engine()
    failed = False
    for name in inv.args:
        try:
            container_update(engine, engine.containers.get(name), changes)
            write(f"{name}\n")
        except BerthError as exc:
            sys.stderr.write(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


# --------------------------------------------------------------------------------- attach


def attach(inv: Invocation) -> int:
    from berth.engine.container_ops import current_record

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    record = current_record(engine, container)
    if record.status == "paused":
        raise ContainerStateConflict("You cannot attach to a paused container, unpause it first")
    if not record.running:
        raise ContainerStateConflict("You cannot attach to a stopped container, start it first")
    if not record.extra.get("Supervised"):
        raise ContainerStateConflict(
            f"container {record.short_id} runs in the foreground of the berth command that "
            "started it: its output is there",
            hint="attach works with containers started with -d or berth start",
        )
    tty = bool(record.config.get("Tty"))
    stdin = bool(record.config.get("OpenStdin")) and not inv.get_bool("no_stdin")
    from berth.containers.events import container_event
    from berth.monitor.client import SupervisorClient

    container_event(engine.store, "attach", record)
    client = SupervisorClient.ensure(engine.paths)
    return int(
        client.attach(
            record.id,
            stdin=stdin,
            stdout=True,
            stderr=True,
            tty=tty,
            detach_keys=inv.get_str("detach_keys") or "ctrl-p,ctrl-q",
            sig_proxy=inv.get_bool("sig_proxy") and not tty,
        )
    )
