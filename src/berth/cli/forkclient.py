"""The client side of the fork server (:mod:`berth.cli.forkserver`): hand this process's command
line, environment and stdio to the server, which runs the command in a forked, pre-imported
worker; forward the signals this process receives; exit as the worker does.

This module is on every ``berth`` command's start path, so it imports nothing but the C modules
``posix``, ``_socket`` and ``_signal`` (``os`` costs ~1.5 ms under ``python -S``, and
``socket`` and ``signal`` import ``enum``), and it has no ``from __future__`` import (the
``__future__`` module is a real import). :func:`run` returns ``None`` whenever the command
should run in this process instead: no server (one is started for the next command), a server
that refuses (another namespace, other credentials, code changed since it started), or not
root. With ``BERTH_NO_FORKSERVER`` set, the entry point does not call it at all.

The protocol, on one unix stream connection:

- client to server: a 4-byte big-endian length, then the request: NUL-separated fields
  :data:`PROTOCOL`, the stdio fds sent (e.g. ``012``), the number of arguments, the arguments,
  then the environment's ``NAME=value`` entries; the stdio fds ride along as SCM_RIGHTS.
- server to client, one line each: ``A<pid>`` (accepted: worker ``pid`` runs it; a pidfd of
  the worker rides along as SCM_RIGHTS),
  ``R<reason>`` (refused: run it here), ``X<code>`` (the command's exit status), ``K<signal>``
  (the worker was killed by that signal).
- The client passes each signal it receives on to the worker (through that pidfd, so never to
  a later process with the same pid). The worker kills itself (SIGKILL) if this connection ends
  before its command does: what happens to a command whose process is killed.
"""

import _signal  # type: ignore[import-not-found]
import _socket
import posix
import sys

PROTOCOL = b"berth-fork-1"
DIR_ENV = "BERTH_FORKSERVER_DIR"
RUN_DIR = "/run/berth/forkserver"
# what the worker gets when this process gets it (SIGINT: Ctrl-C; SIGWINCH: a terminal resized;
# SIGTSTP and SIGCONT: Ctrl-Z and fg, which stop and resume the worker with this process; the
# others: a user, a shell or a supervisor stopping the command)
FORWARDED = (
    _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
    _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGTSTP, _signal.SIGCONT,
)
_ENOENT = 2
_ECONNREFUSED = 111


def socket_path() -> str:
    """Where the server for this process listens: one per interpreter (its version and
    directory: a virtual environment's ``bin``, whichever of its names started it), berth
    source tree and cgroup. So a server never runs another installation's code, and it lives
    (and its workers are accounted) in its clients' cgroup: a systemd service's commands get a
    server inside the service, which ends with it. ``BERTH_FORKSERVER_DIR`` moves the
    directory (a server of its own, for tests)."""
    key = _fnv1a(key_prefix() + own_cgroups())
    directory = posix.environ.get(DIR_ENV.encode())
    return f"{directory.decode(errors='surrogateescape') if directory else RUN_DIR}/{key}.sock"


def key_prefix() -> bytes:
    """What names this installation's server, before its cgroup: the interpreter's directory
    and version, and the berth package's directory (the compiled client, ``forkclient.c``,
    has it built in)."""
    here = __file__ if __file__.startswith("/") else f"{posix.getcwd()}/{__file__}"
    package = here.rsplit("/", 2)[0]  # .../berth, from .../berth/cli/forkclient.py
    interpreter = sys.executable.rsplit("/", 1)[0] + "\0" + sys.version
    return _encode(interpreter) + b"\0" + _encode(package) + b"\0"


