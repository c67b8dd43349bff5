"""Root filesystems from the store: an image's layers as overlayfs lower dirs, plus a
writable upper dir of a container (or a build step).

Layers are shared read-only by every image and container that uses them; only the upper dir is
written. Whiteouts are overlayfs's own (the layers are unpacked in that form), and the mount
asks for ``redirect_dir=off`` and ``metacopy=off`` so a renamed directory or a chmod in the
upper dir stays a plain copy-up that a layer tar can express.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from berth.errors import HostError, StoreError
from berth.oci.digest import Digest
from berth.store.store import Store

MS_RDONLY = 0x1
MNT_DETACH = 0x2
PAGE_LIMIT = 4000  # mount(2) copies at most one page of options

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


@dataclass(frozen=True, slots=True)
class RootfsDirs:
    """Where a writable rootfs lives: ``upper`` and ``work`` beside the ``merged`` mount."""

    upper: str
    work: str
    merged: str

    @classmethod
    def under(cls, directory: str) -> RootfsDirs:
        return cls(
            os.path.join(directory, "upper"),
            os.path.join(directory, "work"),
            os.path.join(directory, "merged"),
        )

    def create(self) -> None:
        for path in (self.upper, self.work, self.merged):
            os.makedirs(path, exist_ok=True)


def lower_dirs(store: Store, top_chain: Digest | None) -> list[str]:
    """The short link of each layer, top layer first (overlay's lowerdir order)."""
    stack = store.layers.stack(top_chain)
    return [store.layers.link_path(layer) for layer in reversed(stack)]


def mount_rootfs(
    store: Store, top_chain: Digest | None, dirs: RootfsDirs, *, readonly: bool = False
) -> None:
    """Mount the image's layers with ``dirs.upper`` on top at ``dirs.merged``."""
    dirs.create()
    lowers = lower_dirs(store, top_chain)
    if not lowers:  # an image with no layers (FROM scratch): overlay needs one lower dir
        empty = os.path.join(store.paths.root, "empty")
        os.makedirs(empty, exist_ok=True)
        lowers = [empty]
    options = (
        f"lowerdir={':'.join(lowers)},upperdir={dirs.upper},workdir={dirs.work},"
        "redirect_dir=off,metacopy=off,index=off"
    )
    if len(options) <= PAGE_LIMIT:
        _mount_overlay(options, dirs.merged, readonly)
        return
    # Too many layers for absolute paths: name them relative to the links dir, as Docker does.
    relative = ":".join(os.path.join("l", os.path.basename(p)) for p in lowers)
    options = (
        f"lowerdir={relative},upperdir={dirs.upper},workdir={dirs.work},"
        "redirect_dir=off,metacopy=off,index=off"
    )
    if len(options) > PAGE_LIMIT:
        raise StoreError(
            f"the image has too many layers ({len(lowers)}) to mount",
            hint="squash it into fewer layers",
        )
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(store.paths.root)
        _mount_overlay(options, dirs.merged, readonly)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def unmount_rootfs(dirs: RootfsDirs) -> None:
    """Unmount (lazily if busy); a rootfs that is not mounted is fine."""
    target = dirs.merged.encode()
    if _libc.umount2(target, 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return
    if err == errno.EBUSY and _libc.umount2(target, MNT_DETACH) == 0:
        return
    raise StoreError(f"cannot unmount {dirs.merged}: {os.strerror(err)}")


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def _mount_overlay(options: str, target: str, readonly: bool) -> None:
    flags = MS_RDONLY if readonly else 0
    if _libc.mount(b"overlay", target.encode(), b"overlay", flags, options.encode()) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EPERM:
        raise HostError(
            "mounting the container's root filesystem needs root (overlayfs)",
            hint="run berth as root",
        )
    if err == errno.ENODEV:
        raise HostError("this kernel has no overlayfs", hint="modprobe overlay")
    raise StoreError(f"cannot mount the root filesystem at {target}: {os.strerror(err)}")


@contextlib.contextmanager
def mounted(
    store: Store, top_chain: Digest | None, dirs: RootfsDirs, *, readonly: bool = False
) -> Iterator[str]:
    mount_rootfs(store, top_chain, dirs, readonly=readonly)
    try:
        yield dirs.merged
    finally:
        unmount_rootfs(dirs)
