"""Running a RUN step: an OCI bundle over the step's overlay mount, run in this process.

The root filesystem is the step's overlay mount (the current layers plus a fresh upper dir,
:class:`berth.build.snapshot.StepSpace`). The spec is Docker's defaults for a build container:
its 14 capabilities and seccomp profile, masked and read-only paths, ``/proc``, ``/dev``,
``/sys``; hostname ``buildkitsandbox``; the host's ``/etc/resolv.conf`` (read-only) and a
small ``/etc/hosts``; the store's default bridge network (an address of the step's own, NAT
out, and a resolv.conf with the host's resolvers), the host's network (``--network host``,
with the host's ``/etc/resolv.conf``) or none (a fresh network namespace, ``--network none``).

``RUN --mount`` types, each prepared on the host before the run and undone after it:

- ``cache``: a directory per ``id`` (default: the target) under ``<store>/build/cache-mounts``,
  shared between builds, never part of the image or the cache key; ``sharing=locked`` (and
  ``private``, which berth treats the same) serialises users with ``flock``.
- ``bind``: a path of the build context (or of another stage or image, ``from=``) bound
  read-only, or read-write through a throw-away overlay (writes are discarded, as in BuildKit).
- ``tmpfs``: a fresh tmpfs (``size=``).
- ``secret``: the file given with ``--secret id=ID,src=PATH`` (or ``env=VAR``), copied to a
  private file on the runtime's tmpfs and bound read-only at ``/run/secrets/ID`` (or
  ``target``), or exposed as an environment variable (``env=``). Never in the image, the
  cache key or the history.

Mount points the runtime has to create in the image (``/run/secrets/x``, ``/etc/hosts`` in a
base without it) are removed again after the run, as BuildKit's stub cleaner does, so they
do not end up in the layer.

The runtime is :class:`berth.runtime.container.Runtime`, called in process (the container's
init is forked from this process; no Python is started). Its state root is
``<run dir>/build-runtime``; every step gets a fresh container id, and the container is
deleted (killed first if need be) whatever happens, Ctrl-C included.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from functools import lru_cache

from berth import jsonio
from berth.basics import suppress
from berth.build.steps import ActiveContainers
from berth.errors import BerthError, BuildError, BuildStepFailed, ContainerError, HostError
from berth.oci.digest import hex_digest
from berth.store import safepath
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from berth.build.fsops import Identity
    from berth.store.store import Store

__all__ = [
    "HOSTNAME",
    "ActiveContainers",
    "MountStubs",
    "PreparedMount",
    "RunSpec",
    "build_spec",
    "run_container",
]

HOSTNAME = "buildkitsandbox"
_HOSTS = (
    "127.0.0.1\tlocalhost buildkitsandbox\n"
    "::1\tlocalhost ip6-localhost ip6-loopback buildkitsandbox\n"
)
_CREATE_LOCK = threading.Lock()
_ABANDONED_OUTPUT_WAIT = 2.0  # seconds


class PreparedMount(FrozenValue):
    """One mount as the spec will carry it (``source`` is a host path)."""

    __slots__ = ("destination", "options", "source", "type")
    destination: str
    type: str
    source: str
    options: tuple[str, ...]

    def __init__(
        self,
        destination: str,
        type: str,
        source: str,
        options: tuple[str, ...] = (),
    ) -> None:
        init_fields(self, destination=destination, type=type, source=source, options=options)


class RunSpec(Value):
    """What the container of one RUN is: process, identity, network and mounts."""

    __slots__ = ("argv", "cwd", "env", "identity", "mounts", "network")

    def __init__(
        self,
        argv: Sequence[str],
        env: Sequence[str],
        cwd: str,
        identity: Identity,
        network: str,
        mounts: list[PreparedMount] | None = None,
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.identity = identity
        self.network = network  # "bridge" (the store's default network), "host" or "none"
        self.mounts: list[PreparedMount] = [] if mounts is None else mounts


@lru_cache(maxsize=1)
def _security() -> tuple[list[str], dict[str, Any]]:
    from berth.runtime.defaults import DEFAULT_CAPABILITIES
    from berth.runtime.seccomp_profile import docker_default_profile

    caps = list(DEFAULT_CAPABILITIES)
    return caps, docker_default_profile(caps)


def build_spec(rootfs: str, run: RunSpec, netns: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a build container."""
    from berth.oci.runtime_spec import default_spec
    from berth.runtime import defaults

    caps, seccomp = _security()
    spec = default_spec()
    process = spec["process"]
    process["terminal"] = False
    process["args"] = list(run.argv)
    process["env"] = list(run.env)
    process["cwd"] = run.cwd or "/"
    user: dict[str, Any] = {"uid": run.identity.uid, "gid": run.identity.gid}
    if run.identity.additional_gids:
        user["additionalGids"] = list(run.identity.additional_gids)
    process["user"] = user
    process["capabilities"] = defaults.default_capabilities(caps)
    process["rlimits"] = defaults.default_rlimits()
    process["noNewPrivileges"] = False
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = HOSTNAME
    mounts = defaults.default_mounts()
    for mount in run.mounts:
        entry: dict[str, Any] = {
            "destination": mount.destination,
            "type": mount.type,
            "source": mount.source,
        }
        if mount.options:
            entry["options"] = list(mount.options)
        mounts.append(entry)
    spec["mounts"] = mounts
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if run.network == "none":
        namespaces.append({"type": "network"})
    elif run.network == "bridge" and netns:
        namespaces.append({"type": "network", "path": netns})
    linux = spec["linux"]
    linux["namespaces"] = namespaces
    linux["maskedPaths"] = defaults.masked_paths()
    linux["readonlyPaths"] = defaults.readonly_paths()
    linux["seccomp"] = seccomp
    linux["resources"] = {"devices": defaults.default_device_rules()}
    return spec


