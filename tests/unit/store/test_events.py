"""The store's event log: appended by any process, read in order, bounded, best effort."""

from __future__ import annotations

import os

import pytest

from berth.store import events
from berth.store.events import latest_seq, read_events, record_event
from berth.store.store import Store


def test_a_store_without_events_reads_empty(store: Store) -> None:
    assert read_events(store) == [] and latest_seq(store) == 0


def test_events_are_read_in_order_with_their_attributes(store: Store) -> None:
    record_event(store, "container", "start", "c1", {"name": "web", "exitCode": 0})
    record_event(store, "image", "tag", "sha256:x", {"name": "a:1"})
    first, second = read_events(store)
    assert (first.type, first.action, first.actor) == ("container", "start", "c1")
    assert first.attrs == {"name": "web", "exitCode": "0"}
    assert second.seq > first.seq and second.time_ns >= first.time_ns
    assert [e.actor for e in read_events(store, after_seq=first.seq)] == ["sha256:x"]
    assert read_events(store, since_ns=second.time_ns + 1) == []
    assert [e.actor for e in read_events(store, until_ns=first.time_ns)] == ["c1"]
    assert latest_seq(store) == second.seq


def test_another_connection_sees_them_at_once(store: Store) -> None:
    other = Store(store.paths)
    try:
        record_event(store, "volume", "create", "v1", {"driver": "local"})
        assert [e.actor for e in read_events(other)] == ["v1"]
    finally:
        other.db.close()


def test_the_log_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_EVENTS", 20)
    monkeypatch.setattr(events, "TRIM_EVERY", 8)
    for number in range(100):
        record_event(store, "container", "start", f"c{number}")
    kept = read_events(store)
    assert len(kept) <= 20 + 8 and kept[-1].actor == "c99"


def test_recording_never_fails_the_operation(store: Store) -> None:
    record_event(store, "container", "start", "c1")
    os.chmod(store.paths.db, 0o444)
    store.db.close()
    broken = Store(store.paths)
    try:
        broken.db.execute("PRAGMA query_only=ON")
        record_event(broken, "container", "die", "c1")  # no exception
    finally:
        broken.db.close()
        os.chmod(store.paths.db, 0o644)
