"""Layer compression: detection, streaming decompression, writers, damaged input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import threading

import pytest
import zstandard

from berth.errors import CorruptArchive, InvalidArgument
from berth.store.compression import (
    compressing_writer,
    detect_compression,
    open_decompressed,
)

PAYLOAD = os.urandom(300_000) + b"layer " * 200_000 + bytes(500_000)


def _read(stream: io.BufferedIOBase | object, step: int = 65536) -> bytes:
    parts = []
    try:
        while chunk := stream.read(step):  # type: ignore[attr-defined]
            parts.append(chunk)
    finally:
        stream.close()  # type: ignore[attr-defined]
    return b"".join(parts)


def _compress(kind: str, data: bytes = PAYLOAD) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "bzip2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    return data


class Pipe(io.RawIOBase):
    """Non-seekable, short reads: what a network download looks like."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self._data), 5000)
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"\x50\x2a\x4d\x18", "zstd"),  # skippable frame
        (b"BZh91AY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (b"etc/\x00\x00", ""),
        (b"", ""),
        (b"\x1f", ""),
    ],
)
def test_detect(head: bytes, name: str) -> None:
    assert detect_compression(head) == name


@pytest.mark.parametrize("kind", ["", "gzip", "zstd", "bzip2", "xz"])
@pytest.mark.parametrize("named", [True, False])
def test_round_trip_through_a_pipe(kind: str, named: bool) -> None:
    stream = open_decompressed(
        io.BufferedReader(Pipe(_compress(kind))),  # type: ignore[arg-type]
        kind if named else None,
    )
    assert _read(stream, 12345) == PAYLOAD


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_writer_round_trip_and_determinism(kind: str) -> None:
    outputs = []
    for _ in range(2):
        out = io.BytesIO()
        with compressing_writer(out, kind) as writer:
            for i in range(0, len(PAYLOAD), 100_000):
                writer.write(PAYLOAD[i : i + 100_000])
        assert not out.closed
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert detect_compression(outputs[0][:6]) == kind
    assert _read(open_decompressed(io.BytesIO(outputs[0]))) == PAYLOAD
    assert len(outputs[0]) < len(PAYLOAD) // 2


def test_uncompressed_writer_passes_bytes_through() -> None:
    out = io.BytesIO()
    with compressing_writer(out, "") as writer:
        writer.write(b"plain")
    assert out.getvalue() == b"plain"


def test_unknown_compressions() -> None:
    with pytest.raises(InvalidArgument, match="unknown compression"):
        open_decompressed(io.BytesIO(b""), "lz4")
    with pytest.raises(InvalidArgument, match="cannot write 'xz'"):
        compressing_writer(io.BytesIO(), "xz")


def test_gzip_multi_member_and_zstd_multi_frame() -> None:
    assert _read(open_decompressed(io.BytesIO(gzip.compress(b"a") + gzip.compress(b"b")))) == b"ab"
    c = zstandard.ZstdCompressor()
    frames = c.compress(b"first ") + c.compress(b"second")
    assert _read(open_decompressed(io.BytesIO(frames))) == b"first second"


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz"])
def test_truncated(kind: str) -> None:
    data = _compress(kind)
    stream = open_decompressed(io.BytesIO(data[: len(data) // 2]), kind)
    with pytest.raises(CorruptArchive, match=f"{kind} stream is (truncated|corrupt)"):
        _read(stream)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_corrupt(kind: str) -> None:
    data = bytearray(_compress(kind))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with pytest.raises(CorruptArchive, match=f"{kind} stream is corrupt"):
        _read(open_decompressed(io.BytesIO(bytes(data)), kind))


def test_corrupt_zstd_with_checksum() -> None:
    data = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(PAYLOAD))
    data[-2] ^= 0xFF
    with pytest.raises(CorruptArchive, match="zstd stream is corrupt"):
        _read(open_decompressed(io.BytesIO(bytes(data))))


def test_not_gzip_at_all() -> None:
    with pytest.raises(CorruptArchive, match="gzip stream is corrupt"):
        _read(open_decompressed(io.BytesIO(b"this is not gzip" * 100), "gzip"))


def test_io_errors_of_the_source_pass_through() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error") as caught:
        _read(open_decompressed(io.BufferedReader(Failing()), "gzip"))  # type: ignore[arg-type]
    assert not isinstance(caught.value, CorruptArchive)


def test_zstd_bomb_is_read_in_bounded_steps() -> None:
    """A tiny stream expanding to 256 MiB: each read returns a bounded amount."""
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(256 << 20))
    assert len(bomb) < 64 << 10
    stream = open_decompressed(io.BytesIO(bomb))
    total = 0
    while chunk := stream.read(1 << 20):
        assert len(chunk) <= 1 << 20
        total += len(chunk)
    assert total == 256 << 20


def test_gzip_reader_thread_does_not_outlive_close() -> None:
    before = threading.active_count()
    stream = open_decompressed(io.BytesIO(_compress("gzip")))
    stream.read(1000)
    stream.close()
    assert threading.active_count() == before


def _decompressor(stream: object) -> io.RawIOBase:
    """The ISA-L threaded reader under a stream from open_decompressed."""
    return stream.raw._inner  # type: ignore[attr-defined,no-any-return]


def test_a_gzip_stream_read_to_its_end_closes_its_reader_before_close() -> None:
    """The threaded reader is closed (its thread joined) when it ends, never left for the
    garbage collector to close: a join run by the collector can deadlock CPython 3.11's
    thread start-up (it takes a lock the start-up holds)."""
    stream = open_decompressed(io.BytesIO(gzip.compress(PAYLOAD)), "gzip")
    while stream.read(65536):
        pass
    assert _decompressor(stream).closed
    assert stream.read(10) == b""  # still at its end
    stream.close()


def test_a_failing_gzip_stream_closes_its_reader_and_keeps_failing() -> None:
    stream = open_decompressed(io.BytesIO(b"this is not gzip" * 100), "gzip")
    with pytest.raises(CorruptArchive):
        stream.read(65536)
    assert _decompressor(stream).closed
    with pytest.raises(CorruptArchive):
        stream.read(65536)
    stream.close()
