"""What ``top``, ``diff``, ``commit`` and ``update`` do to a container (docker-py's
``Container.top()``, ``.diff()``, ``.commit()``, ``.update()``).

Each is a plain function of ``(engine, container)``; :mod:`berth.engine.containers` gives
the Container class one-line methods that call them. ``stats`` lives in
:mod:`berth.engine.container_stats`, the archive operations (``cp``, ``export``) in
:mod:`berth.engine.container_archive`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from berth.errors import (
    BerthError,
    ContainerError,
    ContainerStateConflict,
    HostError,
    ImageNotFound,
    InvalidArgument,
)

if TYPE_CHECKING:
    from berth.containers.records import ContainerRecord
    from berth.engine import Engine
    from berth.engine.containers import Container
    from berth.engine.images import Image
    from berth.oci.config import ContainerConfig
    from berth.oci.digest import Digest
    from berth.oci.reference import ImageReference
    from berth.store.changes import Change
    from berth.store.images import ImageRecord

# What Docker keeps in a container's "init" layer below its writable one, so that neither
# ``diff`` nor ``commit`` shows them: the runtime's mount points for the files berth writes
# (/etc/hosts, /etc/hostname, /etc/resolv.conf) and the kernel filesystems.
INIT_PATHS = frozenset(
    {
        "/.dockerenv",
        "/dev",
        "/dev/console",
        "/dev/pts",
        "/dev/shm",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/mtab",
        "/etc/resolv.conf",
        "/proc",
        "/sys",
    }
)
MINIMUM_MEMORY = 6 * 1024 * 1024  # docker's "Minimum memory limit allowed is 6MB"
DIFF_KINDS = {"C": 0, "A": 1, "D": 2}


def current_record(engine: Engine, container: Container) -> ContainerRecord:
    """The container's record as it is now (a dead process found out and recorded)."""
    collection = engine.containers
    return collection._reconcile(collection.records.get(container.id))


def running_record(engine: Engine, container: Container) -> ContainerRecord:
    record = current_record(engine, container)
    if not record.running:
        raise ContainerStateConflict(f"container {record.id} is not running")
    return record


# ------------------------------------------------------------------------------------- top


def top(engine: Engine, container: Container, ps_args: str | Sequence[str] = "") -> dict[str, Any]:
    """``docker top``: the host's ``ps`` (``-ef`` unless told otherwise), limited to the
    container's processes; ``{"Titles": [...], "Processes": [[...], ...]}``."""
    record = running_record(engine, container)
    pids = engine.containers.launcher.runtime(record).ps(record.id)
    args = ps_args.split() if isinstance(ps_args, str) else list(ps_args)
    return parse_ps_output(run_ps(args or ["-ef"], pids), pids)


def run_ps(args: Sequence[str], pids: Iterable[int]) -> str:
    """The output of ``ps ARGS``, asking it for just ``pids`` when the options allow."""
    wanted = ",".join(str(p) for p in sorted(pids))
    attempts = [[*args, "-q", wanted], list(args)] if wanted else [list(args)]
    failure = ""
    for argv in attempts:  # some options (forest listings) do not combine with -q
        try:
            result = subprocess.run(["ps", *argv], capture_output=True, check=False)
        except FileNotFoundError:
            raise HostError("top needs ps on the host", hint="apt-get install procps") from None
        if result.returncode == 0:
            return result.stdout.decode(errors="replace")
        failure = result.stderr.decode(errors="replace").strip()
    raise ContainerError(
        f"ps {' '.join(args)} failed: {failure or 'unknown error'}",
        hint="pass options that ps accepts, e.g. berth top CONTAINER aux",
    )


