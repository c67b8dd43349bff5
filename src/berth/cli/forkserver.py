"""The fork server: a process that has imported berth once and forks a worker for each
``berth`` command, so a command pays neither the interpreter's start nor its imports.

A command in a fresh interpreter spends most of its time on Python starting and importing
(docs/performance.md). The client (:mod:`berth.cli.forkclient`) connects to this server and
sends its command line, environment and stdio; a worker (:mod:`berth.cli.forkworker`) becomes
that command and the client exits with its status.

The server forks two *spares* ahead of time: a spare accepts the next connection itself, checks
it, tells the server it is taken (handing over a copy of the connection, on which the server
reports the worker's death by a signal) and becomes the worker, and the server forks a spare in
its place (once the command has ended, if another spare was left: see Server._on_control). The
server holds no store, no database connection and no thread, only imported modules, so a fork of
it is as clean as a fresh interpreter.

A request is refused (and runs in the client's own process) unless the client is
indistinguishable from the server to the kernel: the same credentials, capabilities,
no_new_privs and seccomp mode, LSM label, cgroups, namespaces and root, and the same locale and
``PYTHON*`` variables (what an interpreter reads at its start). Clients in another cgroup find
a server of their own (the socket's name says which cgroup). A server whose berth source files
changed since it started refuses and exits, so an upgrade or an edit is never served by old
code. It exits on its own after :data:`IDLE_SECONDS` without a command (``BERTH_FORKSERVER_IDLE``
changes that), and on SIGTERM once its workers are done.

One server runs per Python environment, berth source tree and cgroup (the socket's name says
which), under ``/run/berth/forkserver``, for root only (the socket is 0600 and every peer is
checked).
"""

from __future__ import annotations

import fcntl
import gc
import os
import select
import signal
import socket
import struct
import sys
import time

from berth.cli import forkclient, forkworker
from berth.errors import BerthError
from berth.runtime import cgroups, prefault, preforked, syscalls
from berth.runtime.cgroups import warm

IDLE_SECONDS = 120.0
# Spares kept ready (see Server._on_control), and how long a command that took one while
# another was left may keep the next from being forked (until it ends).
SPARES = 2
SPARE_WAIT_SECONDS = 1.0
PAGES_SUFFIX = ".pages"  # beside the socket: what the spares copy ahead (runtime.prefault)
_REQUEST_TIMEOUT = 5.0
_MAX_REQUEST = 16 << 20
# the environment a client must share with the server: what the interpreter read at its start
# (the locale, for its encodings, and every PYTHON* variable but those a worker applies)
_INTERPRETER_ENV = ("LANG", "LC_ALL", "LC_CTYPE")
_APPLIED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONBREAKPOINT")
# the lines of /proc/PID/status that must match: who the process is to the kernel
_IDENTITY_FIELDS = (
    b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:",
    b"NoNewPrivs:", b"Seccomp:",
)
_NAMESPACES = ("mnt", "net", "pid", "ipc", "uts", "user", "cgroup", "time")

# What the server imports: the modules of the commands run most (with everything they import),
# and what running a container imports on the way. A module left out is imported by each
# worker that needs it (``BERTH_TRACE=1`` lists them). Preloading all of berth would cost more
# than it saves: a fork copies the page tables of all of it, and a worker copies each page it
# writes to.
PRELOAD = (
    "berth.cli.main", "berth.cli.containers", "berth.cli.images", "berth.cli.render",
    "berth.cli.volumes", "berth.cli.networks", "berth.cli.system", "berth.cli.gotemplate",
    "berth.cli.tabwriter",
    "berth.engine.containers", "berth.engine.images", "berth.engine.container_filters",
    "berth.engine.container_inspect", "berth.engine.volumes", "berth.engine.networks",
    "berth.containers.create", "berth.containers.launcher", "berth.containers.logs",
    "berth.containers.events", "berth.containers.flagvalues", "berth.store.events",
    "berth.runtime.container", "berth.runtime.init", "berth.runtime.seccomp_bpf",
    "berth.runtime.seccomp_profile", "berth.runtime.capabilities", "berth.runtime.defaults",
    "berth.oci.runtime_spec", "berth.monitor.client", "berth.network.manager", "berth.filters",
    "berth.units", "_sha256",
)


