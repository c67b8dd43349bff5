"""The state directory and the status read from the kernel (no root needed)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from berth.errors import ContainerNotFound, ContainerStateConflict, InvalidArgument, NameInUse
from berth.runtime import state


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "x" * 1025, "é"])
def test_invalid_ids(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        state.validate_id(bad)


@pytest.mark.parametrize("good", ["a", "web_1", "x.y-z+1", "0" * 64])
def test_valid_ids(good: str) -> None:
    state.validate_id(good)


def test_record_round_trip_and_oci_state() -> None:
    record = state.ContainerRecord("c1", "/b", "/b/rootfs", {"ociVersion": "1.2.0"}, pid=42,
                                   pid_start=7, annotations={"a": "b"}, cgroup={"x": 1})
    again = state.ContainerRecord.from_json(record.to_json())
    assert again.to_json() == record.to_json()
    oci = again.oci_state("running")
    assert oci == {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "status": "running",
                   "bundle": "/b", "rootfs": "/b/rootfs", "created": record.created,
                   "owner": "", "annotations": {"a": "b"}}
    assert again.oci_state("stopped")["pid"] == 0
    assert record.created.endswith("Z") and len(record.created) == 30


def test_state_dir(tmp_path: Any) -> None:
    sd = state.StateDir(str(tmp_path / "root"), "c1")
    with pytest.raises(ContainerNotFound):
        sd.load()
    sd.make()
    assert os.path.exists(sd.fifo)
    with pytest.raises(NameInUse):
        state.StateDir(str(tmp_path / "root"), "c1").make()
    with pytest.raises(ContainerStateConflict, match="still being created"):
        sd.load()
    record = state.ContainerRecord("c1", "/b", "/b/rootfs", {}, pid=os.getpid(),
                                   pid_start=state.process_start_time(os.getpid()) or 0)
    sd.save(record)
    assert sd.load().pid == os.getpid()
    assert state.list_ids(str(tmp_path / "root")) == ["c1"]
    lock = sd.lock()
    os.close(lock)
    assert state.status_of(sd.load(), sd, frozen=False) == "created"
    os.unlink(sd.fifo)
    assert state.status_of(sd.load(), sd, frozen=False) == "running"
    assert state.status_of(sd.load(), sd, frozen=True) == "paused"
    sd.remove()
    assert state.list_ids(str(tmp_path / "root")) == []


def test_a_reused_pid_is_not_the_container() -> None:
    start = state.process_start_time(os.getpid())
    assert start is not None
    record = state.ContainerRecord("c", "/b", "/r", {}, pid=os.getpid(), pid_start=start + 1)
    assert not record.init_alive()
    assert state.process_start_time(2**22 + 12345) is None
