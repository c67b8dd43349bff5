"""What runs in the forked child: the container's init (``create``) and an ``exec``'d process.

Both never return: they end in the exec shim (see :mod:`berth.runtime.process`) or in
``os._exit``. Everything they use was imported, opened or read by the runtime before the fork
(:class:`ChildConfig`); after ``pivot_root`` nothing from the host can be loaded.

The init, step by step (messages on the :mod:`~berth.runtime.sync` channel in brackets):

1. stdio in place, every other inherited fd closed, signals at their defaults;
2. [go, with the init's pid as the runtime sees it] once the runtime has put it in its cgroup;
3. the remaining namespaces (ipc, uts, network, mount, cgroup), hostname, domainname, keyring;
4. the rootfs and the spec's mounts; [hooks] so the runtime runs ``prestart`` and
   ``createRuntime`` hooks, [go]; then the ``createContainer`` hooks, from here;
5. ``pivot_root``; the console; sysctl; read-only and masked paths; read-only rootfs;
6. rlimits, oom_score_adj, cwd (checked inside the root), seccomp (early when the process may
   gain privileges, which loading a filter then needs), user and capabilities, umask, the
   program looked up in the container's PATH, no_new_privs; [ready];
7. blocks until ``start`` writes to the exec fifo; ``startContainer`` hooks; seccomp (when
   no_new_privs is set, as late as possible); the exec shim.
"""

from __future__ import annotations

import gc
import os
import select

from berth.errors import ContainerError, HostError
from berth.runtime import console, hooks, mounts, namespaces, process, signals, syscalls
from berth.runtime.sync import MSG_ERROR, MSG_GO, MSG_HOOKS, MSG_READY, Channel, error_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket as socket_module
    from typing import Any, NoReturn

    from berth.runtime.process import IdentityFunction, SeccompLoader


class ChildConfig:
    """Everything the forked child needs, prepared by the runtime before the fork."""

    __slots__ = (
        "bundle",
        "cgroups_pending",
        "console_socket",
        "container_id",
        "entered",
        "fifo_fd",
        "identity",
        "mountinfo",
        "no_new_keyring",
        "no_pivot",
        "plan",
        "preserve_fds",
        "process",
        "rootfs",
        "seccomp",
        "shim",
        "spec",
        "stdio",
    )

    def __init__(
        self,
        *,
        container_id: str,
        spec: dict[str, Any],
        process_spec: dict[str, Any],
        plan: namespaces.NamespacePlan,
        shim: bytes,
        identity: IdentityFunction,
        seccomp: SeccompLoader,
        bundle: str = "",
        rootfs: str = "",
        stdio: tuple[int, int, int] | None = None,
        console_socket: socket_module.socket | None = None,
        fifo_fd: int = -1,
        preserve_fds: int = 0,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        entered: frozenset[str] = frozenset(),
        mountinfo: list[list[str]] | None = None,
        cgroups_pending: bool = False,
    ) -> None:
        self.container_id = container_id
        self.spec = spec
        self.process = process_spec
        self.plan = plan
        self.shim = shim
        self.identity = identity
        self.seccomp = seccomp
        self.bundle = bundle
        self.rootfs = rootfs
        self.stdio = stdio
        self.console_socket = console_socket
        self.fifo_fd = fifo_fd
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.entered = entered  # namespaces the plan creates that the child already made
        # the host's mount table, if read before the fork (what is mounted under the rootfs
        # later is not looked up in it: cgroup hierarchies and the root's type are)
        self.mountinfo = mountinfo
        # whether [go] (the init is in its cgroups) is still to come (see _OwnCgroups)
        self.cgroups_pending = cgroups_pending


def report_failure(channel: Channel, exc: BaseException) -> NoReturn:
    """Tell the runtime why the child cannot go on (or say it on stderr), and exit."""
    try:
        channel.send(MSG_ERROR, **error_message(exc))
    except BaseException:
        try:
            os.write(2, f"berth-runtime: {exc}\n".encode(errors="replace"))
        except BaseException:
            pass
    os._exit(1)