def own_cgroups() -> bytes:
    """/proc/self/cgroup: this process's cgroup in each hierarchy."""
    try:
        fd = posix.open("/proc/self/cgroup", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return b""
    try:
        chunks = []
        while chunk := posix.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        posix.close(fd)


def running_servers(directory: str | None = None) -> list[int]:
    """The pids of the servers whose lock files are in ``directory`` (default: where this
    process's would be) and that still run: for tests, benchmarks and scripts that end the
    servers they started (by pid)."""
    directory = directory or socket_path().rsplit("/", 1)[0]
    try:
        names = sorted(posix.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if name.endswith(".lock"):
            pid = _read_pid(f"{directory}/{name}")
            if pid and _running(pid):
                found.append(pid)
    return found


def _read_pid(path: str) -> int:
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return 0
    try:
        text = posix.read(fd, 64).strip()
    finally:
        posix.close(fd)
    return int(text) if text.isdigit() else 0


def _running(pid: int) -> bool:
    """``pid`` exists and has not ended (a zombie waiting for its parent has)."""
    try:
        fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        stat = posix.read(fd, 4096)
    finally:
        posix.close(fd)
    return stat.rsplit(b")", 1)[-1].split()[:1] != [b"Z"]


def _encode(text: str) -> bytes:
    """What os.fsencode does (a UTF-8 file system encoding, as on Linux)."""
    return text.encode("utf-8", "surrogateescape")


def _fnv1a(data: bytes) -> str:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def run(args: list[str]) -> int | None:
    """Run ``berth ARGS`` in the fork server; its exit status, or None to run it here."""
    if posix.geteuid() != 0:  # (berth.cli.entry does not call it with BERTH_NO_FORKSERVER)
        return None
    path = socket_path()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as error:
        sock.close()
        if error.errno in (_ENOENT, _ECONNREFUSED):  # none runs (or it died: a stale socket)
            start_server()
        return None
    return _Session(sock).run(args)


class _Session:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.accepted = False
        self.worker = -1  # a pidfd of the worker
        self.pending: list[int] = []  # signals that came before the server said yes or no

    def run(self, args: list[str]) -> int | None:
        for signum in FORWARDED:
            _signal.signal(signum, self._forward)
        try:
            self._send_request(args)
            return self._wait()
        except OSError:
            if self.accepted:
                posix.write(2, b"Error: lost the connection to the berth fork server running "
                            b"this command\n")
                return 125
            return self._refused()

    def _send_request(self, args: list[str]) -> None:
        fds = [fd for fd in (0, 1, 2) if _is_open(fd)]
        fields = [PROTOCOL, "".join(map(str, fds)).encode(), str(len(args)).encode()]
        fields += [_encode(arg) for arg in args]
        fields += [key + b"=" + value for key, value in posix.environ.items()]
        payload = b"\0".join(fields)
        data = len(payload).to_bytes(4, "big") + payload
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)] if rights else []
        sent = self.sock.sendmsg([data], ancillary)
        if sent < len(data):
            self.sock.sendall(data[sent:])

    def _wait(self) -> int | None:
        buffer = b""
        while True:
            chunk, ancillary, _, _ = self.sock.recvmsg(4096, _socket.CMSG_SPACE(4))
            for level, type_, data in ancillary:  # the worker's pidfd, with "A"
                if level == _socket.SOL_SOCKET and type_ == _socket.SCM_RIGHTS:
                    self.worker = int.from_bytes(data[:4], sys.byteorder, signed=True)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                kind, value = line[:1], line[1:]
                if kind == b"A":
                    self.accepted = True
                    for signum in self.pending:
                        self._forward(signum, None)
                elif kind == b"R":
                    from berth import trace

                    trace.mark("the fork server refused: " + value.decode(errors="replace"))
                    return self._refused()
                elif kind == b"X":
                    return int(value)
                elif kind == b"K":
                    _die_by(int(value))
        if not self.accepted:
            return self._refused()
        posix.write(2, b"Error: the berth fork server running this command ended before the "
                    b"command did, so its outcome is unknown (BERTH_NO_FORKSERVER=1 runs "
                    b"each command in its own process)\n")
        return 125

    def _forward(self, signum: int, frame: object) -> None:
        del frame
        if not self.accepted:
            if signum != _signal.SIGCONT:
                self.pending.append(signum)
            return
        # The worker's process group is the server's, orphaned: the kernel drops SIGTSTP there.
        # So Ctrl-Z stops it with SIGSTOP, and this process after it.
        stop = signum == _signal.SIGTSTP
        try:
            if self.worker >= 0:
                _signal.pidfd_send_signal(self.worker, _signal.SIGSTOP if stop else signum)
        except OSError:
            pass  # the worker is gone: its status is on its way
        if stop:
            posix.kill(posix.getpid(), _signal.SIGSTOP)

    def _refused(self) -> int | None:
        """Handle signals as a fresh interpreter does again, and raise those that came."""
        self.sock.close()
        for signum in FORWARDED:
            default = _signal.default_int_handler if signum == _signal.SIGINT else _signal.SIG_DFL
            _signal.signal(signum, default)
        for signum in self.pending:
            posix.kill(posix.getpid(), signum)
        return None


def _is_open(fd: int) -> bool:
    try:
        posix.fstat(fd)
    except OSError:
        return False
    return True


def _die_by(signum: int) -> None:
    """End this process as the worker ended: killed by ``signum``."""
    _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
    posix.kill(posix.getpid(), signum)
    posix._exit(128 + signum)


def start_server() -> None:
    """Start this installation's fork server in the background for the next command (this one
    runs in its own process). The server takes a lock first: of several started at once, one
    stays."""
    try:
        _make_dirs(socket_path().rsplit("/", 1)[0])
        null = posix.open("/dev/null", posix.O_RDWR | posix.O_CLOEXEC)
        try:
            posix.posix_spawn(
                sys.executable,
                [sys.executable, "-S", "-c", _SERVER_MAIN, *sys.path],
                {k: v for k, v in posix.environ.items() if k != b"BERTH_TRACE"},
                file_actions=[(posix.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)],
                setsid=True,
            )
        finally:
            posix.close(null)
    except OSError:
        pass  # no server: every command runs in its own process, as without one


def _make_dirs(path: str) -> None:
    """``mkdir -p`` (0700 for what it creates)."""
    if not path or path == "/":
        return
    try:
        posix.stat(path)
        return
    except FileNotFoundError:
        pass
    _make_dirs(path.rsplit("/", 1)[0])
    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        pass


# the server's command line: this process's sys.path, so that it imports the same berth
_SERVER_MAIN = (
    "import sys; sys.path[:] = sys.argv[1:]; "
    "from berth.cli.forkserver import main; sys.exit(main())"
)
