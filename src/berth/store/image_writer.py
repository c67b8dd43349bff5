"""Writing a whole image into the store: config, layers, manifest, tags, in one lease.

Every way an image arrives (import, load, pull, build, commit, bootstrap) ends here, so the
rules live in one place: the config is stored first, each layer is ingested on top of the one
below it (verified against the config's diff ids), a manifest is made if the source had none,
and the image is recorded and tagged in one transaction.
"""

from __future__ import annotations

import contextlib

from berth.errors import InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.config import ImageConfig
from berth.oci.digest import Digest
from berth.oci.manifest import Descriptor, ImageManifest
from berth.oci.reference import ImageReference
from berth.store.images import ImageRecord, NewLayer
from berth.store.ingest import IngestedLayer, ingest_layer
from berth.store.leases import Lease
from berth.store.store import Store
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from berth.store.ingest import ByteStream


class LayerSource(FrozenValue):
    """Where to read one layer blob from, and what it is claimed to be."""

    __slots__ = ("digest", "media_type", "open", "size")
    open: Callable[[], ByteStream]
    media_type: str
    digest: Digest | None
    size: int | None

    def __init__(
        self,
        open: Callable[[], ByteStream],
        media_type: str,
        digest: Digest | None = None,
        size: int | None = None,
    ) -> None:
        init_fields(self, open=open, media_type=media_type, digest=digest, size=size)


class ManifestSource(FrozenValue):
    """Manifest bytes to keep as they are (their digest is the image's repo digest)."""

    __slots__ = ("media_type", "raw")
    raw: bytes
    media_type: str

    def __init__(self, raw: bytes, media_type: str) -> None:
        init_fields(self, raw=raw, media_type=media_type)


def write_image(
    store: Store,
    *,
    config_bytes: bytes,
    layers: Sequence[LayerSource],
    manifest: ManifestSource | None = None,
    tags: Iterable[ImageReference] = (),
    repo_digests: Iterable[tuple[str, Digest]] = (),
    index_digest: Digest | None = None,
    extra_blobs: Iterable[Digest] = (),
    parent: str | None = None,
    lease: Lease | None = None,
    ingest: Callable[[Lease, ImageConfig, Sequence[LayerSource]], list[IngestedLayer]]
    | None = None,
) -> ImageRecord:
    """Store an image. ``ingest`` lets a caller (pull) fetch layers its own way, in parallel."""
    own_lease = lease is None
    lease = lease or store.lease()
    try:
        config = ImageConfig.from_bytes(config_bytes)
        config_digest = store.put_blob(lease, config_bytes)
        if len(config.diff_ids) != len(layers):
            raise InvalidManifest(
                f"the image config lists {len(config.diff_ids)} layers "
                f"but the manifest has {len(layers)}"
            )
        if ingest is not None:
            ingested = ingest(lease, config, layers)
        else:
            ingested = ingest_in_order(store, lease, config, layers)
        if manifest is None:
            manifest = _make_manifest(config_digest, len(config_bytes), ingested)
        manifest_digest = store.put_blob(lease, manifest.raw)
        return store.commit_image(
            lease,
            config_digest=config_digest,
            manifest_digest=manifest_digest,
            manifest_media_type=manifest.media_type,
            created=config.created,
            layers=[
                NewLayer(x.layer.chain_id, x.blob_digest, x.media_type, x.blob_size)
                for x in ingested
            ],
            layer_sizes=[x.layer.size for x in ingested],
            tags=tags,
            repo_digests=repo_digests,
            extra_blobs=extra_blobs,
            index_digest=index_digest,
            parent=parent,
        )
    except BaseException:
        if own_lease:
            store.abandon(lease)
        raise


def ingest_in_order(
    store: Store, lease: Lease, config: ImageConfig, layers: Sequence[LayerSource]
) -> list[IngestedLayer]:
    out: list[IngestedLayer] = []
    parent: Digest | None = None
    for source, diff_id in zip(layers, config.diff_ids, strict=True):
        with contextlib.closing(source.open()) as stream:
            layer = ingest_layer(
                store,
                lease,
                stream,
                media_type=source.media_type,
                parent_chain=parent,
                expected_blob=source.digest,
                expected_size=source.size,
                expected_diff_id=diff_id,
            )
        out.append(layer)
        parent = layer.layer.chain_id
    return out


