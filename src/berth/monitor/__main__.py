"""``python -m berth.monitor --root ROOT``: the supervisor of one store.

Normally started by :func:`berth.monitor.spawn.start_supervisor` through the anchor, which
appends ``--anchor-fd N``. Options:

    --root ROOT          the store (required)
    --anchor-fd N        the channel to the anchor (see anchor/anchor.c)
    --lock-fd N          the inherited fd that holds anchor.lock (kept, never inherited further)
    --idle-exit SECONDS  exit after this long with nothing to supervise (default 60; "never")
    --backend MOD:FUNC   tests only: FUNC(StorePaths) returns the backend to use
"""

from __future__ import annotations

import os
import sys

from berth.errors import BerthError

DEFAULT_IDLE_EXIT = 60.0


def _options(argv: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    index = 0
    while index < len(argv):
        name = argv[index]
        if not name.startswith("--") or index + 1 >= len(argv):
            raise SystemExit(f"berth.monitor: bad argument {name!r}")
        options[name[2:]] = argv[index + 1]
        index += 2
    if "root" not in options:
        raise SystemExit("usage: python -m berth.monitor --root ROOT [--anchor-fd N] ...")
    return options


def _raise_fd_limit() -> None:
    """A few fds per container (FIFOs, pidfd, log): allow as many as the hard limit does."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    options = _options(argv)
    os.environ["BERTH_SUPERVISOR"] = "1"  # the launcher then knows not to start one
    os.umask(0o022)
    _raise_fd_limit()
    if "lock-fd" in options:
        os.set_inheritable(int(options["lock-fd"]), False)
    from berth.monitor.anchorlink import AnchorLink
    from berth.monitor.loop import log
    from berth.monitor.supervisor import Supervisor
    from berth.store.paths import StorePaths

    paths = StorePaths.at(options["root"])
    idle = options.get("idle-exit", os.environ.get("BERTH_SUPERVISOR_IDLE_EXIT", ""))
    idle_exit = None if idle == "never" else float(idle or DEFAULT_IDLE_EXIT)
    anchor = AnchorLink(int(options["anchor-fd"])) if "anchor-fd" in options else None
    try:
        if "backend" in options:
            import importlib

            module, _, function = options["backend"].partition(":")
            backend = getattr(importlib.import_module(module), function)(paths)
        else:
            from berth.monitor.backend import StoreBackend

            backend = StoreBackend(paths)
        try:
            return Supervisor(paths, backend, anchor, idle_exit=idle_exit).serve()
        finally:
            backend.close()
    except BerthError as exc:
        log(f"cannot run: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
