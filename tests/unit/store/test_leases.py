"""Leases protect an import's blobs from a concurrent collector while their process lives,
whichever process takes them: one forked after berth was imported (a fork server's worker, a
program using multiprocessing) too."""

from __future__ import annotations

import os

from berth.store.leases import Lease, live_leased
from berth.store.store import Store


def test_a_live_process_lease_protects_what_it_holds(store: Store) -> None:
    with Lease(store.db) as lease:
        lease.add("blob", "sha256:aaa")
        with store.db.read() as conn:
            assert live_leased(conn, "blob") == {"sha256:aaa"}
    with store.db.read() as conn:
        assert live_leased(conn, "blob") == set()


def test_a_lease_taken_in_a_forked_child_is_alive_while_the_child_is(store: Store) -> None:
    path = store.db.path
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connection, its own lease, then wait
        code = 1
        try:
            from berth.store.db import Database

            lease = Lease(Database(path))
            lease.add("blob", "sha256:bbb")
            os.write(ready_w, b"x")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(ready_r, 1) == b"x"
        with store.db.read() as conn:
            assert live_leased(conn, "blob") == {"sha256:bbb"}
    finally:
        os.write(done_w, b"x")
        _, status = os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    with store.db.read() as conn:
        assert live_leased(conn, "blob") == set()  # the child died: its lease is dead
