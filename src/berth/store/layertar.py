"""Layer tarballs: a streaming tar reader, and a writer of directories as layers.

Reading (:class:`TarReader`): one sequential pass over an uncompressed tar stream (a pipe is
fine) through one large buffer; file data is handed to the caller's fd straight from that
buffer (:meth:`TarReader.copy_data`), so big files cost a few ``write`` calls per MiB and no
Python work per byte. It understands what real layers contain: ustar, PAX (``path``,
``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``, ``atime``, ``SCHILY.xattr.*``,
``LIBARCHIVE.xattr.*``, global headers), GNU long names and links, base-256 numbers, and GNU
sparse files (old GNU ``S`` entries and PAX sparse formats 0.0, 0.1 and 1.0). Anything it
cannot make sense of raises :class:`~berth.errors.CorruptArchive` naming the archive offset and
the entry being read. It never touches the filesystem: :mod:`berth.store.unpack` does.

Writing (:func:`write_layer_tar`): see its docstring.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import stat
import struct
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, cast

from berth.errors import CorruptArchive, StorageFull, StoreError
from berth.oci.digest import Digest

__all__ = [
    "BLOCKDEV",
    "CHARDEV",
    "DIRECTORY",
    "FIFO",
    "HARDLINK",
    "REGULAR",
    "SYMLINK",
    "LayerTarResult",
    "TarEntry",
    "TarReader",
    "write_layer_tar",
]

BLOCK = 512
CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_MAX_META = 16 << 20  # PAX headers and GNU long names bigger than this are not believed
_MAX_SPARSE = 1 << 20  # sparse map entries

# Entry kinds (the ustar typeflag byte, normalised: "\0" and "7" are REGULAR, "D" is DIRECTORY).
REGULAR = ord("0")
HARDLINK = ord("1")
SYMLINK = ord("2")
CHARDEV = ord("3")
BLOCKDEV = ord("4")
DIRECTORY = ord("5")
FIFO = ord("6")
_CONTIGUOUS = ord("7")
_OLD_REGULAR = 0
_PAX = ord("x")
_PAX_SOLARIS = ord("X")
_PAX_GLOBAL = ord("g")
_GNU_LONGNAME = ord("L")
_GNU_LONGLINK = ord("K")
_GNU_SPARSE = ord("S")
_GNU_DUMPDIR = ord("D")
_GNU_VOLUME = ord("V")
_DEVICES = frozenset({CHARDEV, BLOCKDEV})
_HEADER_ONLY = frozenset({HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO})
_GNU_MAGIC = b"ustar  \x00"


@dataclass(slots=True)
class TarEntry:
    """One member of a tar stream, with every extension header already applied.

    ``name`` and ``linkname`` are the raw bytes of the archive (not cleaned: callers decide
    what ``..`` or a leading ``/`` means). ``size`` is the number of data bytes that follow in
    the archive; for a sparse file ``realsize`` is the size of the file it describes and
    ``sparse`` the (offset, length) extents those bytes fill.
    """

    name: bytes
    kind: int
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    atime_ns: int | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: list[tuple[int, int]] | None = None
    realsize: int = 0
    offset: int = 0  # archive offset of the entry's (last) header

    @property
    def display_name(self) -> str:
        return os.fsdecode(self.name)


def _corrupt(what: str, offset: int, name: bytes | None = None) -> CorruptArchive:
    where = f" (entry {os.fsdecode(name)!r})" if name else ""
    return CorruptArchive(
        f"tar stream is corrupt at byte {offset}{where}: {what}",
        hint="the layer is damaged or is not a tar archive",
    )


def _octal(field_bytes: bytes, offset: int) -> int:
    try:
        return int(field_bytes.rstrip(b"\0"), 8)  # the usual "0000644\0"; int() drops spaces
    except ValueError:
        pass
    if field_bytes and field_bytes[0] & 0x80:
        # base-256 (GNU, star): big-endian two's complement with the top bit as the marker.
        if field_bytes[0] == 0xFF:
            return int.from_bytes(field_bytes, "big", signed=True)
        return int.from_bytes(bytes([field_bytes[0] & 0x7F]) + field_bytes[1:], "big")
    text = field_bytes.partition(b"\0")[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _corrupt(f"bad number field {bytes(text)!r} in a header", offset) from None


def _decimal(value: bytes, what: str, offset: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _corrupt(f"bad {what} {value!r} in a PAX header", offset) from None
    if number < 0:
        raise _corrupt(f"negative {what} {value!r} in a PAX header", offset)
    return number


def _pax_time(value: bytes, offset: int) -> int:
    """A PAX time (``[-]seconds[.fraction]``) in nanoseconds."""
    negative = value.startswith(b"-")
    seconds, _, fraction = value.lstrip(b"-").partition(b".")
    try:
        ns = int(seconds or b"0") * 1_000_000_000
        if fraction:
            ns += int(fraction[:9].ljust(9, b"0"))
    except ValueError:
        raise _corrupt(f"bad time {value!r} in a PAX header", offset) from None
    return -ns if negative else ns


class _Pax:
    """The records of one PAX extended header, in order (GNU sparse 0.0 repeats keys)."""

    __slots__ = ("records", "sparse_pairs")

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.sparse_pairs: list[int] = []

    def parse(self, data: bytes, offset: int) -> None:
        pos = 0
        end = len(data)
        while pos < end:
            if data[pos] == 0:
                break  # NUL padding after the last record
            space = data.find(b" ", pos, pos + 20)
            if space < 0:
                raise _corrupt("PAX record without a length", offset)
            length = _decimal(data[pos:space], "record length", offset)
            if length <= space - pos or pos + length > end or data[pos + length - 1] != 0x0A:
                raise _corrupt("PAX record with a wrong length", offset)
            key, eq, value = data[space + 1 : pos + length - 1].partition(b"=")
            if not eq or not key:
                raise _corrupt("PAX record without a key", offset)
            if key in (b"GNU.sparse.offset", b"GNU.sparse.numbytes"):
                self.sparse_pairs.append(_decimal(value, key.decode(), offset))
            else:
                self.records[key] = value
            pos += length


class TarReader:
    """Reads a tar stream once, in order; iterate to get entries, then :meth:`drain`.

    After an entry is yielded, its data may be consumed with :meth:`copy_data` or
    :meth:`read_data`; whatever is left is skipped when the next entry is read.
    """

    def __init__(self, stream: BinaryIO, *, chunk_size: int = CHUNK) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self._buf = bytearray(max(chunk_size, 64 * BLOCK))
        self._mv = memoryview(self._buf)
        self._pos = 0
        self._end = 0
        self._eof = False
        self._consumed = 0  # stream offset of _buf[0]
        self._data_left = 0  # data bytes of the current entry not consumed yet
        self._pad = 0  # padding after them
        self._current: TarEntry | None = None
        self._global = _Pax()
        self.ended = False  # saw the end-of-archive marker (or a clean EOF)

    # -- buffer -------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Bytes of the stream consumed so far."""
        return self._consumed + self._pos

    def _read_more(self) -> int:
        view = self._mv[self._end :]
        if self._readinto is not None:
            got = self._readinto(view)
            got = got or 0
        else:
            data = self._stream.read(len(view))
            got = len(data)
            view[:got] = data
        if got == 0:
            self._eof = True
        self._end += got
        return cast(int, got)

    def _fill(self, n: int) -> int:
        """Make ``n`` bytes (at most the buffer size) available unless the stream ends."""
        avail = self._end - self._pos
        if avail >= n or self._eof:
            return avail
        if self._pos:
            self._buf[:avail] = self._mv[self._pos : self._end]
            self._consumed += self._pos
            self._pos = 0
            self._end = avail
        while self._end < n and not self._eof:
            self._read_more()
        return self._end - self._pos

    def _take(self, n: int, what: str) -> bytes:
        if self._fill(n) < n:
            raise _corrupt(f"the stream ends in the middle of {what}", self.offset)
        data = bytes(self._mv[self._pos : self._pos + n])
        self._pos += n
        return data

    def _take_long(self, n: int, what: str) -> bytes:
        if n > _MAX_META:
            raise _corrupt(f"{what} of {n} bytes is not believable", self.offset)
        parts: list[bytes] = []
        while n:
            step = min(n, len(self._buf))
            parts.append(self._take(step, what))
            n -= step
        return b"".join(parts)

    def _skip(self, n: int) -> None:
        while n:
            avail = self._end - self._pos
            if not avail:
                avail = self._fill(1)
                if not avail:
                    raise _corrupt("the stream ends in the middle of file data", self.offset)
            step = min(avail, n)
            self._pos += step
            n -= step

    # -- entries ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarEntry]:
        while True:
            entry = self.next()
            if entry is None:
                return
            yield entry

    def next(self) -> TarEntry | None:
        """The next entry, or None at the end of the archive."""
        if self.ended:
            return None
        self._skip(self._data_left + self._pad)
        self._data_left = self._pad = 0
        self._current = None
        pax: _Pax | None = None
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            header_offset = self.offset
            if self._fill(BLOCK) == 0 and pax is None and longname is None and longlink is None:
                self.ended = True  # EOF on a header boundary, without the end marker
                return None
            block = self._take(BLOCK, "a header")
            if block == _ZERO_BLOCK:
                self.ended = True
                return None
            self._check_sum(block, header_offset)
            typeflag = block[156]
            size = _octal(block[124:136], header_offset)
            padded = -size % BLOCK
            if typeflag in (_PAX, _PAX_SOLARIS, _PAX_GLOBAL):
                target = self._global if typeflag == _PAX_GLOBAL else (pax := pax or _Pax())
                target.parse(self._take_long(size, "a PAX header"), header_offset)
                self._skip(padded)
            elif typeflag in (_GNU_LONGNAME, _GNU_LONGLINK):
                value = self._take_long(size, "a GNU long name").partition(b"\0")[0]
                self._skip(padded)
                if typeflag == _GNU_LONGNAME:
                    longname = value
                else:
                    longlink = value
            elif typeflag == _GNU_VOLUME:
                self._skip(size + padded)
            else:
                entry = self._entry(block, typeflag, size, header_offset, pax, longname, longlink)
                self._current = entry
                self._data_left = entry.size
                self._pad = -entry.size % BLOCK if entry.size else 0
                if entry.sparse is None and pax is not None and self._is_sparse_10(pax):
                    self._read_sparse_10_map(entry)
                return entry

    @staticmethod
    def _check_sum(block: bytes, offset: int) -> None:
        try:
            stored = _octal(block[148:156], offset)
        except CorruptArchive:
            stored = -1
        unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
        if stored != unsigned:
            signed = unsigned - 2 * sum(b for b in block if b > 0x7F)
            signed += 2 * sum(b for b in block[148:156] if b > 0x7F)
            if stored != signed:
                raise _corrupt("header checksum mismatch (not a tar header)", offset)

    def _entry(
        self,
        block: bytes,
        typeflag: int,
        size: int,
        offset: int,
        pax: _Pax | None,
        longname: bytes | None,
        longlink: bytes | None,
    ) -> TarEntry:
        name = block[0:100].partition(b"\0")[0]
        magic = block[257:265]
        atime_ns: int | None = None
        if magic == _GNU_MAGIC:
            atime = _octal(block[345:357], offset)
            atime_ns = atime * 1_000_000_000 if atime else None
        elif magic[:6] == b"ustar\0":
            prefix = block[345:500].partition(b"\0")[0]
            if prefix:
                name = prefix + b"/" + name
        if typeflag in (_OLD_REGULAR, _CONTIGUOUS):
            typeflag = REGULAR
        elif typeflag == _GNU_DUMPDIR:
            typeflag = DIRECTORY
        entry = TarEntry(
            name=longname if longname is not None else name,
            kind=typeflag,
            mode=_octal(block[100:108], offset) & 0o7777,
            uid=_octal(block[108:116], offset),
            gid=_octal(block[116:124], offset),
            size=0 if typeflag in _HEADER_ONLY else size,
            mtime_ns=_octal(block[136:148], offset) * 1_000_000_000,
            linkname=longlink if longlink is not None else block[157:257].partition(b"\0")[0],
            devmajor=_octal(block[329:337], offset) if typeflag in _DEVICES else 0,
            devminor=_octal(block[337:345], offset) if typeflag in _DEVICES else 0,
            atime_ns=atime_ns,
            offset=offset,
        )
        if typeflag == _GNU_SPARSE:
            self._gnu_sparse(entry, block, offset)
        if self._global.records or pax is not None:
            self._apply_pax(entry, pax, offset)
        return entry

    def _apply_pax(self, entry: TarEntry, pax: _Pax | None, offset: int) -> None:
        records = dict(self._global.records)
        if pax is not None:
            records.update(pax.records)
        for key, value in records.items():
            if key == b"path":
                entry.name = value
            elif key == b"linkpath":
                entry.linkname = value
            elif key == b"size":
                if entry.kind not in _HEADER_ONLY:
                    entry.size = _decimal(value, "size", offset)
            elif key == b"uid":
                entry.uid = _decimal(value, "uid", offset)
            elif key == b"gid":
                entry.gid = _decimal(value, "gid", offset)
            elif key == b"mtime":
                entry.mtime_ns = _pax_time(value, offset)
            elif key == b"atime":
                entry.atime_ns = _pax_time(value, offset)
            elif key.startswith(b"SCHILY.xattr."):
                entry.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
            elif key.startswith(b"LIBARCHIVE.xattr."):
                xname = urllib.parse.unquote_to_bytes(key[17:]).decode("utf-8", "surrogateescape")
                try:
                    entry.xattrs[xname] = base64.b64decode(value + b"=" * (-len(value) % 4))
                except ValueError:
                    raise _corrupt(f"bad base64 in xattr {xname!r}", offset, entry.name) from None
        if b"GNU.sparse.name" in records:
            entry.name = records[b"GNU.sparse.name"]
        if pax is not None and (pax.sparse_pairs or b"GNU.sparse.map" in records):
            # PAX sparse 0.0 (repeated offset/numbytes records) or 0.1 (one map record).
            if pax.sparse_pairs:
                numbers = pax.sparse_pairs
            else:
                text = records[b"GNU.sparse.map"]
                numbers = [_decimal(n, "sparse map", offset) for n in text.split(b",") if n]
            if len(numbers) % 2:
                raise _corrupt("odd number of values in a sparse map", offset, entry.name)
            entry.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))
            entry.kind = REGULAR
        if entry.sparse is not None or self._is_sparse_10(records):
            real = records.get(b"GNU.sparse.realsize", records.get(b"GNU.sparse.size"))
            if real is not None:
                entry.realsize = _decimal(real, "sparse size", offset)

    @staticmethod
    def _is_sparse_10(pax: _Pax | dict[bytes, bytes]) -> bool:
        records = pax.records if isinstance(pax, _Pax) else pax
        return records.get(b"GNU.sparse.major") == b"1"

    def _gnu_sparse(self, entry: TarEntry, block: bytes, offset: int) -> None:
        """Old GNU sparse: 4 extents in the header, then 21 per extension block."""
        extents: list[tuple[int, int]] = []

        def collect(area: bytes, count: int) -> None:
            for i in range(count):
                raw_offset = area[i * 24 : i * 24 + 12]
                raw_length = area[i * 24 + 12 : i * 24 + 24]
                if not raw_offset.strip(b"\0") and not raw_length.strip(b"\0"):
                    return
                extents.append((_octal(raw_offset, offset), _octal(raw_length, offset)))

        collect(block[386:482], 4)
        extended = block[482]
        while extended:
            if len(extents) > _MAX_SPARSE:
                raise _corrupt("sparse map too long", offset, entry.name)
            ext = self._take(BLOCK, "a sparse header")
            collect(ext[:504], 21)
            extended = ext[504]
        entry.kind = REGULAR
        entry.sparse = extents
        entry.realsize = _octal(block[483:495], offset)

    def _read_sparse_10_map(self, entry: TarEntry) -> None:
        """PAX sparse 1.0: the map is decimal lines at the start of the data, block padded."""
        numbers: list[int] = []
        pending = b""
        used = 0
        count: int | None = None
        while count is None or len(numbers) < 2 * count:
            if used + BLOCK > entry.size:
                raise _corrupt("sparse map runs past the entry's data", self.offset, entry.name)
            chunk = self._take(BLOCK, "a sparse map")
            used += BLOCK
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                value = _decimal(line, "sparse map", entry.offset)
                if count is None:
                    if value > _MAX_SPARSE:
                        raise _corrupt("sparse map too long", entry.offset, entry.name)
                    count = value
                else:
                    numbers.append(value)
                if count is not None and len(numbers) == 2 * count:
                    break
        entry.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))
        entry.size -= used
        self._data_left = entry.size

    # -- data ---------------------------------------------------------------------------

    def read_data(self) -> bytes:
        """The current entry's remaining data (for small entries)."""
        data = self._take_long(self._data_left, "file data")
        self._data_left = 0
        return data

    def copy_data(self, fd: int) -> int:
        """Write the current entry's remaining data to ``fd``; returns the file's size.

        A sparse entry's extents are written at their offsets and the file is extended to
        its real size, leaving holes where the archive has none of its data.
        """
        entry = self._current
        if entry is not None and entry.sparse is not None:
            for extent_offset, length in entry.sparse:
                if length > self._data_left:
                    raise _corrupt("sparse extents exceed the entry's data", self.offset)
                os.lseek(fd, extent_offset, os.SEEK_SET)
                self._copy(fd, length)
            os.ftruncate(fd, entry.realsize)
            return entry.realsize
        size = self._data_left
        self._copy(fd, size)
        return size

    def _copy(self, fd: int, n: int) -> None:
        mv = self._mv
        write = os.write
        self._data_left -= n
        while n:
            avail = self._end - self._pos
            if not avail:
                # Nothing buffered: refill the whole buffer from its start.
                self._consumed += self._pos
                self._pos = self._end = 0
                if self._eof or not self._read_more():
                    raise _corrupt("the stream ends in the middle of file data", self.offset)
                avail = self._end
            step = avail if avail < n else n
            start = self._pos
            written = write(fd, mv[start : start + step])
            while written < step:
                written += write(fd, mv[start + written : start + step])
            self._pos = start + step
            n -= step

    def drain(self) -> int:
        """Read the stream to its end (after the archive's end); returns bytes skipped."""
        skipped = self._end - self._pos
        self._pos = self._end
        while not self._eof:
            self._consumed += self._end
            self._pos = self._end = 0
            skipped += self._read_more()
            self._pos = self._end
        return skipped


