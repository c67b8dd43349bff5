"""``berth cp``, docker-py's ``get_archive``/``put_archive``, and ``berth export``: a
container's files in and out.

Every path inside a container is resolved inside the container's root
(:mod:`berth.store.copytar`, ``openat2`` with ``RESOLVE_IN_ROOT``): a container that plants
``etc -> /`` or ``../../..`` symlinks only ever leads ``cp`` back into itself, never to the
host's files. The root of a running (or paused) container is ``/proc/<pid>/root``: its root
filesystem with its volumes and bind mounts as the container sees them (kernel filesystems
such as its /proc and /sys are neither read nor written). A stopped container's root
filesystem is mounted for the copy and unmounted afterwards; its volumes and bind mounts are
mounted over it in a child process's own mount namespace (:mod:`.mount_namespace`), so
``cp`` reaches them as Docker's does and the host never sees those mounts.

Docker's path rules for ``cp SRC DEST`` (either side in the container):

- SRC a file: DEST an existing directory gets ``DEST/basename(SRC)``; an existing file is
  overwritten; a missing DEST is created as that file (its parent must exist; a DEST ending
  in ``/`` must be an existing directory);
- SRC a directory: DEST missing is created as a copy of it; DEST an existing directory gets
  ``DEST/basename(SRC)``, or with SRC ending in ``/.`` the contents of SRC; DEST a file is
  an error;
- SRC ending in ``/`` must be a directory; a symlink SRC is copied as a link unless
  ``follow`` (``-L``);
- owners: the destination's user (root in a container, the caller on the host) unless
  ``archive`` (``-a``) keeps the source's.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

from berth.errors import (
    BerthError,
    ContainerStateConflict,
    InvalidArgument,
    PathNotFound,
)
from berth.store import copytar, safepath

if TYPE_CHECKING:
    from berth.containers.records import ContainerRecord
    from berth.engine import Engine
    from berth.engine.containers import Container

T = TypeVar("T")

# Filesystems of a running container that cp never reads or writes (they are the kernel's).
KERNEL_FILESYSTEMS = frozenset(
    {
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "fusectl",
        "mqueue",
        "proc",
        "pstore",
        "securityfs",
        "sysfs",
        "tracefs",
    }
)
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHARDEV = 1 << 21
GO_MODE_STICKY = 1 << 20


@dataclass(frozen=True, slots=True)
class Root:
    """A root to resolve paths in: its fd, the kernel filesystems' device numbers in it,
    and how to name it in messages."""

    fd: int
    kernel_devices: frozenset[int]
    label: str


@dataclass(frozen=True, slots=True)
class CopyResult:
    """How many bytes of tar crossed, and where they went (``Successfully copied ...``)."""

    size: int
    destination: str


# ---------------------------------------------------------------------------------- roots


def in_container(
    engine: Engine, container: Container, body: Callable[[Root], T], *, write: bool
) -> T:
    """Run ``body`` with the container's root: through its init process when it runs, else
    its root filesystem mounted for the call, with its volumes and bind mounts in place (in
    a child process's own mount namespace, so the host never sees them)."""
    from berth.engine.container_ops import current_record

    record = current_record(engine, container)
    label = f"container {record.name}"
    if record.running:
        with _running_root(record, label) as root:
            return body(root)
    from berth.store.rootfs import is_mounted, mount_rootfs, unmount_rootfs

    dirs = engine.containers.launcher.rootfs_dirs(record.id)
    mounted_here = False
    if not is_mounted(dirs.merged):
        if os.path.isdir(dirs.work) and os.listdir(dirs.work):
            shutil.rmtree(dirs.work, ignore_errors=True)  # left by an unclean unmount
        mount_rootfs(engine.store, record.top_chain, dirs, readonly=not write)
        mounted_here = True
    try:
        binds = _binds(record)
        if binds:
            from berth.engine.mount_namespace import run_with_binds

            return run_with_binds(dirs.merged, binds, lambda fd: body(Root(fd, frozenset(), label)))
        fd = os.open(dirs.merged, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return body(Root(fd, frozenset(), label))
        finally:
            os.close(fd)
    finally:
        if mounted_here:
            unmount_rootfs(dirs)


def _binds(record: ContainerRecord) -> list[tuple[str, str, bool]]:
    """(host source, destination, read-only) of the volumes and binds a stopped container
    would have, parents first."""
    found = []
    for mount in record.extra.get("Mounts") or []:
        if mount.get("Type") not in ("volume", "bind"):
            continue
        source = str(mount.get("Source") or "")
        if source and os.path.exists(source):
            found.append((source, str(mount["Destination"]), not mount.get("RW", True)))
    return sorted(found, key=lambda b: b[1].rstrip("/").count("/"))


@contextlib.contextmanager
def _running_root(record: ContainerRecord, label: str) -> Iterator[Root]:
    from berth.store.leases import process_start_time

    pid = int(record.state.get("Pid") or 0)
    expected = int(record.state.get("PidStart") or -1)

    def same_process() -> bool:
        start = process_start_time(pid) if pid else None
        return start is not None and int(start) == expected

    if not same_process():
        raise ContainerStateConflict(f"container {record.short_id} is not running any more")
    fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        devices = kernel_devices(pid)
        if not same_process():  # the pid was reused between the check and the open
            raise ContainerStateConflict(f"container {record.short_id} is not running any more")
        yield Root(fd, devices, label)
    finally:
        os.close(fd)


def kernel_devices(pid: int) -> frozenset[int]:
    """Device numbers of the kernel filesystems mounted in ``pid``'s mount namespace."""
    found = set()
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                continue
            if fstype in KERNEL_FILESYSTEMS:
                major, _, minor = fields[2].partition(":")
                found.add(os.makedev(int(major), int(minor)))
    return frozenset(found)


@contextlib.contextmanager
def host_root(directory: str = "/") -> Iterator[Root]:
    """A host directory as the root (``/``: paths resolve as they always do on the host)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PathNotFound(f"no such directory: {directory}") from None
    except NotADirectoryError:
        raise InvalidArgument(f'destination "{directory}" must be a directory') from None
    try:
        yield Root(fd, frozenset(), "host")
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- paths


@dataclass(frozen=True, slots=True)
class CopyPath:
    """A path as the user wrote it, and where it resolves in its root."""

    text: str
    path: str

    @property
    def wants_dir(self) -> bool:
        return self.text.endswith("/") or self.text.endswith("/.") or self.text in (".", "..")

    @property
    def contents(self) -> bool:
        """``SRC/.``: the directory's contents rather than the directory."""
        return self.text.endswith("/.") or self.text == "." or posixpath.normpath(self.path) == "/"

    @property
    def base(self) -> str:
        return posixpath.basename(posixpath.normpath(self.path)) or "."

    @property
    def parent(self) -> str:
        return posixpath.dirname(posixpath.normpath(self.path)) or "/"


def container_path(text: str) -> CopyPath:
    """A path in a container: relative to its ``/``."""
    if not text:
        raise InvalidArgument("the path in the container is empty")
    return CopyPath(text, text if text.startswith("/") else "/" + text)


def host_path(text: str) -> CopyPath:
    """A path on the host: relative to the working directory."""
    if not text:
        raise InvalidArgument("the path on the host is empty")
    return CopyPath(text, text if text.startswith("/") else os.path.join(os.getcwd(), text))


def _stat(root: Root, where: CopyPath, *, follow: bool) -> os.stat_result | None:
    try:
        return copytar.stat_in_root(root.fd, where.path, follow=follow)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InvalidArgument(f"{where.text}: not a directory") from None


def _missing(root: Root, where: CopyPath) -> BerthError:
    if root.label == "host":
        return PathNotFound(f"lstat {where.path}: no such file or directory")
    name = root.label.removeprefix("container ")
    return PathNotFound(f"Could not find the file {where.path} in container {name}")


def source_stat(root: Root, src: CopyPath, *, follow: bool) -> os.stat_result:
    found = _stat(root, src, follow=follow or src.wants_dir)
    if found is None:
        raise _missing(root, src)
    if src.wants_dir and not stat.S_ISDIR(found.st_mode):
        raise InvalidArgument(f"{src.text}: not a directory")
    return found


def copy_target(
    src: CopyPath, src_is_dir: bool, dest: CopyPath, dest_kind: str | None
) -> tuple[str, str]:
    """Docker's rules (see the module's doc): (the directory to extract into, the name of
    the top entry; ``"."`` for a directory's contents)."""
    if dest_kind == "dir":
        return dest.path, "." if src_is_dir and src.contents else src.base
    if dest_kind is not None:
        if src_is_dir:
            raise InvalidArgument(f"cannot copy a directory to a file: {dest.text}")
        return dest.parent, dest.base
    if dest.text.endswith("/"):
        raise PathNotFound(f"destination directory {dest.text} does not exist")
    return dest.parent, dest.base


def _dest_kind(root: Root, dest: CopyPath) -> str | None:
    found = _stat(root, dest, follow=True)
    if found is None:
        return None
    return "dir" if stat.S_ISDIR(found.st_mode) else "file"


# ----------------------------------------------------------------------------------- cp


def copy_from_container(
    engine: Engine,
    container: Container,
    src: str,
    dest: str,
    *,
    follow: bool = False,
    archive: bool = False,
) -> CopyResult:
    """``berth cp CONTAINER:SRC DEST`` (DEST on the host)."""
    source = container_path(src)
    target = host_path(dest)

    def body(root: Root) -> int:
        with host_root() as host:
            st = source_stat(root, source, follow=follow)
            kind = _dest_kind(host, target)
        directory, name = copy_target(source, stat.S_ISDIR(st.st_mode), target, kind)
        owner = None if archive else (os.geteuid(), os.getegid())
        with host_root(directory) as into:
            return _pipe(
                lambda out: copytar.write_tree(
                    root.fd,
                    source.path,
                    name,
                    out,
                    follow=follow,
                    skip_devices=root.kernel_devices,
                ),
                lambda stream: copytar.extract(
                    into.fd, "/", stream, copytar.ExtractOptions(owner=owner)
                ),
            )

    size = in_container(engine, container, body, write=False)
    return CopyResult(size, dest)


def copy_to_container(
    engine: Engine,
    container: Container,
    src: str,
    dest: str,
    *,
    follow: bool = False,
    archive: bool = False,
) -> CopyResult:
    """``berth cp SRC CONTAINER:DEST`` (SRC on the host)."""
    source = host_path(src)
    target = container_path(dest)

    def body(root: Root) -> int:
        with host_root() as host:
            st = source_stat(host, source, follow=follow)
            kind = _dest_kind(root, target)
            directory, name = copy_target(source, stat.S_ISDIR(st.st_mode), target, kind)
            _refuse_kernel_fs(root, directory)
            owner = None if archive else (0, 0)
            return _pipe(
                lambda out: copytar.write_tree(host.fd, source.path, name, out, follow=follow),
                lambda stream: copytar.extract(
                    root.fd,
                    directory,
                    stream,
                    copytar.ExtractOptions(owner=owner, skip_devices=root.kernel_devices),
                ),
            )

    size = in_container(engine, container, body, write=True)
    return CopyResult(size, f"{container.name}:{dest}")


def archive_from_container(
    engine: Engine, container: Container, src: str, out: IO[bytes], *, follow: bool = False
) -> dict[str, Any]:
    """``cp CONTAINER:SRC -`` and ``get_archive``: a tar of SRC (top entry named after it)
    written to ``out``; returns its stat as the API's X-Docker-Container-Path-Stat."""
    source = container_path(src)

    def body(root: Root) -> dict[str, Any]:
        st = source_stat(root, source, follow=follow)
        info = path_stat(root, source, st)
        name = "." if stat.S_ISDIR(st.st_mode) and source.contents else source.base
        copytar.write_tree(
            root.fd, source.path, name, out, follow=follow, skip_devices=root.kernel_devices
        )
        out.flush()
        return info

    return in_container(engine, container, body, write=False)


def extract_into_container(
    engine: Engine,
    container: Container,
    dest: str,
    stream: IO[bytes],
    *,
    archive: bool = False,
    no_overwrite_dir_non_dir: bool = True,
) -> int:
    """``cp - CONTAINER:DEST`` and ``put_archive``: a tar (plain or compressed) extracted in
    DEST, which must be an existing directory. Returns the bytes of content written."""
    target = container_path(dest)

    def body(root: Root) -> int:
        kind = _dest_kind(root, target)
        if kind is None:
            raise _missing(root, target)
        if kind != "dir":
            raise InvalidArgument(f'destination "{dest}" must be a directory')
        _refuse_kernel_fs(root, target.path)
        return copytar.extract(
            root.fd,
            target.path,
            stream,
            copytar.ExtractOptions(
                owner=None if archive else (0, 0),
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                skip_devices=root.kernel_devices,
            ),
        )

    return in_container(engine, container, body, write=True)


def _refuse_kernel_fs(root: Root, directory: str) -> None:
    """The directory to extract into must exist, and not on a kernel filesystem."""
    where = CopyPath(directory, directory)
    found = _stat(root, where, follow=True)
    if found is None:
        raise _missing(root, where)
    if not stat.S_ISDIR(found.st_mode):
        raise InvalidArgument(f'destination "{directory}" must be a directory')
    if found.st_dev in root.kernel_devices:
        raise InvalidArgument(f"cannot copy into {directory}: it is on a kernel filesystem")


def path_stat(root: Root, where: CopyPath, st: os.stat_result) -> dict[str, Any]:
    """The Engine API's container path stat (``name``, ``size``, Go ``mode``, ``mtime``,
    ``linkTarget``)."""
    from berth.units import format_rfc3339_nano

    link = ""
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            link = _resolved_link(root, where.path)
    offset = _local_offset(st.st_mtime)
    return {
        "name": where.base,
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": format_rfc3339_nano(st.st_mtime_ns, offset),
        "linkTarget": link,
    }


def _resolved_link(root: Root, path: str) -> str:
    fd = safepath.open_in_root(root.fd, path, os.O_PATH)
    try:
        here = os.readlink(f"/proc/self/fd/{fd}")
        base = os.readlink(f"/proc/self/fd/{root.fd}")
    finally:
        os.close(fd)
    return "/" + posixpath.relpath(here, base) if here.startswith(base) else here


def _local_offset(seconds: float) -> int:
    import time

    return int(time.localtime(seconds).tm_gmtoff)


def go_file_mode(mode: int) -> int:
    """A ``st_mode`` as Go's os.FileMode (what the Engine API reports)."""
    out = stat.S_IMODE(mode) & 0o777
    if stat.S_ISDIR(mode):
        out |= GO_MODE_DIR
    elif stat.S_ISLNK(mode):
        out |= GO_MODE_SYMLINK
    elif stat.S_ISFIFO(mode):
        out |= GO_MODE_PIPE
    elif stat.S_ISSOCK(mode):
        out |= GO_MODE_SOCKET
    elif stat.S_ISCHR(mode):
        out |= GO_MODE_DEVICE | GO_MODE_CHARDEV
    elif stat.S_ISBLK(mode):
        out |= GO_MODE_DEVICE
    if mode & stat.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & stat.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


# --------------------------------------------------------------------------------- export


def export(engine: Engine, container: Container, out: BinaryIO) -> None:
    """``docker export``: the container's root filesystem (its image and its changes, not
    its volumes) as one tar."""
    from berth.engine.container_ops import current_record
    from berth.store.layertar import write_layer_tar
    from berth.store.rootfs import is_mounted, mount_rootfs, unmount_rootfs

    record = current_record(engine, container)
    dirs = engine.containers.launcher.rootfs_dirs(record.id)
    mounted_here = False
    if not is_mounted(dirs.merged):
        if record.running:
            raise ContainerStateConflict(
                f"the root filesystem of running container {record.short_id} is not mounted"
            )
        if os.path.isdir(dirs.work) and os.listdir(dirs.work):
            shutil.rmtree(dirs.work, ignore_errors=True)
        mount_rootfs(engine.store, record.top_chain, dirs, readonly=True)
        mounted_here = True
    try:
        write_layer_tar(dirs.merged, out, whiteouts="none")
    finally:
        if mounted_here:
            unmount_rootfs(dirs)


# ---------------------------------------------------------------------------------- pipes


class _Counting:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.size = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def _pipe(produce: Callable[[IO[bytes]], None], consume: Callable[[IO[bytes]], T]) -> int:
    """Run ``produce`` (writing a tar) in a thread and ``consume`` (reading it) here, joined
    by a pipe; returns the number of bytes that went through. The first error wins."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    counter: list[int] = [0]

    def producer() -> None:
        try:
            with open(write_fd, "wb", buffering=1 << 16) as raw:
                counting = _Counting(raw)
                produce(counting)  # type: ignore[arg-type]
                counter[0] = counting.size
        except BrokenPipeError:
            pass
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=producer, name="berth-cp", daemon=True)
    thread.start()
    try:
        with open(read_fd, "rb", buffering=1 << 16) as stream:
            consume(stream)
            while stream.read(1 << 16):  # what tar's end-of-archive left unread
                pass
    except BaseException:
        thread.join()
        if failure:
            raise failure[0] from None
        raise
    thread.join()
    if failure:
        raise failure[0]
    return counter[0]
