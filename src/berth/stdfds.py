"""Keep file descriptors 0, 1 and 2 open for the life of a command.

A program started with one of them closed (``berth ps >&-``) would otherwise hand that number
to the next file it opens: the store's database, a socket, a state file. Whatever then writes
to "standard output" (berth's own output, or a container given this process's stdio) writes
into that file instead. So each entry point first puts ``/dev/null`` on a closed standard fd,
as Go's runtime does for every Go program (Docker's CLI included): output to a closed stdout
is then discarded, and nothing else gets its number. ``sys.stdin``/``stdout``/``stderr``,
which the interpreter leaves as None for a closed fd, get a stream on it.

Imports nothing but ``posix`` (it runs before the fork server's client, see
:mod:`berth.cli.entry`).
"""

import posix
import sys

_STREAMS = ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w"))


def ensure_open() -> None:
    for fd, name, mode in _STREAMS:
        try:
            posix.fstat(fd)
            continue
        except OSError:
            pass
        null = posix.open("/dev/null", posix.O_RDWR)  # the lowest free number: this one
        if null != fd:
            posix.dup2(null, fd)
            posix.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (lives on)
