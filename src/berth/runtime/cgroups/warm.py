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

The fork server's spare (``berth.cli.forkserver``) starts it as soon as it is forked, so that
for a command it serves the grace period has passed before the command even arrives, and
again when a connection comes after those two seconds (a quiet host): the grace period then
passes while the command is read and its container prepared.

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


def start() -> None:
    """Start keeping the lock warm (a no-op if it is kept warm already or cannot be)."""
    global _flag
    if _flag[0] or os.environ.get("BERTH_NO_WARM"):
        return
    path = own_procs_file()
    if path is None:
        return
    _flag = [True]
    # a small stack: the loop needs little, and a fork server's spare copies its memory
    # up front (berth.cli.forkserver), 8 MiB of default stack included
    default = _thread.stack_size(STACK_SIZE)
    try:
        _thread.start_new_thread(_keep_warm, (path, _flag))
    finally:
        _thread.stack_size(default)


def stop() -> None:
    """Stop the thread (it ends at its next wake-up; nothing waits for it)."""
    _flag[0] = False


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


def _keep_warm(path: str, flag: list[bool]) -> None:
    try:
        write_until(path, flag, time.monotonic() + LIMIT)
    finally:
        flag[0] = False  # done: a later start() starts again (a stop() meanwhile changes nothing)


def write_until(path: str, flag: list[bool], deadline: float) -> None:
    """Write this process's pid into ``path`` (its own ``cgroup.procs``) every
    :data:`INTERVAL` while ``flag[0]`` is true, until ``deadline`` (``time.monotonic()``);
    the loop of :func:`start`'s thread (``bench/bench_run.py`` runs it with no deadline)."""
    pid = str(os.getpid()).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        while flag[0] and time.monotonic() < deadline:
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
