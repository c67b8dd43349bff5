"""Handlers of ``system boot`` and ``system supervisor status|stop``: the store's supervisor
(see docs/supervisor.md)."""

from __future__ import annotations

import sys

from berth.cli.flags import Invocation
from berth.cli.render import format_objects, write


def boot(inv: Invocation) -> int:
    """Start what the restart policies say should run after a reboot (always, and
    unless-stopped unless the user stopped it); print their names."""
    from berth.monitor.client import SupervisorClient
    from berth.store.paths import StorePaths

    reply = SupervisorClient.ensure(StorePaths.at()).boot()
    for name in reply.get("started") or []:
        write(f"{name}\n")
    failed = reply.get("failed") or []
    for failure in failed:
        sys.stderr.write(f"Error: cannot start container {failure['name']}: {failure['error']}\n")
    return 1 if failed else 0


def supervisor_status(inv: Invocation) -> int:
    from berth.monitor.client import SupervisorClient
    from berth.monitor.paths import MonitorPaths
    from berth.monitor.spawn import can_connect
    from berth.store.paths import StorePaths

    paths = StorePaths.at()
    monitor = MonitorPaths(paths.run_dir)
    data = {
        "Running": False,
        "Pid": 0,
        "AnchorPid": 0,
        "Containers": 0,
        "Restarting": 0,
        "Socket": monitor.socket,
        "Log": monitor.log,
    }
    if can_connect(monitor.socket):
        ping = SupervisorClient(paths).ping()
        data.update(
            Running=True,
            Pid=ping.get("pid", 0),
            AnchorPid=ping.get("anchor_pid", 0),
            Containers=len(ping.get("running") or []),
            Restarting=len(ping.get("restarting") or []),
        )
    fmt = inv.get_str("format")
    if fmt:
        write(format_objects([data], fmt))
        return 0
    if data["Running"]:
        anchor = f", anchor pid {data['AnchorPid']}" if data["AnchorPid"] else ", no anchor"
        state = f"running (pid {data['Pid']}{anchor})"
    else:
        state = "not running (it starts when a container is started detached)"
    write(
        f"Supervisor:  {state}\n"
        f"Containers:  {data['Containers']} running, {data['Restarting']} restarting\n"
        f"Socket:      {data['Socket']}\n"
        f"Log:         {data['Log']}\n"
    )
    return 0


def supervisor_stop(inv: Invocation) -> int:
    from berth.monitor.client import SupervisorClient
    from berth.store.paths import StorePaths

    SupervisorClient(StorePaths.at()).shutdown(force=inv.get_bool("force"))
    return 0