def parse_ps_output(output: str, pids: Iterable[int]) -> dict[str, Any]:
    """Keep the lines of ``ps`` output whose PID column names one of ``pids``.

    The last column (the command) may contain spaces: whatever is beyond the header's
    number of columns belongs to it.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise ContainerError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise ContainerError(
            "Couldn't find PID field in ps output", hint="include the pid column in -o"
        )
    index = titles.index("PID")
    wanted = set(pids)
    processes: list[list[str]] = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= index:
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise ContainerError(f"Unexpected pid '{fields[index]}' in ps output") from None
        if pid in wanted:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}


# ------------------------------------------------------------------------------------ diff


def changes_of(engine: Engine, record: ContainerRecord) -> list[Change]:
    """The container's changes to its image's filesystem, init-layer stubs left out."""
    from berth.store.changes import list_changes
    from berth.store.rootfs import lower_dirs

    upper = engine.containers.launcher.rootfs_dirs(record.id).upper
    if not os.path.isdir(upper):
        return []
    return visible_changes(list_changes(upper, lower_dirs(engine.store, record.top_chain)))


def visible_changes(changes: Sequence[Change]) -> list[Change]:
    """Drop what Docker keeps in a container's init layer: an added mount point stub
    (``A /etc/hosts``), and a directory shown as changed only because it holds stubs
    (``C /etc``). A stub or directory with a real change below it stays."""
    stubs = {c.path for c in changes if c.kind == "A" and c.path in INIT_PATHS}
    holders = {parent for stub in stubs for parent in _parents(stub)}
    hidden: set[str] = set()
    for change in sorted(changes, key=lambda c: c.path.count("/"), reverse=True):
        path = change.path
        if path not in stubs and (path not in holders or change.kind == "D"):
            continue
        if all(c.path in hidden for c in changes if c.path.startswith(path + "/")):
            hidden.add(path)
    return [c for c in changes if c.path not in hidden]


def _parents(path: str) -> Iterator[str]:
    parent = path.rsplit("/", 1)[0]
    while parent:
        yield parent
        parent = parent.rsplit("/", 1)[0]


def diff(engine: Engine, container: Container) -> list[dict[str, Any]]:
    """``docker diff`` as the API has it: ``[{"Path": "/tmp", "Kind": 0}, ...]`` (0 changed,
    1 added, 2 deleted)."""
    record = current_record(engine, container)
    return [{"Path": c.path, "Kind": DIFF_KINDS[c.kind]} for c in changes_of(engine, record)]


# ---------------------------------------------------------------------------------- commit


def commit(
    engine: Engine,
    container: Container,
    repository: str | None = None,
    tag: str | None = None,
    *,
    message: str = "",
    author: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
) -> Image:
    """``docker commit``: a new image of the container's image plus its changes as one layer
    (none when nothing changed), with the container's config and ``changes`` applied."""
    from berth.archive.changes import apply_changes
    from berth.oci.config import ContainerConfig

    record = current_record(engine, container)
    reference = _commit_reference(repository, tag)
    config = ContainerConfig.from_json(_image_config_of(record))
    apply_changes(config, list(changes))  # a bad --change fails before anything is done
    image = engine.store.images.get(record.image_id)
    if image is None:
        raise ImageNotFound(
            f"the image of container {record.short_id} ({record.image_ref}) is gone",
            hint="a container whose image was force-removed cannot be committed",
        )
    paused = pause and record.status == "running"
    if paused:
        engine.containers.pause(container, True)
    try:
        new = _write_commit(engine, record, image, config, reference, message, author)
    finally:
        if paused:
            with contextlib.suppress(BerthError):
                engine.containers.pause(container, False)
    from berth.containers.events import container_event

    container_event(
        engine.store,
        "commit",
        record,
        comment=message,
        imageID=str(new.id),
        imageRef=reference.familiar() if reference else "",
    )
    return engine.images.get(str(new.id))


def _commit_reference(repository: str | None, tag: str | None) -> ImageReference | None:
    if not repository:
        if tag:
            raise InvalidArgument("a tag needs a repository to go with it")
        return None
    from berth.oci.reference import parse_normalized

    ref = parse_normalized(repository)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {repository}")
    return ref.with_tag(tag) if tag else ref.with_default_tag()


def _image_config_of(record: ContainerRecord) -> dict[str, Any]:
    """The parts of the container's Config an image keeps (docker commit's rule)."""
    keep = (
        "User",
        "ExposedPorts",
        "Env",
        "Cmd",
        "Healthcheck",
        "ArgsEscaped",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "OnBuild",
        "Labels",
        "StopSignal",
        "Shell",
    )
    return {k: v for k, v in record.config.items() if k in keep and v is not None}


