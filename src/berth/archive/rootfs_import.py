"""``berth import``: a root filesystem tarball (plain, gzip, zstd, bzip2 or xz) as an image."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO, cast

from berth.archive.changes import apply_changes
from berth.errors import CorruptArchive
from berth.oci import mediatypes as mt
from berth.oci.config import ContainerConfig, HistoryEntry, ImageConfig
from berth.oci.digest import Digest
from berth.oci.platform import host_platform
from berth.oci.reference import ImageReference
from berth.store.image_writer import LayerSource, write_new_image
from berth.store.images import ImageRecord
from berth.store.store import Store

if TYPE_CHECKING:
    from berth.store.ingest import ByteStream


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def import_rootfs(
    store: Store,
    source: str | BinaryIO,
    *,
    tags: Sequence[ImageReference] = (),
    changes: Sequence[str] = (),
    message: str = "",
    config: ContainerConfig | None = None,
    source_name: str = "-",
    created_by: str = "",
) -> ImageRecord:
    """Make a one-layer image from a rootfs tarball (a path or a stream)."""
    container_config = config or ContainerConfig()
    apply_changes(container_config, list(changes))
    stream = _open(source)
    try:
        head = stream.peek(8)[:8]
        media_type, decompress = _media_type(head)
        layer_stream: ByteStream = stream
        if decompress:
            from berth.store.compression import open_decompressed

            layer_stream = open_decompressed(cast(BinaryIO, stream))
        platform = host_platform()
        created = now_rfc3339()

        def make_config(diff_ids: list[Digest]) -> ImageConfig:
            return ImageConfig(
                architecture=platform.architecture,
                os=platform.os,
                variant=platform.variant or "",
                diff_ids=diff_ids,
                config=container_config,
                created=created,
                history=[
                    HistoryEntry(
                        created=created,
                        created_by=created_by,
                        comment=message or f"Imported from {source_name}",
                    )
                ],
            )

        return write_new_image(
            store,
            base=[],
            new_layers=[LayerSource(open=lambda: layer_stream, media_type=media_type)],
            make_config=make_config,
            tags=tags,
        )
    finally:
        stream.close()


def _open(source: str | BinaryIO) -> io.BufferedReader:
    if isinstance(source, str):
        try:
            return cast(io.BufferedReader, open(source, "rb", buffering=1 << 20))
        except FileNotFoundError:
            raise CorruptArchive(f"open {source}: no such file or directory") from None
        except IsADirectoryError:
            raise CorruptArchive(f"{source} is a directory, not a tarball") from None
    if isinstance(source, io.BufferedReader):
        return cast(io.BufferedReader, source)
    return io.BufferedReader(cast(io.RawIOBase, source), 1 << 20)


def _media_type(head: bytes) -> tuple[str, bool]:
    if head.startswith(b"\x1f\x8b"):
        return mt.OCI_LAYER_GZIP, False
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD, False
    if head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ\x00"):
        return mt.OCI_LAYER, True
    if not head:
        raise CorruptArchive("the tarball is empty")
    return mt.OCI_LAYER, False
