"""Small tarballs made in tests: rootfs trees, compressed variants, archives to tamper with."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile

import zstandard


def rootfs_tar(files: dict[str, bytes | str], *, dirs: tuple[str, ...] = (),
               symlinks: dict[str, str] | None = None, mode: int = 0o644) -> bytes:
    """An uncompressed tar holding ``files`` (path -> content), ``dirs`` and ``symlinks``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    if kind == "":
        return data
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "bzip2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    raise ValueError(kind)


def read_members(path: str) -> dict[str, bytes]:
    """Regular files of a tar archive (name -> content)."""
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isreg():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
    return out


def write_members(path: str, members: dict[str, bytes]) -> None:
    """An uncompressed tar archive with exactly these regular files, in this order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
