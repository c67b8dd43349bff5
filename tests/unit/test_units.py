"""berth.units: docker/go-units sizes and ages, Go's durations and docker's timestamps.

Expected values come from go-units' and Go's own test tables and documentation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from berth.errors import InvalidArgument
from berth.units import (
    bytes_size,
    format_duration,
    format_rfc3339_nano,
    from_human_size,
    go_time_string,
    human_duration,
    human_size,
    parse_duration,
    parse_ram_size,
    parse_timestamp,
    time_ago,
)

KB, MB, GB, TB, PB = 1000, 1000**2, 1000**3, 1000**4, 1000**5
KIB, MIB, GIB, TIB, PIB = 1024, 1024**2, 1024**3, 1024**4, 1024**5
SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (1024, "1.02kB"), (4_261_234, "4.26MB"),
     (1_234_567_890, "1.23GB"), (999_999, "1e+03kB"), (3.42 * GB, "3.42GB"),
     (5.372 * TB, "5.37TB"), (2.22 * PB, "2.22PB"), (1e30, "1e+06YB")],
)  # fmt: skip
def test_human_size_precision_3(size: float, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(1000, "1kB"), (1024, "1.024kB"), (MB, "1MB"), (1_048_576, "1.049MB"), (2 * MB, "2MB"),
     (3.42 * GB, "3.42GB"), (5.372 * TB, "5.372TB"), (2.22 * PB, "2.22PB")],
)  # fmt: skip
def test_human_size_precision_4_is_go_units_human_size(size: float, text: str) -> None:
    assert human_size(size, 4) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (1023, "1023B"), (1024, "1KiB"), (MIB, "1MiB"), (1_572_864, "1.5MiB"),
     (2 * MIB, "2MiB"), (3.42 * GIB, "3.42GiB"), (5.372 * TIB, "5.372TiB"),
     (2.22 * PIB, "2.22PiB"), (8_345_000_000, "7.772GiB")],
)  # fmt: skip
def test_bytes_size(size: float, text: str) -> None:
    assert bytes_size(size) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 * KIB), ("32K", 32 * KIB),
     ("32kb", 32 * KIB), ("32Kb", 32 * KIB), ("32KiB", 32 * KIB), ("32Mb", 32 * MIB),
     ("32Gb", 32 * GIB), ("32Tb", 32 * TIB), ("32Pb", 32 * PIB), ("32PB", 32 * PIB),
     ("32P", 32 * PIB), ("0.3Mb", int(0.3 * MIB)), ("512m", 512 * MIB), ("1.5g", int(1.5 * GIB)),
     ("32 mb", 32 * MIB), ("1e3", 1000), ("0", 0)],
)  # fmt: skip
def test_parse_ram_size(text: str, size: int) -> None:
    assert parse_ram_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "invalid size: ''"), ("hello", "invalid size: 'hello'"), ("-32", "invalid size: '-32'"),
     ("32x", "invalid suffix: 'x'"), ("32bm", "invalid suffix: 'bm'"),
     ("32mib2", 'strconv.ParseFloat: parsing "32mib2": invalid syntax'),
     ("32kbb", "invalid suffix: 'kbb'"), ("32ki", "invalid suffix: 'ki'"),
     ("1.2.3m", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
     (" 32 ", 'strconv.ParseFloat: parsing "": invalid syntax')],
)  # fmt: skip
def test_parse_ram_size_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_ram_size(text)
    assert caught.value.message == message


def test_from_human_size_is_decimal() -> None:
    assert from_human_size("1kB") == 1000
    assert from_human_size("32M") == 32 * MB
    assert from_human_size("2.5GB") == int(2.5 * GB)
    with pytest.raises(InvalidArgument, match="invalid suffix"):
        from_human_size("32KiBs")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "Less than a second"), (0.5, "Less than a second"), (-5, "Less than a second"),
     (1, "1 second"), (2, "2 seconds"), (59.9, "59 seconds"), (60, "About a minute"),
     (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"),
     (60 * 60, "About an hour"), (89 * 60, "About an hour"), (90 * 60, "2 hours"),
     (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (13 * 86400, "13 days"),
     (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"),
     (365 * 86400, "12 months"), (729 * 86400, "24 months"), (730 * 86400, "2 years"),
     (10 * 365 * 86400, "10 years")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_time_ago() -> None:
    assert time_ago(1000.0, now=1000.0 + 7200) == "2 hours ago"
    assert time_ago(time.time() - 3) == "3 seconds ago"


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("0", 0), ("5s", 5 * SECOND), ("30s", 30 * SECOND), ("1478s", 1478 * SECOND),
     ("-5s", -5 * SECOND), ("+5s", 5 * SECOND), ("-0", 0), ("+0", 0), ("5.0s", 5 * SECOND),
     ("5.6s", 5600 * 10**6), ("5.s", 5 * SECOND), (".5s", SECOND // 2), ("1.004s", 1004 * 10**6),
     ("100.00100s", 100_001 * 10**6), ("10ns", 10), ("11us", 11_000), ("12µs", 12_000),
     ("12μs", 12_000), ("13ms", 13 * 10**6), ("15m", 15 * MINUTE), ("16h", 16 * HOUR),
     ("3h30m", 3 * HOUR + 30 * MINUTE), ("10.5s4m", 4 * MINUTE + 10_500 * 10**6),
     ("-2m3.4s", -(2 * MINUTE + 3400 * 10**6)),
     ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * 10**6 + 5000 + 6),
     ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14_425 * 10**6), ("52763797000ns", 52763797000),
     ("0.3333333333333333333h", 20 * MINUTE), ("9007199254740993ns", 9007199254740993),
     ("9223372036854775807ns", 2**63 - 1), ("9223372036854775.807us", 2**63 - 1),
     ("9223372036s854ms775us807ns", 2**63 - 1), ("-9223372036854775808ns", -(2**63)),
     ("-9223372036854775.808us", -(2**63)), ("0.100000000000000000000h", 6 * MINUTE),
     ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827)],
)  # fmt: skip
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
     ("-", 'time: invalid duration "-"'), ("s", 'time: invalid duration "s"'),
     (".", 'time: invalid duration "."'), ("-.", 'time: invalid duration "-."'),
     (".s", 'time: invalid duration ".s"'), ("+.s", 'time: invalid duration "+.s"'),
     ("1d", 'time: unknown unit "d" in duration "1d"'),
     ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
     ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
     ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
     ("3000000h", 'time: invalid duration "3000000h"')],
)  # fmt: skip
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_duration(text)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (1, "1ns"), (1100, "1.1µs"), (2200 * 1000, "2.2ms"), (3300 * 10**6, "3.3s"),
     (4 * MINUTE + 5 * SECOND, "4m5s"), (4 * MINUTE + 5001 * 10**6, "4m5.001s"),
     (5 * HOUR + 6 * MINUTE + 7001 * 10**6, "5h6m7.001s"), (8 * MINUTE + 1, "8m0.000000001s"),
     (2 * HOUR, "2h0m0s"), (90 * SECOND, "1m30s"), (500 * 10**6, "500ms"),
     (2**63 - 1, "2562047h47m16.854775807s"), (-(2**63), "-2562047h47m16.854775808s"),
     (-1500, "-1.5µs")],
)  # fmt: skip
def test_format_duration(nanoseconds: int, text: str) -> None:
    assert format_duration(nanoseconds) == text


# ------------------------------------------------------------------ timestamps

NOW = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z


@pytest.fixture
def zone_plus_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local zone of UTC+1 (POSIX TZ syntax: no tz database needed)."""
    monkeypatch.setenv("TZ", "BRT-01")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("value", "nanoseconds"),
    [("10m", (1_700_000_000 - 600) * SECOND), ("1h30m", (1_700_000_000 - 5400) * SECOND),
     ("-10s", (1_700_000_000 + 10) * SECOND), ("0", 0), ("1700000000", 1_700_000_000 * SECOND),
     ("1700000000.5", 1_700_000_000 * SECOND + 500_000_000),
     ("1700000000.000000001", 1_700_000_000 * SECOND + 1),
     ("2023-11-14T22:13:20Z", 1_700_000_000 * SECOND),
     ("2023-11-14T22:13:20.123456789Z", 1_700_000_000 * SECOND + 123_456_789),
     ("2023-11-14T23:13:20+01:00", 1_700_000_000 * SECOND),
     ("2023-11-14T20:13:20.5-02:00", 1_700_000_000 * SECOND + 500_000_000),
     ("2023-11-14Z", 1_699_920_000 * SECOND), ("2023-11-14+01:00", (1_699_920_000 - 3600) * SECOND),
     ("2023-11-14T22Z", (1_699_920_000 + 22 * 3600) * SECOND),
     ("2023-11-14T22:13Z", (1_699_920_000 + 22 * 3600 + 13 * 60) * SECOND),
     ("2023-11-14T22:13+00:00", (1_699_920_000 + 22 * 3600 + 13 * 60) * SECOND)],
)  # fmt: skip
def test_parse_timestamp_with_zones_and_relative(value: str, nanoseconds: int) -> None:
    assert parse_timestamp(value, NOW) == nanoseconds


