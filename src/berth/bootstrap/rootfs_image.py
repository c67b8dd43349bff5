"""Turning a root filesystem directory made on this host into a one-layer image."""

from __future__ import annotations

import os
import tempfile

from berth.archive.rootfs_import import import_rootfs
from berth.oci.config import ContainerConfig
from berth.oci.reference import ImageReference
from berth.store.images import ImageRecord
from berth.store.store import Store

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_from_directory(
    store: Store,
    rootfs: str,
    *,
    tags: list[ImageReference],
    config: ContainerConfig,
    created_by: str,
    comment: str,
) -> ImageRecord:
    from berth.store.layertar import write_layer_tar

    os.makedirs(store.paths.tmp, exist_ok=True)
    with tempfile.TemporaryFile(
        prefix=f"berth-tmp-{os.getpid()}-bootstrap-", dir=store.paths.tmp
    ) as tar:
        write_layer_tar(rootfs, tar, whiteouts="none")
        tar.seek(0)
        return import_rootfs(
            store,
            tar,
            tags=tags,
            config=config,
            message=comment,
            created_by=created_by,
        )
