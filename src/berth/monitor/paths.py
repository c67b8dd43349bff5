"""Where the supervisor of a store keeps its runtime state (all under the store's run dir).

    <run_dir>/supervisor.sock        the socket CLIs talk to
    <run_dir>/supervisor.log         the supervisor's and the anchor's own messages
    <run_dir>/supervisor.pid         "PID" of the running supervisor (information only)
    <run_dir>/start.lock             flock: one CLI at a time starts a supervisor
    <run_dir>/anchor.lock            flock held by the anchor (and its supervisor) while alive
    <run_dir>/berth-anchor           the anchor binary, copied from the package
    <run_dir>/containers/<id>/       per supervised container: stdout, stderr, stdin FIFOs and
                                     supervised.json (pid, pid start: what a new supervisor
                                     re-adopts)

The run dir is a tmpfs (``/run``): after a reboot none of this exists, which is how a new
supervisor tells "the host restarted" from "the supervisor restarted".
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MonitorPaths:
    run_dir: str

    @property
    def socket(self) -> str:
        return os.path.join(self.run_dir, "supervisor.sock")

    @property
    def log(self) -> str:
        return os.path.join(self.run_dir, "supervisor.log")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.run_dir, "supervisor.pid")

    @property
    def start_lock(self) -> str:
        return os.path.join(self.run_dir, "start.lock")

    @property
    def anchor_lock(self) -> str:
        return os.path.join(self.run_dir, "anchor.lock")

    @property
    def anchor_binary(self) -> str:
        return os.path.join(self.run_dir, "berth-anchor")

    @property
    def containers(self) -> str:
        return os.path.join(self.run_dir, "containers")

    def container(self, container_id: str) -> str:
        return os.path.join(self.run_dir, "containers", container_id)

    def console_socket(self, container_id: str) -> str:
        """Short on purpose: a unix socket path must fit in 108 bytes."""
        return os.path.join(self.run_dir, f"console-{container_id[:16]}.sock")
