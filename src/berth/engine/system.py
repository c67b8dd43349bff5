"""``engine.system``: disk usage, store checks, and what the host supports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.store.paths import StorePaths
from berth.store.store import Finding

if TYPE_CHECKING:
    from berth.engine import Engine


@dataclass(frozen=True, slots=True)
class UsageLine:
    type: str
    total: int
    active: int
    size: int
    reclaimable: int


class SystemService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def df(self) -> list[UsageLine]:
        """``docker system df``: shared layers are counted once."""
        db = self.engine.store.db
        with db.read() as conn:
            layer_size = {r[0]: r[1] for r in conn.execute("SELECT chain_id, size FROM layers")}
            image_layers: dict[str, set[str]] = {}
            for image_id, chain_id in conn.execute("SELECT image_id, chain_id FROM image_layers"):
                image_layers.setdefault(image_id, set()).add(chain_id)
            image_ids = [r[0] for r in conn.execute("SELECT id FROM images")]
            used_images = {r[0] for r in conn.execute("SELECT image_id FROM containers")}
            containers = conn.execute("SELECT status FROM containers").fetchall()
        all_layers: set[str] = set().union(*image_layers.values()) if image_layers else set()
        active_layers: set[str] = set()
        for image_id in image_ids:
            if image_id in used_images:
                active_layers |= image_layers.get(image_id, set())
        size = sum(layer_size.get(c, 0) for c in all_layers)
        reclaimable = sum(layer_size.get(c, 0) for c in all_layers - active_layers)
        active_images = sum(1 for i in image_ids if i in used_images)
        running = sum(1 for (status,) in containers if status in ("running", "paused"))
        return [
            UsageLine("Images", len(image_ids), active_images, size, reclaimable),
            UsageLine("Containers", len(containers), running, 0, 0),
            UsageLine("Local Volumes", 0, 0, 0, 0),
            UsageLine("Build Cache", 0, 0, 0, 0),
        ]

    def check(self, *, repair: bool = False) -> list[Finding]:
        return self.engine.store.check(repair=repair)

    def release_host(self) -> None:
        """Take everything this store has put on the host away: running containers, its
        supervisor and anchor, mounts, bridges, firewall table, cgroup parent and runtime
        state dir. The store's images, containers and volumes stay on disk."""
        import contextlib
        import shutil

        from berth.errors import BerthError

        paths = self.engine.paths
        containers = self.engine.containers
        for container in containers.list(all=True):
            if container.record.running:
                with contextlib.suppress(BerthError, OSError):
                    containers.stop(container, timeout=0, signal_name="KILL")
                    continue
            with contextlib.suppress(BerthError, OSError):
                state = container.record.state
                containers.launcher.finish(container.id, int(state.get("ExitCode") or 0))
        _stop_supervisor(paths)
        with contextlib.suppress(BerthError, OSError):
            self.engine.networks.manager.reset()
        with contextlib.suppress(ImportError, BerthError, OSError):
            from berth.runtime.cgroups import prune_parent

            prune_parent(paths.host_name("berth"))
        shutil.rmtree(paths.run_dir, ignore_errors=True)

    def reset(self) -> None:
        """``berth system reset``: release the host, then delete everything in the store."""
        import os
        import shutil

        self.release_host()
        root = self.engine.paths.root
        self.engine.close()
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def _stop_supervisor(paths: StorePaths) -> None:
    """Shut the store's supervisor and anchor down and wait until both are gone."""
    import contextlib
    import time

    from berth.errors import BerthError

    try:
        from berth.monitor.client import SupervisorClient
    except ImportError:
        return
    if not SupervisorClient.running(paths):
        return
    with contextlib.suppress(BerthError, OSError):
        SupervisorClient(paths).shutdown(force=True)
    deadline = time.monotonic() + 10
    while SupervisorClient.running(paths) and time.monotonic() < deadline:
        time.sleep(0.05)
