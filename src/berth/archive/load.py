"""``berth load``: docker-archive and oci-archive tarballs into the store (format detected).

A docker-archive has ``manifest.json`` (docker save, podman save, skopeo's docker-archive:);
an oci-archive is a tarred OCI image layout with ``index.json`` and ``oci-layout``. Docker 25
and later write both at once; the docker part is read then, as docker load does.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from berth.archive.tarstream import ArchiveReader, spool
from berth.errors import CorruptArchive, InvalidManifest, InvalidReference
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.manifest import Descriptor, ImageIndex, ImageManifest, parse_manifest_or_index
from berth.oci.platform import host_platform, select_platform
from berth.oci.reference import ImageReference, parse_normalized
from berth.store.image_writer import LayerSource, ManifestSource, write_image
from berth.store.images import ImageRecord
from berth.store.store import Store

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True, slots=True)
class LoadedImage:
    image: ImageRecord
    tags: tuple[ImageReference, ...]


def load_archive(
    store: Store, source: str | BinaryIO, progress: Callable[[str], None] | None = None
) -> list[LoadedImage]:
    """Load every image of an archive; ``source`` is a path or a stream (stdin)."""
    spooled = None
    if isinstance(source, str):
        path = source
        if not os.path.exists(path):
            raise CorruptArchive(f"open {path}: no such file or directory")
    else:
        path = spooled = spool(source, store.paths.tmp)
    try:
        with ArchiveReader(path) as reader:
            if reader.has("manifest.json"):
                return _load_docker(store, reader, progress)
            if reader.has("index.json"):
                return _load_oci(store, reader, progress)
            raise CorruptArchive(
                f"{'stdin' if spooled else path} is neither a docker-archive (no manifest.json) "
                "nor an oci-archive (no index.json)",
                hint="make it with `berth save`, `docker save` or `podman save`",
            )
    finally:
        if spooled:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spooled)


def _load_docker(
    store: Store, reader: ArchiveReader, progress: Callable[[str], None] | None
) -> list[LoadedImage]:
    entries = _json(reader.read("manifest.json"), "manifest.json")
    if not isinstance(entries, list):
        raise CorruptArchive("manifest.json of the archive is not a list")
    loaded = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise CorruptArchive("an entry of manifest.json has no Config")
        config_bytes = reader.read(entry["Config"])
        layers = [_docker_layer(reader, path) for path in entry.get("Layers") or []]
        tags = _parse_tags(entry.get("RepoTags") or [])
        if progress:
            progress(f"Loading {', '.join(t.familiar() for t in tags) or entry['Config']}")
        record = write_image(store, config_bytes=config_bytes, layers=layers, tags=tags)
        loaded.append(LoadedImage(record, tuple(tags)))
    return loaded


def _docker_layer(reader: ArchiveReader, path: str) -> LayerSource:
    if not isinstance(path, str):
        raise CorruptArchive("a layer path in manifest.json is not a string")
    section = reader.open(path)
    media_type = _media_type_of(section.peek(8))
    digest = _digest_from_blob_path(path)
    return LayerSource(
        open=lambda: reader.open(path), media_type=media_type, digest=digest, size=section.size
    )


def _load_oci(
    store: Store, reader: ArchiveReader, progress: Callable[[str], None] | None
) -> list[LoadedImage]:
    index = parse_manifest_or_index(reader.read("index.json"), mt.OCI_INDEX)
    if not isinstance(index, ImageIndex):
        raise CorruptArchive("index.json of the archive is not an image index")
    by_manifest: dict[Digest, tuple[Descriptor, bytes, list[ImageReference], Digest | None]] = {}
    for desc in index.manifests:
        names = _descriptor_names(desc)
        chosen, raw, index_digest = _resolve_manifest(reader, desc)
        if chosen.digest in by_manifest:
            by_manifest[chosen.digest][2].extend(names)
        else:
            by_manifest[chosen.digest] = (chosen, raw, list(names), index_digest)
    loaded = []
    for desc, raw, names, index_digest in by_manifest.values():
        manifest = parse_manifest_or_index(raw, desc.media_type)
        assert isinstance(manifest, ImageManifest)
        if progress:
            progress(f"Loading {', '.join(n.familiar() for n in names) or desc.digest}")
        config_bytes = _read_blob(reader, manifest.config)
        layers = [_oci_layer(reader, layer) for layer in manifest.layers]
        record = write_image(
            store,
            config_bytes=config_bytes,
            layers=layers,
            manifest=ManifestSource(raw, manifest.media_type),
            tags=names,
            index_digest=index_digest,
            extra_blobs=[index_digest] if index_digest else (),
        )
        loaded.append(LoadedImage(record, tuple(names)))
    return loaded


def _resolve_manifest(
    reader: ArchiveReader, desc: Descriptor
) -> tuple[Descriptor, bytes, Digest | None]:
    raw = _read_blob(reader, desc)
    if desc.media_type not in mt.IMAGE_INDEXES:
        return desc, raw, None
    inner = parse_manifest_or_index(raw, desc.media_type)
    if not isinstance(inner, ImageIndex):
        raise InvalidManifest(f"{desc.digest} claims to be an index but is a manifest")
    chosen = select_platform(inner.manifests)
    if chosen is None:
        raise InvalidManifest(
            f"the archive has no image for {host_platform()}",
            hint="it was made for other platforms: "
            + ", ".join(str(m.platform) for m in inner.manifests if m.platform),
        )
    return chosen, _read_blob(reader, chosen), desc.digest


def _descriptor_names(desc: Descriptor) -> list[ImageReference]:
    for key in (CONTAINERD_NAME, REF_NAME):
        value = desc.annotations.get(key)
        if value and ("/" in value or ":" in value):
            with contextlib.suppress(InvalidReference):
                ref = parse_normalized(value)
                return [ref.with_default_tag()] if ref.digest is None else []
    return []


def _blob_path(desc: Descriptor) -> str:
    return f"blobs/{desc.digest.algorithm}/{desc.digest.hex}"


def _read_blob(reader: ArchiveReader, desc: Descriptor) -> bytes:
    data = reader.read(_blob_path(desc))
    if Digest.of(data, desc.digest.algorithm) != desc.digest:
        raise CorruptArchive(f"blob {desc.digest} in the archive does not match its digest")
    return data


def _oci_layer(reader: ArchiveReader, desc: Descriptor) -> LayerSource:
    path = _blob_path(desc)
    return LayerSource(
        open=lambda: reader.open(path),
        media_type=desc.media_type,
        digest=desc.digest,
        size=desc.size,
    )


def _digest_from_blob_path(path: str) -> Digest | None:
    parts = path.lstrip("./").split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        with contextlib.suppress(Exception):
            return Digest.parse(f"{parts[1]}:{parts[2]}")
    return None


def _media_type_of(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return mt.OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER


def _parse_tags(names: list[Any]) -> list[ImageReference]:
    tags = []
    for name in names:
        try:
            tags.append(parse_normalized(str(name)).with_default_tag())
        except InvalidReference as exc:
            raise CorruptArchive(f"the archive names an invalid image {name!r}: {exc}") from None
    return tags


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CorruptArchive(f"{what} of the archive is not valid JSON: {exc}") from None
