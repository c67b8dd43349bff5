"""berth.store: content-addressed blobs, layers unpacked once per chain id, image records."""

from berth.store.paths import StorePaths
from berth.store.store import Store

__all__ = ["Store", "StorePaths"]
