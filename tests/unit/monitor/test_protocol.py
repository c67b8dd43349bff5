"""The supervisor's wire protocol, the detach keys, and the anchor's exit records."""

from __future__ import annotations

import pytest

from berth.errors import BuildStepFailed, ContainerNotFound, ContainerStateConflict, InvalidArgument
from berth.monitor import protocol
from berth.monitor.attach import DetachMatcher, parse_detach_keys
from berth.monitor.procs import ExitRecord, exit_code_of_status


def test_frames_round_trip_in_pieces() -> None:
    data = protocol.frame(protocol.STDOUT, b"hello") + protocol.frame(protocol.EXIT, b"3")
    reader = protocol.FrameReader()
    got = []
    for i in range(len(data)):  # one byte at a time
        got += reader.feed(data[i : i + 1])
    assert got == [(protocol.STDOUT, b"hello"), (protocol.EXIT, b"3")]


def test_frame_header_is_dockers() -> None:
    assert protocol.frame(protocol.STDERR, b"ab") == b"\x02\x00\x00\x00\x00\x00\x00\x02ab"


def test_an_oversized_frame_is_refused() -> None:
    with pytest.raises(ValueError):
        protocol.FrameReader().feed(b"\x01\x00\x00\x00\xff\xff\xff\xff")


def test_errors_come_back_as_the_same_class() -> None:
    reply = protocol.error_reply(ContainerStateConflict("it is running", hint="stop it"))
    with pytest.raises(ContainerStateConflict) as caught:
        protocol.raise_error(reply)
    assert caught.value.message == "it is running" and caught.value.hint == "stop it"
    with pytest.raises(ContainerNotFound):
        protocol.raise_error({"ok": False, "error": "ContainerNotFound", "message": "x"})


def test_unknown_or_odd_error_classes_fall_back() -> None:
    from berth.errors import ContainerError

    with pytest.raises(ContainerError):
        protocol.raise_error({"ok": False, "error": "KeyError", "message": "x"})
    with pytest.raises(ContainerError):  # needs more than a message to be built
        protocol.raise_error({"ok": False, "error": BuildStepFailed.__name__, "message": "x"})


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-a", b"\x01"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
        ("a,b", b"ab"),
        ("CTRL-X", b"\x18"),
    ],
)
def test_detach_keys(text: str, keys: bytes) -> None:
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "shift-a", "ab"])
def test_bad_detach_keys(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_detach_keys(text)


def test_detach_matcher_holds_back_a_prefix() -> None:
    matcher = DetachMatcher(b"\x10\x11")
    assert matcher.feed(b"ab\x10") == (b"ab", False)
    assert matcher.feed(b"c") == (b"\x10c", False)  # not the sequence: passed on
    assert matcher.feed(b"\x10\x10") == (b"\x10", False)
    assert matcher.feed(b"\x11rest") == (b"", True)


def test_exit_records() -> None:
    record = ExitRecord.parse("1234 56789 256 1700000000 500000000")
    assert (record.pid, record.start, record.exit_code) == (1234, 56789, 1)
    assert record.time == 1700000000.5
    assert exit_code_of_status(9) == 137  # killed by SIGKILL
    with pytest.raises(ValueError):
        ExitRecord.parse("1 2 3")
