"""What a fork server's spare copies ahead (berth.runtime.prefault): the pages commands were
seen to write, learned from the kernel's pagemap, kept per server, and copied with
MADV_POPULATE_WRITE."""

from __future__ import annotations

import mmap
import os

from berth.runtime import prefault

PAGE = mmap.PAGESIZE


def test_ranges_intersect_and_merge() -> None:
    assert prefault.intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert prefault.intersect([(0, 10)], [(10, 20)]) == []
    assert prefault.union([(20, 30)], [(0, 10), (5, 12)]) == [(0, 12), (20, 30)]
    assert prefault.union([(0, 10)], [(12, 20)], gap=2) == [(0, 20)]
    assert prefault.union([(0, 10)], [(13, 20)], gap=2) == [(0, 10), (13, 20)]


def test_only_private_writable_mappings_are_copied() -> None:
    maps = (
        b"55d0a0000000-55d0a0001000 r--p 00000000 08:01 42 /usr/bin/python3\n"
        b"55d0a0002000-55d0a0005000 rw-p 00002000 08:01 42 /usr/bin/python3\n"
        b"55d0a1000000-55d0a1400000 rw-p 00000000 00:00 0 [heap]\n"
        b"7f0000000000-7f0000100000 rw-p 00000000 00:00 0 \n"
        b"7f0000200000-7f0000300000 rw-s 00000000 00:01 7 /dev/zero (deleted)\n"
        b"7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n"
        b"7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0 [vdso]\n"
    )
    assert prefault.private_writable(maps) == [
        (0x55D0A0002000, 0x55D0A0005000), (0x55D0A1000000, 0x55D0A1400000),
        (0x7F0000000000, 0x7F0000100000)]


def test_what_was_learned_is_kept_for_its_server_only(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "server.sock.pages")
    assert prefault.LearnedPages.load(path, 1234) is None  # nothing learned yet
    learned = prefault.LearnedPages(1234, {}, [])
    assert learned.wants("run")
    learned.add("run", [(0x1000, 0x3000)])
    learned.add("run", [(0x3000, 0x4000), (0x9000, 0xA000)])
    assert not learned.wants("run")  # LEARN_TIMES commands of a name are enough
    assert learned.wants("ps")
    learned.save(path)
    again = prefault.LearnedPages.load(path, 1234)
    assert again is not None
    assert again.ranges == [(0x1000, 0x4000), (0x9000, 0xA000)]
    assert again.counts == {"run": 2}
    # another server's addresses mean nothing here (each process has its own layout)
    assert prefault.LearnedPages.load(path, 1235) is None
    with open(path, "ab") as f:
        f.write(b"\0" * 3)  # damaged: not whole ranges
    assert prefault.LearnedPages.load(path, 1234) is None
    assert [name for name in os.listdir(str(tmp_path))] == ["server.sock.pages"]  # no temp


def _in_child(check: object) -> None:
    """Run ``check`` in a fork (whose memory is shared with this process until written);
    fail with what it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = b""
        try:
            check()  # type: ignore[operator]
        except BaseException as exc:  # reported to the parent
            message = repr(exc).encode()[:4000]
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read()
    os.waitpid(pid, 0)
    assert not message, message.decode()


def _pages(memory: mmap.mmap, first: int, last: int) -> tuple[int, int]:
    import ctypes

    base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    return base + first * PAGE, base + last * PAGE


def test_a_fork_learns_the_pages_it_wrote() -> None:
    memory = mmap.mmap(-1, 16 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory.write(b"x" * (16 * PAGE))  # present, and shared with each fork below

    def check() -> None:
        memory[3 * PAGE:6 * PAGE] = b"y" * (3 * PAGE)  # copied on write: this fork's own
        whole = _pages(memory, 0, 16)
        written = prefault.intersect(prefault.pages_written(), [whole])
        assert written == [_pages(memory, 3, 6)], written

    _in_child(check)


def test_a_spare_copies_only_what_it_is_told() -> None:
    memory = mmap.mmap(-1, 16 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory.write(b"x" * (16 * PAGE))
    never, unused = os.pipe()  # never readable: no work comes

    def check() -> None:
        prefault.copy_private_memory(never, [_pages(memory, 8, 12)])
        whole = _pages(memory, 0, 16)
        copied = prefault.intersect(prefault.pages_written(), [whole])
        assert copied == [_pages(memory, 8, 12)], copied

    try:
        _in_child(check)
    finally:
        os.close(never)
        os.close(unused)