# As pid 1 of its pid namespace, the init ignores every signal it has no handler for (but
# SIGKILL): these make a created container, still Python, end as a program would (the exec
# resets them).
_EXIT_ON = (
    signals.SIGTERM, signals.SIGINT, signals.SIGHUP, signals.SIGQUIT, signals.SIGUSR1,
    signals.SIGUSR2, signals.SIGALRM,
)


def _exit_on_signal(signum: int, frame: object) -> None:
    del frame
    os._exit(128 + signum)


def _start_child(cfg: ChildConfig, channel: Channel) -> None:
    """Signals at their defaults (SIGPIPE ignored while Python runs), stdio in place, every
    fd the runtime's process had open closed but those the child needs."""
    quiet_signals()
    keep = {channel.rfd, channel.wfd, cfg.fifo_fd, *cfg.plan.fds()}
    if cfg.console_socket is not None:
        keep.add(cfg.console_socket.fileno())
    if cfg.stdio is not None:
        place_stdio(cfg.stdio)
    close_fds_but(keep, 3 + cfg.preserve_fds)


def quiet_signals() -> None:
    """The child's signals: at their defaults, SIGPIPE ignored while Python runs, and an exit
    on the signals a program would end by (as pid 1, the kernel drops the rest)."""
    gc.disable()  # no finalizer of an inherited object may close an fd number reused here
    signals.clear_wakeup_fd()
    signals.reset_to_defaults()
    signals.ignore(signals.SIGPIPE)
    for signum in _EXIT_ON:
        signals.set_handler(signum, _exit_on_signal)


def place_stdio(stdio: tuple[int, int, int]) -> None:
    """Make ``stdio`` fds 0, 1 and 2 (any of them may already be one of those numbers)."""
    moved = [os.dup(fd) for fd in stdio]
    for target, fd in enumerate(moved):
        os.dup2(fd, target)
    for fd in moved:
        os.close(fd)


def close_fds_but(keep: set[int], floor: int) -> None:
    """Close every fd from ``floor`` up that is not in ``keep``; those below ``floor`` (but
    stdio: preserved fds) are left open across the exec."""
    low = floor
    for fd in sorted(f for f in keep if f >= floor):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)
    for fd in range(3, floor):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# the container's init


def init_main(cfg: ChildConfig, channel: Channel) -> NoReturn:
    try:
        _start_child(cfg, channel)
        go = channel.expect(MSG_GO, "container setup")
        run_init(cfg, channel, int(go["pid"]))
    except BaseException as exc:
        report_failure(channel, exc)


def run_init(cfg: ChildConfig, channel: Channel, host_pid: int) -> NoReturn:
    """Steps 3 to 7 (the caller reports what it raises): a forked init once the runtime said
    [go], and an init forked ahead of time (:mod:`berth.runtime.preforked`) once it has its
    container."""
    path, argv, env = _set_up_container(cfg, channel, host_pid)
    # nothing more comes from the runtime: close that end first, so that once the runtime
    # sees [ready] the init holds only stdio, the fifo and the pipe it reports on
    os.close(channel.rfd)
    channel.rfd = -1
    channel.send(MSG_READY)
    _wait_for_start(cfg.fifo_fd)
    spec = cfg.spec
    start_hooks = (spec.get("hooks") or {}).get("startContainer") or []
    if start_hooks:
        state = hooks.hook_state(cfg.container_id, host_pid, "created", cfg.bundle,
                                 spec.get("annotations") or {}, spec["ociVersion"])
        hooks.run_hooks("startContainer", start_hooks, state)
    _exec(cfg, path, argv, env)


