"""A build step's scratch space, and turning its overlay upper dir into a stored layer.

A step that changes files (RUN, COPY, ADD, WORKDIR) mounts the current layers with a fresh
upper dir (:class:`StepSpace`, under the store's ``tmp/``, so on the store's filesystem), makes
its changes through the mount, and unmounts. :func:`commit_upper` then writes the upper dir as
an uncompressed layer tar straight into the blob store (the diff id is hashed as it is
written; for an uncompressed layer it is also the blob digest) and *moves* the upper dir into
the store as the layer's ``diff`` dir: it already is in the store's format (overlayfs
whiteouts, opaque xattrs; the mount uses neither ``redirect_dir`` nor ``metacopy``), so nothing
is unpacked again.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

from berth.basics import suppress
from berth.build.cache import StepLayer
from berth.errors import StorageFull, StoreError
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest, chain_ids
from berth.store.blobs import temp_prefix
from berth.store.layers import remove_tree
from berth.store.leases import Lease
from berth.store.rootfs import RootfsDirs, mount_rootfs, unmount_rootfs
from berth.store.store import Store
from berth.values import Value

__all__ = ["StepSpace", "commit_upper", "content_size", "rfc3339_now"]


class StepSpace(Value):
    """``upper``/``work``/``merged`` (and room for more) of one step, under the store's tmp."""

    __slots__ = ("dirs", "mounted", "path")

    def __init__(self, path: str, dirs: RootfsDirs, mounted: bool = False) -> None:
        self.path = path
        self.dirs = dirs
        self.mounted = mounted

    @classmethod
    def create(cls, store: Store, kind: str = "build") -> StepSpace:
        os.makedirs(store.paths.tmp, exist_ok=True)
        path = tempfile.mkdtemp(prefix=temp_prefix(kind), dir=store.paths.tmp)
        os.chmod(path, 0o700)
        dirs = RootfsDirs.under(path)
        dirs.create()
        os.chmod(dirs.upper, 0o755)
        os.chmod(dirs.merged, 0o755)
        return cls(path, dirs)

    def mount(self, store: Store, top_chain: Digest | None, *, readonly: bool = False) -> str:
        # marked first: a Ctrl-C landing just after the mount must still leave it to remove()
        # (unmounting what is not mounted is fine)
        self.mounted = True
        _mount_volatile(store, top_chain, self.dirs, readonly)
        return self.dirs.merged

    def unmount(self) -> None:
        if self.mounted:
            unmount_rootfs(self.dirs)
            self.mounted = False

    def remove(self) -> None:
        """Unmount if needed and delete everything left (call in ``finally``)."""
        with suppress(StoreError):
            self.unmount()
        if not self.mounted:
            remove_tree(self.path)


def _mount_volatile(
    store: Store, top_chain: Digest | None, dirs: RootfsDirs, readonly: bool
) -> None:
    """:func:`berth.store.rootfs.mount_rootfs` with overlayfs' ``volatile`` option.

    ``volatile`` skips every sync of the upper dir (an unmount otherwise syncs it: several ms
    a step). A step's upper dir is scratch until :func:`commit_upper` has written its blob,
    which is fsynced.
    """
    mount_rootfs(store, top_chain, dirs, readonly=readonly, volatile=True)


def rfc3339_now() -> str:
    """Now as Go's RFC 3339 with nanoseconds (``2024-01-02T03:04:05.123456789Z``)."""
    import time

    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def content_size(root: str) -> int:
    """Bytes of regular file content under ``root`` (each hard-linked inode once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif stat.S_ISREG(st.st_mode):
                        if st.st_nlink > 1:
                            if (st.st_dev, st.st_ino) in seen:
                                continue
                            seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
        except FileNotFoundError:
            continue
    return total


def commit_upper(
    store: Store, lease: Lease, upper: str, parent_chain: Digest | None, created: str
) -> StepLayer:
    """Store ``upper`` (unmounted) as the layer above ``parent_chain``; the dir is moved."""
    from berth.store.layertar import write_layer_tar

    os.makedirs(store.paths.tmp, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=temp_prefix("blob"), dir=store.paths.tmp)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            result = write_layer_tar(upper, _Unbuffered(out))  # type: ignore[arg-type]
            os.fsync(out.fileno())
        digest = result.diff_id
        lease.add("blob", str(digest))
        final = store.blobs.path(digest)
        if os.path.exists(final):
            os.unlink(temp)
        else:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.chmod(temp, 0o644)
            os.rename(temp, final)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(temp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("no space left while storing a build layer") from None
        raise StoreError(f"cannot store a build layer: {exc.strerror or exc}") from None
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    size = content_size(upper)
    chain = digest if parent_chain is None else chain_ids([parent_chain, digest])[1]
    with store.db.write() as conn:
        lease.add_in(conn, "layer", str(chain))
        record = store.layers.commit_unpacked(conn, upper, chain, parent_chain, digest, size)
    return StepLayer(
        chain_id=record.chain_id,
        parent_chain=parent_chain,
        diff_id=digest,
        blob_digest=digest,
        media_type=mt.OCI_LAYER,
        blob_size=result.size,
        size=record.size,
        created=created,
    )


class _Unbuffered:
    """Writes everything it is given (a raw file may write less than asked)."""

    def __init__(self, out: object) -> None:
        self.out = out

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        write = self.out.write  # type: ignore[attr-defined]
        while view:
            done = write(view)
            view = view[done or 0 :]
        return len(data)
