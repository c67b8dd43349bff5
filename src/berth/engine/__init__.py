"""``berth.Engine``: the one object every front end goes through.

Shaped like docker-py's high-level client, so Python users feel at home::

    engine = berth.Engine()                 # the store at /var/lib/berth (or $BERTH_ROOT)
    engine.images.list()
    engine.containers.run("busybox", ["echo", "hi"])      # b"hi\\n"
    engine.volumes.create("data")
    engine.networks.create("appnet")
"""

from __future__ import annotations

from functools import cached_property

from berth.store.paths import StorePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator
    from typing import Any

    from berth.engine.containers import ContainerCollection
    from berth.engine.images import ImageCollection
    from berth.engine.networks import NetworkCollection
    from berth.engine.system import SystemService
    from berth.engine.volumes import VolumeCollection
    from berth.store.store import Store


class Engine:
    def __init__(self, root: str | None = None) -> None:
        self.paths = StorePaths.at(root)

    @cached_property
    def store(self) -> Store:
        from berth.store.store import Store

        return Store(self.paths, gc_roots=[_build_cache_roots])

    @cached_property
    def images(self) -> ImageCollection:
        from berth.engine.images import ImageCollection

        return ImageCollection(self)

    @cached_property
    def containers(self) -> ContainerCollection:
        from berth.engine.containers import ContainerCollection

        return ContainerCollection(self)

    @cached_property
    def networks(self) -> NetworkCollection:
        from berth.engine.networks import NetworkCollection

        return NetworkCollection(self)

    @cached_property
    def volumes(self) -> VolumeCollection:
        from berth.engine.volumes import VolumeCollection

        return VolumeCollection(self)

    @cached_property
    def system(self) -> SystemService:
        from berth.engine.system import SystemService

        return SystemService(self)

    def info(self) -> dict[str, Any]:
        """docker-py's ``client.info()``: the store's counts and what the host supports."""
        from berth.engine.hostinfo import info

        return info(self)

    def events(
        self,
        since: str | float | None = None,
        until: str | float | None = None,
        filters: dict[str, list[str]] | None = None,
        decode: bool = False,
    ) -> Iterator[Any]:
        """docker-py's ``client.events()``: event messages (dicts with ``decode``, else JSON
        bytes), following new ones until ``until`` (forever without it)."""
        import json

        from berth.engine.events import stream_events

        messages = stream_events(self, since=since, until=until, filters=filters)
        return messages if decode else (json.dumps(m).encode() for m in messages)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _build_cache_roots(conn: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """The layers and blobs the build cache keeps (imported only when garbage is collected)."""
    from berth.build.cache import cache_references

    return cache_references(conn)


__all__ = ["Engine"]
