"""Content-addressed blobs: ``blobs/<algorithm>/<hex>``.

A blob is written to a temp file in ``tmp/``, hashed as it is written, verified against the
digest it claims (when one is known), fsynced and renamed into place. A digest therefore never
names wrong or partial bytes, even after a crash or a full disk.
"""

from __future__ import annotations

import errno
import os

from berth.basics import suppress
from berth.errors import BlobNotFound, DigestMismatch, StorageFull, StoreError
from berth.oci.digest import Digest, hex_digest
from berth.store.paths import StorePaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import BinaryIO

TEMP_PREFIX = "berth-tmp-"
CHUNK = 1 << 20


def temp_prefix(kind: str) -> str:
    """``berth-tmp-<pid>-<kind>-``: ``system check`` tells a live command's temp files by pid."""
    return f"{TEMP_PREFIX}{os.getpid()}-{kind}-"


class BlobStore:
    def __init__(self, paths: StorePaths) -> None:
        self.paths = paths

    def path(self, digest: Digest) -> str:
        return self.paths.blob(digest.algorithm, digest.hex)

    def has(self, digest: Digest) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: Digest) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store") from None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {digest} is not in the store",
                hint="the store may be damaged: run `berth system check`",
            ) from None

    def read(self, digest: Digest, *, verify: bool = True) -> bytes:
        with self.open(digest) as f:
            data = f.read()
        if verify and hex_digest(digest.algorithm, data) != digest.hex:
            raise DigestMismatch(
                f"blob {digest} in the store does not match its digest",
                hint="run `berth system check --repair` and pull or load the image again",
            )
        return data

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store a small blob (a config, a manifest) held in memory: hashed with the
        interpreter's built-in sha256 (no OpenSSL to load), written to a temp file, fsynced
        and renamed, as :class:`BlobWriter` does for streams."""
        algorithm = expected.algorithm if expected else "sha256"
        digest = Digest(algorithm, hex_digest(algorithm, data))
        if expected is not None and digest != expected:
            raise DigestMismatch(f"content has digest {digest}, expected {expected}")
        final = self.path(digest)
        if os.path.exists(final):
            return digest
        temp = os.path.join(self.paths.tmp, temp_prefix("blob") + os.urandom(6).hex())
        try:
            os.makedirs(self.paths.tmp, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(temp, final)
        except OSError as exc:
            with suppress(FileNotFoundError):
                os.unlink(temp)
            raise _os_error(exc, f"blob {digest}") from None
        return digest

    def writer(
        self,
        expected: Digest | None = None,
        *,
        expected_size: int | None = None,
        fsync: bool = True,
    ) -> BlobWriter:
        return BlobWriter(self, expected, expected_size, fsync=fsync)

    def delete(self, digest: Digest) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def iter_digests(self) -> list[Digest]:
        out: list[Digest] = []
        try:
            algorithms = os.listdir(self.paths.blobs)
        except FileNotFoundError:
            return out
        for algorithm in algorithms:
            for name in os.listdir(os.path.join(self.paths.blobs, algorithm)):
                out.append(Digest(algorithm, name))
        return out


class BlobWriter:
    """Write a blob in pieces; ``commit()`` verifies and moves it into place."""

    def __init__(
        self, store: BlobStore, expected: Digest | None, expected_size: int | None, *, fsync: bool
    ) -> None:
        self.store = store
        self.expected = expected
        self.expected_size = expected_size
        self._fsync = fsync
        import hashlib  # here, not at the top: ``berth run`` never writes a blob

        algorithm = expected.algorithm if expected else "sha256"
        self._hash = hashlib.new(algorithm)  # OpenSSL's: several times the built-in's speed
        self.size = 0
        self._committed: Digest | None = None
        os.makedirs(store.paths.tmp, exist_ok=True)
        try:
            self._temp = os.path.join(store.paths.tmp, temp_prefix("blob") + os.urandom(6).hex())
            fd = os.open(self._temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _os_error(exc, "a temp file for a blob") from None
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
        except OSError as exc:
            raise _os_error(exc, "a blob") from None
        return len(data)

    def copy_from(self, source: BinaryIO, chunk: int = CHUNK) -> None:
        while True:
            data = source.read(chunk)
            if not data:
                return
            self.write(data)

    @property
    def committed(self) -> bool:
        return self._committed is not None

    @property
    def digest(self) -> Digest:
        algorithm = self.expected.algorithm if self.expected else "sha256"
        return Digest(algorithm, self._hash.hexdigest())

    def commit(self) -> Digest:
        digest = self.digest
        if self.expected_size is not None and self.size != self.expected_size:
            self.abort()
            raise DigestMismatch(
                f"blob {self.expected or digest} has {self.size} bytes, "
                f"expected {self.expected_size}"
            )
        if self.expected is not None and digest != self.expected:
            self.abort()
            raise DigestMismatch(f"content has digest {digest}, expected {self.expected}")
        final = self.store.path(digest)
        try:
            if self._fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            if os.path.exists(final):
                os.unlink(self._temp)
            else:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.chmod(self._temp, 0o644)
                os.rename(self._temp, final)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, f"blob {digest}") from None
        self._committed = digest
        return digest

    def abort(self) -> None:
        with suppress(OSError):
            self._file.close()
        with suppress(FileNotFoundError):
            os.unlink(self._temp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._committed is None:
            self.abort()


def _os_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(
            f"no space left on the device while writing {what}",
            hint="free some space (e.g. `berth image prune -a`) and try again",
        )
    return StoreError(f"cannot write {what}: {exc.strerror or exc}")
