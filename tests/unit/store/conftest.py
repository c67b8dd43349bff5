"""Fixtures of the store's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.store.paths import StorePaths
from berth.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store in the test's temp dir, its database closed afterwards."""
    opened = Store(StorePaths.at(str(tmp_path / "berth-store")))
    try:
        yield opened
    finally:
        opened.db.close()
