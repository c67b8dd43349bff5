"""Root filesystems from the store: an image's layers as overlayfs lower dirs, plus a
writable upper dir of a container (or a build step).

Layers are shared read-only by every image and container that uses them; only the upper dir is
written. Whiteouts are overlayfs's own (the layers are unpacked in that form), and the mount
asks for ``redirect_dir=off`` and ``metacopy=off`` so a renamed directory or a chmod in the
upper dir stays a plain copy-up that a layer tar can express.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from berth.errors import HostError, StoreError
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from berth.oci.digest import Digest
    from berth.store.store import Store

MS_RDONLY = 0x1
MNT_DETACH = 0x2
PAGE_LIMIT = 4000  # mount(2) copies at most one page of options

_libc = ctypes.CDLL(None, use_errno=True)  # the C library Python runs on (no ldconfig lookup)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class RootfsDirs(FrozenValue):
    """Where a writable rootfs lives: ``upper`` and ``work`` beside the ``merged`` mount."""

    __slots__ = ("merged", "upper", "work")
    upper: str
    work: str
    merged: str

    def __init__(self, upper: str, work: str, merged: str) -> None:
        init_fields(self, upper=upper, work=work, merged=merged)

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
    store: Store,
    top_chain: Digest | None,
    dirs: RootfsDirs,
    *,
    readonly: bool = False,
    volatile: bool = False,
    mount_points: tuple[str, ...] = (),
) -> None:
    """Mount the image's layers with ``dirs.upper`` on top at ``dirs.merged``.

    ``volatile`` skips overlayfs's sync of the upper dir at unmount (for scratch uppers that
    a crash may lose, such as build steps; the kernel needs 5.10, else it is left out).
    ``mount_points``: files (paths relative to the root, such as ``etc/hosts``) that a bind
    mount will cover, made first (see :func:`make_mount_points`).
    """
    dirs.create()
    lowers = lower_dirs(store, top_chain)
    if not lowers:  # an image with no layers (FROM scratch): overlay needs one lower dir
        empty = os.path.join(store.paths.root, "empty")
        os.makedirs(empty, exist_ok=True)
        lowers = [empty]
    if mount_points:
        make_mount_points(lowers, dirs.upper, mount_points)
    mount_overlay(lowers, dirs, readonly=readonly, volatile=volatile, links_dir=store.paths.root)


def make_mount_points(lowers: list[str], upper: str, paths: tuple[str, ...]) -> None:
    """Make each of ``paths`` (``dir/file``, relative to the root) that the image lacks as an
    empty file in a new container's ``upper`` dir, before the mount, as Docker's init layer
    holds them. Made through the mounted rootfs instead (what the container's init does for
    a mount point that is missing), the file's directory is copied up first: ~0.4 ms each on
    the container's start path. The directory is made with the image's mode, owner and
    extended attributes, as a copy-up makes it; a path whose directory is not a plain one in
    the image (missing, a symlink, whited out) is left to the init."""
    for path in paths:
        parent, _, name = path.partition("/")
        if not name or "/" in name or os.path.lexists(os.path.join(upper, path)):
            continue
        found = _image_entry(lowers, parent, name)
        if found is None:
            continue
        directory, present = found
        if present:
            continue
        target = os.path.join(upper, parent)
        try:
            if not os.path.isdir(target):
                _copy_directory(directory, target)
            fd = os.open(os.path.join(target, name),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
            try:
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
        except OSError:
            continue  # the init makes it, as for any other mount point


def _image_entry(lowers: list[str], parent: str, name: str) -> tuple[str, bool] | None:
    """Where the image's directory ``parent`` (at the root) comes from, and whether ``name``
    is in it; None if ``parent`` is not a plain directory of the image."""
    top = None
    for layer in lowers:  # top layer first, as overlayfs looks them up
        directory = os.path.join(layer, parent)
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):  # a symlink, a file, a whiteout (0/0 device)
            return None if top is None else (top, False)
        if top is None:
            top = directory
        try:
            return top, not _is_whiteout(os.path.join(directory, name))
        except FileNotFoundError:
            pass
        if _is_opaque(directory):
            break
    return None if top is None else (top, False)


def _is_whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(directory: str) -> bool:
    try:
        return os.getxattr(directory, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _copy_directory(source: str, target: str) -> None:
    """``target``, a new directory with ``source``'s mode, owner and extended attributes (but
    overlayfs's own)."""
    st = os.lstat(source)
    os.mkdir(target, 0o700)
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    for key in os.listxattr(source, follow_symlinks=False):
        if key.startswith("trusted.overlay."):
            continue
        try:
            os.setxattr(target, key, os.getxattr(source, key, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass
    os.chmod(target, stat.S_IMODE(st.st_mode))


def mount_overlay(
    lowers: list[str],
    dirs: RootfsDirs,
    *,
    readonly: bool = False,
    volatile: bool = False,
    links_dir: str | None = None,
) -> None:
    """Mount ``lowers`` (top first) under ``dirs.upper`` at ``dirs.merged``.

    When the options would not fit in a page, lower dirs under ``links_dir/l`` are named
    relative to ``links_dir`` (as Docker does); ``volatile`` is dropped on kernels without it.
    """
    dirs.create()
    tail = f"upperdir={dirs.upper},workdir={dirs.work},redirect_dir=off,metacopy=off,index=off"
    options = f"lowerdir={':'.join(lowers)},{tail}"
    cwd = None
    if len(options) > PAGE_LIMIT and links_dir is not None:
        relative = ":".join(os.path.relpath(p, links_dir) for p in lowers)
        options = f"lowerdir={relative},{tail}"
        cwd = links_dir
    if len(options) > PAGE_LIMIT:
        raise StoreError(
            f"the image has too many layers ({len(lowers)}) to mount",
            hint="squash it into fewer layers",
        )
    saved = None
    if cwd is not None:
        saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        os.chdir(cwd)
    try:
        if volatile:
            try:
                _mount_overlay(options + ",volatile", dirs.merged, readonly)
                return
            except StoreError:
                pass  # a kernel before 5.10: mount without it
        _mount_overlay(options, dirs.merged, readonly)
    finally:
        if saved is not None:
            os.fchdir(saved)
            os.close(saved)


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


def mounted(
    store: Store, top_chain: Digest | None, dirs: RootfsDirs, *, readonly: bool = False
) -> AbstractContextManager[str]:
    """``with mounted(...) as root:`` the rootfs is mounted at ``root`` (``dirs.merged``)."""
    import contextlib  # here: berth run's path never takes it (contextlib costs ms to import)

    @contextlib.contextmanager
    def mount() -> Iterator[str]:
        mount_rootfs(store, top_chain, dirs, readonly=readonly)
        try:
            yield dirs.merged
        finally:
            unmount_rootfs(dirs)

    return mount()
