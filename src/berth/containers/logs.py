"""The json-file log: Docker's on-disk format, written with rotation and read back.

One JSON object per line, exactly as Docker's json-file driver writes it::

    {"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}

- A container's output is cut into lines; each line is one entry whose ``log`` ends in "\\n".
  A line without a newline is held until it is completed, or until 16 KiB of it have gathered
  (then those 16 KiB are one *partial* entry, without "\\n"), or until the stream ends
  (:meth:`LogWriter.close`: what is left is a partial entry).
- Strings are escaped as Docker's own encoder does (not as Python's ``json``): ``\\n`` and
  ``\\r`` short, every other control character, ``<``, ``>`` and ``&`` as ``\\u00XX``, U+2028
  and U+2029 as ``\\u2028``/``\\u2029``, each byte of invalid UTF-8 as ``\\ufffd``.
- ``time`` is Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped).
- Rotation: before an entry is written, a file that has reached ``max_size`` bytes becomes
  ``<path>.1`` (``.1`` becomes ``.2``, ... up to ``max_files - 1``; the oldest goes), so a file
  exceeds the limit by at most one entry. With ``compress`` the rotated files are gzipped
  (``<path>.1.gz``). ``max_files == 1`` truncates the file instead. ``max_size <= 0``: no
  rotation.

:func:`read_logs` reads them back as ``docker logs`` shows them: ``tail``, ``since``,
``until``, ``timestamps`` (Docker's fixed nine-digit RFC 3339 prefix), and ``follow``, which
tails the current file, follows rotation, and stops once the container no longer runs. It
needs no supervisor: it reads the files.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque

from berth.errors import InvalidArgument
from berth.values import FrozenValue, init_fields

# calendar, json and typing.cast are imported where logs are read: ``berth run`` only writes
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any

PARTIAL_SIZE = 16 * 1024
FOLLOW_POLL_SECONDS = 0.1
DEFAULT_MAX_SIZE = "10m"
DEFAULT_MAX_FILES = "3"
KNOWN_OPTIONS = frozenset(
    ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
)


# ---------------------------------------------------------------------------------- options


class LogOptions(FrozenValue):
    """A json-file log's rotation settings; ``max_size <= 0`` means "never rotate"."""

    __slots__ = ("compress", "max_files", "max_size")
    max_size: int
    max_files: int
    compress: bool

    def __init__(self, max_size: int, max_files: int, compress: bool) -> None:
        init_fields(self, max_size=max_size, max_files=max_files, compress=compress)


def parse_log_options(config: dict[str, str] | None) -> LogOptions:
    """``--log-opt`` values (HostConfig.LogConfig.Config) as rotation settings.

    berth rotates by default (max-size=10m, max-file=3: each option the user did not give
    takes berth's default). Sizes are go-units' decimal sizes ("10m" is 10,000,000 bytes),
    as Docker reads them. Docker's rules: max-size positive, max-file at least 1, compress
    only with max-file of at least 2.
    """
    from berth.units import from_human_size

    config = dict(config or {})
    unknown = sorted(set(config) - KNOWN_OPTIONS)
    if unknown:
        raise InvalidArgument(f"unknown log opt '{unknown[0]}' for json-file log driver")
    try:
        max_size = from_human_size(config.get("max-size") or DEFAULT_MAX_SIZE)
    except InvalidArgument:
        raise InvalidArgument(f"invalid max-size: {config.get('max-size')!r}") from None
    if max_size <= 0:
        raise InvalidArgument("max-size must be a positive number")
    text = config.get("max-file") or DEFAULT_MAX_FILES
    try:
        max_files = int(text)
    except ValueError:
        raise InvalidArgument(f'invalid max-file: strconv.Atoi: parsing "{text}"') from None
    if max_files < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    compress = _parse_bool(config.get("compress", "false"), "compress")
    if compress and max_files < 2:
        raise InvalidArgument("compress cannot be true when max-file is less than 2")
    return LogOptions(max_size, max_files, compress)


