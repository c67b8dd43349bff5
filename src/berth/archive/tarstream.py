"""Reading members of an outer archive by offset, and writing one member at a time.

Image archives (docker-archive, oci-archive) are tarballs of other tarballs. Reading: the
archive is indexed once (headers only, data skipped by seeking), then each member is read as a
byte range of the file, with large reads. Writing: each member's header is written, then its
bytes are copied from the store with large buffers (or ``sendfile``), then the padding.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO

from berth.errors import CorruptArchive, StorageFull

BLOCK = 512
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    offset: int
    size: int


class Section(io.RawIOBase):
    """A read-only view of ``size`` bytes of a file descriptor, starting at ``offset``."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self.fd = fd
        self.start = offset
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, min(self.size, base + offset))
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        remaining = self.size - self.pos
        if n is None or n < 0 or n > remaining:
            n = remaining
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.start + self.pos)
        if not data:
            raise CorruptArchive("the archive ends in the middle of a member")
        self.pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def peek(self, n: int) -> bytes:
        return os.pread(self.fd, min(n, self.size - self.pos), self.start + self.pos)


class ArchiveReader:
    """Random access to the members of a (seekable, uncompressed) tar archive."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CorruptArchive(f"{path}: no such file") from None
        self.members: dict[str, Member] = {}
        try:
            with open(path, "rb", closefd=True) as f, tarfile.open(fileobj=f, mode="r:") as tf:
                for info in tf:
                    if info.isreg():
                        name = _clean(info.name)
                        self.members[name] = Member(name, info.offset_data, info.size)
        except tarfile.ReadError as exc:
            os.close(self.fd)
            raise CorruptArchive(f"{path} is not a valid tar archive: {exc}") from None
        except EOFError:
            os.close(self.fd)
            raise CorruptArchive(f"{path} is truncated") from None
        end = os.fstat(self.fd).st_size
        for member in self.members.values():
            if member.offset + member.size > end:
                os.close(self.fd)
                raise CorruptArchive(f"{path} is truncated: {member.name} is cut short")

    def has(self, name: str) -> bool:
        return _clean(name) in self.members

    def open(self, name: str) -> Section:
        member = self.members.get(_clean(name))
        if member is None:
            raise CorruptArchive(f"{self.path} has no member {name!r}")
        return Section(self.fd, member.offset, member.size)

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        section = self.open(name)
        if section.size > limit:
            raise CorruptArchive(
                f"{name!r} in {self.path} is implausibly large ({section.size} bytes)"
            )
        return section.read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spool(stream: BinaryIO, directory: str) -> str:
    """Copy a non-seekable input (stdin) to a temp file so it can be read by offset."""
    os.makedirs(directory, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"berth-tmp-{os.getpid()}-spool-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                data = stream.read(CHUNK)
                if not data:
                    break
                out.write(data)
    except OSError as exc:
        os.unlink(path)
        if exc.errno == 28:
            raise StorageFull("no space left while reading the archive from stdin") from None
        raise
    return path


class ArchiveWriter:
    """Writes a ustar/pax archive one member at a time, streaming member data."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.mtime = int(time.time())
        self._dirs: set[str] = set()

    def add_dir(self, name: str) -> None:
        if name in self._dirs:
            return
        self._dirs.add(name)
        info = tarfile.TarInfo(name.rstrip("/") + "/")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = self.mtime
        self.out.write(info.tobuf(tarfile.PAX_FORMAT))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self.out.write(data)
        self._pad(len(data))

    def add_stream(self, name: str, source: BinaryIO, size: int) -> None:
        """Add a member of known size; ``source`` must yield exactly ``size`` bytes."""
        self._header(name, size)
        remaining = size
        while remaining:
            data = source.read(min(CHUNK, remaining))
            if not data:
                raise CorruptArchive(f"{name}: source ended {remaining} bytes early")
            self.out.write(data)
            remaining -= len(data)
        self._pad(size)

    def add_file(self, name: str, path: str) -> None:
        size = os.stat(path).st_size
        self._header(name, size)
        with open(path, "rb") as f:
            self._copy_fd(f.fileno(), size)
        self._pad(size)

    def _copy_fd(self, fd: int, size: int) -> None:
        out_fd = _fileno(self.out)
        if out_fd is not None:
            self.out.flush()
            offset = 0
            try:
                while offset < size:
                    sent = os.sendfile(out_fd, fd, offset, min(size - offset, 1 << 30))
                    if sent == 0:
                        break
                    offset += sent
                if offset == size:
                    return
            except OSError:
                pass
            os.lseek(fd, offset, os.SEEK_SET)
            remaining = size - offset
        else:
            remaining = size
        while remaining:
            data = os.read(fd, min(CHUNK, remaining))
            if not data:
                raise CorruptArchive("a store file ended early while writing the archive")
            self.out.write(data)
            remaining -= len(data)

    def _header(self, name: str, size: int) -> None:
        parent = os.path.dirname(name)
        if parent:
            parts = parent.split("/")
            for i in range(1, len(parts) + 1):
                self.add_dir("/".join(parts[:i]))
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = self.mtime
        self.out.write(info.tobuf(tarfile.PAX_FORMAT))

    def _pad(self, size: int) -> None:
        remainder = size % BLOCK
        if remainder:
            self.out.write(b"\0" * (BLOCK - remainder))

    def close(self) -> None:
        self.out.write(b"\0" * (BLOCK * 2))
        self.out.flush()


def _fileno(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
    except (OSError, io.UnsupportedOperation, AttributeError):
        return None
    return fd


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")