def _set_up_container(
    cfg: ChildConfig, channel: Channel, host_pid: int
) -> tuple[str, list[str], list[str]]:
    spec = cfg.spec
    plan = cfg.plan
    new_cgroupns = "cgroup" in plan.create
    new_netns = "network" in plan.create
    userns = plan.uses_userns
    cgroups = _OwnCgroups(channel, cfg.cgroups_pending and new_cgroupns)
    entered = cfg.entered
    if cfg.cgroups_pending:
        entered = entered | {"cgroup"}  # made once in the cgroups, by cgroups()
    else:
        cgroups(wait=False)  # read before the cgroup namespace is made
    has_uts = "uts" in plan.create or "uts" in plan.join  # (the join fds go with the entry)
    namespaces.enter_remaining(plan, entered)
    if spec.get("hostname") is not None or spec.get("domainname") is not None:
        if not has_uts:
            raise ContainerError(
                "config.json sets a hostname or domainname but the container has no uts "
                "namespace",
                hint='add {"type": "uts"} to linux.namespaces',
            )
        if spec.get("hostname") is not None:
            syscalls.sethostname(spec["hostname"])
        if spec.get("domainname") is not None:
            syscalls.setdomainname(spec["domainname"])
    if not cfg.no_new_keyring:
        try:
            syscalls.join_session_keyring(cfg.container_id)
        except OSError:
            pass  # keyrings disabled or quota reached: runc carries on too
    linux = spec.get("linux") or {}
    if new_netns and "network" not in cfg.entered and loopback_wanted(spec):
        set_loopback(True)  # (a network namespace made ahead has lo as wanted already)
    in_new_mountns = "mount" in plan.create or "mount" in plan.join
    mountinfo: list[list[str]] | None = None
    if in_new_mountns:
        if cfg.mountinfo is not None and "mount" not in plan.join:
            mountinfo = cfg.mountinfo
        else:
            mountinfo = mounts.read_mountinfo()
        ctx = mounts.MountContext(
            cfg.bundle,
            userns=userns,
            new_netns=new_netns,
            new_cgroupns=new_cgroupns,
            cgroups=cgroups,
            mountinfo=mountinfo,
        )
        mounts.prepare_root(cfg.rootfs, linux.get("rootfsPropagation"))
        mounts.mount_all(spec, cfg.rootfs, ctx)
    cgroups()  # nothing of the container's runs before it is in its cgroups: no hook either
    spec_hooks = spec.get("hooks") or {}
    if spec_hooks.get("prestart") or spec_hooks.get("createRuntime"):
        channel.send(MSG_HOOKS)
        channel.expect(MSG_GO, "createRuntime hooks")
    if spec_hooks.get("createContainer"):
        state = hooks.hook_state(cfg.container_id, host_pid, "creating", cfg.bundle,
                                 spec.get("annotations") or {}, spec["ociVersion"])
        hooks.run_hooks("createContainer", spec_hooks["createContainer"], state)
    if in_new_mountns:
        mounts.pivot(cfg.rootfs, cfg.no_pivot, mountinfo)
    else:
        raise ContainerError(
            "the container has no mount namespace",
            hint='add {"type": "mount"} to linux.namespaces',
        )
    proc = cfg.process
    if proc.get("terminal"):
        if cfg.console_socket is None:
            raise ContainerError("process.terminal is set but there is no console socket")
        console.setup_container_console(cfg.console_socket, proc.get("consoleSize"), True)
        cfg.console_socket = None
    _write_sysctls(linux.get("sysctl") or {})
    mounts.finish(spec)
    return _prepare_process(cfg, proc, is_init=True)


class _OwnCgroups:
    """The init's cgroups, read once it is in them. An init forked by ``create`` is in them
    from its [go]; one forked ahead of time (:mod:`berth.runtime.preforked`) starts its setup
    while the runtime makes them, and waits for [go] at the first step that needs them (the
    cgroup mount, or the end of the mounts), then makes its cgroup namespace, if it is to
    have one (its root is the cgroup the process is in when it is made)."""

    __slots__ = ("channel", "make_cgroupns", "own")

    def __init__(self, channel: Channel, make_cgroupns: bool) -> None:
        self.channel = channel
        self.make_cgroupns = make_cgroupns  # here, once in them (else enter_remaining does)
        self.own: list[tuple[str, str]] | None = None

    def __call__(self, wait: bool = True) -> list[tuple[str, str]]:
        if self.own is None:
            if wait:
                self.channel.expect(MSG_GO, "joining the container's cgroups")
            self.own = mounts.read_own_cgroups()
            if self.make_cgroupns:
                try:
                    syscalls.unshare(syscalls.CLONE_NEWCGROUP)
                except OSError as exc:
                    raise HostError(
                        f"cannot create the cgroup namespace: {exc.strerror}") from None
        return self.own


