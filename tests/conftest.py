"""Fixtures every test can use: a store of its own, the berth command, a busybox image."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from berth.engine import Engine
from tests.support.berthcli import BerthCLI


def _tempdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")


def release_store(root: str) -> None:
    """Take away what a test store put on the host (supervisor, containers, bridges, rules,
    cgroups), so the host is as it was before the test."""
    if os.path.exists(os.path.join(root, "berth.db")):
        with Engine(root) as engine:
            engine.system.release_host()
    from tests.support.supervisors import end_supervisor

    end_supervisor(root)  # a safety net: whatever still runs for this store, by its PID


def _berth_host_state() -> set[str]:
    """berth's nftables tables, links and top-level cgroups on the host, and the mounts of
    the tests' stores and scratch dirs (they all carry berth's name)."""
    found = {f"link {name}" for name in os.listdir("/sys/class/net") if "berth" in name}
    with open("/proc/self/mountinfo") as f:
        found |= {f"mount {line.split()[4]}" for line in f if "berth" in line.split()[4]}
    for hierarchy in os.listdir(CGROUPS):
        top = os.path.join(CGROUPS, hierarchy)
        if os.path.isdir(top) and not os.path.islink(top):
            found |= {f"cgroup {top}/{name}" for name in os.listdir(top)
                      if name.startswith("berth") and os.path.isdir(os.path.join(top, name))}
    if shutil.which("nft"):
        listing = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                 check=False)
        found |= {f"table {line.split()[-1]}" for line in listing.stdout.splitlines()
                  if line.split()[-1].startswith("berth")}
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    """The suite's ``berth`` commands get a fork server of their own, in a directory of the
    suite's (``BERTH_FORKSERVER_DIR``), rather than the host's default one (/run/berth)."""
    from berth.cli.forkclient import DIR_ENV

    session.config.stash[_HOST_STATE] = _berth_host_state()
    if not os.environ.get(DIR_ENV):
        directory = tempfile.mkdtemp(prefix="berth-test-forkserver-", dir="/run")
        os.environ[DIR_ENV] = directory
        session.config.stash[_FORKSERVER_DIR] = directory


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The host after the suite is as it was before: any table, link or cgroup of berth's
    left behind fails the run (and is removed, so the next run starts clean). The fork server
    the suite's commands started is ended (by its pid), and its directory removed."""
    from berth.cli.forkclient import running_servers

    directory = session.config.stash.get(_FORKSERVER_DIR, None)
    if directory is not None:
        for server in running_servers(directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)
    before = session.config.stash.get(_HOST_STATE, None)
    if before is None:
        return
    leftovers = sorted(_berth_host_state() - before)
    if not leftovers:
        return
    for item in leftovers:
        kind, name = item.split(" ", 1)
        if kind == "table":
            subprocess.run(["nft", "delete", "table", "inet", name], check=False)
        elif kind == "link":
            subprocess.run(["ip", "link", "delete", name], check=False)
        elif kind == "mount":
            subprocess.run(["umount", "-l", name], check=False)
        else:
            for directory, _, _ in sorted(os.walk(name), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
    sys.stderr.write(f"\nthe tests left berth's state on the host: {leftovers}\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


CGROUPS = "/sys/fs/cgroup"
_HOST_STATE = pytest.StashKey[set[str]]()
_FORKSERVER_DIR = pytest.StashKey[str]()


def _dev_null_is_a_device() -> bool:
    st = os.stat("/dev/null")
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


@pytest.fixture(autouse=True)
def _host_dev_null_stays_intact() -> Iterator[None]:
    """Every test leaves the host's /dev/null a character device (a test once replaced it)."""
    assert _dev_null_is_a_device(), "the host's /dev/null was already broken before this test"
    yield
    assert _dev_null_is_a_device(), "this test broke the host's /dev/null"


@pytest.fixture
def store_root() -> Iterator[str]:
    """A fresh, empty store root (a temp dir named berth-store-*), removed afterwards."""
    root = _tempdir("berth-store-")
    try:
        yield root
    finally:
        release_store(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cli(store_root: str) -> BerthCLI:
    return BerthCLI(store_root)


@pytest.fixture
def engine(store_root: str) -> Iterator[Engine]:
    with Engine(store_root) as eng:
        yield eng


@pytest.fixture(scope="session")
def busybox_archive() -> Iterator[str]:
    """busybox:latest bootstrapped once per session and saved as a docker-archive."""
    if os.geteuid() != 0:
        raise RuntimeError("the busybox fixture needs root (bootstrap writes owners and modes)")
    work = _tempdir("berth-session-")
    try:
        root = os.path.join(work, "store")
        with Engine(root) as eng:
            eng.images.bootstrap("busybox")
            path = os.path.join(work, "busybox.tar")
            with open(path, "wb") as out:
                eng.images.save(["busybox"], out)
        yield path
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def busybox(cli: BerthCLI, busybox_archive: str) -> str:
    """The store has busybox:latest; returns its image ID."""
    cli("load", "-i", busybox_archive)
    return cli("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
