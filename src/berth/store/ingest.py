"""Taking a layer into the store in one streaming pass.

The bytes of a layer blob are read once: written to the blob store (hashed as they go),
decompressed, hashed again (the diff id) and unpacked into a fresh layer dir. Both digests are
checked against what the manifest and config claim before anything is committed. A layer
already in the store is not unpacked again; a blob already in the store is not written again.
"""

from __future__ import annotations

from berth.errors import CorruptArchive, DigestMismatch
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest, chain_ids
from berth.store.blobs import CHUNK, BlobWriter
from berth.store.layers import LayerRecord
from berth.store.leases import Lease
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, Protocol

    from berth.store.store import Store

    class ByteStream(Protocol):
        """What a layer is read from: a file, a member of an archive, an HTTP body."""

        def read(self, n: int = -1, /) -> bytes: ...

        def close(self) -> None: ...


class IngestedLayer(FrozenValue):
    __slots__ = ("blob_digest", "blob_size", "diff_id", "layer", "media_type")
    blob_digest: Digest
    blob_size: int
    media_type: str
    diff_id: Digest
    layer: LayerRecord

    def __init__(
        self,
        blob_digest: Digest,
        blob_size: int,
        media_type: str,
        diff_id: Digest,
        layer: LayerRecord,
    ) -> None:
        init_fields(
            self,
            blob_digest=blob_digest,
            blob_size=blob_size,
            media_type=media_type,
            diff_id=diff_id,
            layer=layer,
        )


class _Tee:
    """A read-only stream that copies what is read into a sink and a hash."""

    def __init__(
        self, source: ByteStream, sink: Callable[[bytes], object] | None, algorithm: str = "sha256"
    ) -> None:
        self.source = source
        self.sink = sink
        import hashlib  # streams: OpenSSL's sha256, several times the built-in's speed

        self.hash = hashlib.new(algorithm)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n if n and n > 0 else CHUNK)
        if data:
            self.hash.update(data)
            self.count += len(data)
            if self.sink is not None:
                self.sink(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def readable(self) -> bool:
        return True


def ingest_layer(
    store: Store,
    lease: Lease,
    source: ByteStream,
    *,
    media_type: str,
    parent_chain: Digest | None,
    expected_blob: Digest | None = None,
    expected_size: int | None = None,
    expected_diff_id: Digest | None = None,
    keep_blob: bool = True,
) -> IngestedLayer:
    """Read one layer blob from ``source`` into the store (blob and unpacked layer).

    ``media_type`` tells the compression (autodetected when it says none but the bytes are
    compressed). Raises DigestMismatch when the blob or its uncompressed content does not match
    what was expected; nothing is recorded then.
    """
    from berth.store.compression import open_decompressed
    from berth.store.unpack import unpack_layer

    compression = mt.LAYER_COMPRESSION.get(media_type)
    if expected_blob is not None:
        lease.add("blob", str(expected_blob))
    chain_known = _chain(parent_chain, expected_diff_id) if expected_diff_id else None
    if chain_known is not None:
        lease.add("layer", str(chain_known))
    need_blob = keep_blob and not (expected_blob is not None and store.blobs.has(expected_blob))
    existing = store.layers.get(chain_known) if chain_known is not None else None

    writer: BlobWriter | None = None
    if need_blob:
        writer = store.blobs.writer(expected_blob, expected_size=expected_size)
    unpack_dir: str | None = None
    try:
        raw = _Tee(
            source,
            writer.write if writer else None,
            expected_blob.algorithm if expected_blob else "sha256",
        )
        try:
            plain = open_decompressed(cast_stream(raw), compression or None)
            content = _Tee(plain, None)
            size = existing.size if existing else 0
            if existing is None:
                unpack_dir = store.layers.new_unpack_dir()
                size = unpack_layer(cast_stream(content), unpack_dir, mode="overlay").size
            content.drain()
            raw.drain()
        except (EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise CorruptArchive(
                f"layer {expected_blob or ''} is truncated or corrupt: {exc}"
            ) from None
        blob_digest = Digest(raw.hash.name, raw.hash.hexdigest())
        diff_id = Digest("sha256", content.hash.hexdigest())
        if expected_blob is not None and blob_digest != expected_blob:
            raise DigestMismatch(
                f"layer blob has digest {blob_digest}, but the manifest says {expected_blob}",
                hint="the image source is corrupt or was tampered with",
            )
        if expected_diff_id is not None and diff_id != expected_diff_id:
            raise DigestMismatch(
                f"layer content has digest {diff_id}, but the image config says {expected_diff_id}",
                hint="the image source is corrupt or was tampered with",
            )
        chain = _chain(parent_chain, diff_id)
        if writer is not None:
            lease.add("blob", str(blob_digest))
            writer.commit()
        with store.db.write() as conn:
            lease.add_in(conn, "layer", str(chain))
            if unpack_dir is not None:
                layer = store.layers.commit_unpacked(
                    conn, unpack_dir, chain, parent_chain, diff_id, size
                )
                unpack_dir = None
            else:
                assert existing is not None
                layer = existing
    finally:
        if writer is not None and not writer.committed:
            writer.abort()
        if unpack_dir is not None:
            from berth.store.trees import remove_tree

            remove_tree(unpack_dir)
    return IngestedLayer(blob_digest, raw.count, media_type, diff_id, layer)


def cast_stream(stream: object) -> BinaryIO:
    """Our stream wrappers, typed as the binary streams the decompressor and unpacker read."""
    return stream  # type: ignore[return-value]


def _chain(parent: Digest | None, diff_id: Digest) -> Digest:
    if parent is None:
        return diff_id
    return chain_ids([parent, diff_id])[1]