def main() -> int:
    os.closerange(3, 1 << 16)  # nothing of the client that started it
    os.chdir("/")  # nor its working directory (an unmount would find it busy); workers and
    # the inits forked ahead take each client's own
    path = forkclient.socket_path()
    lock = _take_lock(path + ".lock")
    if lock is None:
        return 0  # another server runs or is starting
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # a worker imports it again, and reports what fails
            pass
    return Server(path, lock).serve()


def _take_lock(path: str) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    return fd


class Server:
    def __init__(self, path: str, lock: int) -> None:
        self.path = path
        self.lock = lock
        self.pid = os.getpid()
        self.idle = float(os.environ.get("BERTH_FORKSERVER_IDLE") or IDLE_SECONDS)
        self.admission = Admission()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # spares tell the server they are taken (with a copy of the connection) or that the
        # code is stale, one datagram each
        self.control, self.control_peer = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.spares: dict[int, Spare] = {}  # pidfd: spare
        self.spare_failures = 0
        # the workers that took a spare while another was left: until each ends (or its
        # deadline), no spare is forked in its place
        self.replace_after: dict[int, float] = {}  # the worker's pidfd: deadline
        self.watching = False  # whether the poll watches for a connection (see _hurry_spares)
        self.workers: dict[int, tuple[int, socket.socket | None]] = {}  # pidfd: (pid, conn)
        self.stopping = False
        self.poller = select.poll()
        self.socket_inode = -1

    def serve(self) -> int:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(old_umask)
        self.socket_inode = os.stat(self.path).st_ino  # to remove it only if still its own
        self.listener.listen(128)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)  # a stop ends the poll
        self.poller.register(self.wake_r, select.POLLIN)
        self.poller.register(self.control, select.POLLIN)
        gc.collect()
        gc.freeze()  # what is imported stays shared with every worker (no collector writes)
        gc.disable()
        warm.start()  # the command that started this server comes next (see _on_control)
        last_active = time.monotonic()
        while not (self.stopping and not self.workers):
            now = time.monotonic()
            for fd in [fd for fd, deadline in self.replace_after.items() if deadline <= now]:
                del self.replace_after[fd]
            # a spare whenever there is none; the others once no command keeps them waiting
            while not self.stopping and len(self.spares) < (1 if self.replace_after else SPARES):
                self._fork_spare()
            if self.workers:
                last_active = now
            idle_for = now - last_active
            if not self.workers and idle_for > self.idle:
                break
            timeout = None if self.workers else int((self.idle - idle_for) * 1000) + 1
            if self.replace_after:
                timeout = int((min(self.replace_after.values()) - now) * 1000) + 1
            for fd, _ in self.poller.poll(timeout):
                if fd == self.wake_r:
                    _drain(self.wake_r)
                elif fd == self.control.fileno():
                    self._on_control()
                elif fd in self.spares:
                    self._on_spare_died(fd)
                elif fd == self.listener.fileno():
                    self._hurry_spares()
                elif fd in self.workers:
                    self._reap(fd)
            if self.stopping:
                self._stop_serving()
        self._stop_serving()
        # what its commands were seen to write (its workers, all ended now, learned it)
        pages = self.path + PAGES_SUFFIX
        if prefault.LearnedPages.load(pages, self.pid) is not None:
            try:
                os.unlink(pages)
            except OSError:
                pass
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        del signum, frame
        self.stopping = True

    def _stop_serving(self) -> None:
        """No new commands: the socket goes, the spare too; workers run on to their end."""
        self.stopping = True
        self._watch(False)
        if self.listener.fileno() >= 0:
            try:
                if os.stat(self.path).st_ino == self.socket_inode:
                    os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
        for pidfd in list(self.spares):
            spare = self.spares.pop(pidfd)
            os.kill(spare.pid, signal.SIGKILL)
            os.waitpid(spare.pid, 0)
            self.poller.unregister(pidfd)
            spare.close()
            os.close(pidfd)

    # -------------------------------------------------------------------------------------

    def _fork_spare(self) -> None:
        hurry_r, hurry_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(hurry_w)
                self._be_spare(hurry_r)
            except BaseException:  # nothing may return into the server's loop
                code = 125
            os._exit(code)
        os.close(hurry_r)
        pidfd = os.pidfd_open(pid)
        self.spares[pidfd] = Spare(pid, hurry_w)
        self.poller.register(pidfd, select.POLLIN)
        self._watch_unless_ready()

    def _watch_unless_ready(self) -> None:
        """Watch for a connection (to hurry the spares, see _hurry_spares) unless a spare is
        ready to take it."""
        self._watch(not any(spare.ready for spare in self.spares.values()))

    def _watch(self, on: bool) -> None:
        if on != self.watching and self.listener.fileno() >= 0:
            if on:
                self.poller.register(self.listener, select.POLLIN)
            else:
                self.poller.unregister(self.listener)
            self.watching = on

    def _hurry_spares(self) -> None:
        """A connection waits and no spare is ready: those still getting ready on idle CPU
        time (``_be_spare``) get the server's priority back now, so that a busy host does not
        starve them, and stop copying memory: the first to accept takes the connection."""
        self._watch(False)
        for spare in self.spares.values():
            try:
                os.sched_setscheduler(spare.pid, os.sched_getscheduler(0), os.sched_getparam(0))
                os.write(spare.hurry, b"h")
            except OSError:
                pass  # it is gone: its pidfd says so

    def _on_control(self) -> None:
        """A spare's message: it is ready, it took a command, or it found the code stale."""
        message, ancillary, _, _ = self.control.recvmsg(64, socket.CMSG_SPACE(4))
        fds = _received_fds(ancillary)
        kind, _, value = message.partition(b" ")
        if kind == b"stale":
            self.stopping = True
        found = [fd for fd, spare in self.spares.items()
                 if value.isdigit() and spare.pid == int(value)]
        if kind == b"ready" and found:
            self.spares[found[0]].ready = True
            self._watch(False)  # it takes the next connection
        if kind != b"taken" or not found:
            for fd in fds:
                os.close(fd)
            return
        # A command was taken, and another often follows soon: the kernel's cgroup-migration
        # lock is kept warm from now for two seconds (berth.runtime.cgroups.warm), so that
        # the grace period a cold lock waits for has passed before the next `berth run`
        # joins its cgroups. The server's one thread does it, not one in each spare waiting
        # (a wake-up every 3 ms costs ~40 µs of CPU on these machines).
        warm.start()
        pidfd = found[0]
        spare = self.spares.pop(pidfd)
        spare.close()
        self.spare_failures = 0
        conn = socket.socket(fileno=fds[0]) if fds else None
        self.workers[pidfd] = (spare.pid, conn)
        self._watch_unless_ready()
        # The spare in its place. On a machine with few CPUs, getting one ready (its fork,
        # the next container's init forked ahead, its memory copied) beside a command slows
        # the command by several ms, from its start to its end (its container's teardown
        # too). So while another spare is left, the next one is forked once this command
        # has ended (or after SPARE_WAIT_SECONDS): a command after a quiet spell finds a
        # spare ready and nothing getting ready beside it, and so does the one right after
        # it. If it took the last one, the next is forked at once.
        if self.spares:
            self.replace_after[pidfd] = time.monotonic() + SPARE_WAIT_SECONDS

    def _on_spare_died(self, pidfd: int) -> None:
        spare = self.spares.pop(pidfd)
        self._watch_unless_ready()
        self.poller.unregister(pidfd)
        spare.close()
        os.close(pidfd)
        os.waitpid(spare.pid, 0)
        self.spare_failures += 1
        if self.spare_failures >= 5:  # something is wrong with this server: leave
            self.stopping = True
        else:
            time.sleep(0.01 * self.spare_failures)

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.workers.pop(pidfd)
        self.replace_after.pop(pidfd, None)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if conn is None:
            return
        code = os.waitstatus_to_exitcode(status)
        try:  # the worker sent its own status unless it was killed
            conn.sendall(b"K%d\n" % -code if code < 0 else b"X%d\n" % code)
        except OSError:
            pass
        conn.close()

    # -------------------------------------------------------------------------------------
    # in the spare

    def _be_spare(self, hurry: int) -> None:
        """Wait for a command; take it if the client may be served, else refuse and wait for
        the next. Returns only to end the spare. ``hurry``: readable once the server wants a
        connection taken (see _hurry_spares)."""
        _die_with_parent(self.pid)
        os.close(self.lock)
        signal.set_wakeup_fd(-1)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.control.close()
        for pidfd, (_, conn) in self.workers.items():
            os.close(pidfd)
            if conn is not None:
                conn.close()
        for pidfd, spare in self.spares.items():
            os.close(pidfd)
            spare.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # while it waits, the server keeps the kernel's cgroup-migration lock warm for its
        # command (see _on_control): no thread of its own until it accepts one (below)
        # The spare gets ready while a command may still run (the one that took the previous
        # spare): only on CPU time nothing else wants (SCHED_IDLE), so it slows that command
        # down little and the next command finds a spare ready. On a busy host it may not get
        # that time: a connection that comes first ends the copy.
        policy = os.sched_getscheduler(0)
        param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        # the next container's init, forked now (berth.runtime.preforked): a `berth run`
        # takes it rather than fork one; any other command lets it die with the worker
        try:
            preforked.prepare()
            cgroups.read_layout_ahead()
        except (OSError, BerthError):
            pass  # a `berth run` does it itself
        # the pages this server's commands were seen to write, copied now rather than by
        # the command; with nothing learned yet, none: this spare's command learns them
        learned = prefault.LearnedPages.load(self.path + PAGES_SUFFIX, self.pid)
        if learned is not None:
            prefault.copy_private_memory(hurry, learned.ranges)
        os.close(hurry)
        os.sched_setscheduler(0, policy, param)
        self.control_peer.send(b"ready %d" % os.getpid())
        while True:
            conn, _ = self.listener.accept()
            # a command after the server's warm-up has run out (a quiet host): the lock is
            # warmed from here too, ~2 ms before a `berth run`'s handler would (the worker's
            # thread stops once its container has joined its cgroups)
            warm.start()
            request = self._admit(conn)
            if request is None:
                continue
            self.listener.close()
            self.control_peer.close()
            self.admission.close()
            _die_with_parent()
            pidfd = os.pidfd_open(os.getpid())  # the client signals this worker through it
            conn.sendmsg([b"A%d\n" % os.getpid()],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", pidfd))])
            os.close(pidfd)
            code = forkworker.run(conn, request)
            try:  # the client has its status: what this command wrote, for the next spares
                prefault.learn(self.path + PAGES_SUFFIX, self.pid, _command_name(request.args),
                               learned)
            except Exception:
                pass
            os._exit(code)

    def _admit(self, conn: socket.socket) -> forkworker.Request | None:
        """The request on ``conn`` if this spare may run it (and the server was told it is
        taken); else None, the client told why and the connection closed."""
        fds: list[int] = []
        try:
            conn.settimeout(_REQUEST_TIMEOUT)
            request = _read_request(conn)
            fds = request.fds
            reason = self.admission.refusal(request)
            if not reason:
                self.control_peer.sendmsg(
                    [b"taken %d" % os.getpid()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", conn.fileno()))],
                )
                conn.settimeout(None)
                return request
            conn.sendall(b"R" + reason.encode() + b"\n")
            if reason == "stale":
                self.control_peer.send(b"stale")
                os._exit(0)
        except (OSError, ValueError):
            pass
        for fd in fds:
            os.close(fd)
        conn.close()
        return None


class Spare:
    """The server's side of a spare: its pid, the write end of its hurry pipe (see
    Server._hurry_spares), and whether it is ready (it said so)."""

    __slots__ = ("hurry", "pid", "ready")

    def __init__(self, pid: int, hurry: int) -> None:
        self.pid = pid
        self.hurry = hurry
        self.ready = False

    def close(self) -> None:
        os.close(self.hurry)


class Admission:
    """Whether a client may be served by this server's workers (see the module doc)."""

    def __init__(self) -> None:
        self.env = {key: os.environ.get(key) for key in _INTERPRETER_ENV}
        self.env.update(
            (k, v) for k, v in os.environ.items()
            if k.startswith("PYTHON") and k not in _APPLIED_ENV
        )
        self.identity, _ = _identity(os.getpid())
        self.sources = _source_stamps()
        self.changes = _watch({os.path.dirname(path) for path in self.sources})

    def refusal(self, request: forkworker.Request) -> str:
        """Why the client may not be served, or ``""`` (and the client's umask is in
        ``request``)."""
        env = request.env
        for key, value in self.env.items():
            if env.get(key) != value:
                return f"environment ({key})"
        for key in env:
            if key.startswith("PYTHON") and key not in self.env and key not in _APPLIED_ENV:
                return f"environment ({key})"
        try:
            identity, request.umask = _identity(request.pid)
        except OSError:
            return "credentials or namespaces"
        if identity != self.identity:
            return "credentials or namespaces"
        return "stale" if self.stale() else ""

    def stale(self) -> bool:
        """Whether a berth source file the server loaded has changed since it started. Their
        modification times decide; while nothing happened in their directories (inotify says
        so, with one read), they are not looked at."""
        if self.changes >= 0:
            try:
                os.read(self.changes, 65536)
            except BlockingIOError:
                return False
            except OSError:
                pass
            _drain(self.changes)  # shared with the server: events from now on are new ones
        for path, stamp in self.sources.items():
            try:
                now = os.stat(path).st_mtime_ns
            except OSError:
                now = -1
            if now != stamp:
                return True
        return False

    def close(self) -> None:
        if self.changes >= 0:
            os.close(self.changes)
            self.changes = -1


_WATCHED = (
    syscalls.IN_MODIFY | syscalls.IN_ATTRIB | syscalls.IN_CLOSE_WRITE | syscalls.IN_MOVED_FROM
    | syscalls.IN_MOVED_TO | syscalls.IN_CREATE | syscalls.IN_DELETE | syscalls.IN_DELETE_SELF
    | syscalls.IN_MOVE_SELF
)


def _watch(directories: set[str]) -> int:
    """An inotify fd watching ``directories`` (-1 if the kernel will not: the modification
    times are then compared for every request)."""
    try:
        fd = syscalls.inotify_init1(syscalls.IN_NONBLOCK | syscalls.IN_CLOEXEC)
    except OSError:
        return -1
    try:
        for directory in sorted(directories):
            syscalls.inotify_add_watch(fd, directory, _WATCHED)
    except OSError:
        os.close(fd)
        return -1
    return fd


def _read_request(conn: socket.socket) -> forkworker.Request:
    header, ancillary, _, _ = conn.recvmsg(4, socket.CMSG_SPACE(3 * 4))
    fds = _received_fds(ancillary)
    try:
        header += _read_exactly(conn, 4 - len(header))
        size = int.from_bytes(header, "big")
        if size > _MAX_REQUEST:
            raise ValueError("request too large")
        fields = _read_exactly(conn, size).split(b"\0")
        if fields[0] != forkclient.PROTOCOL:
            raise ValueError("another protocol")
        sent = fields[1].decode()
        count = int(fields[2])
        if len(sent) != len(fds) or not set(sent) <= set("012"):
            raise ValueError("stdio fds missing")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    args = [os.fsdecode(arg) for arg in fields[3:3 + count]]
    env: dict[str, str] = {}
    for entry in fields[3 + count:]:
        key, sep, value = entry.partition(b"=")
        if sep:
            env[os.fsdecode(key)] = os.fsdecode(value)
    pid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    return forkworker.Request(sent, fds, args, env, pid)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ValueError("short request")
        data += more
    return bytes(data)


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    return fds


def _identity(pid: int) -> tuple[tuple[object, ...], int]:
    """Who ``pid`` is to the kernel (credentials, capabilities, no_new_privs, seccomp, LSM
    label, cgroups, every namespace and the root directory), and its umask."""
    with open(f"/proc/{pid}/status", "rb") as f:
        lines = f.readlines()
    status = tuple(line for line in lines if line.startswith(_IDENTITY_FIELDS))
    umask = next((int(line.split()[1], 8) for line in lines if line.startswith(b"Umask:")),
                 0o022)
    with open(f"/proc/{pid}/cgroup", "rb") as f:
        cgroups = f.read()
    try:
        with open(f"/proc/{pid}/attr/current", "rb") as f:
            label = f.read()
    except OSError:  # no LSM that labels processes
        label = b""
    namespaces = []
    for name in _NAMESPACES:
        try:
            namespaces.append(os.readlink(f"/proc/{pid}/ns/{name}"))
        except FileNotFoundError:
            namespaces.append("")
    root = os.stat(f"/proc/{pid}/root")
    return (status, cgroups, label, tuple(namespaces), (root.st_dev, root.st_ino)), umask


def _source_stamps() -> dict[str, int]:
    """The modification time of each berth module this process has imported."""
    stamps = {}
    for name, module in list(sys.modules.items()):
        if name == "berth" or name.startswith("berth."):
            path = getattr(module, "__file__", None)
            if path:
                try:
                    stamps[path] = os.stat(path).st_mtime_ns
                except OSError:
                    stamps[path] = -1
    return stamps


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _die_with_parent(server_pid: int = 0) -> None:
    """A spare dies with its server (SIGKILL); a worker (``server_pid`` 0) outlives it, to
    finish its command."""
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL if server_pid else 0)
    if server_pid and os.getppid() != server_pid:
        os._exit(0)  # the server is already gone


def _command_name(args: list[str]) -> str:
    """The command a client's arguments name (``run`` in ``--root /s run -d img``), a key for
    what its pages are learned under (berth.runtime.prefault); "" for none."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--root", "--log-level", "-l"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return ""
