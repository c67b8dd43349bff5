"""Blob downloads that survive a broken connection or a killed process.

A download appends the bytes it receives to a partial file in the store's ``tmp/`` named
after the blob (``berth-tmp-<pid>-pull-<algorithm>-<hex>``; the pid tells ``berth system
check`` the file belongs to a live process) while handing the same bytes on to the reader
(the layer ingester). After a failure the file stays; the next attempt, in this process after
a backoff or in a later ``berth pull`` that takes over the file of a dead process, replays the
file to the reader and asks the registry only for the rest (``Range: bytes=N-``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import httpx

from berth.oci.digest import Digest
from berth.store.blobs import TEMP_PREFIX
from berth.store.leases import process_start_time

PARTIAL_KIND = "pull"


class Cancelled(Exception):
    """Another layer failed: this one stops."""


class Interrupted(Exception):
    """The connection broke during a blob download; what arrived is kept for resuming."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def range_start(response: httpx.Response) -> int | None:
    """The first byte of a ``Content-Range: bytes 100-199/200`` answer."""
    value = response.headers.get("content-range", "")
    unit, _, rest = value.partition(" ")
    if unit.strip() != "bytes":
        return None
    first = rest.split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


class PartialBlob:
    """A download in progress: ``tmp/berth-tmp-<pid>-pull-<algorithm>-<hex>``.

    The pid in the name tells ``berth system check`` that the file belongs to a live process.
    A later pull of the same blob renames the file of a dead process to its own name and goes on
    from where it stopped. Two pulls of one blob in one process do not share a file.
    """

    _active: ClassVar[set[str]] = set()
    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, key: str | None) -> None:
        self.path = path
        self._key = key
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size
        self._done = False

    @classmethod
    def claim(cls, tmp_dir: str, digest: Digest) -> PartialBlob:
        os.makedirs(tmp_dir, exist_ok=True)
        suffix = f"-{PARTIAL_KIND}-{digest.algorithm}-{digest.hex}"
        key = os.path.join(os.path.abspath(tmp_dir), suffix)
        with cls._active_lock:
            if key in cls._active:  # another thread of this process is on it
                unique = f"{TEMP_PREFIX}{os.getpid()}-{PARTIAL_KIND}-{os.urandom(4).hex()}"
                return cls(os.path.join(tmp_dir, unique), None)
            cls._active.add(key)
        ours = os.path.join(tmp_dir, f"{TEMP_PREFIX}{os.getpid()}{suffix}")
        try:
            if not os.path.exists(ours):
                for name in _listdir(tmp_dir):
                    if not (name.startswith(TEMP_PREFIX) and name.endswith(suffix)):
                        continue
                    owner = name[len(TEMP_PREFIX) :].split("-", 1)[0]
                    if owner.isdigit() and process_start_time(int(owner)) is not None:
                        continue  # a live pull is writing it
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(os.path.join(tmp_dir, name), ours)
                        break
            return cls(ours, key)
        except BaseException:
            with cls._active_lock:
                cls._active.discard(key)
            raise

    def append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)

    def read_at(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0

    def digest(self, algorithm: str) -> Digest:
        hasher = hashlib.new(algorithm)
        offset = 0
        while True:
            data = os.pread(self.fd, 1 << 20, offset)
            if not data:
                return Digest(algorithm, hasher.hexdigest())
            hasher.update(data)
            offset += len(data)

    def adopt(self, final: str) -> None:
        """Move the verified download into the blob store: fsync, then rename."""
        os.fsync(self.fd)
        os.close(self.fd)
        self._done = True
        if os.path.exists(final):
            os.unlink(self.path)
            return
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.chmod(self.path, 0o644)
        os.rename(self.path, final)

    def discard(self) -> None:
        if not self._done:
            os.close(self.fd)
            self._done = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        if not self._done:
            os.close(self.fd)
            self._done = True
            if self._key is None:  # not resumable under its name: do not leave it behind
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        if self._key is not None:
            with self._active_lock:
                self._active.discard(self._key)

    def __enter__(self) -> PartialBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobDownload(io.RawIOBase):
    """The blob's bytes: first those already in the partial file, then the network's, which
    are appended to the file as they pass. Ends after ``total`` bytes."""

    def __init__(
        self,
        partial: PartialBlob,
        response: httpx.Response | None,
        total: int,
        *,
        on_bytes: Callable[[int], None],
        cancel: threading.Event,
    ) -> None:
        super().__init__()
        self._partial = partial
        self._chunks = _chunks(response)
        self._replay = partial.size  # bytes to give from the file first
        self._replayed = 0
        self._total = total
        self._pending = b""
        self._on_bytes = on_bytes
        self._cancel = cancel
        self.count = 0  # bytes given to the reader so far

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled()
        n = size if size is not None and size > 0 else 1 << 20
        data = self._next(n)
        self.count += len(data)
        if data:
            self._on_bytes(self.count)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next(self, n: int) -> bytes:
        if self._replayed < self._replay:
            data = self._partial.read_at(self._replayed, min(n, self._replay - self._replayed))
            self._replayed += len(data)
            if data:
                return data
            self._replay = self._replayed  # the file is shorter than it was: carry on
        if self.count >= self._total:
            return b""
        if not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise Interrupted(
                    httpx.RemoteProtocolError(
                        f"the registry ended the blob after {self.count} of {self._total} bytes"
                    )
                ) from None
            except httpx.TransportError as exc:
                raise Interrupted(exc) from None
            room = self._total - self.count
            self._pending = chunk if len(chunk) <= room else chunk[:room]
        if len(self._pending) <= n:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        self._partial.append(data)
        return data

    def drain(self) -> None:
        """Read (and keep) the rest of the blob; stops quietly if the network fails."""
        with contextlib.suppress(Interrupted, Cancelled):
            while self.read(1 << 20):
                pass


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _chunks(response: httpx.Response | None) -> Iterator[bytes]:
    """The body as it arrives; undecoded (faster) unless a content encoding was applied."""
    if response is None:
        return iter(())
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity") and not response.is_stream_consumed:
        return response.iter_raw()
    return response.iter_bytes()
