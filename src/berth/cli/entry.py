"""The ``berth`` command's entry point: hand the command line to this installation's fork
server when one runs (:mod:`berth.cli.forkserver`), else run it in this process.

Imports only what the fork server's client needs (not even ``os``; see
:mod:`berth.cli.forkclient`), so a command the server runs costs this process little more than
the interpreter's own start.
"""

import posix
import sys

from berth import stdfds


def main() -> int:
    stdfds.ensure_open()  # before anything opens a file or a socket
    tracing = bool(posix.environ.get(b"BERTH_TRACE"))
    if tracing:
        from berth import trace

        trace.mark("python started")
    if not posix.environ.get(b"BERTH_NO_FORKSERVER"):  # not even the client's imports then
        from berth.cli import forkclient

        code = forkclient.run(sys.argv[1:])
        if code is not None:
            if tracing:
                trace.mark("exiting")
            posix._exit(code)
    from berth.cli.main import main as run_here

    return run_here()
