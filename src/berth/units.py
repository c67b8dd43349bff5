"""Sizes, durations and times the way docker reads and prints them.

Docker prints sizes and ages with docker/go-units and parses durations and timestamps with
Go's ``time`` package; scripts grep that output, so berth prints the same strings. This is a
reimplementation from their documented behaviour (no code shared), with the standard library
only and nothing heavy imported (no ``re``, no ``datetime``).

Sizes::

    human_size(4_261_234)        -> "4.26MB"    (decimal, 3 significant digits: images, ps -s)
    human_size(1_000_000, 4)     -> "1MB"       (go-units HumanSize: prune, system df)
    bytes_size(1_572_864)        -> "1.5MiB"    (binary, 4 digits: stats)
    parse_ram_size("512m")       -> 536870912   (-m, --shm-size: binary multipliers)
    from_human_size("1kB")       -> 1000        (decimal multipliers)

Durations (Go's ``time.Duration`` is an int number of nanoseconds, and so are these)::

    parse_duration("1m30s")      -> 90_000_000_000
    format_duration(500_000_000) -> "500ms"
    human_duration(7200)         -> "2 hours"   (seconds in, as go-units HumanDuration)
    time_ago(created, now)       -> "2 hours ago"

Times (nanoseconds since the epoch)::

    parse_timestamp("10m", now)  -> now - 10 minutes (--since, --until)
    format_rfc3339_nano(ns)      -> "2024-01-02T03:04:05.123456789Z" (inspect's Created)
    go_time_string(seconds)      -> "2024-01-02 03:04:05 +0000 UTC" (images' CreatedAt)

Bad input raises :class:`~berth.errors.InvalidArgument` with Go's or go-units' wording.
"""

from __future__ import annotations

import time

from berth.errors import InvalidArgument

