"""A fork server's worker becoming a client's ``berth`` command (:mod:`berth.cli.forkserver`).

The worker is a fork of the server: berth imported, nothing else. It takes on what the client's
own process would have had: the client's stdio as fds 0-2 (and fresh ``sys.std*`` streams on
them), its working directory, umask, rlimits, priority, CPU affinity, environment and
arguments. It runs the command as the ``berth`` process would (``berth.cli.main``), does what an
interpreter does at exit, reports the exit status to the client and ends. The client passes on
to the worker the signals it receives (through a pidfd); if the client dies first, so does the
worker. What an exiting process would let go of (the store's databases, the trees the command
left to remove, its fds and working directory) it lets go of before the status, so that an
unmount right after the command succeeds; or, when all of it is on the root filesystem's own
mount (which no one unmounts), after it: the database's closing checkpoint syncs it, ~1-2 ms
the client need not wait for.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import resource
import signal
import socket
import sys

from berth import trace
from berth.cli import main as cli_main
from berth.runtime import mounts
from berth.runtime.cgroups import warm
from berth.store import db, trees

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

_RLIMITS = tuple(getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_"))


class Request:
    """What a client asks: its stdio fds (which of 0-2 it sent, and the received fds), its
    arguments and environment, and its pid (from the connection's credentials)."""

    def __init__(
        self, sent: str, fds: list[int], args: list[str], env: dict[str, str], pid: int
    ) -> None:
        self.sent = sent
        self.fds = fds
        self.args = args
        self.env = env
        self.pid = pid
        self.umask = 0o022  # read with the client's credentials (berth.cli.forkserver)


def run(conn: socket.socket, request: Request) -> int:
    """Become the client's command and run it; its exit status (also sent to the client)."""
    try:
        _take_stdio(request.sent, request.fds)
        _take_process_attributes(request.pid, request.umask)
        _take_environment(request.env)
        trees.defer_removals()  # to the command's end, beside the database's close
        if os.environ.get("BERTH_NO_WARM"):
            warm.stop()  # the spare's (berth.cli.forkserver)
        sys.argv = ["berth", *request.args]
        sys.dont_write_bytecode = bool(request.env.get("PYTHONDONTWRITEBYTECODE"))
        _reseed()
        _listen_to_client(conn)
    except Exception as error:  # the client is told, and runs nothing
        os.write(2, f"Error: the berth fork server could not take on this command ({error}); "
                    "BERTH_NO_FORKSERVER=1 runs each command in its own process\n".encode())
        return 125
    trace.restart(bool(request.env.get("BERTH_TRACE")))
    trace.mark("forked by the fork server")
    preloaded = set(sys.modules) if trace.ENABLED else set()
    try:
        code = cli_main.run_command(request.args)
        if trace.ENABLED:
            trace.mark("worker imported: " + " ".join(sorted(set(sys.modules) - preloaded)))
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except KeyboardInterrupt:
        code = 130
    try:
        _finish_like_an_interpreter()
    except KeyboardInterrupt:
        code = 130
    _release_stdio()
    if _only_on_the_root_filesystem(db.open_paths() + trees.deferred_paths()):
        # none of it can be unmounted: the status first, the rest off the client's time
        os.chdir("/")
        _stop_listening(conn)
        _report(conn, code)
        _let_go_of_files(conn.fileno())
    else:
        _let_go_of_files(conn.fileno())
        _report(conn, code)
    return code


def _report(conn: socket.socket, code: int) -> None:
    try:
        conn.setblocking(True)
        conn.sendall(b"X%d\n" % code)
    except OSError:
        pass


def _only_on_the_root_filesystem(paths: list[str]) -> bool:
    """Whether each of ``paths`` (the stores' databases and trees the command left to close
    and remove) is on the root filesystem's own mount, which no one can unmount: then they
    may be let go of after the client is told its status (~1-2 ms it need not wait: the
    database's closing checkpoint syncs it). On any other mount they are let go of first, so
    that an unmount right after the command does not find them busy."""
    if not paths:
        return False
    try:
        mountinfo = mounts.read_mountinfo()
    except OSError:
        return False
    return all(mounts.mount_point_of(os.path.realpath(path), mountinfo) == "/" for path in paths)


def _stop_listening(conn: socket.socket) -> None:
    """No SIGIO from the client's end closing any more (see :func:`_listen_to_client`): once
    it has its status it ends, and this process finishes what it has left to do."""
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        flags = fcntl.fcntl(conn.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, flags & ~os.O_ASYNC)
    except OSError:
        pass


def _take_environment(env: dict[str, str]) -> None:
    """The client's environment (mostly the same as the server's: set what differs)."""
    environ = os.environ
    for key in [key for key in environ if key not in env]:
        del environ[key]
    for key, value in env.items():
        if environ.get(key) != value:
            environ[key] = value


def _take_stdio(sent: str, fds: list[int]) -> None:
    """The client's stdio as fds 0-2; /dev/null for one it did not send (a closed fd there
    would go to the next file this command opens, see :mod:`berth.stdfds`)."""
    received = dict(zip((int(c) for c in sent), fds, strict=True))
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for target in (0, 1, 2):
            os.dup2(received.get(target, null), target)
    finally:
        os.close(null)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    fds.clear()
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        stream = _text_stream(fd, "r" if fd == 0 else "w")
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _text_stream(fd: int, mode: str) -> IO[Any]:
    """A standard stream as the interpreter makes one: line-buffered on a terminal."""
    template = sys.__stderr__ if fd == 2 else sys.__stdout__
    encoding = getattr(template, "encoding", None) or "utf-8"
    errors = "backslashreplace" if fd == 2 else (getattr(template, "errors", None) or "strict")
    tty = os.isatty(fd)
    return open(fd, mode, buffering=1 if tty and mode == "w" else -1, encoding=encoding,
                errors=errors, closefd=False)


def _take_process_attributes(pid: int, umask: int) -> None:
    """The client's working directory, umask, rlimits, priority and CPU affinity."""
    cwd = os.open(f"/proc/{pid}/cwd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(cwd)
    finally:
        os.close(cwd)
    os.umask(umask)
    for limit in _RLIMITS:
        try:
            wanted = resource.prlimit(pid, limit)
            if wanted != resource.getrlimit(limit):
                resource.setrlimit(limit, wanted)
        except (OSError, ValueError):
            pass  # a hard limit above this process's: keep its own
    try:
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, pid))
        os.sched_setaffinity(0, os.sched_getaffinity(pid))
    except OSError:
        pass


