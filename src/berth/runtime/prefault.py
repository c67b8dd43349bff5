"""Copy a forked process's private memory ahead of time, while it waits for work.

A process forked from a big one (a fork server's spare) shares every page with its parent
until it writes to it; the first write copies the page (a copy-on-write fault). A Python
process writes to many pages it touches (reference counts), so a command run in the fork pays
~1,500 faults as it goes. :func:`copy_private_memory` takes those faults up front
(``MADV_POPULATE_WRITE``, Linux 5.14 and later) and stops as soon as ``stop_fd`` is readable:
the work has come, and it copies what it touches itself from then on.

It copies only the pages commands were seen to write (a :class:`LearnedPages`), about half of
the ~3,000 a spare has: copying the others would cost CPU time (~2.5 µs a page) for nothing,
and on a host with few CPUs that time is taken from the commands running beside it. A
command's process learns them after its work (:func:`pages_written`): a page it wrote is
mapped by it alone (the pagemap's "exclusive" bit), one it only read is still shared with the
server. Addresses are those of one server's memory (each process has its own layout), so what
was learned is kept with the server's pid and used by that server's spares only.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import struct

from berth.runtime import syscalls

PAGE = mmap.PAGESIZE
CHUNK = 1 << 20  # bytes copied between two looks at stop_fd
LEARN_TIMES = 2  # commands of one name whose pages are learned (a union), per server
_MERGE_GAP = 2 * PAGE  # ranges this close are copied as one (a page copied beats a syscall)
_PRESENT = 1 << 63
_EXCLUSIVE = 1 << 56
_MAGIC = b"berth-pages 1"
_RANGE = struct.Struct("=QQ")

Ranges = list[tuple[int, int]]  # [start, end) byte addresses, sorted, not overlapping


def private_writable(maps: bytes) -> Ranges:
    """The private writable mappings in ``/proc/PID/maps`` text (the heap, anonymous memory,
    modules' data), not the stack or the kernel's special mappings."""
    ranges: Ranges = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[1] != b"rw-p":
            continue
        if len(fields) > 5 and fields[5].startswith(b"[") and fields[5] != b"[heap]":
            continue
        low, _, high = fields[0].partition(b"-")
        ranges.append((int(low, 16), int(high, 16)))
    ranges.sort()
    return ranges


def intersect(first: Ranges, second: Ranges) -> Ranges:
    """The addresses in both (each sorted and not overlapping)."""
    out: Ranges = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            out.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out


def union(first: Ranges, second: Ranges, gap: int = 0) -> Ranges:
    """The addresses in either, ranges at most ``gap`` apart merged into one."""
    out: Ranges = []
    for start, end in sorted(first + second):
        if out and start <= out[-1][1] + gap:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def copy_private_memory(stop_fd: int, only: Ranges | None = None) -> None:
    """Make this process's private writable memory its own (see the module doc): all of it,
    or only what lies in ``only``."""
    with open("/proc/self/maps", "rb") as f:
        ranges = private_writable(f.read())
    if only is not None:
        ranges = intersect(ranges, only)
    poller = select.poll()
    poller.register(stop_fd, select.POLLIN)
    done = CHUNK
    for start, end in ranges:
        for chunk in range(start, end, CHUNK):
            if done >= CHUNK:
                if poller.poll(0):
                    return
                done = 0
            length = min(CHUNK, end - chunk)
            try:
                syscalls.madvise(chunk, length, syscalls.MADV_POPULATE_WRITE)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    return  # a kernel before 5.14: the faults come as the work runs
                continue  # unmapped meanwhile, or out of memory: the work faults them in
            done += length


def pages_written(pid: int | str = "self") -> Ranges:
    """The pages of ``pid``'s private writable memory that it alone maps: in a fork, those it
    wrote (copied from its parent, or new) since the fork."""
    with open(f"/proc/{pid}/maps", "rb") as f:
        mappings = private_writable(f.read())
    written: Ranges = []
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in mappings:
            count = (end - start) // PAGE
            data = os.pread(fd, count * 8, start // PAGE * 8)
            run_start = -1
            for index, entry in enumerate(struct.unpack(f"={len(data) // 8}Q", data)):
                mine = entry & _PRESENT and entry & _EXCLUSIVE
                if mine and run_start < 0:
                    run_start = index
                elif not mine and run_start >= 0:
                    written.append((start + run_start * PAGE, start + index * PAGE))
                    run_start = -1
            if run_start >= 0:
                written.append((start + run_start * PAGE, start + len(data) // 8 * PAGE))
    finally:
        os.close(fd)
    return written


class LearnedPages:
    """The pages one server's commands were seen to write, kept in a file beside its socket:
    the server's pid, how many commands of each name were learned, and the address ranges."""

    def __init__(self, server_pid: int, counts: dict[str, int], ranges: Ranges) -> None:
        self.server_pid = server_pid
        self.counts = counts
        self.ranges = ranges

    @classmethod
    def load(cls, path: str, server_pid: int) -> LearnedPages | None:
        """What ``server_pid``'s commands wrote, or None (nothing learned yet, or the file is
        another server's or damaged)."""
        try:
            with open(path, "rb") as f:
                header = f.readline().split()
                body = f.read()
        except OSError:
            return None
        if len(header) != 4 or b" ".join(header[:2]) != _MAGIC or header[2] != b"%d" % server_pid:
            return None
        counts: dict[str, int] = {}
        for item in header[3].decode(errors="replace").split(","):
            name, _, times = item.rpartition(":")
            if name and times.isdigit():
                counts[name] = int(times)
        if len(body) % _RANGE.size:
            return None
        ranges = [(start, end) for start, end in _RANGE.iter_unpack(body) if start < end]
        return cls(server_pid, counts, ranges)

    def wants(self, command: str) -> bool:
        """Whether a command of this name should still be learned."""
        return self.counts.get(command, 0) < LEARN_TIMES

    def add(self, command: str, written: Ranges) -> None:
        self.counts[command] = self.counts.get(command, 0) + 1
        self.ranges = union(self.ranges, written, _MERGE_GAP)

    def save(self, path: str) -> None:
        """Written whole then renamed over the old file, so a reader never sees half of it
        (two commands ending together: the last one's union wins)."""
        names = ",".join(f"{name}:{times}" for name, times in sorted(self.counts.items())
                         if name and " " not in name and "," not in name)
        data = b"%s %d %s\n" % (_MAGIC, self.server_pid, (names or "-:0").encode())
        data += b"".join(_RANGE.pack(start, end) for start, end in self.ranges)
        temp = f"{path}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(temp, path)
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass


def learn(path: str, server_pid: int, command: str, known: LearnedPages | None = None) -> None:
    """After a command: add the pages this process wrote to what ``server_pid``'s spares
    copy ahead, unless enough commands of this name were learned already. ``known``: what
    was learned when this process read the file last (the spare did, to copy ahead): if it
    had enough, the file is not read again."""
    if known is not None and not known.wants(command):
        return
    learned = LearnedPages.load(path, server_pid) or LearnedPages(server_pid, {}, [])
    if not learned.wants(command):
        return
    try:
        written = pages_written()
    except OSError:
        return
    learned.add(command, written)
    learned.save(path)
