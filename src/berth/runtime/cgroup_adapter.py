"""How the runtime reaches the cgroup manager (``berth.runtime.cgroups``).

The runtime only calls the manager's interface (:class:`CgroupManager` below). While that
package is not installed, :class:`NoCgroups` stands in: no limits, no freezer, and the
container's processes found through its pid namespace instead of its cgroup, so ``kill --all``
and ``delete --force`` still reach every process.
"""

from __future__ import annotations

import os

from berth.errors import HostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class CgroupManager(Protocol):
        def create(self, resources: dict[str, Any] | None) -> None: ...
        def add_process(self, pid: int) -> None: ...
        def freeze(self) -> None: ...
        def thaw(self) -> None: ...
        def freezer_state(self) -> str: ...
        def update(self, resources: dict[str, Any]) -> None: ...
        def stats(self) -> dict[str, Any]: ...
        def pids(self) -> list[int]: ...
        def oom_killed(self) -> bool: ...
        def destroy(self) -> None: ...
        def to_state(self) -> dict[str, Any]: ...


_NONE = "none"
_BERTH = "berth"


def _real_module() -> Any:
    try:
        from berth.runtime import cgroups
    except ImportError:
        return None
    return cgroups


def open_manager(
    cgroups_path: str | None, container_id: str, resources: dict[str, Any] | None,
    *, keep_parents: bool = False,
) -> tuple[CgroupManager, list[str]]:
    """The manager for a new container, and notes for the log. ``keep_parents``: the
    parent cgroups its create makes stay after its destroy."""
    module = _real_module()
    if module is None:
        notes = ["berth.runtime.cgroups is not available: the container gets no cgroup"]
        if resources and any(k != "devices" for k in resources):
            notes.append(f"resource limits not applied: {', '.join(sorted(resources))}")
        return NoCgroups(), notes
    manager: CgroupManager = module.open_manager(cgroups_path, container_id,
                                                 keep_parents=keep_parents)
    return manager, []


def manager_state(manager: CgroupManager) -> dict[str, Any]:
    kind = _NONE if isinstance(manager, NoCgroups) else _BERTH
    return {"adapter": kind, "state": manager.to_state()}


def manager_from_state(state: dict[str, Any] | None) -> CgroupManager:
    if not state or state.get("adapter") == _NONE:
        return NoCgroups.from_state((state or {}).get("state") or {})
    module = _real_module()
    if module is None:
        raise HostError(
            "this container was created with berth.runtime.cgroups, which is not available now"
        )
    manager: CgroupManager = module.manager_from_state(state["state"])
    return manager


class NoCgroups:
    """No cgroup at all (see the module's doc)."""

    __slots__ = ("pid",)

    def __init__(self, pid: int = 0) -> None:
        self.pid = pid

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NoCgroups:
        return cls(int(state.get("pid", 0)))

    def create(self, resources: dict[str, Any] | None) -> None:
        del resources

    def add_process(self, pid: int) -> None:
        if not self.pid:
            self.pid = pid

    def _unsupported(self, what: str) -> HostError:
        return HostError(
            f"cannot {what}: berth.runtime.cgroups is not available, so the container has no "
            "cgroup"
        )

    def freeze(self) -> None:
        raise self._unsupported("pause the container")

    def thaw(self) -> None:
        raise self._unsupported("resume the container")

    def freezer_state(self) -> str:
        return "THAWED"

    def update(self, resources: dict[str, Any]) -> None:
        raise self._unsupported("update the container's resources")

    def stats(self) -> dict[str, Any]:
        return {}

    def pids(self) -> list[int]:
        """The processes in the init's pid namespace (just the init when it shares ours)."""
        if not self.pid:
            return []
        try:
            target = os.stat(f"/proc/{self.pid}/ns/pid").st_ino
        except OSError:
            return []
        if target == os.stat("/proc/self/ns/pid").st_ino:
            return [self.pid]
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}/ns/pid").st_ino == target:
                        found.append(int(name))
                except OSError:
                    continue
        return sorted(found)

    def oom_killed(self) -> bool:
        return False

    def destroy(self) -> None:
        pass

    def to_state(self) -> dict[str, Any]:
        return {"pid": self.pid}
