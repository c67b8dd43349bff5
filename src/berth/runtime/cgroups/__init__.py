"""Control groups for containers: limits, freezing, stats and cleanup, on cgroup v1 and v2.

    manager = open_manager(spec["linux"].get("cgroupsPath"), container_id, parent="berth")
    manager.create(spec["linux"].get("resources"))
    manager.add_process(pid)
    state["cgroup"] = manager.to_state()
    ...
    manager = manager_from_state(state["cgroup"])
    manager.kill_all(signal.SIGKILL)
    manager.destroy()

The layout (v1, v1 with a v2 hybrid, or pure v2) is found at run time from
``/proc/self/mountinfo``. ``cgroupsPath`` may be absolute (``/berth-1a2b3c/<id>``: under the
hierarchy's root), relative (under the runtime's own cgroup on v1, under its parent on v2),
or absent (``/<parent>/<id>``). The systemd driver's ``slice:prefix:name`` form is refused.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping

from berth.errors import InvalidArgument
from berth.runtime.cgroups.common import (
    MOUNTINFO,
    PROC_CGROUP,
    REAL_FS,
    CgroupFS,
    CgroupManager,
    Layout,
    detect_layout,
    join_cgroup,
    own_cgroups,
    parse_mountinfo,
    resolve_cgroups_path,
    shares_to_weight,
)
from berth.runtime.cgroups.v1 import V1Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.runtime.cgroups.v2 import V2Manager

__all__ = [
    "CgroupFS",
    "CgroupManager",
    "Layout",
    "V1Manager",
    "V2Manager",
    "detect_layout",
    "manager_from_state",
    "open_manager",
    "parse_mountinfo",
    "prune_parent",
    "read_layout_ahead",
    "resolve_cgroups_path",
    "shares_to_weight",
]


def _placed(path: str, own: Mapping[str, str], key: str, *, parent_of_own: bool) -> str:
    """An absolute cgroup path: ``path`` itself, or under the runtime's own cgroup."""
    if path.startswith("/"):
        return path
    base = own.get(key, "/") or "/"
    if parent_of_own:
        base = posixpath.dirname(base.rstrip("/")) or "/"
    return posixpath.join(base, path)


_layout_ahead: tuple[int, Layout] | None = None  # (the pid that read it, the layout)


def read_layout_ahead() -> None:
    """Read this host's layout now, for this process's next :func:`open_manager` (a fork
    server's spare, while it waits for a command: parsing mountinfo is ~0.5 ms of
    ``berth run``). Used once; later managers read it afresh."""
    global _layout_ahead
    _layout_ahead = (os.getpid(), detect_layout(MOUNTINFO))


def _host_layout() -> Layout:
    global _layout_ahead
    ahead, _layout_ahead = _layout_ahead, None
    if ahead is not None and ahead[0] == os.getpid():
        return ahead[1]
    return detect_layout(MOUNTINFO)


def open_manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    parent: str = "berth",
    layout: Layout | None = None,
    fs: CgroupFS | None = None,
    proc_cgroup: str = PROC_CGROUP,
    keep_parents: bool = False,
) -> CgroupManager:
    """The manager for a container's cgroup (nothing is created until ``.create()``).

    ``layout`` and ``fs`` default to this host's; tests pass a :class:`Layout` pointing at a
    fake tree and a :class:`CgroupFS` that behaves like the kernel's. ``keep_parents``: the
    parents ``.create()`` makes stay after ``.destroy()`` (see ``CgroupManager``).
    """
    manager = _open_manager(cgroups_path, container_id, parent, layout, fs, proc_cgroup)
    manager.keep_parents = keep_parents
    return manager


def _open_manager(cgroups_path: str | None, container_id: str, parent: str,
                  layout: Layout | None, fs: CgroupFS | None, proc_cgroup: str
                  ) -> CgroupManager:
    path = resolve_cgroups_path(cgroups_path, container_id, parent)
    layout = layout or _host_layout()
    own = own_cgroups(proc_cgroup) if not path.startswith("/") else {}
    if layout.mode == "v2":
        from berth.runtime.cgroups.v2 import V2Manager

        assert layout.unified is not None
        absolute = _placed(path, own, "", parent_of_own=True)
        directory = join_cgroup(layout.unified, layout.unified_root, absolute)
        return V2Manager(absolute, layout.unified, directory, fs=fs)
    dirs: dict[str, str] = {}
    for controller, mount in layout.v1.items():
        absolute = _placed(path, own, controller, parent_of_own=False)
        dirs[controller] = join_cgroup(mount, layout.v1_roots.get(controller, "/"), absolute)
    unified_dir = None
    if layout.mode == "hybrid" and layout.unified is not None:
        absolute = _placed(path, own, "", parent_of_own=True)
        unified_dir = join_cgroup(layout.unified, layout.unified_root, absolute)
    shown = path if path.startswith("/") else _placed(path, own, "memory", parent_of_own=False)
    return V1Manager(shown, dirs, dict(layout.v1), unified_dir=unified_dir,
                     unified_mount=layout.unified if unified_dir else None, fs=fs)


def manager_from_state(state: Mapping[str, Any], *, fs: CgroupFS | None = None
                       ) -> CgroupManager:
    """The manager a ``.to_state()`` dict describes (or a container state holding one under
    ``"cgroup"``)."""
    if "cgroup" in state and isinstance(state["cgroup"], Mapping):
        state = state["cgroup"]
    version = state.get("version")
    if version == 1:
        return V1Manager.from_state(state, fs)
    if version == 2:
        from berth.runtime.cgroups.v2 import V2Manager

        return V2Manager.from_state(state, fs)
    raise InvalidArgument(f"not a cgroup state: version {version!r}",
                          hint="pass what CgroupManager.to_state() returned")


def prune_parent(parent: str, *, layout: Layout | None = None,
                 fs: CgroupFS | None = None) -> None:
    """Remove the parent cgroup ``/<parent>`` from every hierarchy where it is empty (for
    ``system prune`` and tests; a parent that still holds containers stays)."""
    layout = layout or detect_layout(MOUNTINFO)
    fs = fs or REAL_FS
    path = "/" + parent.strip("/")
    if path == "/":
        raise InvalidArgument("prune_parent needs a parent cgroup name, not the root")
    mounts = list(layout.v1.items())
    if layout.unified:
        mounts.append(("", layout.unified))
    directories = [
        join_cgroup(mount, layout.v1_roots.get(key, "/") if key else layout.unified_root, path)
        for key, mount in mounts
    ]
    # where runc and crun (``--runtime``) also put containers: berth's runtime does not
    directories += [join_cgroup(mount, root, path) for mount, root in layout.named.values()]
    for directory in directories:
        try:
            fs.rmdir(directory)
        except OSError:
            continue


def __getattr__(name: str) -> object:
    """``V2Manager`` is imported when first asked for: a v1 or hybrid host never needs it."""
    if name == "V2Manager":
        from berth.runtime.cgroups.v2 import V2Manager

        return V2Manager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
