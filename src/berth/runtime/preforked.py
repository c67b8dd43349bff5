"""A container init forked ahead of time, for the next ``create`` of this process.

Forking the init from a big Python process, and the init's first steps, cost milliseconds on
``berth run``'s path: the fork itself (page tables), the new pid, ipc, uts and network
namespaces, and a copy-on-write fault for each page the init then writes to. A fork server's
spare (``berth.cli.forkserver``) waits for a command anyway, so it calls :func:`prepare`: that
forks an init now (at the spare's idle priority), into a new pid namespace; the init makes its
ipc, uts and network namespaces, brings the loopback device up, closes every fd it does not
need, rehearses the handover's costliest Python steps on a stand-in (:func:`_rehearse`), and
waits for a container. If the command is a ``run``, :meth:`Runtime.create
<berth.runtime.container.Runtime.create>` takes it (:func:`take`) instead of forking one and
hands it the container over a socket (:meth:`hand_over`); from there it is an init like any
other (:func:`berth.runtime.init.run_init`), but that it starts its setup while the runtime
makes the cgroups, and waits for [go] (it is in them) at its first step that needs them.

It is taken only for what it was made for: no user namespace, a new pid namespace, and ipc,
uts and network namespaces the spec creates or joins (a joined one is entered as usual; the
one made ahead is dropped), no preserved fds. Anything else, or an init that has died, and
``create`` forks one as before. Until taken it is nothing but a process: it dies with the
process that prepared it (``PR_SET_PDEATHSIG``), and nothing of the host is in it but its
stdio.

What a forked init would have had from the runtime's process, the handover carries or sets:
its stdio, working directory, umask, rlimits, priority, CPU affinity and scheduling policy.

``BERTH_NO_PREFORK=1`` in the environment of the process that would prepare one (a fork
server's: the environment of the command that started it) turns this off; ``bench_run.py``
measures both.
"""

from __future__ import annotations

import _socket  # not socket, nor signal: their enums are ms of a `berth run` that imports this
import os
import resource
import struct

from berth import jsonio
from berth.runtime import init, mounts, namespaces, process, signals, syscalls
from berth.runtime.sync import ChannelPair

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

    from berth.runtime.sync import Channel

# the namespaces made ahead (the pid namespace comes with the fork)
AHEAD = frozenset({"ipc", "uts", "network"})
_AHEAD_FLAGS = syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWNET
# cwd, fifo, stdio, a console socket and the joined ipc, uts and network namespaces
_MAX_FDS = 2 + 3 + 1 + len(AHEAD)
_MAX_MESSAGE = 16 << 20

_waiting: PreforkedInit | None = None


