"""Namespaces: which to create and which to join, and the fork that puts a process in them.

A new pid namespace only applies to the children of the process that creates it, so the
container's init has to be forked after that. Two ways, both without re-executing Python:

* No user namespace involved (the usual case): the *calling thread* switches its
  "pid namespace for children" (``unshare(CLONE_NEWPID)`` or ``setns`` to a pid namespace path),
  forks, and switches back to its own pid namespace with ``setns``. Only that thread is touched,
  so this works inside a multi-threaded program, and the child is the caller's own child.
* With a user namespace (created or joined), the namespaces the container creates must be owned
  by it, and only a single-threaded process may enter one. The caller forks an intermediate
  process, which enters or creates the user namespace (the caller writes its uid/gid maps),
  then the pid namespace, then forks the init with ``CLONE_PARENT`` so that the init is still
  the caller's child (the caller reaps it and reads its exit status), and exits.

In both cases the forked process is non-dumpable from its first instruction: the caller marks
itself non-dumpable around the fork (dumpability is inherited), so a process already in the
container never sees a dumpable copy of the runtime in ``/proc``.

The rest of the namespaces (ipc, uts, network, mount, cgroup) are joined or created by the
child itself, after the caller has placed it in its cgroup (see :func:`enter_remaining`).
"""

from __future__ import annotations

import os

from berth.errors import ContainerError, HostError, InvalidArgument
from berth.runtime import syscalls
from berth.runtime.sync import MSG_GO, MSG_PID, MSG_USERNS, Channel, ChannelPair, error_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NS_FLAGS = {
    "pid": syscalls.CLONE_NEWPID,
    "network": syscalls.CLONE_NEWNET,
    "mount": syscalls.CLONE_NEWNS,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
    "user": syscalls.CLONE_NEWUSER,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "time": syscalls.CLONE_NEWTIME,
}
# the names under /proc/PID/ns/
PROC_NS_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}
# the order the child joins namespaces in (user and pid are handled before the fork); mount
# last, since joining it moves the root and cwd
_JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "mount")


class NamespacePlan:
    """The namespaces of one process: ``create`` (types to make) and ``join`` (type -> fd of
    the namespace file, opened in the caller before the fork)."""

    __slots__ = ("create", "gid_mappings", "join", "uid_mappings")

    def __init__(self) -> None:
        self.create: set[str] = set()
        self.join: dict[str, int] = {}
        self.uid_mappings: list[dict[str, int]] = []
        self.gid_mappings: list[dict[str, int]] = []

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> NamespacePlan:
        """The plan for a new container: open every ``path`` namespace now (host paths)."""
        plan = cls()
        linux = spec.get("linux") or {}
        try:
            for ns in linux.get("namespaces") or []:
                kind = ns["type"]
                if kind == "time":
                    raise InvalidArgument(
                        "the time namespace is not supported by berth-runtime yet",
                        hint="remove it from linux.namespaces",
                    )
                path = ns.get("path")
                if path:
                    plan.join[kind] = _open_ns(path, kind)
                else:
                    plan.create.add(kind)
        except BaseException:
            plan.close()
            raise
        plan.uid_mappings = list(linux.get("uidMappings") or [])
        plan.gid_mappings = list(linux.get("gidMappings") or [])
        if "user" in plan.create and not (plan.uid_mappings and plan.gid_mappings):
            plan.close()
            raise InvalidArgument(
                "a new user namespace needs linux.uidMappings and linux.gidMappings",
                hint="map at least the container's root, e.g. "
                '{"containerID": 0, "hostID": 100000, "size": 65536}',
            )
        return plan

    @classmethod
    def for_process_in(cls, pid: int, kinds: list[str]) -> NamespacePlan:
        """The plan for ``exec``: join each namespace ``kind`` of process ``pid`` that differs
        from ours."""
        plan = cls()
        try:
            for kind in kinds:
                name = PROC_NS_NAMES[kind]
                target = f"/proc/{pid}/ns/{name}"
                try:
                    if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                        continue
                except FileNotFoundError:
                    raise ContainerError(
                        f"the container's init (pid {pid}) has exited; cannot join its {kind} "
                        "namespace"
                    ) from None
                plan.join[kind] = _open_ns(target, kind)
        except BaseException:
            plan.close()
            raise
        return plan

    @property
    def uses_userns(self) -> bool:
        return "user" in self.create or "user" in self.join

    def close(self) -> None:
        for fd in self.join.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.join = {}

    def fds(self) -> list[int]:
        return list(self.join.values())


def _open_ns(path: str, kind: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(
            f"cannot open the {kind} namespace {path}: {exc.strerror}",
            hint="the path must name a namespace file such as /proc/PID/ns/net or a bind mount "
            "of one",
        ) from None


def format_id_map(mappings: list[dict[str, int]]) -> str:
    """The text written to ``/proc/PID/uid_map`` or ``gid_map``."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid: int, plan: NamespacePlan) -> None:
    """Write the uid and gid maps of ``pid``'s new user namespace (from the parent)."""
    for name, mappings in (("uid_map", plan.uid_mappings), ("gid_map", plan.gid_mappings)):
        path = f"/proc/{pid}/{name}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, format_id_map(mappings).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise ContainerError(
                f"cannot write {name} {format_id_map(mappings)!r} for the container: "
                f"{exc.strerror}",
                hint="each mapping must be within the ids this user may map (see "
                "/etc/subuid and /etc/subgid), without overlaps",
            ) from None