# --------------------------------------------------------------------------------------
# Writing

_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_MAX_OCTAL_7 = 0o7777777
_MAX_OCTAL_11 = 0o77777777777
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.", "security.selinux")
_OVERLAY_OPAQUE = "trusted.overlay.opaque"
_OVERLAY_UNSUPPORTED = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


@dataclass(frozen=True, slots=True)
class LayerTarResult:
    """``size``: bytes of tar written; ``diff_id``: their sha256; ``entries``: members."""

    size: int
    diff_id: Digest
    entries: int


def write_layer_tar(
    src: str,
    out: BinaryIO,
    *,
    whiteouts: Literal["overlay", "none"] = "overlay",
    reproducible_mtime: int | None = None,
    exclude: frozenset[bytes] = frozenset(),
) -> LayerTarResult:
    """Write the tree under ``src`` to ``out`` as an uncompressed layer tar.

    The output is deterministic: members in path order (a directory, then its opaque marker
    and whiteouts, then its other children by name), PAX format, numeric uid/gid with empty
    user and group names, mtimes in whole seconds (no atime or ctime), no entry for ``src``
    itself. Files sharing an inode within ``src`` are written once, then as hardlinks. xattrs
    go into ``SCHILY.xattr.*`` records, except overlayfs' own (``trusted.overlay.*``,
    ``user.overlay.*``) and ``security.selinux`` (a host label, not image content). Sockets
    are skipped, as Docker does. ``reproducible_mtime`` (seconds) clamps later mtimes to it,
    as ``SOURCE_DATE_EPOCH`` does for BuildKit. ``exclude`` names paths (relative to ``src``,
    ``b"etc/hosts"``) left out with everything under them.

    With ``whiteouts="overlay"``, ``src`` is an overlayfs upper dir: a 0:0 character device
    becomes a ``.wh.NAME`` whiteout (an empty file) and a directory with
    ``trusted.overlay.opaque=y`` is followed by a ``DIR/.wh..wh..opq`` marker. berth mounts
    overlays without ``redirect_dir`` and ``metacopy``, so upper dirs hold whole copies; a
    redirect or metacopy xattr met here is a :class:`~berth.errors.StoreError`. With
    ``"none"``, devices and xattrs are written as they are.

    The sha256 of the bytes is computed as they are written (no second pass).
    """
    root_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    sink = _HashingSink(out)
    walker = _TreeWriter(sink, whiteouts == "overlay", reproducible_mtime, src)
    walker.exclude = exclude
    try:
        walker.walk(root_fd)
        sink.write(bytes(2 * BLOCK))
        sink.flush()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(
                f"no space left while writing the layer of {src}",
                hint="free some space (berth system prune) and try again",
            ) from exc
        shown = walker.current or src
        raise StoreError(f"cannot archive {shown!r} from {src}: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
    return LayerTarResult(sink.size, Digest("sha256", sink.hash.hexdigest()), walker.entries)


class _HashingSink:
    """Buffers small writes, hashes and counts everything passed on to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self.pending = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= CHUNK // 2:
            self.flush()
            self._emit(data)
            return
        self.pending += data
        if len(self.pending) >= CHUNK:
            self.flush()

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.hash.update(data)
        self.out.write(data)
        self.size += len(data)

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = bytearray()


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + len(str(len(body)))
    if len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _octal_field(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _tar_header(
    name: bytes,
    kind: int,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    *,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """A ustar header, preceded by a PAX header when a value does not fit in it."""
    records: list[tuple[bytes, bytes]] = []
    if len(name) > 100:
        records.append((b"path", name))
    if len(linkname) > 100:
        records.append((b"linkpath", linkname))
    if uid > _MAX_OCTAL_7:
        records.append((b"uid", str(uid).encode()))
    if gid > _MAX_OCTAL_7:
        records.append((b"gid", str(gid).encode()))
    if size > _MAX_OCTAL_11:
        records.append((b"size", str(size).encode()))
    if not 0 <= mtime <= _MAX_OCTAL_11:
        records.append((b"mtime", str(mtime).encode()))
    for key, value in xattrs or ():
        records.append((b"SCHILY.xattr." + key.encode("utf-8", "surrogateescape"), value))
    header = _ustar(
        name[:100],
        kind,
        mode,
        uid if uid <= _MAX_OCTAL_7 else 0,
        gid if gid <= _MAX_OCTAL_7 else 0,
        size if size <= _MAX_OCTAL_11 else 0,
        mtime if 0 <= mtime <= _MAX_OCTAL_11 else 0,
        linkname[:100],
        devmajor,
        devminor,
    )
    if not records:
        return header
    if any(_not_utf8(v) for k, v in records if k in (b"path", b"linkpath")):
        records.append((b"hdrcharset", b"BINARY"))
    data = b"".join(_pax_record(k, v) for k, v in sorted(records))
    pax = _ustar(b"././@PaxHeader", ord("x"), 0o644, 0, 0, len(data), 0, b"", 0, 0)
    return pax + data + bytes(-len(data) % BLOCK) + header


def _not_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _ustar(
    name: bytes,
    kind: int,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    fields = [
        name,
        _octal_field(mode, 8),
        _octal_field(uid, 8),
        _octal_field(gid, 8),
        _octal_field(size, 12),
        _octal_field(mtime, 12),
        b" " * 8,
        bytes([kind]),
        linkname,
        b"ustar\0",
        b"00",
        b"",
        b"",
        _octal_field(devmajor, 8),
        _octal_field(devminor, 8),
        b"",
        b"",
    ]
    block = bytearray(_USTAR.pack(*fields))
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@dataclass(slots=True)
class _Frame:
    fd: int
    prefix: bytes  # path of this directory inside the tree, with a trailing "/" ("" at the top)
    names: list[bytes]  # children still to write, in reverse order (popped from the end)


class _TreeWriter:
    def __init__(self, sink: _HashingSink, overlay: bool, clamp: int | None, src: str) -> None:
        self.sink = sink
        self.overlay = overlay
        self.clamp = clamp
        self.src = src
        self.entries = 0
        self.links: dict[tuple[int, int], bytes] = {}
        self.current: str | None = None
        self.buffer = bytearray(CHUNK)
        self.exclude: frozenset[bytes] = frozenset()

    def _mtime(self, st: os.stat_result) -> int:
        mtime = st.st_mtime_ns // 1_000_000_000
        if self.clamp is not None and mtime > self.clamp:
            return self.clamp
        return mtime

    def _xattrs(self, target: int | str) -> list[tuple[str, bytes]]:
        follow = isinstance(target, int)
        try:
            names = os.listxattr(target) if follow else os.listxattr(target, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
                return []
            raise
        found: list[tuple[str, bytes]] = []
        for key in sorted(names):
            if self.overlay and key in _OVERLAY_UNSUPPORTED:
                raise StoreError(
                    f"{self.current!r} in {self.src} carries overlayfs xattr {key!r}",
                    hint="the overlay was mounted with redirect_dir or metacopy, which berth "
                    "does not use; commit it with the tool that made it",
                )
            if key.startswith(_SKIPPED_XATTRS) and (self.overlay or key == "security.selinux"):
                continue
            try:
                value = (
                    os.getxattr(target, key)
                    if follow
                    else os.getxattr(target, key, follow_symlinks=False)
                )
            except OSError as exc:
                if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue
                raise
            found.append((key, value))
        return found

    def _emit(self, header: bytes) -> None:
        self.sink.write(header)
        self.entries += 1

    def walk(self, root_fd: int) -> None:
        stack = [_Frame(root_fd, b"", self._children(root_fd, b""))]
        try:
            while stack:
                frame = stack[-1]
                if not frame.names:
                    stack.pop()
                    if stack:
                        os.close(frame.fd)
                    continue
                name = frame.names.pop()
                if frame.prefix + name in self.exclude:
                    continue
                child = self._write_entry(frame, name)
                if child is not None:
                    stack.append(child)
        finally:
            for frame in stack[1:]:
                os.close(frame.fd)

    def _children(self, fd: int, prefix: bytes) -> list[bytes]:
        """Names to write in ``fd``, in reverse writing order: whiteouts first, then the rest."""
        names = sorted(os.fsencode(n) for n in os.listdir(fd))
        if not self.overlay:
            return names[::-1]
        whiteouts: list[bytes] = []
        others: list[bytes] = []
        for name in names:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                whiteouts.append(name)
            else:
                others.append(name)
        ordered = sorted(whiteouts, key=lambda n: b".wh." + n) + others
        return ordered[::-1]

    def _write_entry(self, frame: _Frame, name: bytes) -> _Frame | None:
        path = frame.prefix + name
        self.current = os.fsdecode(path)
        st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        mtime = self._mtime(st)
        proc_path = f"/proc/self/fd/{frame.fd}/{os.fsdecode(name)}"
        if self.overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
            self._emit(
                _tar_header(
                    frame.prefix + b".wh." + name, REGULAR, perm, st.st_uid, st.st_gid, 0, mtime
                )
            )
            return None
        if stat.S_ISDIR(mode):
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=frame.fd
            )
            try:
                xattrs = self._xattrs(fd)
                opaque = self.overlay and _getxattr_or_none(fd, _OVERLAY_OPAQUE) == b"y"
                self._emit(
                    _tar_header(
                        path + b"/", DIRECTORY, perm, st.st_uid, st.st_gid, 0, mtime, xattrs=xattrs
                    )
                )
                if opaque:
                    self._emit(_tar_header(path + b"/.wh..wh..opq", REGULAR, 0, 0, 0, 0, mtime))
                return _Frame(fd, path + b"/", self._children(fd, path + b"/"))
            except BaseException:
                os.close(fd)
                raise
        if stat.S_ISSOCK(mode):
            return None
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                self._emit(
                    _tar_header(
                        path, HARDLINK, perm, st.st_uid, st.st_gid, 0, mtime, linkname=first
                    )
                )
                return None
            self.links[key] = path
        if stat.S_ISREG(mode):
            self._write_file(frame.fd, name, path, st, mtime)
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=frame.fd)
            self._emit(
                _tar_header(
                    path,
                    SYMLINK,
                    perm,
                    st.st_uid,
                    st.st_gid,
                    0,
                    mtime,
                    linkname=target,
                    xattrs=self._xattrs(proc_path),
                )
            )
        else:
            kind = CHARDEV if stat.S_ISCHR(mode) else BLOCKDEV if stat.S_ISBLK(mode) else FIFO
            self._emit(
                _tar_header(
                    path,
                    kind,
                    perm,
                    st.st_uid,
                    st.st_gid,
                    0,
                    mtime,
                    devmajor=os.major(st.st_rdev),
                    devminor=os.minor(st.st_rdev),
                    xattrs=self._xattrs(proc_path),
                )
            )
        return None

    def _write_file(
        self, dir_fd: int, name: bytes, path: bytes, st: os.stat_result, mtime: int
    ) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with open(fd, "rb", buffering=0) as file:
            size = os.fstat(fd).st_size
            self._emit(
                _tar_header(
                    path,
                    REGULAR,
                    stat.S_IMODE(st.st_mode),
                    st.st_uid,
                    st.st_gid,
                    size,
                    mtime,
                    xattrs=self._xattrs(fd),
                )
            )
            view = memoryview(self.buffer)
            left = size
            while left:
                got = file.readinto(view[: min(left, len(view))])
                if not got:
                    raise StoreError(
                        f"{self.current!r} in {self.src} shrank while it was being archived",
                        hint="stop or pause the container before committing it",
                    )
                self.sink.write(view[:got])  # copied, or hashed and written, right now
                left -= got
            self.sink.write(bytes(-size % BLOCK))


def _getxattr_or_none(fd: int, key: str) -> bytes | None:
    try:
        return os.getxattr(fd, key)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