def run_container(
    store: Store,
    bundle_dir: str,
    rootfs: str,
    run: RunSpec,
    output: Callable[[bytes], None],
    active: ActiveContainers,
) -> int:
    """Run one build container to its end; its exit code (128 + n after signal n).

    Its stdout and stderr go, as they come, to ``output``; stdin is ``/dev/null``.
    """

    os.makedirs(bundle_dir, exist_ok=True)
    container_id = "build-" + os.urandom(8).hex()
    network = _StepNetwork(store, container_id, bundle_dir) if run.network == "bridge" else None
    try:
        if network is not None:  # its resolvers in place of the host's (same mount point)
            run.mounts = [
                network.resolv_conf if m.destination == "/etc/resolv.conf" else m
                for m in run.mounts
            ]
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            f.write(jsonio.dumps(build_spec(rootfs, run, network.netns if network else None)))
        return _run(store, bundle_dir, container_id, output, active)
    finally:
        if network is not None:
            network.close()


class _StepNetwork:
    """A RUN step on the store's default bridge network (as Docker's builder runs it):
    its own address, NAT out, the host's resolvers; released as soon as the step ends."""

    def __init__(self, store: Store, container_id: str, bundle_dir: str) -> None:
        from berth.network import EndpointRequest, NetworkManager

        self.manager = NetworkManager(store.paths, store.db)
        self.container_id = container_id
        setup = self.manager.setup_container(
            container_id, container_id, HOSTNAME, [EndpointRequest("bridge")]
        )
        self.netns = setup.netns_path
        path = os.path.join(bundle_dir, "resolv.conf")
        with open(path, "w") as f:
            f.write(setup.resolv_conf)
        self.resolv_conf = PreparedMount("/etc/resolv.conf", "bind", path, ("rbind", "ro"))

    def close(self) -> None:
        self.manager.teardown_container(self.container_id)


def _run(
    store: Store,
    bundle_dir: str,
    container_id: str,
    output: Callable[[bytes], None],
    active: ActiveContainers,
) -> int:
    from berth.runtime.container import Runtime, exit_code_of

    runtime = Runtime(os.path.join(store.paths.run_dir, "build-runtime"))
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    reader = threading.Thread(target=_pump, args=(read_fd, output), daemon=True)
    reader.start()
    created = False
    try:
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            active.add(container_id, runtime)
            with _CREATE_LOCK:
                record = runtime.create(
                    container_id, bundle_dir, stdio=(devnull, write_fd, write_fd)
                )
            created = True
        finally:
            os.close(devnull)
            os.close(write_fd)
            write_fd = -1
        runtime.start(container_id)
        _, status = os.waitpid(record.pid, 0)
        if active.cancelled:
            raise KeyboardInterrupt
        return exit_code_of(status)
    except ContainerError as exc:
        raise BuildStepFailed(exc.message, exit_code=127, hint=exc.hint) from None
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        active.discard(container_id)
        # a Ctrl-C can land after create() returned and before `created` was set: the
        # container then exists (holding the output pipe open) all the same
        if created or _container_exists(runtime, container_id):
            try:
                runtime.delete(container_id, force=True)
            except BerthError as exc:
                output(f"warning: cannot delete build container {container_id}: {exc}\n".encode())
        # All the output, unless create() failed: a Ctrl-C inside it can leave a half-made
        # init (the runtime never learnt its pid) holding the pipe until this exception is
        # gone; the reader (a daemon thread) then ends on its own.
        reader.join(None if created else _ABANDONED_OUTPUT_WAIT)


def _container_exists(runtime: Any, container_id: str) -> bool:
    try:
        runtime.state(container_id)
    except (BerthError, OSError):
        return False
    return True


def _pump(fd: int, output: Callable[[bytes], None]) -> None:
    import signal

    # Signals go to the main thread: one this thread took (a Ctrl-C) would only be noted, and
    # the main thread would go on waiting for the container to end by itself.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        while data := os.read(fd, 65536):
            output(data)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- mounts -----------------------------------------------------------------------------------