class _NsForChildren:
    """Switch the calling thread's pid namespace for children, and switch it back."""

    __slots__ = ("_saved",)

    def __init__(self) -> None:
        self._saved = -1

    def enter(self, plan: NamespacePlan) -> None:
        if "pid" not in plan.create and "pid" not in plan.join:
            return
        self._saved = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if "pid" in plan.join:
                syscalls.setns(plan.join["pid"], syscalls.CLONE_NEWPID)
            else:
                syscalls.unshare(syscalls.CLONE_NEWPID)
        except OSError as exc:
            self.leave()
            raise HostError(f"cannot make a pid namespace for the container: {exc}") from None

    def leave(self) -> None:
        if self._saved >= 0:
            try:
                syscalls.setns(self._saved, syscalls.CLONE_NEWPID)
            finally:
                os.close(self._saved)
                self._saved = -1


def fork_into(plan: NamespacePlan, pair: ChannelPair) -> tuple[int, Channel]:
    """Fork a process in the plan's user and pid namespaces.

    Returns ``(pid, channel)`` in the caller, ``(0, channel)`` in the new process. The new
    process is the caller's child in both cases, and is non-dumpable.
    """
    dumpable = syscalls.prctl(syscalls.PR_GET_DUMPABLE)
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
    pid = -1
    try:
        if plan.uses_userns:
            pid, channel = _fork_via_intermediate(plan, pair)
            return pid, channel
        switch = _NsForChildren()
        switch.enter(plan)
        try:
            pid = os.fork()
        except BaseException:
            switch.leave()
            raise
        if pid == 0:
            try:
                return 0, pair.child_side()
            except BaseException:
                os._exit(1)
        switch.leave()
        return pid, pair.parent_side()
    finally:
        # only the caller gets its dumpability back; the child stays non-dumpable
        if dumpable and pid != 0:
            try:
                syscalls.prctl(syscalls.PR_SET_DUMPABLE, dumpable)
            except OSError:
                pass


def _fork_via_intermediate(plan: NamespacePlan, pair: ChannelPair) -> tuple[int, Channel]:
    pid = os.fork()
    if pid == 0:
        channel = pair.child_side()
        try:
            child = _intermediate(plan, channel)
        except BaseException as exc:
            try:
                channel.send("error", **error_message(exc))
            finally:
                os._exit(1)
        if child == 0:
            return 0, channel
        os._exit(0)
    channel = pair.parent_side()
    try:
        if "user" in plan.create:
            channel.expect(MSG_USERNS, "user namespace setup")
            write_id_maps(pid, plan)
            channel.send(MSG_GO)
        container_pid = int(channel.expect(MSG_PID, "namespace setup")["pid"])
    finally:
        os.waitpid(pid, 0)
    return container_pid, channel


def _intermediate(plan: NamespacePlan, channel: Channel) -> int:
    """In the intermediate child: user namespace, pid namespace, then fork the init."""
    if "user" in plan.join:
        syscalls.setns(plan.join["user"], syscalls.CLONE_NEWUSER)
    else:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        channel.send(MSG_USERNS)
        channel.expect(MSG_GO, "user namespace setup")
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as exc:
        raise InvalidArgument(
            f"cannot become root in the container's user namespace: {exc.strerror}",
            hint="map the container's uid 0 and gid 0 in uidMappings and gidMappings",
        ) from None
    if "pid" in plan.join:
        syscalls.setns(plan.join["pid"], syscalls.CLONE_NEWPID)
    elif "pid" in plan.create:
        syscalls.unshare(syscalls.CLONE_NEWPID)
    child = syscalls.clone_parent()
    if child:
        channel.send(MSG_PID, pid=child)
    return child


def enter_remaining(plan: NamespacePlan, entered: frozenset[str] = frozenset()) -> None:
    """In the new process: join the path namespaces, then create the new ones (neither user
    nor pid, which :func:`fork_into` handled, nor those in ``entered``, which the process
    made before it had a container: see :mod:`berth.runtime.preforked`)."""
    for kind in _JOIN_ORDER:
        fd = plan.join.get(kind)
        if fd is not None:
            try:
                syscalls.setns(fd, NS_FLAGS[kind])
            except OSError as exc:
                raise ContainerError(f"cannot join the {kind} namespace: {exc.strerror}") from None
    made = sorted(k for k in plan.create if k not in ("user", "pid") and k not in entered)
    if made:
        flags = 0
        for kind in made:
            flags |= NS_FLAGS[kind]
        try:
            syscalls.unshare(flags)
        except OSError as exc:
            kinds = ", ".join(made)
            raise HostError(f"cannot create the {kinds} namespaces: {exc.strerror}") from None
    plan.close()