def _reseed() -> None:
    """A fork copies the random generators' state: give this worker its own."""
    random = sys.modules.get("random")
    if random is not None:
        random.seed()


def _listen_to_client(conn: socket.socket) -> None:
    """Die by SIGKILL when the client's end of the connection closes first: its process was
    killed (SIGIO tells; the client sends nothing more, it signals this process directly)."""
    conn.setblocking(False)

    def on_io(signum: int, frame: object) -> None:
        del signum, frame
        while True:
            try:
                chunk = conn.recv(256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                os.kill(os.getpid(), signal.SIGKILL)

    signal.signal(signal.SIGIO, on_io)
    fcntl.fcntl(conn.fileno(), fcntl.F_SETOWN, os.getpid())
    flags = fcntl.fcntl(conn.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, flags | os.O_ASYNC)
    on_io(signal.SIGIO, None)  # what came before SIGIO was set up


def _finish_like_an_interpreter() -> None:
    """What the interpreter does at exit that the command may rely on: wait for its non-daemon
    threads, run its atexit functions, flush the standard streams."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _release_stdio() -> None:
    """Let go of the client's stdio before it exits, as its own process would: a reader of
    its output (``berth ... | cat``) sees the end when the client ends, not when this
    process has also finished exiting."""
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _let_go_of_files(keep: int) -> None:
    """What the process's exit would let go of, let go of before the client is told the
    status (the exit itself comes a little later): the store's databases (SQLite maps a file
    of theirs), every fd but ``keep``, and the client's working directory. Else unmounting a
    filesystem right after the command could find it busy.

    The last connection's close checkpoints the database, and syncs it (~1 ms); SQLite lets
    go of the GIL meanwhile, so the trees the command left to remove (a ``run --rm``'s
    container dir, moved into the trash: :func:`berth.store.trees.remove_tree_soon`) are
    removed beside it."""
    warm.stop()  # its thread's fd goes too: it stops at its next write
    closed = _thread.allocate_lock()
    closed.acquire()
    _thread.start_new_thread(_close_databases, (closed,))
    trees.remove_deferred()
    closed.acquire()
    os.chdir("/")
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 20)


def _close_databases(closed: _thread.LockType) -> None:
    try:
        db.close_all()
    finally:
        closed.release()


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except (OSError, ValueError, AttributeError):
        pass
    return 1
