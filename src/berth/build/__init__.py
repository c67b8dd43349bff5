"""berth.build: Dockerfiles to images, with BuildKit's rules and a step cache.

    from berth.build import BuildOptions, build, prepare_context

    with prepare_context("app") as prepared:
        result = build(store, BuildOptions(dockerfile=prepared.dockerfile,
                                           context=prepared.context, tags=["app:1"]))

The names below are imported lazily (``berth build`` of a fully cached image must not pay
for the Dockerfile frontend before it knows it needs it).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.build.builder import BuildOptions, BuildResult, SecretSource, build
    from berth.build.cache import BuildCache
    from berth.build.context_source import PreparedContext, prepare_context
    from berth.build.progress import Progress

__all__ = [
    "BuildCache",
    "BuildOptions",
    "BuildResult",
    "PreparedContext",
    "Progress",
    "SecretSource",
    "build",
    "prepare_context",
]

_WHERE = {
    "BuildCache": "berth.build.cache",
    "BuildOptions": "berth.build.builder",
    "BuildResult": "berth.build.builder",
    "PreparedContext": "berth.build.context_source",
    "Progress": "berth.build.progress",
    "SecretSource": "berth.build.builder",
    "build": "berth.build.builder",
    "prepare_context": "berth.build.context_source",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'berth.build' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
