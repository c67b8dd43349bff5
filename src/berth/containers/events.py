"""Container events as the Docker engine emits them: the actor is the container ID and the
attributes its image (as the user named it), its name and its labels, plus what the action
adds (``exitCode`` for ``die``, ``signal`` for ``kill``, ``execID`` for ``exec_*``)."""

from __future__ import annotations

from berth.store.events import record_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.containers.records import ContainerRecord
    from berth.store.store import Store


def container_event(store: Store, action: str, record: ContainerRecord, **extra: object) -> None:
    """Record ``container <action> <id>`` (best effort: never raises)."""
    attrs: dict[str, object] = dict(record.config.get("Labels") or {})
    attrs["image"] = record.image_ref or record.image_id
    attrs["name"] = record.name
    attrs.update(extra)
    record_event(store, "container", action, record.id, attrs)


class ImagesBefore:
    """What the store held before a removal: its image IDs (to tell them from layer IDs
    among the ``Deleted`` lines) and the ID the removed name had."""

    __slots__ = ("ids", "named")

    def __init__(self, store: Store, name: str = "") -> None:
        rows = store.db.execute("SELECT id FROM images").fetchall()
        self.ids = {str(row[0]) for row in rows}
        self.named = ""
        if name:
            try:
                self.named = str(store.images.resolve(name).id)
            except Exception:  # removing it will say it does not exist
                self.named = ""


def image_removal_events(
    store: Store, records: list[tuple[str, str]], before: ImagesBefore
) -> None:
    """``untag`` and ``delete`` events for what ``rmi`` or ``image prune`` reported: the
    ``Untagged`` lines of an image come before its ``Deleted`` line."""
    untagged: list[str] = []
    for kind, what in records:
        if kind == "Untagged":
            untagged.append(what)
        elif kind == "Deleted" and what in before.ids:
            for name in untagged:
                record_event(store, "image", "untag", what, {"name": name})
            untagged = []
            record_event(store, "image", "delete", what, {"name": what})
    for name in untagged:  # untagged, but the image is still there under another name
        record_event(store, "image", "untag", before.named, {"name": name})
