"""Blob upload sessions: streamed to a private directory, verified, then moved into place.

Each session is a directory ``uploads/<uuid>/`` holding:

- ``info.json``: the repository and start time, written once;
- ``data``: the bytes received so far;
- ``offset``: how many of them are *committed* (rewritten atomically after each accepted chunk);
- ``lock``: flocked while a request writes to the session, so two requests (in one process or in
  two worker processes) never write it at once.

A chunk is all or nothing: if the client disconnects, sends fewer bytes than it announced, or the
server is killed mid-chunk, the bytes past ``offset`` are cut off (at once, or by the next request
or server start), so the client resumes from the ``Range`` the server reports. Only ``PUT
?digest=`` turns a session into a blob: the content is hashed while it streams in (incrementally,
with a per-process cache of hash states; a session continued in another worker catches up by
reading just the bytes it has not hashed), compared with the digest, fsynced and renamed into
``blobs/``. A mismatch cancels the session and stores nothing.

Writes go through a thread (``os.pwrite`` and hashing release the GIL) in blocks of
``FLUSH_BYTES``, double-buffered, so one slow or large upload never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from berth.oci.digest import Digest
from berth.registry.server.errors import DistributionError
from berth.registry.server.storage import RegistryStorage

FLUSH_BYTES = 1 << 20
_HASH_READ_BYTES = 1 << 20
_LOCK_WAIT_SECONDS = 10.0
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HASH_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    repository: str
    offset: int


class UploadStore:
    """Creates, finds, resumes and cleans upload sessions of one storage directory."""

    def __init__(self, storage: RegistryStorage) -> None:
        self.storage = storage
        self._hashers: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._hashers_lock = threading.Lock()

    def _dir(self, upload_id: str) -> str:
        return os.path.join(self.storage.uploads_dir, upload_id)

    def create(self, repository: str) -> str:
        """A new, empty session; made in ``tmp/`` and renamed, so it appears complete."""
        upload_id = str(uuid.uuid4())
        staging = self.storage.new_tmp_path()
        os.makedirs(staging)
        info = {"repository": repository, "started": time.time()}
        _write_small(os.path.join(staging, "info.json"), json.dumps(info).encode())
        _write_small(os.path.join(staging, "offset"), b"0")
        fd = os.open(os.path.join(staging, "data"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
        os.close(fd)
        os.rename(staging, self._dir(upload_id))
        return upload_id

    def status(self, repository: str, upload_id: str) -> UploadStatus:
        """The committed offset of a session of ``repository``; BLOB_UPLOAD_UNKNOWN otherwise."""
        directory = self._existing_dir(repository, upload_id)
        offset = _read_offset(directory)
        return UploadStatus(upload_id, repository, offset)

    def open(self, repository: str, upload_id: str) -> Upload:
        """Lock the session for one request and return it positioned at its committed offset."""
        directory = self._existing_dir(repository, upload_id)
        lock_fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            _lock_with_deadline(lock_fd, _LOCK_WAIT_SECONDS)
            if not os.path.isdir(directory):  # finished or cancelled while we waited
                raise DistributionError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
            try:
                data_fd = os.open(os.path.join(directory, "data"), os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise DistributionError(
                    "BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}
                ) from None
        except BaseException:
            os.close(lock_fd)
            raise
        upload = Upload(self, upload_id, repository, directory, data_fd, lock_fd)
        upload.recover()
        return upload

    def cancel(self, repository: str, upload_id: str) -> None:
        upload = self.open(repository, upload_id)
        upload.discard()

    def recover(self, expiry_seconds: float) -> tuple[int, int]:
        """Cut uncommitted bytes off every idle session and remove expired ones.

        Returns (sessions repaired, sessions removed). Sessions in use (locked) are left alone.
        """
        repaired = removed = 0
        cutoff = time.time() - expiry_seconds
        try:
            names = os.listdir(self.storage.uploads_dir)
        except FileNotFoundError:
            return 0, 0
        for name in names:
            directory = self._dir(name)
            lock_path = os.path.join(directory, "lock")
            try:
                lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                info = _read_info(directory)
                started = info.get("started") if info is not None else None
                if not isinstance(started, (int, float)) or started < cutoff:
                    shutil.rmtree(directory, ignore_errors=True)
                    self.forget(name)
                    removed += 1
                    continue
                if _truncate_to_committed(directory):
                    repaired += 1
            finally:
                os.close(lock_fd)
        return repaired, removed

    def _existing_dir(self, repository: str, upload_id: str) -> str:
        if not _UUID_RE.match(upload_id):
            raise DistributionError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        directory = self._dir(upload_id)
        info = _read_info(directory)
        if info is None or info.get("repository") != repository:
            raise DistributionError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        return directory

    # the per-process cache of hash states, keyed by session
    def cached_hasher(self, upload_id: str) -> tuple[int, hashlib._Hash]:
        with self._hashers_lock:
            entry = self._hashers.get(upload_id)
        return (entry[0], entry[1].copy()) if entry is not None else (0, hashlib.sha256())

    def remember_hasher(self, upload_id: str, offset: int, hasher: hashlib._Hash) -> None:
        with self._hashers_lock:
            self._hashers[upload_id] = (offset, hasher)
            self._hashers.move_to_end(upload_id)
            while len(self._hashers) > _HASH_CACHE_SIZE:
                self._hashers.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        with self._hashers_lock:
            self._hashers.pop(upload_id, None)


class Upload:
    """One locked session, for the length of one request. Blocking methods: call in a thread."""

    def __init__(
        self,
        store: UploadStore,
        upload_id: str,
        repository: str,
        directory: str,
        data_fd: int,
        lock_fd: int,
    ) -> None:
        self.store = store
        self.id = upload_id
        self.repository = repository
        self.directory = directory
        self._data_fd = data_fd
        self._lock_fd = lock_fd
        self.committed = 0
        self.size = 0
        self._hashed, self._hasher = store.cached_hasher(upload_id)
        self._checkpoint = (self._hashed, self._hasher.copy())
        self._closed = False

    def recover(self) -> None:
        _truncate_to_committed(self.directory, self._data_fd)
        self.committed = _read_offset(self.directory)
        self.size = self.committed
        if self._hashed > self.committed:  # a cache from before a crash: start over
            self._hashed, self._hasher = 0, hashlib.sha256()
            self._checkpoint = (0, hashlib.sha256())

    def write(self, data: bytes | bytearray) -> None:
        """Append ``data`` after what has been received (not yet committed) and hash it."""
        self._catch_up_hash()
        view = memoryview(data)
        while view:
            written = os.pwrite(self._data_fd, view, self.size)
            self.size += written
            view = view[written:]
        self._hasher.update(data)
        self._hashed = self.size

    def commit(self) -> None:
        """Accept what has been received: the next request continues after it."""
        _write_small(os.path.join(self.directory, "offset"), str(self.size).encode())
        self.committed = self.size
        self._checkpoint = (self._hashed, self._hasher.copy())
        self.store.remember_hasher(self.id, self._hashed, self._hasher.copy())

    def rollback(self) -> None:
        """Drop what has been received since the last commit."""
        os.ftruncate(self._data_fd, self.committed)
        hashed, hasher = self._checkpoint
        self._hashed, self._hasher = hashed, hasher.copy()
        self.size = self.committed

    def digest(self, algorithm: str) -> Digest:
        """The digest of everything received, by ``algorithm``."""
        if algorithm == "sha256":
            self._catch_up_hash()
            return Digest("sha256", self._hasher.copy().hexdigest())
        hasher = hashlib.new(algorithm)
        _hash_file_range(self._data_fd, hasher, 0, self.size)
        return Digest(algorithm, hasher.hexdigest())

    def finish(self, expected: Digest) -> None:
        """Verify the content against ``expected`` and store it as that blob, or cancel."""
        actual = self.digest(expected.algorithm)
        if actual != expected:
            self.discard()
            raise DistributionError(
                "DIGEST_INVALID",
                detail={"digest": str(expected), "actual": str(actual), "size": self.size},
            )
        os.fsync(self._data_fd)
        storage = self.store.storage
        with storage.writer_lock():
            storage.commit_blob(os.path.join(self.directory, "data"), expected)
            storage.link_blob(self.repository, expected)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.store.forget(self.id)
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._data_fd)
            os.close(self._lock_fd)

    def _catch_up_hash(self) -> None:
        if self._hashed < self.size:
            _hash_file_range(self._data_fd, self._hasher, self._hashed, self.size)
            self._hashed = self.size


async def receive(
    upload: Upload, chunks: AsyncIterator[bytes], *, limit: int | None = None
) -> int:
    """Stream ``chunks`` into the session (uncommitted); return how many bytes arrived.

    On any failure (the client went away, the body was short, ``limit`` exceeded) what arrived
    is rolled back and the error propagates.
    """
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    buffer = bytearray()
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if limit is not None and received > limit:
                raise DistributionError(
                    "SIZE_INVALID", detail={"expected": limit, "received_at_least": received}
                )
            buffer += chunk
            if len(buffer) >= FLUSH_BYTES:
                if pending is not None:
                    await pending
                block, buffer = buffer, bytearray()
                pending = loop.run_in_executor(None, upload.write, block)
        if pending is not None:
            await pending
            pending = None
        if buffer:
            await loop.run_in_executor(None, upload.write, buffer)
    except BaseException:
        if pending is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait([pending])
        upload.rollback()
        raise
    return received


def _lock_with_deadline(fd: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DistributionError(
                    "BLOB_UPLOAD_INVALID",
                    "another request is writing to this upload",
                    status=409,
                ) from None
            time.sleep(0.02)


def _read_info(directory: str) -> dict[str, object] | None:
    try:
        with open(os.path.join(directory, "info.json"), "rb") as f:
            info = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _read_offset(directory: str) -> int:
    try:
        with open(os.path.join(directory, "offset"), "rb") as f:
            return int(f.read().strip() or b"0")
    except (FileNotFoundError, ValueError):
        return 0


def _truncate_to_committed(directory: str, data_fd: int | None = None) -> bool:
    """Make ``data`` exactly the committed bytes; True when something had to be repaired."""
    committed = _read_offset(directory)
    path = os.path.join(directory, "data")
    try:
        size = os.fstat(data_fd).st_size if data_fd is not None else os.stat(path).st_size
    except FileNotFoundError:
        return False
    if size == committed:
        return False
    if size > committed:
        if data_fd is not None:
            os.ftruncate(data_fd, committed)
        else:
            os.truncate(path, committed)
    else:  # the offset survived a crash the data did not: believe the data
        _write_small(os.path.join(directory, "offset"), str(size).encode())
    return True


def _hash_file_range(fd: int, hasher: hashlib._Hash, start: int, end: int) -> None:
    position = start
    while position < end:
        block = os.pread(fd, min(_HASH_READ_BYTES, end - position), position)
        if not block:
            raise OSError(errno.EIO, "upload data is shorter than its recorded size")
        hasher.update(block)
        position += len(block)


def _write_small(path: str, content: bytes) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(content)
    os.rename(tmp, path)