LOOPBACK_ANNOTATION = "org.berth.network.loopback"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_wanted(spec: dict[str, Any]) -> bool:
    """Whether ``lo`` is to be up in the container's new network namespace (what Docker's
    ``--network none`` gives; runc leaves it down). Asked for by the engine with an
    annotation."""
    return (spec.get("annotations") or {}).get(LOOPBACK_ANNOTATION) == "up"


def set_loopback(up: bool) -> None:
    """Bring ``lo`` of this process's network namespace up or down (the kernel takes a
    millisecond or two to bring it up)."""
    import fcntl
    import struct

    sock = syscalls.socket_fd(syscalls.AF_INET, syscalls.SOCK_DGRAM)
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        flags = flags | _IFF_UP if up else flags & ~_IFF_UP
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))
    finally:
        os.close(sock)


def _write_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        if ".." in key.split(".") or "/" in key:
            raise ContainerError(f"invalid sysctl name {key!r}")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise ContainerError(
                f"cannot set sysctl {key}={value}: {exc.strerror}",
                hint="only namespaced sysctls (net.*, kernel.shm*, kernel.msg*, fs.mqueue.*, "
                "...) can be set in a container",
            ) from None


def _prepare_process(
    cfg: ChildConfig, proc: dict[str, Any], is_init: bool
) -> tuple[str, list[str], list[str]]:
    """Step 6 of the module doc; returns (program path, argv, environment)."""
    if "oomScoreAdj" in proc:
        process.set_oom_score_adj(int(proc["oomScoreAdj"]))
    process.apply_rlimits(proc.get("rlimits") or [])
    process.enter_cwd(proc.get("cwd") or "/")
    no_new_privs = bool(proc.get("noNewPrivileges"))
    if not no_new_privs:
        cfg.seccomp()
    user = dict(proc.get("user") or {})
    cfg.identity(user, proc.get("capabilities"))
    os.umask(int(user["umask"]) if user.get("umask") is not None else process.DEFAULT_UMASK)
    env = process.environment(list(proc.get("env") or []), int(user.get("uid", 0)))
    argv = list(proc["args"])
    path = process.find_program(argv[0], env)
    if no_new_privs:
        process.set_no_new_privileges()
    del is_init
    return path, argv, env


def _wait_for_start(fifo_fd: int) -> None:
    """Block until ``start`` writes the exec fifo (opened for reading by the runtime, which
    cannot block on an open here: after pivot_root its path is gone)."""
    poller = select.poll()
    poller.register(fifo_fd, select.POLLIN)
    while True:
        poller.poll()
        data = os.read(fifo_fd, 1)
        if data:
            break
        raise ContainerError("the exec fifo was closed without a start")
    os.close(fifo_fd)


def _exec(cfg: ChildConfig, path: str, argv: list[str], env: list[str]) -> NoReturn:
    shim_fd = process.make_shim_fd(cfg.shim)
    if cfg.process.get("noNewPrivileges"):
        cfg.seccomp()
    process.mark_fds_cloexec(3 + cfg.preserve_fds)
    process.exec_via_shim(shim_fd, path, argv, env)


# ---------------------------------------------------------------------------------------------
# exec


def exec_main(cfg: ChildConfig, channel: Channel) -> NoReturn:
    """An extra process in a running container: joins its namespaces (the mount namespace
    puts it at the container's root), its cgroup (done by the runtime before [go]), then the
    same process steps as the init."""
    try:
        _start_child(cfg, channel)
        channel.expect(MSG_GO, "exec setup")
        namespaces.enter_remaining(cfg.plan)
        proc = cfg.process
        if proc.get("terminal"):
            if cfg.console_socket is None:
                raise ContainerError("the process wants a terminal but there is no console socket")
            console.setup_container_console(cfg.console_socket, proc.get("consoleSize"), False)
            cfg.console_socket = None
        path, argv, env = _prepare_process(cfg, proc, is_init=False)
        channel.send(MSG_READY)
        _exec(cfg, path, argv, env)
    except BaseException as exc:
        report_failure(channel, exc)
