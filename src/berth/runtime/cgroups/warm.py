"""Keep the kernel's cgroup-migration lock warm while a container is being set up.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the kernel's
``cgroup_threadgroup_rwsem`` for writing. When nobody has taken it for a while, the kernel first
waits for an RCU grace period (``rcu_sync_enter``): 7-25 ms on these machines, most of what a
container's start spends joining its cgroups (runc and crun wait for it too). A writer that
comes within a grace period of the previous one does not wait.

So while berth prepares a container (mounting its rootfs, writing its spec), a thread of the
same process writes its own pid into its own cgroup every few milliseconds, a move that moves
nothing: the grace period passes in the background, and the real move of the container's init
finds the lock warm. The thread stops when told (once the init has joined) or after two
seconds, whichever comes first; a later :func:`start` starts it again.

In a fork server (``berth.cli.forkserver``) the server's own thread keeps it warm between
commands: it starts (or goes on for two more seconds) when the server starts and whenever a
spare takes a command, so that for the next command the grace period has passed before it
arrives. A spare starts its own only once it accepts a command (for a command after a quiet
spell, when the server's has run out: the grace period then passes while the command is read
and its container prepared), not while it waits: a thread waking every 3 ms costs ~40 µs of
CPU a wake-up on these machines, and a waiting thread in each spare was two more.

``BERTH_NO_WARM=1`` in the environment turns it off (``bench/bench_run.py`` measures both).
Only ``_thread`` is used (not ``threading``, which costs a millisecond or two to import on
``berth run``'s path).
"""

from __future__ import annotations

import _thread
import os
import time

INTERVAL = 0.003  # seconds between writes: well inside the shortest grace period seen (7 ms)
LIMIT = 2.0  # seconds: never longer than this, whatever happens to the caller
STACK_SIZE = 256 << 10

_flag: list[bool] = [False]  # the running thread's flag: it goes on while this is true
_deadline: list[float] = [0.0]  # and until this time.monotonic()


def start() -> None:
    """Start keeping the lock warm for :data:`LIMIT` seconds, or for :data:`LIMIT` seconds
    from now if it is kept warm already (a no-op if it cannot be)."""
    global _flag, _deadline
    if os.environ.get("BERTH_NO_WARM"):
        return
    if _flag[0]:
        _deadline[0] = time.monotonic() + LIMIT
        return
    path = own_procs_file()
    if path is None:
        return
    _flag = [True]
    _deadline = [time.monotonic() + LIMIT]
    # a small stack: the loop needs little, and a fork server's spare copies its memory
    # up front (berth.cli.forkserver), 8 MiB of default stack included
    default = _thread.stack_size(STACK_SIZE)
    try:
        _thread.start_new_thread(_keep_warm, (path, _flag, _deadline))
    finally:
        _thread.stack_size(default)


def stop() -> None:
    """Stop the thread (it ends at its next wake-up; nothing waits for it)."""
    _flag[0] = False


def _forked() -> None:
    """In a fork: the parent's thread is not here (a later start() starts one)."""
    global _flag
    _flag = [False]


os.register_at_fork(after_in_child=_forked)


def own_procs_file() -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup: a v1 controller hierarchy's if
    there is one (a hybrid host), else the v2 one; None when neither is mounted as expected."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:
            unified = path
            continue
        if controllers.startswith("name="):
            continue
        candidate = f"/sys/fs/cgroup/{controllers}{path.rstrip('/')}/cgroup.procs"
        if os.path.exists(candidate):
            return candidate
    if unified is not None:
        candidate = f"/sys/fs/cgroup{unified.rstrip('/')}/cgroup.procs"
        if os.path.exists(candidate):
            return candidate
    return None


def _keep_warm(path: str, flag: list[bool], deadline: list[float]) -> None:
    try:
        write_until(path, flag, deadline)
    finally:
        flag[0] = False  # done: a later start() starts again (a stop() meanwhile changes nothing)


def write_until(path: str, flag: list[bool], deadline: list[float]) -> None:
    """Write this process's pid into ``path`` (its own ``cgroup.procs``) every
    :data:`INTERVAL` while ``flag[0]`` is true, until ``deadline[0]`` (``time.monotonic()``,
    read at each write: :func:`start` moves it); the loop of :func:`start`'s thread
    (``bench/bench_run.py`` runs it with no deadline, ``[inf]``)."""
    pid = str(os.getpid()).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        while flag[0] and time.monotonic() < deadline[0]:
            os.write(fd, pid)
            time.sleep(INTERVAL)
    except OSError:
        return  # e.g. the process moved to a cgroup it may not write, or its fd was closed
        # under it (a fork server's worker lets go of its files): give up quietly
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