def _make_manifest(
    config_digest: Digest, config_size: int, layers: Sequence[IngestedLayer]
) -> ManifestSource:
    manifest = ImageManifest(
        config=Descriptor(mt.OCI_CONFIG, config_digest, config_size),
        layers=tuple(
            Descriptor(_oci_media_type(x.media_type), x.blob_digest, x.blob_size) for x in layers
        ),
    )
    return ManifestSource(manifest.to_bytes(), mt.OCI_MANIFEST)


def _oci_media_type(media_type: str) -> str:
    compression = mt.LAYER_COMPRESSION.get(media_type, "")
    return {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}[compression]


class BaseLayer(FrozenValue):
    """A layer already in the store that a new image is built on."""

    __slots__ = ("diff_id", "new_layer", "size")
    new_layer: NewLayer
    diff_id: Digest
    size: int

    def __init__(self, new_layer: NewLayer, diff_id: Digest, size: int) -> None:
        init_fields(self, new_layer=new_layer, diff_id=diff_id, size=size)


def base_layers(store: Store, image: ImageRecord | None) -> list[BaseLayer]:
    """The layers of ``image`` (bottom first), to build a new image on top of it."""
    if image is None:
        return []
    rows = store.db.execute(
        "SELECT il.chain_id, il.blob_digest, il.media_type, il.blob_size, l.diff_id, l.size "
        "FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id "
        "WHERE il.image_id = ? ORDER BY il.position",
        (str(image.id),),
    ).fetchall()
    return [
        BaseLayer(
            NewLayer(Digest.parse(r[0]), Digest.parse(r[1]), r[2], r[3]), Digest.parse(r[4]), r[5]
        )
        for r in rows
    ]


def write_new_image(
    store: Store,
    *,
    base: Sequence[BaseLayer],
    new_layers: Sequence[LayerSource],
    make_config: Callable[[list[Digest]], ImageConfig],
    tags: Iterable[ImageReference] = (),
    parent: str | None = None,
) -> ImageRecord:
    """Store an image made here: ``base`` layers plus ``new_layers`` whose diff ids are
    learnt while they are ingested; ``make_config`` gets every diff id, bottom first."""
    lease = store.lease()
    try:
        return _write_new_image(
            store,
            lease,
            base=base,
            new_layers=new_layers,
            make_config=make_config,
            tags=tags,
            parent=parent,
        )
    except BaseException:
        store.abandon(lease)
        raise


def _write_new_image(
    store: Store,
    lease: Lease,
    *,
    base: Sequence[BaseLayer],
    new_layers: Sequence[LayerSource],
    make_config: Callable[[list[Digest]], ImageConfig],
    tags: Iterable[ImageReference],
    parent: str | None,
) -> ImageRecord:
    for layer in base:
        lease.add("layer", str(layer.new_layer.chain_id))
    parent_chain = base[-1].new_layer.chain_id if base else None
    ingested: list[IngestedLayer] = []
    for source in new_layers:
        with contextlib.closing(source.open()) as stream:
            added = ingest_layer(
                store, lease, stream, media_type=source.media_type, parent_chain=parent_chain
            )
        ingested.append(added)
        parent_chain = added.layer.chain_id
    diff_ids = [b.diff_id for b in base] + [x.diff_id for x in ingested]
    config = make_config(diff_ids)
    config_bytes = config.to_bytes()
    config_digest = store.put_blob(lease, config_bytes)
    all_layers = [b.new_layer for b in base] + [
        NewLayer(x.layer.chain_id, x.blob_digest, x.media_type, x.blob_size) for x in ingested
    ]
    manifest = ImageManifest(
        config=Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(
            Descriptor(_oci_media_type(x.media_type), x.blob_digest, x.blob_size)
            for x in all_layers
        ),
    )
    manifest_bytes = manifest.to_bytes()
    manifest_digest = store.put_blob(lease, manifest_bytes)
    return store.commit_image(
        lease,
        config_digest=config_digest,
        manifest_digest=manifest_digest,
        manifest_media_type=mt.OCI_MANIFEST,
        created=config.created,
        layers=all_layers,
        layer_sizes=[b.size for b in base] + [x.layer.size for x in ingested],
        tags=tags,
        parent=parent,
    )