@pytest.mark.usefixtures("zone_plus_one")
@pytest.mark.parametrize(
    ("value", "nanoseconds"),
    [("2023-11-14", (1_699_920_000 - 3600) * SECOND),
     ("2023-11-14T23:13:20", 1_700_000_000 * SECOND),
     ("2023-11-14T23:13:20.25", 1_700_000_000 * SECOND + 250_000_000),
     ("2023-11-14T23", (1_699_920_000 + 22 * 3600) * SECOND),
     ("2023-11-14T23:13", (1_699_920_000 + 22 * 3600 + 13 * 60) * SECOND)],
)  # fmt: skip
def test_parse_timestamp_without_zone_is_local(value: str, nanoseconds: int) -> None:
    assert parse_timestamp(value, NOW) == nanoseconds


@pytest.mark.parametrize(
    ("value", "message"),
    [("abc", 'failed to parse value as time or duration: "abc"'),
     ("1.x", 'failed to parse value as time or duration: "1.x"'),
     ("2023-13-01", 'parsing time "2023-13-01": month out of range'),
     ("2023-02-30", 'parsing time "2023-02-30": day out of range'),
     ("2023-11-14T25:00Z", 'parsing time "2023-11-14T25:00Z": hour out of range'),
     ("2023-1-14", 'parsing time "2023-1-14" as "2006-01-02": cannot parse "1-14" as "01"'),
     ("2023-11-14x", 'parsing time "2023-11-14x" as "2006-01-02": extra text: "x"'),
     ("2023-11-14T22:13:20z",
      'parsing time "2023-11-14T22:13:20z" as "2006-01-02T15:04:05Z07:00": '
      'cannot parse "z" as "Z07:00"')],
)  # fmt: skip
def test_parse_timestamp_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_timestamp(value, NOW)
    assert caught.value.message == message