class MountStubs:
    """Paths that mount points will create in the image, removed after the run.

    The runtime creates a missing mount point (``/etc/resolv.conf`` in an image without it)
    in the rootfs, so in the step's upper dir. :meth:`clean` removes those stubs through the
    mount (restoring their parent's mtime); :meth:`prune_upper`, after the unmount, drops a
    parent directory that overlayfs copied up only because of a stub, so a RUN that changed
    nothing still makes the empty layer BuildKit makes.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.created: list[tuple[str, int | None]] = []  # (top missing path, parent mtime)
        self.parents: dict[str, tuple[int, int, int, int]] = {}  # path -> mode, uid, gid, mtime

    def note(self, destination: str) -> None:
        parts = [p for p in destination.split("/") if p and p != "."]
        for i in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:i])
            try:
                fd = safepath.open_in_root(self.root_fd, prefix, os.O_PATH)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    return
                parent = "/" + "/".join(parts[: i - 1])
                mtime = None
                with suppress(OSError):
                    pfd = safepath.open_in_root(self.root_fd, parent, os.O_PATH | os.O_NOFOLLOW)
                    st = os.fstat(pfd)
                    os.close(pfd)
                    mtime = st.st_mtime_ns
                    if parent != "/" and stat.S_ISDIR(st.st_mode):
                        self.parents[parent] = (st.st_mode, st.st_uid, st.st_gid, mtime)
                self.created.append((prefix, mtime))
                return
            os.close(fd)

    def clean(self) -> None:
        for path, mtime in reversed(self.created):
            self._remove_empty(path)
            if mtime is not None:
                parent = path.rsplit("/", 1)[0] or "/"
                with suppress(OSError):
                    fd = safepath.open_dir_in_root(self.root_fd, parent)
                    try:
                        os.utime(fd, ns=(mtime, mtime))
                    finally:
                        os.close(fd)

    def prune_upper(self, upper: str) -> None:
        """Remove stub parents overlayfs copied up with nothing in them (unmounted only)."""
        for path in sorted(self.parents, key=lambda p: p.count("/"), reverse=True):
            mode, uid, gid, mtime = self.parents[path]
            host = os.path.join(upper, path.lstrip("/"))
            try:
                st = os.lstat(host)
                if (
                    not stat.S_ISDIR(st.st_mode)
                    or (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) != (mode, uid, gid, mtime)
                    or os.listdir(host)
                ):
                    continue
                try:
                    if os.getxattr(host, "trusted.overlay.opaque", follow_symlinks=False):
                        continue
                except OSError:
                    pass
                os.rmdir(host)
            except OSError:
                continue

    def _remove_empty(self, path: str) -> bool:
        try:
            parent_fd, name = safepath.open_parent_in_root(self.root_fd, path)
        except OSError:
            return False
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                for child in os.listdir(_join_fd(parent_fd, name)):
                    if not self._remove_empty(f"{path}/{child}"):
                        return False
                os.rmdir(name, dir_fd=parent_fd)
                return True
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=parent_fd)
                return True
            return False
        except OSError:
            return False
        finally:
            os.close(parent_fd)


def _join_fd(parent_fd: int, name: str) -> str:
    return f"/proc/self/fd/{parent_fd}/{name}"


class CacheMountLock:
    """``flock`` on a cache mount's lock file, for ``sharing=locked``."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        with suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def cache_mount_dir(
    store: Store, cache_id: str, *, mode: int | None, uid: int | None, gid: int | None
) -> str:
    """The host directory of cache mount ``cache_id`` (made on first use)."""
    digest = hex_digest("sha256", cache_id.encode("utf-8", "surrogateescape"))
    base = os.path.join(store.paths.root, "build", "cache-mounts", digest)
    data = os.path.join(base, "data")
    if not os.path.isdir(data):
        os.makedirs(base, mode=0o700, exist_ok=True)
        try:
            os.mkdir(data)
        except FileExistsError:
            return data
        os.chown(data, uid or 0, gid or 0)
        os.chmod(data, 0o755 if mode is None else mode)
        with open(os.path.join(base, "id"), "w") as f:
            f.write(cache_id)
    return data


def secret_file(store: Store, data: bytes, *, mode: int, uid: int, gid: int) -> str:
    """A private copy of a secret on the runtime's tmpfs; the caller removes it."""
    directory = os.path.join(store.paths.run_dir, "build-secrets")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, os.urandom(12).hex())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def host_resolv_conf() -> str:
    """The host's resolv.conf (resolved, as Docker reads it), or an empty stand-in."""
    path = os.path.realpath("/etc/resolv.conf")
    if os.path.isfile(path):
        return path
    raise HostError(
        "the host has no /etc/resolv.conf to give RUN steps",
        hint="create /etc/resolv.conf, or build with --network none",
    )


def write_hosts_file(directory: str) -> str:
    path = os.path.join(directory, "hosts")
    with open(path, "w") as f:
        f.write(_HOSTS)
    os.chmod(path, 0o644)
    return path


def remove_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def check_exit(code: int, argv: Sequence[str], where: str, tail: str) -> None:
    if code == 0:
        return
    shown = " ".join(argv)
    message = f'{where}: process "{shown}" did not complete successfully: exit code: {code}'
    raise BuildStepFailed(message, exit_code=code, hint=tail or None)


def error_for_mount(where: str, message: str, hint: str | None = None) -> BuildError:
    return BuildError(f"{where}: {message}", hint=hint)
