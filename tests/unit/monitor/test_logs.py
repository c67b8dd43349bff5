"""The json-file log: Docker's format byte for byte, rotation, and reading it back."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Iterator

import pytest

from berth.containers.logs import (
    PARTIAL_SIZE,
    LogWriter,
    fixed_timestamp,
    json_string,
    log_files,
    parse_log_options,
    parse_time,
    read_logs,
    writer_for,
)
from berth.errors import InvalidArgument


@pytest.fixture
def log_path(tmp_path: object) -> Iterator[str]:
    yield os.path.join(str(tmp_path), "c-json.log")


def entries(path: str) -> list[dict[str, str]]:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


# ------------------------------------------------------------------------------ format


def test_an_entry_is_docker_json(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    writer.write("stdout", b"hello\n")
    writer.close()
    with open(log_path, "rb") as f:
        line = f.read()
    assert line.startswith(b'{"log":"hello\\n","stream":"stdout","time":"')
    assert line.endswith(b'Z"}\n')
    stamp = json.loads(line)["time"]
    assert abs(parse_time(stamp) / 1e9 - time.time()) < 5


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"tab\there", '"tab\\u0009here"'),
        (b"<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
        (b'quote " back \\', '"quote \\" back \\\\"'),
        (b"cr\r\n", '"cr\\r\\n"'),
        (b"\x00\x1b\x7f", '"\\u0000\\u001b\x7f"'),
        ("é ✓".encode(), '"é ✓"'),
        ("\u2028\u2029".encode(), '"\\u2028\\u2029"'),
        (b"\xff", '"\\ufffd"'),
        (b"\xe2\x82A", '"\\ufffd\\ufffdA"'),  # each invalid byte on its own, as Go does
        ("\ufffd".encode(), '"\ufffd"'),  # a real U+FFFD stays as it is
    ],
)
def test_strings_are_escaped_as_dockers_encoder_does(data: bytes, encoded: str) -> None:
    assert json_string(data) == encoded


def test_time_drops_trailing_zeros_of_the_fraction(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    for _ in range(50):
        writer.write("stdout", b"x\n")
    writer.close()
    for entry in entries(log_path):
        fraction = entry["time"][20:-1]
        assert not fraction.endswith("0")


def test_lines_are_split_and_partial_lines_wait(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"o\nthree")
    assert [e["log"] for e in entries(log_path)] == ["one\n", "err\n", "two\n"]
    writer.close()  # the stream ended: what is left is a partial entry, without "\n"
    assert [(e["log"], e["stream"]) for e in entries(log_path)][-1] == ("three", "stdout")


def test_a_long_line_is_split_into_16k_partial_entries(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    writer.write("stdout", b"a" * (PARTIAL_SIZE * 2 + 10) + b"\n")
    writer.write("stdout", b"b" * PARTIAL_SIZE + b"\n")
    writer.close()
    logs = [e["log"] for e in entries(log_path)]
    assert logs == [
        "a" * PARTIAL_SIZE,
        "a" * PARTIAL_SIZE,
        "a" * 10 + "\n",
        "b" * PARTIAL_SIZE,  # 16 KiB without a newline in them: partial...
        "\n",  # ...and the newline alone
    ]


def test_a_partial_line_is_flushed_once_it_reaches_16k(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    for _ in range(PARTIAL_SIZE // 1024):
        writer.write("stdout", b"c" * 1024)
    assert [e["log"] for e in entries(log_path)] == ["c" * PARTIAL_SIZE]
    writer.close()


# ---------------------------------------------------------------------------- rotation


def test_rotation_keeps_max_files(log_path: str) -> None:
    writer = LogWriter(log_path, 1000, 3, False)
    for n in range(100):
        writer.write("stdout", f"line {n:03d}\n".encode())
    writer.close()
    assert log_files(log_path) == [f"{log_path}.2", f"{log_path}.1", log_path]
    for path in log_files(log_path):
        size = os.path.getsize(path)
        assert size < 1000 + 100  # at most one entry beyond the limit
    lines = [data for _, data in read_logs(log_path)]
    assert lines[-1] == b"line 099\n"
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 100))  # contiguous: nothing lost in between


def test_max_file_one_truncates(log_path: str) -> None:
    writer = LogWriter(log_path, 500, 1, False)
    for n in range(100):
        writer.write("stdout", f"line {n:03d}\n".encode())
    writer.close()
    assert log_files(log_path) == [log_path]
    assert os.path.getsize(log_path) < 600


def test_compressed_rotation(log_path: str) -> None:
    writer = LogWriter(log_path, 1000, 3, True)
    for n in range(60):
        writer.write("stdout", f"line {n:03d}\n".encode())
    writer.close()
    assert log_files(log_path) == [f"{log_path}.2.gz", f"{log_path}.1.gz", log_path]
    with gzip.open(f"{log_path}.1.gz") as f:
        assert b'"stream":"stdout"' in f.read()
    lines = [data for _, data in read_logs(log_path)]
    assert lines[-1] == b"line 059\n"
    assert [data for _, data in read_logs(log_path, tail=30)] == lines[-30:]


def test_writer_appends_to_an_existing_log(log_path: str) -> None:
    for word in (b"first\n", b"second\n"):
        writer = LogWriter(log_path, 0, 1, False)
        writer.write("stdout", word)
        writer.close()
    assert [d for _, d in read_logs(log_path)] == [b"first\n", b"second\n"]


# ----------------------------------------------------------------------------- options


def test_berth_rotates_by_default() -> None:
    options = parse_log_options({})
    assert (options.max_size, options.max_files, options.compress) == (10_000_000, 3, False)
    assert parse_log_options({"max-size": "1k"}).max_size == 1000
    assert parse_log_options({"max-file": "5"}).max_files == 5
    assert parse_log_options({"max-size": "2m", "compress": "true"}).compress


@pytest.mark.parametrize(
    "config",
    [
        {"max-size": "0"},
        {"max-size": "lots"},
        {"max-file": "0"},
        {"max-file": "x"},
        {"max-file": "1", "compress": "true"},
        {"compress": "maybe"},
        {"mode": "fast"},
    ],
)
def test_bad_options_are_refused(config: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        parse_log_options(config)


def test_the_none_driver_writes_nothing(log_path: str) -> None:
    assert writer_for(log_path, {"Type": "none", "Config": {}}) is None
    writer = writer_for(log_path, {"Type": "json-file", "Config": {"max-size": "1k"}})
    assert writer is not None and writer.max_size == 1000
    writer.close()


# ----------------------------------------------------------------------------- reading


def write_at(path: str, items: list[tuple[str, str, str]]) -> None:
    """Entries with chosen times: (stream, text, time)."""
    with open(path, "a") as f:
        for stream, text, stamp in items:
            f.write(json.dumps({"log": text, "stream": stream, "time": stamp}) + "\n")


def test_streams_tail_and_timestamps(log_path: str) -> None:
    write_at(
        log_path,
        [
            ("stdout", "a\n", "2024-01-02T03:04:05.1Z"),
            ("stderr", "b\n", "2024-01-02T03:04:06Z"),
            ("stdout", "c\n", "2024-01-02T03:04:07.123456789Z"),
        ],
    )
    assert list(read_logs(log_path, stderr=False)) == [("stdout", b"a\n"), ("stdout", b"c\n")]
    assert list(read_logs(log_path, tail=2)) == [("stderr", b"b\n"), ("stdout", b"c\n")]
    # tail counts entries of both streams before the stream filter, as Docker does
    assert list(read_logs(log_path, tail=2, stderr=False)) == [("stdout", b"c\n")]
    assert list(read_logs(log_path, tail=0)) == []
    assert list(read_logs(log_path, timestamps=True, tail=1)) == [
        ("stdout", b"2024-01-02T03:04:07.123456789Z c\n")
    ]
    first = next(read_logs(log_path, timestamps=True, tail=3))
    assert first[1] == b"2024-01-02T03:04:05.100000000Z a\n"


def test_since_and_until(log_path: str) -> None:
    write_at(
        log_path,
        [
            ("stdout", "a\n", "2024-01-02T03:04:05Z"),
            ("stdout", "b\n", "2024-01-02T03:04:06Z"),
            ("stdout", "c\n", "2024-01-02T03:04:07Z"),
        ],
    )
    base = parse_time("2024-01-02T03:04:06Z") / 1e9
    assert [d for _, d in read_logs(log_path, since=base)] == [b"b\n", b"c\n"]
    assert [d for _, d in read_logs(log_path, until=base)] == [b"a\n", b"b\n"]
    assert [d for _, d in read_logs(log_path, since=base, until=base)] == [b"b\n"]


def test_a_missing_log_reads_as_empty(log_path: str) -> None:
    assert list(read_logs(log_path)) == []


def test_a_damaged_last_line_is_skipped(log_path: str) -> None:
    write_at(log_path, [("stdout", "a\n", "2024-01-02T03:04:05Z")])
    with open(log_path, "a") as f:
        f.write('{"log":"cut sho')
    assert list(read_logs(log_path)) == [("stdout", b"a\n")]


def test_parse_time_and_fixed_timestamp() -> None:
    ns = parse_time("2024-01-02T03:04:05.5+01:00")
    assert fixed_timestamp(ns) == "2024-01-02T02:04:05.500000000Z"
    with pytest.raises(ValueError):
        parse_time("yesterday")


# ------------------------------------------------------------------------------ follow


def test_follow_reads_what_comes_and_stops_with_the_container(log_path: str) -> None:
    writer = LogWriter(log_path, 300, 10, False)  # small: it rotates while followed
    writer.write("stdout", b"before\n")
    running = threading.Event()
    running.set()
    got: list[bytes] = []

    def follow() -> None:
        got.extend(data for _, data in read_logs(log_path, follow=True, is_running=running.is_set))

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)
    for n in range(30):
        writer.write("stdout", f"during {n}\n".encode())
        time.sleep(0.01)
    writer.write("stdout", b"last\n")
    writer.close()
    running.clear()
    reader.join(10)
    assert not reader.is_alive()
    assert got == [b"before\n", *(f"during {n}\n".encode() for n in range(30)), b"last\n"]


def test_follow_with_tail_zero_shows_only_new_entries(log_path: str) -> None:
    writer = LogWriter(log_path, 0, 1, False)
    writer.write("stdout", b"old\n")
    state = {"running": True}
    got: list[bytes] = []

    def follow() -> None:
        for _, data in read_logs(
            log_path, tail=0, follow=True, is_running=lambda: state["running"]
        ):
            got.append(data)

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)
    writer.write("stdout", b"new\n")
    writer.close()
    time.sleep(0.3)
    state["running"] = False
    reader.join(10)
    assert got == [b"new\n"]


def test_follow_waits_for_a_log_that_does_not_exist_yet(log_path: str) -> None:
    state = {"running": True}
    got: list[bytes] = []
    reader = threading.Thread(
        target=lambda: got.extend(
            d for _, d in read_logs(log_path, follow=True, is_running=lambda: state["running"])
        )
    )
    reader.start()
    time.sleep(0.3)
    writer = LogWriter(log_path, 0, 1, False)
    writer.write("stdout", b"first\n")
    writer.close()
    time.sleep(0.3)
    state["running"] = False
    reader.join(10)
    assert got == [b"first\n"]
