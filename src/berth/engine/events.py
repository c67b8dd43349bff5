"""``berth events`` and docker-py's ``client.events()``: the store's event log as Docker's
event messages, filtered as the Docker engine filters them, replayed and followed.

Without ``since`` only events recorded from now on are reported; with it, past events from
that time are replayed first. Following stops once ``until`` has passed (at once when it is
in the past), or never. Another process's events show up within one poll interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from berth.store.events import StoredEvent, latest_seq, read_events

if TYPE_CHECKING:
    from berth.engine import Engine
    from berth.filters import Filters

EVENT_FILTERS = (
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
)
EVENT_TYPES = (
    "builder",
    "config",
    "container",
    "daemon",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
)
POLL_SECONDS = 0.2
BATCH = 1000


def event_message(event: StoredEvent) -> dict[str, Any]:
    """The Engine API's event message (what ``--format '{{json .}}'`` prints)."""
    message: dict[str, Any] = {}
    if event.type in ("container", "image"):  # the deprecated top-level fields
        message["status"] = event.action
        message["id"] = event.actor
        if event.type == "container" and "image" in event.attrs:
            message["from"] = event.attrs["image"]
    message["Type"] = event.type
    message["Action"] = event.action
    message["Actor"] = {"ID": event.actor, "Attributes": dict(event.attrs)}
    message["scope"] = "local"
    message["time"] = event.time_ns // 1_000_000_000
    message["timeNano"] = event.time_ns
    return message


def template_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message under the Go field names a ``--format`` template uses (``.Actor.ID``)."""
    return {
        "Status": message.get("status", ""),
        "ID": message.get("id", ""),
        "From": message.get("from", ""),
        "Type": message["Type"],
        "Action": message["Action"],
        "Actor": dict(message["Actor"]),
        "Scope": message["scope"],
        "Time": message["time"],
        "TimeNano": message["timeNano"],
    }


def parse_time_ns(value: str | float | int | None) -> int | None:
    """``--since``/``--until``: a timestamp, Unix seconds or a duration ago, as Unix ns."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    from berth.errors import InvalidArgument
    from berth.units import parse_duration, parse_timestamp

    try:  # "10m": that long ago, to the nanosecond (as docker's GetTimestamp)
        return time.time_ns() - parse_duration(value)
    except InvalidArgument:
        return parse_timestamp(value)


def matches(filters: Filters, event: StoredEvent) -> bool:
    """The Docker engine's event filter: every filter given must match."""
    action = event.action
    if filters.contains("event") and not (
        filters.exact_match("event", action)
        or filters.exact_match("event", action.split(":", 1)[0])
    ):
        return False
    if not filters.exact_match("type", event.type):
        return False
    if not filters.exact_match("scope", "local") or not filters.match_kv_list("label", event.attrs):
        return False
    if filters.contains("daemon") or filters.contains("node") or filters.contains("service"):
        return False  # no daemon, swarm node or service ever sends berth events
    name = event.attrs.get("name", "")
    for key in ("container", "network", "volume", "plugin", "config", "secret"):
        if filters.contains(key) and not (
            filters.fuzzy_match(key, event.actor) or (name and filters.fuzzy_match(key, name))
        ):
            return False
    return not filters.contains("image") or _image_matches(filters.get("image"), event)


def _image_matches(wanted: Sequence[str], event: StoredEvent) -> bool:
    candidates = {event.attrs.get("image", "")}
    if event.type == "image":
        candidates |= {event.actor, event.attrs.get("name", "")}
    candidates.discard("")
    names = set(candidates)
    for candidate in candidates:  # "busybox:latest" also answers to "busybox"
        repository, _, tag = candidate.rpartition(":")
        if repository and "/" not in tag and tag == "latest":
            names.add(repository)
        if candidate.startswith("sha256:"):
            names.add(candidate[7:])
    return any(
        value in names or any(n.startswith(value) for n in names if n.startswith("sha256:"))
        for value in wanted
    )


def stream_events(
    engine: Engine,
    *,
    since: str | float | None = None,
    until: str | float | None = None,
    filters: Mapping[str, Sequence[str]] | None = None,
    poll: float = POLL_SECONDS,
    stopped: Callable[[], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Event messages, oldest first, as docker's events endpoint streams them."""
    from berth.filters import Filters

    wanted = Filters(filters or {})
    wanted.validate(EVENT_FILTERS)
    for value in wanted.get("type"):
        if value not in EVENT_TYPES:
            from berth.errors import InvalidArgument

            raise InvalidArgument(f"unknown event type: {value}")
    since_ns = parse_time_ns(since)
    until_ns = parse_time_ns(until)
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        from berth.errors import InvalidArgument

        raise InvalidArgument("`since` time is after `until` time")
    store = engine.store
    after = latest_seq(store) if since_ns is None else 0
    while True:
        batch = read_events(
            store, after_seq=after, since_ns=since_ns, until_ns=until_ns, limit=BATCH
        )
        for event in batch:
            after = event.seq
            if matches(wanted, event):
                yield event_message(event)
        if len(batch) == BATCH:
            continue
        if until_ns is not None and time.time_ns() > until_ns:
            return
        if stopped is not None and stopped():
            return
        time.sleep(poll)
