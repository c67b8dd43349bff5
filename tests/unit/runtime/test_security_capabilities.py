"""Capability names and numbers, and what apply_identity refuses before touching anything."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import InvalidArgument
from berth.runtime import capabilities as caps


@pytest.fixture
def berth_tmp() -> Iterator[Path]:
    """A temp dir with "berth" in its name, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="berth-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_table_covers_every_capability_up_to_checkpoint_restore() -> None:
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.CAP_NAMES[10] == "CAP_NET_BIND_SERVICE"


@pytest.mark.parametrize(
    "given", ["CAP_NET_ADMIN", "NET_ADMIN", "net_admin", "cap_net_admin", " CAP_NET_ADMIN "]
)
def test_normalize_accepts_docker_spellings(given: str) -> None:
    assert caps.normalize_cap_name(given) == "CAP_NET_ADMIN"


def test_parse_cap_names_sorts_and_dedupes() -> None:
    assert caps.parse_cap_names(["CAP_KILL", "CAP_CHOWN", "CAP_KILL"]) == [0, 5]
    assert caps.parse_cap_names(None) == []
    assert caps.parse_cap_names([]) == []


def test_unknown_name_names_field_and_value() -> None:
    with pytest.raises(InvalidArgument) as info:
        caps.parse_cap_names(["CAP_CHOWN", "CAP_FLY"], field="process.capabilities.bounding")
    assert "process.capabilities.bounding" in str(info.value)
    assert "CAP_FLY" in str(info.value)
    assert info.value.hint and "CAP_NET_BIND_SERVICE" in info.value.hint


@pytest.mark.parametrize("bad", ["CAP_KILL", 5, {"CAP_KILL": True}])
def test_parse_cap_names_wants_a_list(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        caps.parse_cap_names(bad)  # type: ignore[arg-type]


def test_masks_round_trip() -> None:
    numbers = caps.parse_cap_names(["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF"])
    mask = caps.caps_to_mask(numbers)
    assert mask == (1 << 0) | (1 << 21) | (1 << 39)
    assert caps.mask_to_names(mask) == ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF"]


def test_last_cap_reads_proc(berth_tmp: Path) -> None:
    proc = berth_tmp / "berth-proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "cap_last_cap").write_text("37\n")
    assert caps.last_cap(str(proc)) == 37
    assert caps.last_cap(str(proc / "missing")) == caps.LAST_KNOWN_CAP


def test_last_cap_is_read_once(berth_tmp: Path) -> None:
    proc = berth_tmp / "berth-proc-once"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "cap_last_cap").write_text("38\n")
    assert caps.last_cap(str(proc)) == 38
    (proc / "sys" / "kernel" / "cap_last_cap").write_text("12\n")  # a kernel constant
    assert caps.last_cap(str(proc)) == 38


def test_rehearse_changes_no_capability() -> None:
    """An init forked ahead rehearses apply_identity before its container comes: it must
    keep every capability it has (it needs them for the container's setup)."""
    before = caps.process_capabilities()
    held = caps.mask_to_names(caps.capget()["permitted"])
    caps.rehearse({kind: held[:3] for kind in caps.CAPABILITY_SETS})
    assert caps.process_capabilities() == before


def test_process_capabilities_parses_status(berth_tmp: Path) -> None:
    proc = berth_tmp / "berth-proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "status").write_text(
        "Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n"
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    )
    sets = caps.process_capabilities(42, str(proc))
    assert sets["inheritable"] == 0
    assert sets["bounding"] == 0xA80425FB
    assert "CAP_NET_BIND_SERVICE" in caps.mask_to_names(sets["effective"])


def test_apply_identity_rejects_unknown_caps_before_changing_anything() -> None:
    before = caps.process_capabilities()
    with pytest.raises(InvalidArgument, match="CAP_TELEPORT"):
        caps.apply_identity({"uid": 0, "gid": 0}, {"bounding": ["CAP_TELEPORT"]})
    assert caps.process_capabilities() == before


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"uid": -1, "gid": 0}, "uid"),
        ({"uid": "root", "gid": 0}, "uid"),
        ({"uid": 0, "gid": 2**32}, "gid"),
        ({"uid": 0, "gid": 0, "additionalGids": ["wheel"]}, "additionalGids"),
        ({"uid": 0, "gid": 0, "additionalGids": 5}, "additionalGids"),
    ],
)
def test_apply_identity_rejects_bad_users(user: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        caps.apply_identity(user, None)
