"""Copy a forked process's private memory ahead of time, while it waits for work.

A process forked from a big one (a fork server's spare) shares every page with its parent
until it writes to it; the first write copies the page (a copy-on-write fault). A Python
process writes to most pages it touches (reference counts), so a command run in the fork pays
~1,000 faults as it goes. :func:`copy_private_memory` takes
those faults up front (``MADV_POPULATE_WRITE``, Linux 5.14 and later), a megabyte at a time,
and stops as soon as ``stop_fd`` is readable: the work has come, and it copies what it touches
itself from then on.
"""

from __future__ import annotations

import select

from berth.runtime import syscalls

CHUNK = 1 << 20


def copy_private_memory(stop_fd: int) -> None:
    """Make this process's private writable mappings its own (see the module doc)."""
    with open("/proc/self/maps", "rb") as f:
        maps = f.read().splitlines()
    poller = select.poll()
    poller.register(stop_fd, select.POLLIN)
    for line in maps:
        fields = line.split()
        if fields[1] != b"rw-p" or (len(fields) > 5 and fields[5].startswith(b"[")
                                    and fields[5] != b"[heap]"):
            continue
        low, _, high = fields[0].partition(b"-")
        start, end = int(low, 16), int(high, 16)
        for chunk in range(start, end, CHUNK):
            if poller.poll(0):
                return
            try:
                syscalls.madvise(chunk, min(CHUNK, end - chunk), syscalls.MADV_POPULATE_WRITE)
            except OSError:
                return  # a kernel before 5.14: the faults come as the work runs
