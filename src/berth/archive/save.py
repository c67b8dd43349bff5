"""``berth save``: images out of the store as a docker-archive or an oci-archive.

The docker-archive is written the way Docker 25 and later write it: ``manifest.json`` (what
``docker load`` and ``podman load`` read) plus an OCI layout (``oci-layout``, ``index.json``,
``blobs/``) that OCI tools read, the layer files being the same uncompressed blobs for both.
The oci-archive is the store's own manifests and blobs, byte for byte, so digests survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from berth.archive.tarstream import ArchiveWriter
from berth.errors import InvalidArgument, InvalidReference
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    canonical_json,
    parse_manifest,
)
from berth.oci.reference import ImageReference, parse_normalized
from berth.store.images import ImageRecord
from berth.store.store import Store

FORMATS = ("docker-archive", "oci-archive")
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass
class _Selected:
    image: ImageRecord
    refs: list[ImageReference]


def select_images(store: Store, names: list[str]) -> list[_Selected]:
    """Resolve ``save`` arguments as Docker does: a name without tag takes all its tags."""
    selected: dict[str, _Selected] = {}
    for name in names:
        image = store.images.resolve(name)
        entry = selected.setdefault(str(image.id), _Selected(image, []))
        refs: list[ImageReference] = []
        with contextlib.suppress(InvalidReference):
            ref = parse_normalized(name)
            if not _is_id_like(name, image):
                if ref.is_name_only:
                    refs = [t for t in image.tags if t.repository == ref.repository]
                    if not refs:
                        refs = [ref.with_default_tag()]
                elif ref.digest is None:
                    refs = [ref]
        for ref in refs:
            if ref not in entry.refs:
                entry.refs.append(ref)
    return list(selected.values())


def save_images(
    store: Store,
    names: list[str],
    out: BinaryIO,
    *,
    fmt: str = "docker-archive",
    progress: Callable[[str], None] | None = None,
) -> None:
    if fmt not in FORMATS:
        raise InvalidArgument(
            f"unknown archive format {fmt!r}", hint="use docker-archive or oci-archive"
        )
    images = select_images(store, names)
    writer = ArchiveWriter(out)
    if fmt == "oci-archive":
        _write_oci(store, images, writer, progress)
    else:
        _write_docker(store, images, writer, progress)
    writer.close()


def _write_oci(
    store: Store,
    images: list[_Selected],
    writer: ArchiveWriter,
    progress: Callable[[str], None] | None,
) -> None:
    written: set[Digest] = set()
    descriptors: list[Descriptor] = []
    for entry in images:
        image = entry.image
        raw = store.blobs.read(image.manifest_digest)
        manifest = parse_manifest(raw, image.manifest_media_type)
        if progress:
            progress(f"Saving {_label(entry)}")
        for desc in (manifest.config, *manifest.layers):
            _add_blob(store, writer, desc.digest, written)
        _add_blob(store, writer, image.manifest_digest, written)
        base = Descriptor(image.manifest_media_type, image.manifest_digest, len(raw))
        descriptors += _named_descriptors(base, entry.refs)
    writer.add_bytes("oci-layout", canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
    writer.add_bytes("index.json", ImageIndex(tuple(descriptors)).to_bytes())


def _write_docker(
    store: Store,
    images: list[_Selected],
    writer: ArchiveWriter,
    progress: Callable[[str], None] | None,
) -> None:
    written: set[Digest] = set()
    descriptors: list[Descriptor] = []
    docker_manifest: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    for entry in images:
        image = entry.image
        if progress:
            progress(f"Saving {_label(entry)}")
        raw = store.blobs.read(image.manifest_digest)
        manifest = parse_manifest(raw, image.manifest_media_type)
        config_bytes = store.blobs.read(manifest.config.digest)
        _add_blob(store, writer, manifest.config.digest, written)
        layer_descs = []
        for desc in manifest.layers:
            layer_descs.append(_add_uncompressed_layer(store, writer, desc, written))
        if tuple(layer_descs) == manifest.layers and manifest.config.media_type == mt.OCI_CONFIG:
            manifest_bytes, manifest_digest = raw, image.manifest_digest
        else:
            rebuilt = ImageManifest(
                config=Descriptor(mt.OCI_CONFIG, manifest.config.digest, len(config_bytes)),
                layers=tuple(layer_descs),
            )
            manifest_bytes = rebuilt.to_bytes()
            manifest_digest = Digest.of(manifest_bytes)
        if manifest_digest not in written:
            writer.add_bytes(_blob_path(manifest_digest), manifest_bytes)
            written.add(manifest_digest)
        descriptors += _named_descriptors(
            Descriptor(mt.OCI_MANIFEST, manifest_digest, len(manifest_bytes)), entry.refs
        )
        docker_manifest.append(
            {
                "Config": _blob_path(manifest.config.digest),
                "RepoTags": [r.familiar() for r in entry.refs] or None,
                "Layers": [_blob_path(d.digest) for d in layer_descs],
            }
        )
        for ref in entry.refs:
            if layer_descs and ref.tag:
                repositories.setdefault(ref.familiar_repository, {})[ref.tag] = layer_descs[
                    -1
                ].digest.hex
    writer.add_bytes("oci-layout", canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
    writer.add_bytes("index.json", ImageIndex(tuple(descriptors)).to_bytes())
    writer.add_bytes("manifest.json", json.dumps(docker_manifest).encode())
    if repositories:
        writer.add_bytes("repositories", json.dumps(repositories).encode())


def _add_uncompressed_layer(
    store: Store, writer: ArchiveWriter, desc: Descriptor, written: set[Digest]
) -> Descriptor:
    """Write a layer as an uncompressed tar (what docker-archive readers expect)."""
    compression = mt.LAYER_COMPRESSION.get(desc.media_type, "")
    if not compression:
        _add_blob(store, writer, desc.digest, written)
        return Descriptor(mt.OCI_LAYER, desc.digest, desc.size)
    from berth.store.compression import open_decompressed

    os.makedirs(store.paths.tmp, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        prefix=f"berth-tmp-{os.getpid()}-save-", dir=store.paths.tmp
    ) as tmp:
        import hashlib

        hasher = hashlib.sha256()
        with store.blobs.open(desc.digest) as blob:
            plain = open_decompressed(blob, compression)
            while True:
                data = plain.read(1 << 20)
                if not data:
                    break
                hasher.update(data)
                tmp.write(data)
        tmp.flush()
        diff_id = Digest("sha256", hasher.hexdigest())
        size = os.fstat(tmp.fileno()).st_size
        if diff_id not in written:
            writer.add_file(_blob_path(diff_id), tmp.name)
            written.add(diff_id)
    return Descriptor(mt.OCI_LAYER, diff_id, size)


def _add_blob(store: Store, writer: ArchiveWriter, digest: Digest, written: set[Digest]) -> None:
    if digest in written:
        return
    writer.add_file(_blob_path(digest), store.blobs.path(digest))
    written.add(digest)


def _named_descriptors(base: Descriptor, refs: list[ImageReference]) -> list[Descriptor]:
    if not refs:
        return [base]
    return [
        Descriptor(
            base.media_type,
            base.digest,
            base.size,
            annotations={CONTAINERD_NAME: str(ref), REF_NAME: ref.tag or "latest"},
        )
        for ref in refs
    ]


def _blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _label(entry: _Selected) -> str:
    return ", ".join(r.familiar() for r in entry.refs) or entry.image.short_id


def _is_id_like(name: str, image: ImageRecord) -> bool:
    text = name.removeprefix("sha256:")
    return (
        bool(text)
        and image.id.hex.startswith(text)
        and not any(t.familiar_repository == name or t.familiar() == name for t in image.tags)
    )
