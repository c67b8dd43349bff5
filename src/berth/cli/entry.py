"""The ``berth`` command's entry point: hand the command line to this installation's fork
server when one runs (:mod:`berth.cli.forkserver`), else run it in this process.

Imports only what the fork server's client needs, so a command the server runs costs this
process little more than the interpreter's own start.
"""

from __future__ import annotations

import os
import sys

from berth import trace

trace.mark("python started")


def main() -> int:
    from berth.cli import forkclient

    code = forkclient.run(sys.argv[1:])
    if code is not None:
        trace.mark("exiting")
        os._exit(code)
    from berth.cli.main import main as run_here

    return run_here()
