"""The container's filesystem: rootfs, the spec's mounts, /dev, pivot_root, masked and
read-only paths.

Runs in the container's init, in its new mount namespace, in this order:

1. :func:`prepare_root`: every mount becomes a slave (or what ``rootfsPropagation`` says), so
   nothing done here reaches the host; the rootfs is bind-mounted onto itself.
2. :func:`mount_all`: each spec mount, its destination resolved *inside* the rootfs with
   ``openat2(RESOLVE_IN_ROOT)`` (missing directories created the same way) and the mount made
   on ``/proc/self/fd/N`` of that resolved directory, so a symlink in the image can never send a
   mount outside the rootfs; then /dev's device nodes and symlinks.
3. :func:`pivot`: ``pivot_root`` (or, where the host's root is a ramfs that cannot be pivoted
   away from, or with ``--no-pivot``, ``MS_MOVE`` and ``chroot``), the old root detached.
4. :func:`finish`: read-only paths, masked paths, a read-only rootfs.
"""

from __future__ import annotations

import errno
import os
import stat

from berth.errors import ContainerError, InvalidArgument
from berth.runtime import syscalls
from berth.runtime.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# option -> (sets the flag?, flag)
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (True, MS_RDONLY),
    "rw": (False, MS_RDONLY),
    "nosuid": (True, MS_NOSUID),
    "suid": (False, MS_NOSUID),
    "nodev": (True, MS_NODEV),
    "dev": (False, MS_NODEV),
    "noexec": (True, MS_NOEXEC),
    "exec": (False, MS_NOEXEC),
    "sync": (True, syscalls.MS_SYNCHRONOUS),
    "async": (False, syscalls.MS_SYNCHRONOUS),
    "dirsync": (True, syscalls.MS_DIRSYNC),
    "remount": (True, MS_REMOUNT),
    "mand": (True, syscalls.MS_MANDLOCK),
    "nomand": (False, syscalls.MS_MANDLOCK),
    "atime": (False, syscalls.MS_NOATIME),
    "noatime": (True, syscalls.MS_NOATIME),
    "diratime": (False, syscalls.MS_NODIRATIME),
    "nodiratime": (True, syscalls.MS_NODIRATIME),
    "bind": (True, MS_BIND),
    "rbind": (True, MS_BIND | MS_REC),
    "relatime": (True, syscalls.MS_RELATIME),
    "norelatime": (False, syscalls.MS_RELATIME),
    "strictatime": (True, syscalls.MS_STRICTATIME),
    "nostrictatime": (False, syscalls.MS_STRICTATIME),
    "lazytime": (True, syscalls.MS_LAZYTIME),
    "nolazytime": (False, syscalls.MS_LAZYTIME),
    "silent": (True, syscalls.MS_SILENT),
    "loud": (False, syscalls.MS_SILENT),
    "nosymfollow": (True, syscalls.MS_NOSYMFOLLOW),
    "symfollow": (False, syscalls.MS_NOSYMFOLLOW),
}
PROPAGATION_OPTIONS = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# options that only runc or crun understand, accepted and ignored
_IGNORED_OPTIONS = frozenset(("tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U"))
_UNSUPPORTED_OPTIONS = frozenset(("idmap", "ridmap", "rro", "rrw", "rnosuid", "rsuid",
                                  "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime",
                                  "rnodiratime", "rdiratime", "rrelatime", "rnorelatime",
                                  "rstrictatime", "rnostrictatime", "rnosymfollow",
                                  "rsymfollow"))
# flags a bind remount can change (the rest of the flags word is about the bind itself)
_REMOUNT_FLAGS = (
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | syscalls.MS_NOATIME
    | syscalls.MS_NODIRATIME | syscalls.MS_RELATIME | syscalls.MS_STRICTATIME
    | syscalls.MS_NOSYMFOLLOW
)
# statvfs f_flag bits -> mount flags, for the flags a remount must keep (locked flags)
_ST_TO_MS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, syscalls.MS_NOATIME),
    (os.ST_NODIRATIME, syscalls.MS_NODIRATIME),
    (os.ST_RELATIME, syscalls.MS_RELATIME),
)