def test_parse_timestamp_defaults_to_now() -> None:
    before = int(time.time()) * SECOND
    assert parse_timestamp("0s") >= before


@pytest.mark.parametrize(
    ("nanoseconds", "offset", "text"),
    [(1_700_000_000 * SECOND, 0, "2023-11-14T22:13:20Z"),
     (1_700_000_000 * SECOND + 123_456_789, 0, "2023-11-14T22:13:20.123456789Z"),
     (1_700_000_000 * SECOND + 100_000_000, 0, "2023-11-14T22:13:20.1Z"),
     (1_700_000_000 * SECOND, 3600, "2023-11-14T23:13:20+01:00"),
     (1_700_000_000 * SECOND, -5400, "2023-11-14T20:43:20-01:30"),
     (0, 0, "1970-01-01T00:00:00Z")],
)  # fmt: skip
def test_format_rfc3339_nano(nanoseconds: int, offset: int, text: str) -> None:
    assert format_rfc3339_nano(nanoseconds, offset) == text


def test_go_time_string(zone_plus_one: None) -> None:
    assert go_time_string(1_700_000_000, utc=True) == "2023-11-14 22:13:20 +0000 UTC"
    assert go_time_string(1_700_000_000.5, utc=True) == "2023-11-14 22:13:20.5 +0000 UTC"
    assert go_time_string(1_700_000_000) == "2023-11-14 23:13:20 +0100 BRT"