def _parse_bool(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false", ""):
        return False
    raise InvalidArgument(f'invalid value for {name}: strconv.ParseBool: parsing "{text}"')


def writer_for(path: str, log_config: dict[str, Any] | None) -> LogWriter | None:
    """The writer HostConfig.LogConfig asks for: None for the ``none`` driver."""
    log_config = log_config or {}
    if str(log_config.get("Type") or "json-file") == "none":
        return None
    options = parse_log_options(log_config.get("Config"))
    return LogWriter(path, options.max_size, options.max_files, options.compress)


# ---------------------------------------------------------------------------------- encoding


_INVALID_BYTE = "\udcff"  # a lone surrogate: no valid UTF-8 decodes to it


def _escape_table() -> dict[int, str]:
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\"})
    for char in "<>&\u2028\u2029":
        table[ord(char)] = f"\\u{ord(char):04x}"
    table[ord(_INVALID_BYTE)] = "\\ufffd"
    return table


_ESCAPES = _escape_table()


def _one_byte_at_a_time(exc: UnicodeError) -> tuple[str, int]:
    """Each byte of invalid UTF-8 becomes one escaped U+FFFD, as Go's decoder counts them
    (a valid U+FFFD in the input stays as it is, as Docker leaves it)."""
    assert isinstance(exc, UnicodeDecodeError)
    return _INVALID_BYTE, exc.start + 1


def _register_error_handler() -> str:
    import codecs

    name = "berth-go-replace"
    codecs.register_error(name, _one_byte_at_a_time)
    return name


_GO_REPLACE = _register_error_handler()


def json_string(data: bytes) -> str:
    """``data`` as a JSON string literal, escaped as Docker's json-file encoder escapes."""
    return '"' + data.decode("utf-8", _GO_REPLACE).translate(_ESCAPES) + '"'


class _Clock:
    """RFC3339Nano timestamps; the date-and-seconds part is cached for the current second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, ns: int) -> str:
        second, nanos = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if nanos:
            return f"{self._prefix}.{nanos:09d}".rstrip("0") + "Z"
        return self._prefix + "Z"


def encode_entry(stream: str, line: bytes, timestamp: str) -> bytes:
    """One json-file line (with its trailing newline)."""
    return (
        '{"log":' + json_string(line) + ',"stream":"' + stream + '","time":"' + timestamp + '"}\n'
    ).encode()


# ---------------------------------------------------------------------------------- writing


class LogWriter:
    """Appends a container's output to its json-file log, rotating as configured.

    Not thread-safe; one writer per log file (the process that holds the container's stdio).
    """

    def __init__(self, path: str, max_size: int, max_files: int, compress: bool) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.compress = compress
        self._pending: dict[str, bytes] = {}
        self._clock = _Clock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` that ``stream`` ("stdout"/"stderr") produced; an unfinished last line
        waits for the rest (or for 16 KiB of itself)."""
        if not data:
            return
        pending = self._pending.pop(stream, b"") + data
        timestamp = self._clock.format(time.time_ns())
        out: list[bytes] = []
        start = 0
        end = len(pending)
        while start < end:
            newline = pending.find(b"\n", start, min(end, start + PARTIAL_SIZE))
            if newline >= 0:
                out.append(encode_entry(stream, pending[start : newline + 1], timestamp))
                start = newline + 1
            elif end - start >= PARTIAL_SIZE:
                out.append(encode_entry(stream, pending[start : start + PARTIAL_SIZE], timestamp))
                start += PARTIAL_SIZE
            else:
                break
        if start < end:
            self._pending[stream] = pending[start:]
        self._append(out)

    def flush_partial(self) -> None:
        """Write the unfinished lines as partial entries (the streams have ended)."""
        timestamp = self._clock.format(time.time_ns())
        out = [encode_entry(s, data, timestamp) for s, data in self._pending.items() if data]
        self._pending.clear()
        self._append(out)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush_partial()
        finally:
            os.close(self._fd)
            self._fd = -1

    def _append(self, entries: list[bytes]) -> None:
        batch: list[bytes] = []
        batch_size = 0
        for entry in entries:
            if self.max_size > 0 and self._size + batch_size >= self.max_size:
                self._write_all(b"".join(batch))
                batch, batch_size = [], 0
                if self._size >= self.max_size:
                    self._rotate()
            batch.append(entry)
            batch_size += len(entry)
        if batch:
            self._write_all(b"".join(batch))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        """``path`` -> ``path.1`` (compressed: ``path.1.gz``) -> ... -> gone. Whatever fails
        (a full disk), the writer goes on with a log file open."""
        os.close(self._fd)
        self._fd = -1
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            if self.max_files == 1:
                flags |= os.O_TRUNC
                return
            suffix = ".gz" if self.compress else ""
            _unlink_quietly(f"{self.path}.{self.max_files - 1}{suffix}")
            for n in range(self.max_files - 2, 0, -1):
                source = f"{self.path}.{n}{suffix}"
                if os.path.exists(source):
                    os.rename(source, f"{self.path}.{n + 1}{suffix}")
            if self.compress:
                _gzip_into(self.path, f"{self.path}.1.gz")
                os.unlink(self.path)
            else:
                os.rename(self.path, f"{self.path}.1")
        finally:
            self._fd = os.open(self.path, flags, 0o640)
            self._size = os.fstat(self._fd).st_size


def _gzip_into(source: str, target: str) -> None:
    import gzip
    import shutil

    tmp = target + ".tmp"
    with open(source, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.rename(tmp, target)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------- reading


class LogEntry(FrozenValue):
    __slots__ = ("data", "stream", "time_ns")
    stream: str
    data: bytes
    time_ns: int

    def __init__(self, stream: str, data: bytes, time_ns: int) -> None:
        init_fields(self, stream=stream, data=data, time_ns=time_ns)


def parse_entry(line: bytes) -> LogEntry | None:
    """One json-file line; None for a damaged one (a crash can cut the last line short)."""
    import json

    try:
        doc = json.loads(line)
        return LogEntry(
            str(doc.get("stream") or "stdout"),
            str(doc.get("log") or "").encode("utf-8", "surrogateescape"),
            parse_time(str(doc["time"])),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_time(text: str) -> int:
    """An RFC 3339 time as written in the log ("2024-01-02T03:04:05.5Z") in ns since the
    epoch. Raises ValueError."""
    if len(text) < 20 or text[10] not in "Tt":
        raise ValueError(text)
    fields = [int(text[a:b]) for a, b in ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19))]
    import calendar

    seconds = calendar.timegm((*fields, 0, 0, 0))
    rest = text[19:]
    nanos = 0
    if rest.startswith("."):
        digits = 1
        while digits < len(rest) and rest[digits].isdigit():
            digits += 1
        nanos = int(rest[1:digits].ljust(9, "0")[:9])
        rest = rest[digits:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(text)
    return (seconds - offset) * 1_000_000_000 + nanos


def fixed_timestamp(ns: int) -> str:
    """Docker's ``logs -t`` prefix: RFC 3339 with exactly nine fraction digits, UTC."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def log_files(path: str) -> list[str]:
    """The log's files, oldest first: ``<path>.N[.gz]`` ... ``<path>.1[.gz]``, ``<path>``."""
    directory, base = os.path.split(path)
    numbered: list[tuple[int, str]] = []
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(base + "."):
            continue
        rest = name[len(base) + 1 :]
        number = rest[:-3] if rest.endswith(".gz") else rest
        if number.isdigit():
            numbered.append((int(number), os.path.join(directory, name)))
    files = [p for _, p in sorted(numbered, reverse=True)]
    if os.path.exists(path):
        files.append(path)
    return files


def _open_log(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        import gzip
        from typing import cast

        return cast("IO[bytes]", gzip.open(path, "rb"))
    return open(path, "rb")


def _lines_of(path: str) -> Iterator[bytes]:
    """The complete lines of a rotated file (which no longer grows)."""
    try:
        with _open_log(path) as f:
            for line in f:
                if line.endswith(b"\n"):
                    yield line
    except FileNotFoundError:  # rotated away meanwhile
        return


def _head_of(path: str, size: int) -> tuple[list[bytes], bytes]:
    """The complete lines among the first ``size`` bytes of ``path``, and the rest."""
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except FileNotFoundError:
        return [], b""
    lines = data.split(b"\n")
    rest = lines.pop()
    return [line + b"\n" for line in lines], rest


def _tail_of(path: str, count: int, size: int | None = None) -> tuple[list[bytes], bytes]:
    """The last ``count`` complete lines among the first ``size`` bytes of ``path``, and
    what follows the last newline."""
    if path.endswith(".gz"):
        return list(deque(_lines_of(path), maxlen=count)), b""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END) if size is None else size
            position = end
            chunk = b""
            while position > 0 and chunk.count(b"\n") <= count:
                step = min(65536, position)
                position -= step
                f.seek(position)
                chunk = f.read(step) + chunk
    except FileNotFoundError:
        return [], b""
    chunk = chunk[: end - position]
    lines = chunk.split(b"\n")
    rest = lines.pop()  # after the last newline: an unfinished line (or nothing)
    if position > 0:
        lines = lines[1:]  # the first one may be cut
    return ([line + b"\n" for line in lines[-count:]] if count else []), rest


def read_logs(
    path: str,
    *,
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float | None = None,
    until: float | None = None,
    timestamps: bool = False,
    follow: bool = False,
    is_running: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """The log as ``docker logs`` shows it: ``(stream, bytes)`` per entry.

    ``tail`` counts entries of both streams (as Docker does) before the stream filter; None
    or a negative number means all. ``since``/``until`` are seconds since the epoch.
    ``timestamps`` prefixes each entry with Docker's timestamp and a space. ``follow`` then
    waits for more, until ``is_running()`` says the container stopped (it is asked about
    every 0.1 s while nothing new comes; None means "never stops").
    """
    since_ns = int(since * 1e9) if since is not None else None
    until_ns = int(until * 1e9) if until is not None else None
    wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}

    def emit(line: bytes) -> tuple[str, bytes] | bool | None:
        """The output for one line; None to skip it; False once ``until`` is passed."""
        entry = parse_entry(line)
        if entry is None:
            return None
        if until_ns is not None and entry.time_ns > until_ns:
            return False
        if since_ns is not None and entry.time_ns < since_ns:
            return None
        if entry.stream not in wanted:
            return None
        if timestamps:
            return entry.stream, fixed_timestamp(entry.time_ns).encode() + b" " + entry.data
        return entry.stream, entry.data

    try:  # what the current file holds now is history; what comes after it, following
        current = os.stat(path)
        inode: int | None = current.st_ino
        size = current.st_size
    except FileNotFoundError:
        inode, size = None, 0
    rotated = [f for f in log_files(path) if f != path]
    partial = b""
    history: Iterator[bytes]
    if tail is not None and tail >= 0:
        lines: list[bytes] = []
        if inode is not None:
            lines, partial = _tail_of(path, tail, size)
        for older in reversed(rotated):
            if len(lines) >= tail:
                break
            lines = _tail_of(older, tail - len(lines))[0] + lines
        history = iter(lines)
    else:
        head, partial = _head_of(path, size) if inode is not None else ([], b"")
        history = itertools.chain((line for f in rotated for line in _lines_of(f)), head)
    for line in history:
        result = emit(line)
        if result is False:
            return
        if result:
            assert isinstance(result, tuple)
            yield result
    if follow:
        yield from _follow(path, inode, size, partial, emit, is_running, until_ns)


def _follow(
    path: str,
    inode: int | None,
    offset: int,
    partial: bytes,
    emit: Callable[[bytes], tuple[str, bytes] | bool | None],
    is_running: Callable[[], bool] | None,
    until_ns: int | None,
) -> Iterator[tuple[str, bytes]]:
    """Tail ``path`` from ``offset`` of the file with ``inode`` (``partial``: the unfinished
    line before it), across rotations, until the container stops or ``until`` passes."""
    f: IO[bytes] | None = None

    def lines_of(data: bytes) -> Iterator[tuple[str, bytes] | bool]:
        nonlocal partial
        lines = (partial + data).split(b"\n")
        partial = lines.pop()
        for line in lines:
            result = emit(line + b"\n")
            if result is not None:
                yield result

    try:
        if inode is not None:
            f = _open_inode(path, inode) or _open_inode(f"{path}.1", inode)
            if f is not None:
                f.seek(offset)
        stopping = False
        while True:
            data = f.read() if f is not None else b""
            if data:
                for result in lines_of(data):
                    if result is False:
                        return
                    assert isinstance(result, tuple)
                    yield result
                continue
            try:
                now_inode: int | None = os.stat(path).st_ino
            except FileNotFoundError:
                now_inode = None
            if now_inode is not None and (f is None or now_inode != os.fstat(f.fileno()).st_ino):
                # rotated: read what was rotated after the file we had, then the new one
                newer = _rotated_after(path, os.fstat(f.fileno()).st_ino) if f else []
                if f is not None:
                    f.close()
                f = None
                for older in newer:
                    partial = b""
                    for result in lines_of(b"".join(_lines_of(older))):
                        if result is False:
                            return
                        assert isinstance(result, tuple)
                        yield result
                f, partial = open(path, "rb"), b""  # noqa: SIM115
                continue
            if stopping or (until_ns is not None and time.time_ns() > until_ns):
                return
            if is_running is not None and not is_running():
                stopping = True  # one more read: what was written before it stopped
                continue
            time.sleep(FOLLOW_POLL_SECONDS)
    finally:
        if f is not None:
            f.close()


def _rotated_after(path: str, inode: int) -> list[str]:
    """The rotated files newer than the one with ``inode``, oldest first (when it is
    ``<path>.K``: ``<path>.K-1`` ... ``<path>.1``); [] when it is not found."""
    rotated = [f for f in log_files(path) if f != path]
    for index, candidate in enumerate(rotated):
        try:
            if os.stat(candidate).st_ino == inode:
                return rotated[index + 1 :]
        except FileNotFoundError:
            continue
    return []


def _open_inode(path: str, inode: int) -> IO[bytes] | None:
    """``path`` opened, if it still is the file with ``inode``."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return None
    if os.fstat(f.fileno()).st_ino == inode:
        return f
    f.close()
    return None
