"""Compressed layer streams: detecting, decompressing and compressing, all streaming.

Layers come as gzip (most of them), zstd (OCI 1.1), or plain tar; ``docker load`` and
``docker import`` also meet bzip2 and xz. Decompression is streaming and bounded in memory
whatever the input claims: gzip goes through ISA-L (``isal.igzip_threaded``, which inflates in
a second thread while the caller unpacks), zstd through ``zstandard`` fed in small steps (a
zstd block can expand 32768-fold, so input is fed 1 KiB at a time to keep each step's output
small), bzip2 and xz through the standard library.

Damaged input is reported as :class:`~berth.errors.CorruptArchive` by the reader returned here,
whatever library noticed it: a truncated stream, a bad checksum, garbage. I/O errors of the
underlying stream (an ``OSError`` with an errno) pass through unchanged.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from typing import BinaryIO, Protocol, cast

import zstandard

from berth.errors import CorruptArchive, InvalidArgument

__all__ = ["COMPRESSIONS", "compressing_writer", "detect_compression", "open_decompressed"]

COMPRESSIONS = ("", "gzip", "zstd", "bzip2", "xz")
CHUNK = 1 << 20
_ZSTD_STEP = 1024  # compressed bytes fed to zstd per call: bounds one call's output to 32 MiB
_HEAD = 6

_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def detect_compression(head: bytes) -> str:
    """The compression of a stream from its first bytes (6 are enough): "" when none is known."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    # zstd skippable frames: magic 0x184D2A50..0x184D2A5F, little endian.
    if len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50:
        return "zstd"
    return ""


def open_decompressed(stream: BinaryIO, compression: str | None = None) -> BinaryIO:
    """A readable stream of the decompressed bytes of ``stream``, read once, sequentially.

    ``compression`` is one of :data:`COMPRESSIONS`, or None to detect it from the magic bytes
    (``stream`` need not be seekable: the bytes peeked at are given back). Closing the result
    does not close ``stream``.
    """
    if compression is None:
        head = _read_exactly(stream, _HEAD)
        compression = detect_compression(head)
        stream = cast(BinaryIO, _Prefixed(head, stream))
        if compression == "":
            return stream
    if compression == "":
        return stream
    raw: io.RawIOBase
    if compression == "gzip":
        raw = _Translating(_open_gzip(stream), "gzip")
    elif compression == "zstd":
        raw = _ZstdReader(stream)
    elif compression == "bzip2":
        raw = _Translating(bz2.BZ2File(stream, "rb"), "bzip2")
    elif compression == "xz":
        raw = _Translating(lzma.LZMAFile(stream, "rb"), "xz")  # noqa: SIM115
    else:
        raise InvalidArgument(
            f"unknown compression {compression!r}",
            hint=f"use one of {', '.join(repr(c) for c in COMPRESSIONS)}",
        )
    return cast(BinaryIO, io.BufferedReader(raw, buffer_size=CHUNK))


def compressing_writer(out: BinaryIO, compression: str, level: int | None = None) -> BinaryIO:
    """A writable stream that compresses into ``out``; close it to finish the stream.

    ``compression`` is "gzip" (ISA-L, levels 0-3, default 1; the header carries no name and
    mtime 0, so equal input gives equal output), "zstd" (levels 1-22, default 3) or "" (bytes
    pass through). Closing the writer leaves ``out`` open.
    """
    if compression == "gzip":
        from isal import igzip

        gz = igzip.IGzipFile(  # type: ignore[no-untyped-call]
            fileobj=out, mode="wb", compresslevel=1 if level is None else level, mtime=0
        )
        return cast(BinaryIO, gz)
    if compression == "zstd":
        compressor = zstandard.ZstdCompressor(level=3 if level is None else level)
        return cast(BinaryIO, compressor.stream_writer(out, closefd=False))
    if compression == "":
        return cast(BinaryIO, _Passthrough(out))
    raise InvalidArgument(
        f"berth cannot write {compression!r} compressed layers", hint="use 'gzip' or 'zstd'"
    )


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _open_gzip(stream: BinaryIO) -> _Decompressing:
    try:
        from isal import igzip_threaded

        return cast(_Decompressing, igzip_threaded.open(stream, "rb", threads=1, block_size=CHUNK))  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - isal is a declared dependency
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")


def _corrupt(name: str, exc: BaseException) -> CorruptArchive:
    if isinstance(exc, EOFError):
        return CorruptArchive(
            f"the {name} stream is truncated: it ended before its end marker",
            hint="the download or file was cut short; fetch it again",
        )
    return CorruptArchive(
        f"the {name} stream is corrupt: {exc}",
        hint="the data is damaged or is not really " + name,
    )


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: gives back bytes peeked at."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return cast(int, readinto(buffer))
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Decompressing(Protocol):
    def readinto(self, buffer: memoryview | bytearray, /) -> int: ...

    def close(self) -> None: ...


class _Translating(io.RawIOBase):
    """Reads from a decompressing file object, turning its errors into CorruptArchive.

    The inner reader is closed as soon as it ends or fails, not left to the garbage
    collector: ISA-L's threaded reader joins its thread when closed, and a join run by the
    collector inside CPython 3.11's thread start-up deadlocks (it takes a lock already held).
    """

    def __init__(self, inner: _Decompressing, name: str) -> None:
        self._inner = inner
        self._name = name
        self._inner_open = True
        self._failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if not self._inner_open:  # ended: EOF again, or the same failure again
            if self._failure is not None:
                raise self._failure
            return 0
        try:
            count = self._inner.readinto(buffer)
        except (EOFError, zlib.error, lzma.LZMAError) as exc:
            self._failure = _corrupt(self._name, exc)
            self._close_inner()
            raise self._failure from None
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno is None:
                self._failure = _corrupt(self._name, exc)
                self._close_inner()
                raise self._failure from None
            self._failure = exc
            self._close_inner()
            raise
        if not count and len(buffer):
            self._close_inner()
        return count

    def close(self) -> None:
        if not self.closed:
            self._close_inner()
        super().close()

    def _close_inner(self) -> None:
        if self._inner_open:
            self._inner_open = False
            try:
                self._inner.close()
            except (EOFError, OSError, zlib.error, lzma.LZMAError):
                pass  # closing a half-read damaged stream: already reported by readinto


class _ZstdReader(io.RawIOBase):
    """zstd frames (one or several) decompressed with bounded memory; truncation detected."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._decompressor = zstandard.ZstdDecompressor()
        self._obj = self._decompressor.decompressobj()
        self._in_frame = False  # fed bytes to the current frame that have not ended it
        self._input = memoryview(b"")
        self._output = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._output:
            if not self._input:
                data = self._stream.read(CHUNK)
                if not data:
                    if self._in_frame:
                        raise _corrupt("zstd", EOFError())
                    return 0
                self._input = memoryview(data)
            self._feed()
        n = min(len(buffer), len(self._output))
        buffer[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _feed(self) -> None:
        step, self._input = self._input[:_ZSTD_STEP], self._input[_ZSTD_STEP:]
        try:
            out = self._obj.decompress(step)
        except zstandard.ZstdError as exc:
            raise _corrupt("zstd", exc) from None
        self._in_frame = True
        if self._obj.eof:
            # One frame ended: what follows (if anything) is the next frame.
            rest = self._obj.unused_data
            self._obj = self._decompressor.decompressobj()
            self._in_frame = False
            if rest:
                self._input = memoryview(bytes(rest) + bytes(self._input))
        self._output = memoryview(out)


class _Passthrough(io.RawIOBase):
    """Writes go straight to ``out``; closing does not close it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()