def _write_commit(
    engine: Engine,
    record: ContainerRecord,
    image: ImageRecord,
    config: ContainerConfig,
    reference: ImageReference | None,
    message: str,
    author: str,
) -> ImageRecord:
    """Write the upper dir as a layer (to a temp file in the store) and the new image."""
    import tempfile

    from berth.containers.records import now_rfc3339
    from berth.oci import mediatypes as mt
    from berth.oci.config import HistoryEntry, ImageConfig
    from berth.store.blobs import temp_prefix
    from berth.store.image_writer import LayerSource, base_layers, write_new_image
    from berth.store.layertar import write_layer_tar

    store = engine.store
    upper = engine.containers.launcher.rootfs_dirs(record.id).upper
    stubs = frozenset(os.fsencode(c.path.lstrip("/")) for c in _init_stubs(engine, record))
    parent = ImageConfig.from_bytes(store.blobs.read(image.id))
    created = now_rfc3339()
    os.makedirs(store.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(prefix=temp_prefix("commit"), dir=store.paths.tmp) as layer:
        empty = True
        if os.path.isdir(upper):
            written = write_layer_tar(upper, layer, whiteouts="overlay", exclude=stubs)
            empty = written.entries == 0
        layer.seek(0)
        history = HistoryEntry(
            created=created,
            created_by=" ".join(record.config.get("Cmd") or []),
            author=author,
            comment=message,
            empty_layer=empty,
        )

        def make_config(diff_ids: list[Digest]) -> ImageConfig:
            return ImageConfig(
                architecture=parent.architecture,
                os=parent.os,
                variant=parent.variant,
                diff_ids=diff_ids,
                config=config,
                created=created,
                author=author,
                history=[*parent.history, history],
            )

        sources = [] if empty else [LayerSource(open=lambda: layer, media_type=mt.OCI_LAYER)]
        return write_new_image(
            store,
            base=base_layers(store, image),
            new_layers=sources,
            make_config=make_config,
            tags=[reference] if reference is not None else [],
            parent=str(image.id),
        )


def _init_stubs(engine: Engine, record: ContainerRecord) -> list[Change]:
    """What ``visible_changes`` hides (init-layer stubs, and directories copied up only to
    hold them), to leave out of a commit's layer."""
    from berth.store.changes import list_changes
    from berth.store.rootfs import lower_dirs

    upper = engine.containers.launcher.rootfs_dirs(record.id).upper
    if not os.path.isdir(upper):
        return []
    every = list_changes(upper, lower_dirs(engine.store, record.top_chain))
    shown = {c.path for c in visible_changes(every)}
    return [c for c in every if c.path not in shown]  # nothing shown is below these


# ---------------------------------------------------------------------------------- update

# docker-py's ``Container.update`` keywords -> HostConfig keys
UPDATE_KWARGS = {
    "blkio_weight": "BlkioWeight",
    "cpu_period": "CpuPeriod",
    "cpu_quota": "CpuQuota",
    "cpu_rt_period": "CpuRealtimePeriod",
    "cpu_rt_runtime": "CpuRealtimeRuntime",
    "cpu_shares": "CpuShares",
    "cpuset_cpus": "CpusetCpus",
    "cpuset_mems": "CpusetMems",
    "mem_limit": "Memory",
    "mem_reservation": "MemoryReservation",
    "memswap_limit": "MemorySwap",
    "nano_cpus": "NanoCpus",
    "pids_limit": "PidsLimit",
    "restart_policy": "RestartPolicy",
}


def update(engine: Engine, container: Container, changes: Mapping[str, Any]) -> dict[str, Any]:
    """``docker update``: new limits for a running container's cgroup, and in its HostConfig
    for its next start; a new restart policy. ``changes`` maps HostConfig keys (``Memory``,
    ``NanoCpus``, ``RestartPolicy``...) to values. Returns ``{"Warnings": [...]}``."""
    record = current_record(engine, container)
    current = dict(record.host_config)
    new = merged_host_config(current, changes)
    if record.running:
        resources = update_resources(current, new)
        if resources:
            runtime = engine.containers.launcher.runtime(record)
            runtime.update(record.id, resources)
    engine.containers.records.update_documents(record.id, host_config=new)
    from berth.containers.events import container_event

    container_event(engine.store, "update", record)
    return {"Warnings": []}


def merged_host_config(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """HostConfig with ``changes`` applied, checked as the Docker engine checks an update."""
    new = dict(current)
    unknown = set(changes) - set(UPDATE_KWARGS.values())
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}")
    for key, value in changes.items():
        new[key] = value
    memory = int(new.get("Memory") or 0)
    swap = int(new.get("MemorySwap") or 0)
    if "Memory" in changes and memory and memory < MINIMUM_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if "Memory" in changes and "MemorySwap" not in changes and swap > 0 and memory > swap:
        raise InvalidArgument(
            "Memory limit should be smaller than already set memoryswap limit, "
            "update the memoryswap at the same time"
        )
    if swap > 0 and memory and swap < memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if swap and not memory:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    reservation = int(new.get("MemoryReservation") or 0)
    if memory and reservation and reservation > memory:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    nano = int(new.get("NanoCpus") or 0)
    if nano and ("CpuPeriod" in changes or "CpuQuota" in changes):
        raise InvalidArgument(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
        )
    if "NanoCpus" in changes and nano and (new.get("CpuPeriod") or new.get("CpuQuota")):
        raise InvalidArgument(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
        )
    if "RestartPolicy" in changes:
        policy = dict(changes["RestartPolicy"] or {})
        name = str(policy.get("Name") or "no")
        if name not in ("", "no", "always", "unless-stopped", "on-failure"):
            raise InvalidArgument(f"invalid restart policy '{name}'")
        if name != "on-failure" and int(policy.get("MaximumRetryCount") or 0):
            raise InvalidArgument(
                f"invalid restart policy: maximum retry count can only be used with 'on-failure'"
                f" (got {name})"
            )
        if current.get("AutoRemove") and name not in ("", "no"):
            raise InvalidArgument(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
            )
        new["RestartPolicy"] = {
            "Name": name,
            "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0),
        }
    return new


def update_resources(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The ``linux.resources`` to give the runtime for going from ``current`` to ``new``."""
    from berth.containers.spec import resources

    wanted = resources(dict(new), bool(new.get("Privileged")))
    wanted.pop("devices", None)
    was = resources(dict(current), bool(current.get("Privileged")))
    was.pop("devices", None)
    if int(new.get("PidsLimit") or 0) <= 0 < int(current.get("PidsLimit") or 0):
        wanted["pids"] = {"limit": -1}  # lifted
    if not new.get("CpuQuota") and not new.get("NanoCpus") and was.get("cpu", {}).get("quota"):
        wanted.setdefault("cpu", {})["quota"] = -1
    return {key: value for key, value in wanted.items() if was.get(key) != value}
