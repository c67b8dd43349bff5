"""``engine.volumes``: docker-py's ``client.volumes``."""

from __future__ import annotations

import builtins
from functools import cached_property
from typing import TYPE_CHECKING, Any

from berth.containers.volumes import VolumeRecord, VolumeStore
from berth.errors import InvalidArgument

if TYPE_CHECKING:
    from berth.engine import Engine

VOLUME_FILTERS = ("dangling", "driver", "label", "name")


class Volume:
    def __init__(self, collection: VolumeCollection, record: VolumeRecord) -> None:
        self.collection = collection
        self.record = record

    def __repr__(self) -> str:
        return f"<Volume: {self.name[:12]}>"

    @property
    def id(self) -> str:
        return self.record.name

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def attrs(self) -> dict[str, Any]:
        return self.record.to_docker()

    def remove(self, force: bool = False) -> None:
        self.collection.volumes.remove(self.name, force=force)


class VolumeCollection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @cached_property
    def volumes(self) -> VolumeStore:
        return VolumeStore(self.engine.store)

    def create(
        self,
        name: str | None = None,
        *,
        driver: str = "local",
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Volume:
        return Volume(
            self, self.volumes.create(name, driver=driver, labels=labels, options=driver_opts)
        )

    def get(self, name: str) -> Volume:
        return Volume(self, self.volumes.get(name))

    def list(self, filters: dict[str, builtins.list[str]] | None = None) -> builtins.list[Volume]:
        from berth.filters import Filters

        f = Filters(filters or {})
        f.validate(VOLUME_FILTERS)
        out = []
        for record in self.volumes.all():
            if f.contains("dangling"):
                dangling = not self.volumes.users(record.name)
                if dangling != f.get_bool("dangling", False):
                    continue
            if not f.match("name", record.name) or not f.exact_match("driver", record.driver):
                continue
            if not f.match_kv_list("label", record.labels):
                continue
            out.append(Volume(self, record))
        return out

    def prune(
        self, filters: dict[str, builtins.list[str]] | None = None, *, all: bool = False
    ) -> dict[str, Any]:
        from berth.filters import Filters

        f = Filters(filters or {})
        f.validate(("label", "label!", "all"))
        if f.contains("all"):
            all = f.get_bool("all", False)
        keep = {
            v.name
            for v in (Volume(self, r) for r in self.volumes.all())
            if not f.match_labels(v.record.labels)
        }
        removed, reclaimed = self.volumes.prune(all_volumes=all, keep=keep)
        if not removed and f.contains("dangling"):
            raise InvalidArgument("invalid filter 'dangling'")
        return {"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed}