__all__ = [
    "bytes_size",
    "format_duration",
    "format_rfc3339_nano",
    "from_human_size",
    "go_time_string",
    "human_duration",
    "human_size",
    "parse_duration",
    "parse_ram_size",
    "parse_timestamp",
    "time_ago",
]

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DECIMAL_MULTIPLIERS = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY_MULTIPLIERS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def _scaled(size: float, base: float, names: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(names) - 1:
        size /= base
        index += 1
    return size, names[index]


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size with ``precision`` significant digits: "4.26MB", "999B", "1kB".

    Go's ``%.*g`` keeps its quirks: 999999 bytes is "1e+03kB", as docker prints it.
    The docker CLI uses precision 3 for image, container and history sizes and 4
    (go-units ``HumanSize``) for ``system df`` and the "Total reclaimed space" of prune.
    """
    value, unit = _scaled(float(size), 1000.0, _DECIMAL_UNITS)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """Binary size with 4 significant digits, as ``docker stats``: "1.5MiB", "7.772GiB"."""
    value, unit = _scaled(float(size), 1024.0, _BINARY_UNITS)
    return f"{value:.4g}{unit}"


def parse_ram_size(text: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "64M", "1GiB", "100" (bytes); units binary."""
    return _parse_size(text, _BINARY_MULTIPLIERS)


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: "1kB" is 1000, "1MB" 1000000; units decimal."""
    return _parse_size(text, _DECIMAL_MULTIPLIERS)


def _parse_size(text: str, multipliers: dict[str, int]) -> int:
    from berth.cli.flags import parse_go_float

    number, space, suffix = text.partition(" ")
    if not space:
        last = max(text.rfind(c) for c in "0123456789.")
        if last < 0:
            raise InvalidArgument(f"invalid size: '{text}'")
        number, suffix = text[: last + 1], text[last + 1 :]
    try:
        size = parse_go_float(number)
    except ValueError as error:
        raise InvalidArgument(str(error)) from None
    if size < 0:
        raise InvalidArgument(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    if len(suffix) > 3:
        raise InvalidArgument(f"invalid suffix: '{suffix}'")
    if lowered[0] == "b":
        if len(lowered) > 1:
            raise InvalidArgument(f"invalid suffix: '{lowered}'")
        return int(size)
    multiplier = multipliers.get(lowered[0])
    if (
        multiplier is None
        or (len(lowered) == 2 and lowered[1] != "b")
        or (len(lowered) == 3 and lowered[1:] != "ib")
    ):
        raise InvalidArgument(f"invalid suffix: '{lowered}'")
    return int(size * multiplier)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 days"..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def time_ago(timestamp: float, now: float | None = None) -> str:
    """Docker's CreatedSince: ``human_duration(now - timestamp) + " ago"`` (epoch seconds)."""
    if now is None:
        now = time.time()
    return human_duration(now - timestamp) + " ago"


# ---------------------------------------------------------------------------------------------
# Go durations

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # MICRO SIGN
    "\u03bcs": 1_000,  # GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: "300ms", "-1.5h", "2h45m", "1µs"."""
    from berth.cli.flags import go_quote

    quoted = go_quote(text)
    invalid = InvalidArgument(f"time: invalid duration {quoted}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid
        whole, rest, had_whole = _leading_int(rest)
        if whole is None:
            raise invalid
        fraction, scale, had_fraction = 0, 1.0, False
        if rest[:1] == ".":
            fraction, scale, rest, had_fraction = _leading_fraction(rest[1:])
        if not had_whole and not had_fraction:
            raise invalid
        end = 0
        while end < len(rest) and rest[end] != "." and not ("0" <= rest[end] <= "9"):
            end += 1
        if end == 0:
            raise InvalidArgument(f"time: missing unit in duration {quoted}")
        unit_name, rest = rest[:end], rest[end:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise InvalidArgument(f"time: unknown unit {go_quote(unit_name)} in duration {quoted}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > _MAX_DURATION:
        raise invalid
    return total


def _leading_int(text: str) -> tuple[int | None, str, bool]:
    index = 0
    while index < len(text) and "0" <= text[index] <= "9":
        index += 1
    if index == 0:
        return 0, text, False
    value = int(text[:index])
    if value > 1 << 63:
        return None, text, True
    return value, text[index:], True


def _leading_fraction(text: str) -> tuple[int, float, str, bool]:
    index = 0
    value = 0
    scale = 1.0
    overflow = False
    while index < len(text) and "0" <= text[index] <= "9":
        if not overflow:
            if value > ((1 << 63) - 1) // 10:
                overflow = True
            else:
                candidate = value * 10 + int(text[index])
                if candidate > 1 << 63:
                    overflow = True
                else:
                    value = candidate
                    scale *= 10
        index += 1
    return value, scale, text[index:], index > 0


def _fraction_digits(value: int, digits: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of ``value`` (``digits`` places), trailing zeros dropped."""
    fraction = value % 10**digits
    text = f"{fraction:0{digits}d}".rstrip("0") if fraction else ""
    return ("." + text if text else ""), value // 10**digits


def format_duration(nanoseconds: int) -> str:
    """Go's Duration.String: "1h2m3.5s", "1m30s", "500ms", "1.5µs", "0s"."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < 1_000_000_000:
        if value < 1_000:
            return f"{sign}{value}ns"
        if value < 1_000_000:
            fraction, whole = _fraction_digits(value, 3)
            return f"{sign}{whole}{fraction}\u00b5s"
        fraction, whole = _fraction_digits(value, 6)
        return f"{sign}{whole}{fraction}ms"
    fraction, seconds = _fraction_digits(value, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


# ---------------------------------------------------------------------------------------------
# Times


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


_CLOCK_FIELDS = {"01": "month", "02": "day", "15": "hour", "04": "minute", "05": "second"}


def _parse_time(value: str, layout: tuple[str, ...], local_offset: int | None) -> int:
    """Go's time.Parse for docker's few layouts; returns nanoseconds since the epoch.

    ``layout`` is a sequence of Go layout elements ("2006", "-", "01", "T", "15", ":04",
    ".999999999", "Z07:00"...). ``local_offset`` is the zone offset (seconds) used when the
    layout has no zone (ParseInLocation); None means UTC.
    """
    from berth.cli.flags import go_quote

    full_layout = "".join(layout)
    rest = value
    fields = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "nanos": 0}
    offset = local_offset or 0

    def bad(element: str) -> InvalidArgument:
        return InvalidArgument(
            f"parsing time {go_quote(value)} as {go_quote(full_layout)}: "
            f"cannot parse {go_quote(rest)} as {go_quote(element)}"
        )

    def number(text: str, fixed: bool) -> tuple[int, str] | None:
        if not text[:1].isdigit() or not text[:1].isascii():
            return None
        if not text[1:2].isdigit() or not text[1:2].isascii():
            return None if fixed else (int(text[0]), text[1:])
        return int(text[:2]), text[2:]

    for element in layout:
        if element == "2006":
            if len(rest) < 4 or not rest[:4].isdigit() or not rest[:4].isascii():
                raise bad(element)
            fields["year"], rest = int(rest[:4]), rest[4:]
        elif element in _CLOCK_FIELDS:
            got = number(rest, fixed=element != "15")
            if got is None:
                raise bad(element)
            fields[_CLOCK_FIELDS[element]], rest = got
            fraction_follows = rest[:1] in (".", ",") and rest[1:2].isdigit()
            if element == "05" and fraction_follows and ".999999999" not in layout:
                fields["nanos"], rest = _nanoseconds(rest)
        elif element == ".999999999":
            if rest[:1] in (".", ",") and rest[1:2].isdigit():
                fields["nanos"], rest = _nanoseconds(rest)
        elif element == "Z07:00":
            if rest[:1] == "Z":
                offset, rest = 0, rest[1:]
            elif (
                len(rest) >= 6
                and rest[0] in "+-"
                and rest[3] == ":"
                and (rest[1:3] + rest[4:6]).isdigit()
            ):
                sign = -1 if rest[0] == "-" else 1
                offset = sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60)
                rest = rest[6:]
            else:
                raise bad(element)
        else:
            if not rest.startswith(element):
                raise bad(element)
            rest = rest[len(element) :]
    if rest:
        raise InvalidArgument(
            f"parsing time {go_quote(value)} as {go_quote(full_layout)}: "
            f"extra text: {go_quote(rest)}"
        )
    checks = (
        ("month", 1 <= fields["month"] <= 12),
        ("day", 1 <= fields["day"] <= _days_in_month(fields["year"], fields["month"] or 1)),
        ("hour", fields["hour"] < 24),
        ("minute", fields["minute"] < 60),
        ("second", fields["second"] < 60),
    )
    for name, ok in checks:
        if not ok:
            raise InvalidArgument(f"parsing time {go_quote(value)}: {name} out of range")
    days = _days_from_civil(fields["year"], fields["month"], fields["day"])
    seconds = days * 86400 + fields["hour"] * 3600 + fields["minute"] * 60 + fields["second"]
    return (seconds - offset) * 1_000_000_000 + fields["nanos"]


def _nanoseconds(text: str) -> tuple[int, str]:
    """A ".123" fraction (1 to 9 digits used, like Go) as nanoseconds, and the rest."""
    end = 1
    while end < len(text) and text[end].isdigit() and text[end].isascii():
        end += 1
    digits = text[1:end][:9]
    return int(digits.ljust(9, "0")), text[end:]


def parse_timestamp(value: str, now: float | None = None) -> int:
    """Docker's --since/--until value as nanoseconds since the epoch.

    Accepts what docker accepts: a Go duration relative to ``now`` ("10m", "1h30m"; whole
    seconds, as docker truncates), RFC 3339 with or without fraction and zone
    ("2024-01-02T03:04:05.5Z", "2024-01-02T03:04" in local time), a date ("2024-01-02",
    "2024-01-02Z", "2024-01-02+01:00"), or Unix seconds with an optional fraction
    ("1700000000.5"). A time without a zone is read in the zone ``now`` is in.
    """
    if now is None:
        now = time.time()
    if value != "0":
        try:
            duration = parse_duration(value)
        except InvalidArgument:
            pass
        else:
            return int((int(now * 1e9) - duration) // 1_000_000_000) * 1_000_000_000
    in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    layout: tuple[str, ...]
    date = ("2006", "-", "01", "-", "02")
    zone: tuple[str, ...] = () if in_location else ("Z07:00",)
    if "." in value:
        layout = (*date, "T", "15", ":", "04", ":", "05", ".999999999", *zone)
    elif "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1
        clock: tuple[str, ...] = ("15",) if colons == 0 else ("15", ":", "04")
        if colons >= 2:
            clock = ("15", ":", "04", ":", "05")
        layout = (*date, "T", *clock, *zone)
    else:
        layout = (*date, *zone)
    local_offset = time.localtime(now).tm_gmtoff if in_location else None
    try:
        return _parse_time(value, layout, local_offset)
    except InvalidArgument:
        if "-" in value:
            raise
    return _parse_unix_timestamp(value)


def _parse_unix_timestamp(value: str) -> int:
    """Unix seconds with an optional fraction ("1700000000.5"), as docker's parseTimestamp."""
    from berth.cli.flags import go_quote

    seconds_text, dot, nanos_text = value.partition(".")
    seconds = _decimal_int(seconds_text)
    nanos = _decimal_int(nanos_text) if dot else 0
    if seconds is None or nanos is None:
        raise InvalidArgument(f"failed to parse value as time or duration: {go_quote(value)}")
    if dot:
        nanos = int(float(nanos) * 10.0 ** (9 - len(nanos_text)))
    return seconds * 1_000_000_000 + nanos


def _decimal_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), None where Go fails: base 10, no underscores."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isdigit() or not digits.isascii():
        return None
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else None


def format_rfc3339_nano(nanoseconds: int, offset: int = 0) -> str:
    """Go's RFC3339Nano: "2024-01-02T03:04:05.123456789Z", trailing zeros dropped.

    ``offset`` is the zone offset in seconds ("Z" when 0, else "+01:00").
    """
    seconds, nanos = divmod(nanoseconds, 1_000_000_000)
    stamp = time.gmtime(seconds + offset)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return (
        f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d}T"
        f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}{fraction}"
        f"{_zone_text(offset, colon=True)}"
    )


def _zone_text(offset: int, *, colon: bool) -> str:
    if offset == 0 and colon:
        return "Z"
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def go_time_string(seconds: float, *, utc: bool = False) -> str:
    """Go's Time.String in the local zone (or UTC): "2024-01-02 03:04:05 +0000 UTC".

    What docker prints as ``{{.CreatedAt}}`` of images and containers.
    """
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    if utc:
        offset, name = 0, "UTC"
    else:
        local = time.localtime(whole)
        offset, name = local.tm_gmtoff, local.tm_zone
    stamp = time.gmtime(whole + offset)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return (
        f"{stamp.tm_year:04d}-{stamp.tm_mon:02d}-{stamp.tm_mday:02d} "
        f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}{fraction} "
        f"{_zone_text(offset, colon=False)} {name}"
    )