class PreforkedInit:
    """The runtime's side of an init forked ahead of time."""

    __slots__ = ("channel", "hand", "owner", "pid")

    def __init__(self, pid: int, channel: Channel, hand: _socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.hand = hand
        self.owner = os.getpid()  # a fork of this process must not take it: not its child

    def fits(self, plan: namespaces.NamespacePlan, preserve_fds: int) -> bool:
        """Whether this init can become the container that ``plan`` describes."""
        if preserve_fds or plan.uses_userns or "pid" not in plan.create:
            return False
        if "cgroup" in plan.join:  # its own cgroups are read before joining that one
            return False
        return all(kind in plan.create or kind in plan.join for kind in AHEAD)

    def alive(self) -> bool:
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0

    def hand_over(
        self,
        *,
        container_id: str,
        bundle: str,
        rootfs: str,
        spec: dict[str, Any],
        plan: namespaces.NamespacePlan,
        stdio: tuple[int, int, int] | None,
        fifo_fd: int,
        console_socket: socket.socket | None,
        seccomp_cache: str,
        no_pivot: bool,
        no_new_keyring: bool,
    ) -> Channel:
        """Give the init its container: it sets it up at once, and waits for [go] (once the
        runtime has put it in the container's cgroups) at its first step that needs them.
        Returns the channel it reports on, as :func:`namespaces.fork_into` would."""
        _match_scheduling(self.pid)
        umask = os.umask(0)
        os.umask(umask)
        joined = sorted(kind for kind in plan.join if kind in AHEAD)
        message = {
            "pid": self.pid,
            "id": container_id,
            "bundle": bundle,
            "rootfs": rootfs,
            "spec": spec,
            "joined": joined,
            "console": console_socket is not None,
            "seccomp_cache": seccomp_cache,
            "no_pivot": no_pivot,
            "no_new_keyring": no_new_keyring,
            "umask": umask,
            "rlimits": [[limit, *resource.getrlimit(limit)] for limit in process.RLIMITS.values()],
        }
        body = jsonio.dumps(message).encode()
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fds = [cwd, fifo_fd, *(stdio if stdio is not None else (0, 1, 2))]
            if console_socket is not None:
                fds.append(console_socket.fileno())
            fds.extend(plan.join[kind] for kind in joined)
            data = len(body).to_bytes(4, "big") + body
            rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))
            sent = self.hand.sendmsg([data], [rights])
            if sent < len(data):
                self.hand.sendall(data[sent:])
        finally:
            os.close(cwd)
        self.hand.close()
        return self.channel

    def discard(self) -> None:
        """End the init (it was not taken, or the handover failed) and reap it."""
        try:
            os.kill(self.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.hand.close()
        self.channel.close()


def prepare() -> None:
    """Fork an init that waits for this process's next container (see the module doc)."""
    global _waiting
    if _waiting is not None or os.environ.get("BERTH_NO_PREFORK"):
        return
    plan = namespaces.NamespacePlan()
    plan.create.add("pid")
    parent_hand, child_hand = _socket.socketpair(
        _socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    pid, channel = namespaces.fork_into(plan, ChannelPair())
    if pid == 0:
        parent_hand.close()
        _wait_for_container(channel, child_hand)
    child_hand.close()
    _waiting = PreforkedInit(pid, channel, parent_hand)


def take(plan: namespaces.NamespacePlan, preserve_fds: int) -> PreforkedInit | None:
    """The init forked ahead of time, if there is one (it is then no longer there for the
    next ``create``) and it fits ``plan``; else None."""
    global _waiting
    waiting = _waiting
    if waiting is None or waiting.owner != os.getpid():
        return None
    if not waiting.fits(plan, preserve_fds):
        return None
    _waiting = None
    if not waiting.alive():
        waiting.discard()
        return None
    return waiting


def waiting() -> int:
    """The pid of this process's init forked ahead of time, or 0."""
    ahead = _waiting
    return ahead.pid if ahead is not None and ahead.owner == os.getpid() else 0


def discard() -> None:
    """End the waiting init, if any (it would end with this process anyway)."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is not None and waiting.owner == os.getpid():
        waiting.discard()


def _match_scheduling(pid: int) -> None:
    """The init gets the caller's scheduling: it was forked at a spare's idle priority."""
    try:
        os.sched_setscheduler(pid, os.sched_getscheduler(0), os.sched_getparam(0))
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))
        os.sched_setaffinity(pid, os.sched_getaffinity(0))
    except OSError:
        pass  # it has died: the channel says so


# ---------------------------------------------------------------------------------------------
# in the init


def _wait_for_container(channel: Channel, hand: _socket.socket) -> None:
    """Get ready, wait for the container, become its init. Never returns."""
    try:
        # dies with the process that prepared it; should that have died before this line,
        # its end of the socket is closed, and the wait below ends at once
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signals.SIGKILL)
        init.quiet_signals()
        init.close_fds_but({channel.rfd, channel.wfd, hand.fileno()}, 3)
        syscalls.unshare(_AHEAD_FLAGS)
        init.set_loopback(True)  # what the engine asks for; down again if not (see below)
        process.load_shim()
        mountinfo = mounts.read_mountinfo()  # the host's, as the mount namespace will copy
        try:
            _rehearse()
        except Exception:  # only a head start: the handover does it all again
            pass
        # (not copying its memory ahead, as the spare does: the setup writes to few pages,
        # and a second copy of the spare's ~15 MB, made while a command runs, slowed that
        # command more than it sped up the setup: measured A/B)
        message, fds = _receive(hand)
    except BaseException:
        os._exit(1)  # not handed over: the runtime forks an init of its own
    try:
        cfg = _take_container(message, fds)
        cfg.mountinfo = mountinfo
        init.run_init(cfg, channel, int(message["pid"]))
    except BaseException as exc:
        init.report_failure(channel, exc)


def _rehearse() -> None:
    """Run, on a stand-in for Docker's default container, the steps of the handover that
    cost most in a fresh fork (measured: ~0.8 ms of it), changing nothing: the message's
    decoding, the seccomp program's cache key, the capabilities' masks. A fork writes to a
    page of its parent's memory the first time it touches it (reference counts, the
    allocator's free lists), which here happens before the container comes."""
    from berth.runtime import capabilities, defaults, seccomp_bpf, seccomp_profile

    caps = list(defaults.DEFAULT_CAPABILITIES)
    stand_in = {
        "process": {"capabilities": {kind: caps for kind in capabilities.CAPABILITY_SETS}},
        "linux": {"seccomp": seccomp_profile.docker_default_profile(caps)},
    }
    spec = jsonio.loads(jsonio.dumps({"spec": stand_in}))["spec"]
    seccomp_bpf.rehearse(spec["linux"]["seccomp"])
    capabilities.rehearse(spec["process"]["capabilities"])


def _receive(hand: _socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, ancillary, flags, _ = hand.recvmsg(65536, _socket.CMSG_SPACE(_MAX_FDS * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    if flags & _socket.MSG_CTRUNC:
        raise ValueError("fds lost on the way")
    if len(data) < 4:
        raise EOFError("no container")
    size = int.from_bytes(data[:4], "big")
    if size > _MAX_MESSAGE:
        raise ValueError("message too large")
    body = bytearray(data[4:])
    while len(body) < size:
        more = hand.recv(size - len(body))
        if not more:
            raise EOFError("short message")
        body += more
    hand.close()
    message: dict[str, Any] = jsonio.loads(bytes(body))
    return message, fds


def _take_container(message: dict[str, Any], fds: list[int]) -> init.ChildConfig:
    """What the runtime's process would have given a forked init (see the module doc)."""
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, 0)  # a container outlives whoever started it
    cwd, fifo_fd, *rest = fds
    os.fchdir(cwd)
    os.close(cwd)
    stdio = (rest[0], rest[1], rest[2])
    rest = rest[3:]
    console_socket = None
    if message["console"]:
        import socket  # (a fork server's: imported already)

        console_socket = socket.socket(fileno=rest.pop(0))
    os.umask(int(message["umask"]))
    for limit, soft, hard in message["rlimits"]:
        if resource.getrlimit(limit) != (soft, hard):
            resource.setrlimit(limit, (soft, hard))
    init.place_stdio(stdio)
    for fd in stdio:
        if fd > 2:
            os.close(fd)
    spec = message["spec"]
    if "network" not in message["joined"] and not init.loopback_wanted(spec):
        init.set_loopback(False)
    plan = namespaces.NamespacePlan()  # the spec's, with the joined namespaces received
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if not ns.get("path"):
            plan.create.add(ns["type"])
    plan.join = dict(zip(message["joined"], rest, strict=True))
    identity, seccomp, _ = process.security_functions(
        (spec.get("linux") or {}).get("seccomp"), message["seccomp_cache"])
    return init.ChildConfig(
        container_id=message["id"],
        spec=spec,
        process_spec=spec["process"],
        plan=plan,
        shim=process.load_shim(),
        identity=identity,
        seccomp=seccomp,
        bundle=message["bundle"],
        rootfs=message["rootfs"],
        console_socket=console_socket,
        fifo_fd=fifo_fd,
        no_pivot=bool(message["no_pivot"]),
        no_new_keyring=bool(message["no_new_keyring"]),
        entered=AHEAD,
        cgroups_pending=True,  # the runtime makes them now, and says [go] once it is in
    )
