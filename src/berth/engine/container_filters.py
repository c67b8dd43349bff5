"""``ps`` filters and ``container prune`` selection, with Docker's semantics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from berth.errors import InvalidArgument

if TYPE_CHECKING:
    from berth.engine.containers import Container, ContainerCollection

PS_FILTERS = (
    "id",
    "name",
    "label",
    "exited",
    "status",
    "ancestor",
    "before",
    "since",
    "volume",
    "network",
    "health",
    "is-task",
    "publish",
    "expose",
)
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def filter_containers(
    collection: ContainerCollection,
    containers: list[Container],
    *,
    all: bool,
    filters: dict[str, list[str]],
    limit: int,
    before: str | None,
    since: str | None,
) -> list[Container]:
    from berth.filters import Filters

    f = Filters(filters)
    f.validate(PS_FILTERS)
    for value in f.get("status"):
        if value not in STATUSES:
            raise InvalidArgument(
                f"invalid filter 'status={value}'", hint="status is one of " + ", ".join(STATUSES)
            )
    before_ref = before or (f.get("before")[0] if f.get("before") else None)
    since_ref = since or (f.get("since")[0] if f.get("since") else None)
    before_time = collection.get(before_ref).record.created if before_ref else None
    since_time = collection.get(since_ref).record.created if since_ref else None
    show_all = (
        all
        or bool(f.get("status"))
        or bool(f.get("exited"))
        or limit > 0
        or before_time is not None
        or since_time is not None
    )
    out = []
    for container in containers:
        record = container.record
        if not show_all and not record.running:
            continue
        if before_time is not None and record.created >= before_time:
            continue
        if since_time is not None and record.created <= since_time:
            continue
        if not f.fuzzy_match("id", record.id) or not f.match("name", record.name):
            continue
        if not f.match_kv_list("label", record.config.get("Labels") or {}):
            continue
        if f.get("status") and record.status not in f.get("status"):
            continue
        if f.get("exited"):
            if record.status != "exited" or str(record.state.get("ExitCode")) not in f.get(
                "exited"
            ):
                continue
        if f.get("ancestor") and not _ancestor(
            collection, record.image_id, record.image_ref, f.get("ancestor")
        ):
            continue
        if f.get("volume"):
            mounts = record.extra.get("Mounts") or []
            names = {m.get("Name") for m in mounts} | {m.get("Destination") for m in mounts}
            if not names & set(f.get("volume")):
                continue
        if f.get("health"):
            health = (record.state.get("Health") or {}).get("Status", "none")
            if health not in f.get("health"):
                continue
        if f.get("network"):
            if str(record.host_config.get("NetworkMode")) not in f.get("network"):
                continue
        out.append(container)
    if limit > 0:
        out = out[:limit]
    return out


def _ancestor(
    collection: ContainerCollection, image_id: str, image_ref: str, wanted: list[str]
) -> bool:
    for name in wanted:
        try:
            image = collection.engine.images.get(name)
        except Exception:
            continue
        if image.id == image_id:
            return True
    return any(name == image_ref for name in wanted)


def prune_selection(
    collection: ContainerCollection, filters: dict[str, list[str]]
) -> list[Container]:
    """Stopped containers (exited, created, dead) matching ``until`` and ``label``."""
    from berth.filters import Filters
    from berth.units import parse_timestamp

    f = Filters(filters)
    f.validate(("until", "label", "label!"))
    until = min((parse_timestamp(v) / 1e9 for v in f.get("until")), default=None)
    chosen = []
    for container in collection.list(all=True):
        record = container.record
        if record.running:
            continue
        if until is not None and record.created >= until:
            continue
        if not f.match_labels(record.config.get("Labels") or {}):
            continue
        chosen.append(container)
    return chosen
