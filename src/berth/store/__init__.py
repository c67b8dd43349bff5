"""berth.store: content-addressed blobs, layers unpacked once per chain id, image records.

Imports lazily: ``berth.store.db`` alone must not pull in the whole store.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.store.paths import StorePaths
    from berth.store.store import Store

__all__ = ["Store", "StorePaths"]


def __getattr__(name: str) -> object:
    if name == "Store":
        from berth.store.store import Store

        return Store
    if name == "StorePaths":
        from berth.store.paths import StorePaths

        return StorePaths
    raise AttributeError(f"module 'berth.store' has no attribute {name!r}")
