"""``berth system prune`` (docker-py's ``client.containers.prune`` and friends, all at once):
stopped containers, unused networks, dangling images (every unused one with ``all``), the
build cache, and with ``volumes`` unused anonymous volumes.

The parts run in Docker's order (containers first, so the images and networks they held
become unused) and report what each removed; the space is the sum of theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidArgument

if TYPE_CHECKING:
    from berth.engine import Engine

SYSTEM_PRUNE_FILTERS = ("until", "label", "label!")


@dataclass
class SystemPruneReport:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    build_cache: list[str] = field(default_factory=list)
    build_cache_pruned: bool = False  # False when the build engine has no cache to prune
    reclaimed: int = 0


def system_prune(
    engine: Engine,
    *,
    all: bool = False,
    volumes: bool = False,
    filters: Mapping[str, Sequence[str]] | None = None,
) -> SystemPruneReport:
    from berth.filters import Filters

    wanted = Filters(filters or {})
    wanted.validate(SYSTEM_PRUNE_FILTERS)
    if volumes and wanted.contains("until"):
        raise InvalidArgument('The "until" filter is not supported with "--volumes"')
    as_dict = wanted.to_dict()
    report = SystemPruneReport()
    containers = engine.containers.prune(as_dict)
    report.containers = list(containers["ContainersDeleted"] or [])
    report.reclaimed += int(containers["SpaceReclaimed"] or 0)
    report.networks = list(engine.networks.prune(as_dict)["NetworksDeleted"] or [])
    if volumes:
        labels_only = {k: v for k, v in as_dict.items() if k != "until"}
        pruned = engine.volumes.prune(labels_only)
        report.volumes = list(pruned["VolumesDeleted"] or [])
        report.reclaimed += int(pruned["SpaceReclaimed"] or 0)
    images = engine.images.prune(all=all, filters=as_dict)
    report.images = list(images["ImagesDeleted"] or [])
    report.reclaimed += int(images["SpaceReclaimed"] or 0)
    cache = _prune_build_cache(engine, all, {k: v for k, v in as_dict.items() if k == "until"})
    if cache is not None:
        report.build_cache_pruned = True
        report.build_cache = list(cache.get("CachesDeleted") or [])
        report.reclaimed += int(cache.get("SpaceReclaimed") or 0)
    return report


def _prune_build_cache(
    engine: Engine, all: bool, filters: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The build engine's ``builder prune``, when this berth has a build engine."""
    try:
        from berth.engine.build import prune_build_cache
    except ImportError:
        return None
    result: dict[str, Any] = prune_build_cache(engine, all=all, filters=filters)
    return result