DEFAULT_DEVICES = (
    # path, major, minor (in runc's order, so the mount tables of the two compare equal)
    ("/dev/null", 1, 3),
    ("/dev/random", 1, 8),
    ("/dev/full", 1, 7),
    ("/dev/tty", 5, 0),
    ("/dev/zero", 1, 5),
    ("/dev/urandom", 1, 9),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
_MAX_SYMLINKS = 40


class MountOptions:
    """A spec mount's ``options`` split the way mount(2) wants them."""

    __slots__ = ("data", "flags", "propagation")

    def __init__(self, flags: int, propagation: list[int], data: list[str]) -> None:
        self.flags = flags
        self.propagation = propagation
        self.data = data

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def data_string(self) -> str | None:
        return ",".join(self.data) if self.data else None

    @classmethod
    def parse(cls, options: list[str]) -> MountOptions:
        flags = 0
        propagation: list[int] = []
        data: list[str] = []
        for option in options:
            known = _FLAG_OPTIONS.get(option)
            if known is not None:
                sets, flag = known
                flags = flags | flag if sets else flags & ~flag
            elif option in PROPAGATION_OPTIONS:
                propagation.append(PROPAGATION_OPTIONS[option])
            elif option in _IGNORED_OPTIONS:
                continue
            elif option in _UNSUPPORTED_OPTIONS:
                raise InvalidArgument(
                    f"mount option {option!r} is not supported by berth-runtime",
                    hint="drop it from the mount's options",
                )
            else:
                data.append(option)
        return cls(flags, propagation, data)


def _error(what: str, exc: OSError) -> ContainerError:
    return ContainerError(f"{what}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------
# paths inside the rootfs


def _rel(path: str) -> str:
    rel = path.lstrip("/")
    return rel or "."


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open ``path`` as if ``root_fd`` were ``/``: ``..`` and absolute symlinks stay inside."""
    return syscalls.openat2(
        root_fd, _rel(path), flags, syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
    )


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def make_in_root(root_fd: int, path: str, directory: bool) -> int:
    """An ``O_PATH`` fd of ``path`` inside the root, creating what is missing (directories on
    the way, and the last component as a directory or an empty file). A dangling symlink on the
    way is followed inside the root and its target created, as runc does."""
    for attempt in range(_MAX_SYMLINKS):
        try:
            return open_in_root(root_fd, path)
        except FileNotFoundError:
            pass
        if attempt == 0:  # the usual case: only the last component is missing
            made = _make_last(root_fd, path, directory)
            if made is not None:
                return made
        parts = _split(path)
        done: list[str] = []
        restart = None
        for i, name in enumerate(parts):
            prefix = "/" + "/".join([*done, name])
            try:
                os.close(open_in_root(root_fd, prefix))
                done.append(name)
                continue
            except FileNotFoundError:
                pass
            parent = open_in_root(root_fd, "/" + "/".join(done), os.O_PATH | os.O_DIRECTORY)
            try:
                try:
                    _create(parent, name, directory or i < len(parts) - 1)
                except FileExistsError:
                    # a dangling symlink: create what it points at instead
                    target = os.readlink(name, dir_fd=parent)
                    base = "" if target.startswith("/") else "/" + "/".join(done)
                    restart = base + "/" + target + "/" + "/".join(parts[i + 1 :])
                    break
            finally:
                os.close(parent)
            done.append(name)
        if restart is None:
            return open_in_root(root_fd, path)
        path = restart
    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)


def _make_last(root_fd: int, path: str, directory: bool) -> int | None:
    """:func:`make_in_root` when ``path``'s parent exists and its last component is not there
    at all; None otherwise (a missing parent, a dangling symlink: the general walk)."""
    parts = _split(path)
    if not parts:
        return None
    try:
        parent = open_in_root(root_fd, "/" + "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        _create(parent, parts[-1], directory)
    except FileExistsError:
        return None
    finally:
        os.close(parent)
    return open_in_root(root_fd, path)


def _create(parent: int, name: str, directory: bool) -> None:
    """Create ``name`` in ``parent``: a directory, or an empty file (FileExistsError if
    anything is there, a dangling symlink included)."""
    if directory:
        os.mkdir(name, 0o755, dir_fd=parent)
    else:
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(name, flags, 0o755, dir_fd=parent))


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


# ---------------------------------------------------------------------------------------------
# host mount table


def read_mountinfo(pid: str = "self") -> list[list[str]]:
    """``/proc/PID/mountinfo`` as lists of fields (the optional fields and the ``-`` kept)."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split() for line in f]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    if "\\" not in field:
        return field
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def cgroup_v1_mounts(mountinfo: list[list[str]]) -> list[tuple[frozenset[str], str, str]]:
    """Each v1 hierarchy mounted on the host: (its super options, which name its controllers,
    mount point, root of the hierarchy seen at that mount point)."""
    result = []
    for fields in mountinfo:
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup":
            opts = frozenset(fields[sep + 3].split(","))
            result.append((opts, _unescape(fields[4]), _unescape(fields[3])))
    return result


def cgroup2_mount(mountinfo: list[list[str]]) -> tuple[str, str] | None:
    for fields in mountinfo:
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return _unescape(fields[4]), _unescape(fields[3])
    return None


def read_own_cgroups() -> list[tuple[str, str]]:
    """``(controllers, path)`` for each line of ``/proc/self/cgroup`` (``""`` for v2)."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out.append((controllers, path))
    return out


class MountContext:
    """What :func:`mount_all` needs to know besides the spec. ``cgroups()``: the process's
    own cgroups (it may have to wait until it is in them: only the cgroup mount asks)."""

    __slots__ = ("bundle", "cgroups", "mountinfo", "new_cgroupns", "new_netns", "userns")

    def __init__(
        self,
        bundle: str,
        *,
        userns: bool,
        new_netns: bool,
        new_cgroupns: bool,
        cgroups: Callable[[], list[tuple[str, str]]],
        mountinfo: list[list[str]],
    ) -> None:
        self.bundle = bundle
        self.userns = userns
        self.new_netns = new_netns
        self.new_cgroupns = new_cgroupns
        self.cgroups = cgroups
        self.mountinfo = mountinfo


# ---------------------------------------------------------------------------------------------
# 1. the root


def prepare_root(rootfs: str, propagation: str | None) -> None:
    flags = PROPAGATION_OPTIONS.get(propagation or "rslave", MS_SLAVE | MS_REC)
    try:
        syscalls.mount(None, "/", None, flags, None)
        if flags & MS_SHARED:
            _make_parent_private(rootfs)
        syscalls.mount(rootfs, rootfs, "bind", MS_BIND | MS_REC, None)
    except OSError as exc:
        raise _error(f"cannot prepare the rootfs {rootfs}", exc) from None


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    best = mount_point_of(rootfs)
    if best:
        syscalls.mount(None, best, None, MS_PRIVATE, None)


def mount_point_of(path: str, mountinfo: list[list[str]] | None = None) -> str:
    """Where the mount that ``path`` (absolute, its symlinks resolved) is on is mounted: the
    longest mount point of ``mountinfo`` (default: this process's) at or above it; "" if
    none is."""
    best = ""
    for fields in mountinfo if mountinfo is not None else read_mountinfo():
        point = _unescape(fields[4])
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


# ---------------------------------------------------------------------------------------------
# 2. mounts


def mount_all(spec: dict[str, Any], rootfs: str, ctx: MountContext) -> None:
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dev_is_tmpfs = False
        for m in spec.get("mounts") or []:
            mount_one(root_fd, m, ctx)
            if m["destination"].rstrip("/") == "/dev" and m.get("type") == "tmpfs":
                dev_is_tmpfs = True
        linux = spec.get("linux") or {}
        if dev_is_tmpfs:
            make_default_devices(root_fd, ctx.userns)
            make_dev_symlinks(root_fd, spec)
        for dev in linux.get("devices") or []:
            make_device(root_fd, dev, ctx.userns)
    finally:
        os.close(root_fd)


def mount_one(root_fd: int, m: dict[str, Any], ctx: MountContext) -> None:
    dest = os.path.normpath(m["destination"])
    kind = m.get("type") or ""
    options = MountOptions.parse(m.get("options") or [])
    try:
        if kind == "bind" or options.is_bind:
            _bind_mount(root_fd, m, dest, options, ctx)
        elif kind == "cgroup":
            _mount_cgroup(root_fd, dest, options, ctx)
        else:
            _mount_fs(root_fd, m, dest, kind, options, ctx)
    except OSError as exc:
        source = m.get("source") or kind
        raise ContainerError(
            f"cannot mount {source} on {dest} ({kind or 'bind'}, options "
            f"{','.join(m.get('options') or []) or 'none'}): {exc.strerror or exc}",
            hint="check the mount's source, type and options in config.json",
        ) from None


def _bind_source(m: dict[str, Any], ctx: MountContext) -> str:
    source = m.get("source") or ""
    if not source:
        raise InvalidArgument(f"the bind mount on {m['destination']} has no source")
    if not source.startswith("/"):
        source = os.path.join(ctx.bundle, source)
    return source


def _bind_mount(
    root_fd: int, m: dict[str, Any], dest: str, options: MountOptions, ctx: MountContext
) -> None:
    source = _bind_source(m, ctx)
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError:
        raise ContainerError(
            f"the source {source} of the bind mount on {dest} does not exist",
            hint="create it, or fix the mount's source",
        ) from None
    fd = make_in_root(root_fd, dest, is_dir)
    try:
        syscalls.mount(source, _fd_path(fd), None, MS_BIND | (options.flags & MS_REC), None)
    finally:
        os.close(fd)
    _adjust(root_fd, dest, options.flags & _REMOUNT_FLAGS, options.propagation)


def _adjust(root_fd: int, dest: str, remount_flags: int, propagation: list[int]) -> None:
    """Remount flags and propagation of the mount just made on ``dest``. The path is resolved
    again: the fd the mount was made on names the directory *under* the new mount."""
    if not remount_flags and not propagation:
        return
    fd = open_in_root(root_fd, dest)
    try:
        target = _fd_path(fd)
        if remount_flags:
            _remount_bind(target, remount_flags)
        for prop in propagation:
            syscalls.mount(None, target, None, prop, None)
    finally:
        os.close(fd)


def _current_flags(path: str) -> int:
    st = os.statvfs(path)
    flags = 0
    for st_flag, ms_flag in _ST_TO_MS:
        if st.f_flag & st_flag:
            flags |= ms_flag
    return flags


def _remount_bind(target: str, flags: int) -> None:
    """Change a bind mount's flags. The kernel refuses to clear flags locked by a less
    privileged mount namespace (EPERM): then the mount's current flags are kept as well."""
    try:
        syscalls.mount(None, target, None, MS_REMOUNT | MS_BIND | flags, None)
    except PermissionError:
        keep = _current_flags(target) & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
        syscalls.mount(None, target, None, MS_REMOUNT | MS_BIND | flags | keep, None)


def _mount_fs(
    root_fd: int,
    m: dict[str, Any],
    dest: str,
    kind: str,
    options: MountOptions,
    ctx: MountContext,
) -> None:
    fd = make_in_root(root_fd, dest, True)
    remount = 0
    try:
        target = _fd_path(fd)
        source = m.get("source") or kind
        try:
            syscalls.mount(source, target, kind, options.flags, options.data_string)
        except PermissionError:
            if kind != "sysfs" or ctx.new_netns:
                raise
            # sysfs belongs to the network namespace: without a new one (and without the
            # privilege over the host's), bind the host's /sys instead, as runc does
            syscalls.mount("/sys", target, None, MS_BIND | MS_REC, None)
            remount = options.flags & _REMOUNT_FLAGS
    finally:
        os.close(fd)
    _adjust(root_fd, dest, remount, options.propagation)


def _mount_cgroup(root_fd: int, dest: str, options: MountOptions, ctx: MountContext) -> None:
    """/sys/fs/cgroup as runc 1.1 makes it: cgroup2 where the host is pure v2, else a tmpfs
    with a read-only bind of the container's cgroup in each v1 hierarchy."""
    flags = options.flags
    cgroups = ctx.cgroups()
    own_v1 = [(c, p) for c, p in cgroups if c]
    if not own_v1:
        unified = cgroup2_mount(ctx.mountinfo)
        fd = make_in_root(root_fd, dest, True)
        try:
            target = _fd_path(fd)
            if ctx.new_cgroupns or unified is None:
                syscalls.mount("cgroup2", target, "cgroup2", flags, None)
                return
            path = next((p for c, p in cgroups if not c), "/")
            syscalls.mount(unified[0] + _relative_to(path, unified[1]), target, None,
                           MS_BIND | MS_REC, None)
        finally:
            os.close(fd)
        _adjust(root_fd, dest, flags & _REMOUNT_FLAGS, [])
        return
    hierarchies = cgroup_v1_mounts(ctx.mountinfo)
    fd = make_in_root(root_fd, dest, True)
    try:
        syscalls.mount("tmpfs", _fd_path(fd), "tmpfs",
                       flags & ~MS_RDONLY & (MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=755")
    finally:
        os.close(fd)
    # The tmpfs is new and holds nothing of the image's: its entries are made and opened by
    # name, relative to it, with no symlink to resolve (and none of openat2's cost).
    tmpfs = open_in_root(root_fd, dest, os.O_PATH | os.O_DIRECTORY)
    try:
        # in the host's mount order, as runc does
        for opts, mountpoint, hierarchy_root in hierarchies:
            own = next((p for c, p in own_v1 if set(c.split(",")) <= opts), None)
            if own is None:
                continue
            name = os.path.basename(mountpoint.rstrip("/"))
            if not name or name in (".", ".."):
                continue
            try:
                os.mkdir(name, 0o755, dir_fd=tmpfs)
            except FileExistsError:  # the host mounts this one twice (or it has a symlink
                continue  # of an earlier one's name): bound once, as runc does
            source = mountpoint + _relative_to(own, hierarchy_root)
            _bind_entry(tmpfs, name, source, (flags & _REMOUNT_FLAGS) | MS_RDONLY)
            if "," in name:
                # e.g. cpu,cpuacct mounted together: cpu -> cpu,cpuacct, cpuacct -> cpu,cpuacct
                for part in name.split(","):
                    try:
                        os.symlink(name, part, dir_fd=tmpfs)
                    except FileExistsError:
                        pass
    finally:
        os.close(tmpfs)


def _bind_entry(parent: int, name: str, source: str, remount_flags: int) -> None:
    """Bind ``source`` on the directory ``name`` of ``parent`` (a tmpfs of the runtime's own),
    then give the bind ``remount_flags``."""
    fd = os.open(name, _ENTRY, dir_fd=parent)
    try:
        syscalls.mount(source, _fd_path(fd), None, MS_BIND | MS_REC, None)
    finally:
        os.close(fd)
    fd = os.open(name, _ENTRY, dir_fd=parent)  # the bind mount, now
    try:
        _remount_bind(_fd_path(fd), remount_flags)
    finally:
        os.close(fd)


_ENTRY = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _relative_to(path: str, root: str) -> str:
    """The part of cgroup ``path`` below a mount whose root is ``root``."""
    if root in ("/", ""):
        return path if path != "/" else ""
    if path == root:
        return ""
    if path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) :]
    return path


# ---------------------------------------------------------------------------------------------
# devices


def make_default_devices(root_fd: int, userns: bool) -> None:
    for path, major, minor in DEFAULT_DEVICES:
        make_device(
            root_fd,
            {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666,
             "uid": 0, "gid": 0},
            userns,
        )


def make_dev_symlinks(root_fd: int, spec: dict[str, Any]) -> None:
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    if any(m["destination"].rstrip("/") == "/dev/pts" for m in spec.get("mounts") or []):
        links.append(("pts/ptmx", "/dev/ptmx"))
    dev = open_in_root(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)
    try:
        for target, link in links:
            name = link[len("/dev/") :]
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
            except OSError as exc:
                raise _error(f"cannot create the symlink {link} -> {target}", exc) from None
    finally:
        os.close(dev)


_DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_device(root_fd: int, dev: dict[str, Any], userns: bool) -> None:
    """Create one device node of ``linux.devices`` (in a user namespace, where mknod is not
    allowed, bind-mount the host's node instead, as runc does)."""
    path = os.path.normpath(dev["path"])
    parent_path, name = os.path.split(path)
    mode = int(dev.get("fileMode", 0o666)) & 0o7777
    kind = _DEVICE_TYPES[dev["type"]]
    try:
        if userns and kind != stat.S_IFIFO:
            fd = make_in_root(root_fd, path, False)
            try:
                syscalls.mount(path, _fd_path(fd), None, MS_BIND, None)
            finally:
                os.close(fd)
            return
        parent = make_in_root(root_fd, parent_path, True)
        try:
            parent_dir = os.open(_fd_path(parent), os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(parent)
        try:
            try:
                os.unlink(name, dir_fd=parent_dir)
            except FileNotFoundError:
                pass
            device = os.makedev(int(dev.get("major", 0)), int(dev.get("minor", 0)))
            os.mknod(name, kind | mode, device, dir_fd=parent_dir)
            os.chmod(name, mode, dir_fd=parent_dir, follow_symlinks=False)
            os.chown(name, int(dev.get("uid", 0)), int(dev.get("gid", 0)), dir_fd=parent_dir,
                     follow_symlinks=False)
        finally:
            os.close(parent_dir)
    except OSError as exc:
        raise _error(f"cannot create the device {path}", exc) from None


# ---------------------------------------------------------------------------------------------
# 3. pivot


def root_is_ramfs(mountinfo: list[list[str]] | None = None) -> bool:
    """True when ``/`` is the initial ramfs (rootfs), which pivot_root cannot leave."""
    fstype = ""
    for fields in mountinfo if mountinfo is not None else read_mountinfo():
        if fields[4] == "/":
            fstype = fields[fields.index("-") + 1]  # the last mount on / is the visible one
    return fstype in ("rootfs", "ramfs")


def pivot(rootfs: str, no_pivot: bool, mountinfo: list[list[str]] | None = None) -> None:
    """Make ``rootfs`` the root; the old root is detached from the container's mount table.
    ``mountinfo``: the mount table as read before the container's mounts (the root's type
    is looked up in it), if the caller has it."""
    try:
        if no_pivot or root_is_ramfs(mountinfo):
            _move_root(rootfs)
        else:
            _pivot_root(rootfs)
    except OSError as exc:
        raise _error(f"cannot switch the root to {rootfs}", exc) from None


def _pivot_root(rootfs: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        # pivot_root(".", "."): the old root ends up mounted on top of the new one, where it
        # can be detached without a directory for it in the image
        syscalls.pivot_root(".", ".")
        os.fchdir(old)
        syscalls.mount(None, ".", None, MS_SLAVE | MS_REC, None)
        syscalls.umount2(".", syscalls.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def _move_root(rootfs: str) -> None:
    os.chdir(rootfs)
    syscalls.mount(rootfs, "/", None, syscalls.MS_MOVE, None)
    os.chroot(".")
    os.chdir("/")


# ---------------------------------------------------------------------------------------------
# 4. after the pivot


def readonly_path(path: str) -> None:
    try:
        syscalls.mount(path, path, None, MS_BIND | MS_REC, None)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _error(f"cannot make {path} read-only", exc) from None
    try:
        flags = _current_flags(path)
        syscalls.mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, None)
    except OSError as exc:
        raise _error(f"cannot make {path} read-only", exc) from None


def mask_path(path: str) -> None:
    try:
        if os.path.isdir(path):
            syscalls.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
        else:
            syscalls.mount("/dev/null", path, None, MS_BIND, None)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise _error(f"cannot mask {path}", exc) from None


def finish(spec: dict[str, Any]) -> None:
    """Read-only and masked paths, then a read-only rootfs (in the new root)."""
    linux = spec.get("linux") or {}
    for path in linux.get("readonlyPaths") or []:
        readonly_path(path)
    for path in linux.get("maskedPaths") or []:
        mask_path(path)
    if (spec.get("root") or {}).get("readonly"):
        try:
            flags = _current_flags("/")
            syscalls.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, None)
        except OSError as exc:
            raise _error("cannot make the rootfs read-only", exc) from None
