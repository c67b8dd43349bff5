"""An init forked ahead of time (berth.runtime.preforked) becomes the container as an init
forked by ``create`` would: the same isolation, fds, loopback, cgroups joined before anything
of the container runs, and what it takes from the runtime's process (rlimits, umask, working
directory). Anything it was not made for, or an init that died, and ``create`` forks its
own."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import tempfile
import time
from collections.abc import Iterator

import pytest

from berth.errors import ContainerNotFound
from berth.runtime import preforked
from berth.runtime.container import Runtime
from berth.runtime.init import LOOPBACK_ANNOTATION
from tests.integration.runtime.helpers import BundleFactory, namespace_holder, new_id

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


@pytest.fixture
def prepared() -> Iterator[int]:
    preforked.prepare()
    pid = preforked.waiting()
    assert pid > 0
    try:
        yield pid
    finally:
        preforked.discard()


def _run(runtime: Runtime, path: str) -> tuple[int, int, str]:
    """Create, start and wait for the container; (init pid, exit code, output)."""
    cid = new_id()
    with tempfile.TemporaryFile() as out:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            record = runtime.create(cid, path, stdio=(null, out.fileno(), out.fileno()))
        finally:
            os.close(null)
        runtime.start(cid)
        code = runtime.wait(cid)
        runtime.delete(cid)
        out.seek(0)
        return record.pid, code, out.read().decode()


def _limit(limits: str, name: str) -> list[str]:
    line = next(line for line in limits.splitlines() if line.startswith(name))
    return line[len(name):].split()[:2]


def test_the_init_forked_ahead_becomes_the_container(
        runtime: Runtime, bundle: BundleFactory, prepared: int) -> None:
    script = ("echo pid=$$; cat /sys/class/net/lo/flags; hostname; ls /sys/class/net; "
              "cat /proc/self/limits")
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    wanted = 4096 * 1024 if hard == resource.RLIM_INFINITY else min(hard, 4096 * 1024)
    resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))  # after it was forked
    try:
        pid, code, out = _run(runtime, bundle(["sh", "-c", script]))
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    assert pid == prepared
    assert preforked.waiting() == 0  # taken: the next create forks its own
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:4] == ["pid=1", "0x8", "runc", "lo"]  # lo down, as runc leaves it
    assert _limit(out, "Max core file size")[0] == str(wanted)
    assert _limit(out, "Max open files") == ["1024", "1024"]  # the spec's


def test_loopback_up_when_the_engine_asks(runtime: Runtime, bundle: BundleFactory,
                                          prepared: int) -> None:
    spec = bundle.spec(["cat", "/sys/class/net/lo/flags"])
    spec["annotations"] = {LOOPBACK_ANNOTATION: "up"}
    pid, code, out = _run(runtime, bundle.write(spec))
    assert (pid, code, out) == (prepared, 0, "0x9\n")


def test_no_host_fd_and_the_runtime_umask_and_cwd(runtime: Runtime, bundle: BundleFactory,
                                                  workdir: str) -> None:
    leaked = os.open(os.path.join(workdir, "berth-leak-me"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(leaked, True)  # open when the init is forked ahead
    preforked.prepare()
    prepared = preforked.waiting()
    rootfs = bundle.private_rootfs()
    spec = bundle.spec(["sleep", "1000"])
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["mounts"].append({"destination": "/made-by-init", "type": "tmpfs", "source": "tmpfs"})
    where = os.path.join(workdir, "hook-cwd")
    spec["hooks"] = {"createContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {where}"]}]}
    cid = new_id()
    here = os.getcwd()
    old_umask = os.umask(0o027)
    os.chdir(workdir)
    try:
        record = runtime.create(cid, bundle.write(spec))
    finally:
        os.chdir(here)
        os.umask(old_umask)
        os.close(leaked)
        preforked.discard()
    try:
        assert record.pid == prepared
        fds = {}
        for fd in os.listdir(f"/proc/{record.pid}/fd"):
            fds[int(fd)] = os.readlink(f"/proc/{record.pid}/fd/{fd}")
        others = {fd: target for fd, target in fds.items() if fd > 2}
        assert len(others) == 2, fds
        assert all(t.endswith("/exec.fifo") or t.startswith("pipe:") for t in others.values())
        assert os.stat(os.path.join(rootfs, "made-by-init")).st_mode & 0o777 == 0o750
        with open(where) as f:
            assert f.read().strip() == workdir
    finally:
        runtime.delete(cid, force=True)


def test_what_it_was_not_made_for_forks_its_own(runtime: Runtime, bundle: BundleFactory,
                                                prepared: int) -> None:
    spec = bundle.spec(["true"])
    spec["linux"]["namespaces"] = [
        ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]  # host network
    pid, code, _ = _run(runtime, bundle.write(spec))
    assert code == 0
    assert pid != prepared
    assert preforked.waiting() == prepared  # still there for the next container
    pid, code, _ = _run(runtime, bundle(["true"]))
    assert (pid, code) == (prepared, 0)


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def test_an_init_that_died_is_replaced(runtime: Runtime, bundle: BundleFactory,
                                       prepared: int) -> None:
    os.kill(prepared, signal.SIGKILL)
    _wait_dead(prepared)
    pid, code, out = _run(runtime, bundle(["echo", "still runs"]))
    assert (code, out) == (0, "still runs\n")
    assert pid != prepared
    assert not os.path.exists(f"/proc/{prepared}")  # reaped


def test_an_init_that_dies_once_handed_the_container_is_replaced(
        runtime: Runtime, bundle: BundleFactory, prepared: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken and handed the container, it dies before the runtime puts it in its cgroups
    (killed by someone, the OOM killer): ``create`` forks an init of its own."""
    hand_over = preforked.PreforkedInit.hand_over

    def then_killed(self: preforked.PreforkedInit, **kwargs: object) -> object:
        channel = hand_over(self, **kwargs)  # type: ignore[arg-type]
        os.kill(self.pid, signal.SIGKILL)
        _wait_dead(self.pid)
        return channel

    monkeypatch.setattr(preforked.PreforkedInit, "hand_over", then_killed)
    pid, code, out = _run(runtime, bundle(["echo", "still runs"]))
    assert (code, out) == (0, "still runs\n")
    assert pid != prepared
    assert not os.path.exists(f"/proc/{prepared}")  # reaped


def test_in_its_cgroups_before_anything_of_the_container_runs(
        runtime: Runtime, bundle: BundleFactory, prepared: int) -> None:
    """It starts its setup while the runtime makes the cgroups, and waits to be in them
    before the cgroup mount and its cgroup namespace (whose root is where it is then)."""
    script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /proc/self/cgroup"
    spec = bundle.spec(["sh", "-c", script])
    spec["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    spec["linux"]["namespaces"].append({"type": "cgroup"})
    pid, code, out = _run(runtime, bundle.write(spec))
    assert (pid, code) == (prepared, 0), out
    limit, *cgroups = out.splitlines()
    assert limit == str(64 << 20)
    assert cgroups and all(line.endswith(":/") for line in cgroups), out


def test_joined_namespaces_and_a_terminal(runtime: Runtime, bundle: BundleFactory,
                                          prepared: int, workdir: str) -> None:
    """The most fds a handover carries: cwd, fifo, stdio, the console socket and three
    namespaces to join (the ones it made ahead are dropped for them)."""
    with namespace_holder("ipc", "uts", "net") as holder:
        spec = bundle.spec(["sh", "-c", "tty; for n in ipc uts net; do "
                                        "readlink /proc/self/ns/$n; done"])
        spec["process"]["terminal"] = True
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] in ("ipc", "uts", "network"):
                name = "net" if ns["type"] == "network" else ns["type"]
                ns["path"] = f"/proc/{holder}/ns/{name}"
        sock_path = os.path.join(workdir, "console.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(sock_path)
        server.listen(1)
        cid = new_id()
        try:
            record = runtime.create(cid, bundle.write(spec), console_socket=sock_path)
            assert record.pid == prepared
            server.settimeout(30)
            conn, _ = server.accept()
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            conn.close()
            runtime.start(cid)
            output = b""
            while True:
                try:
                    chunk = os.read(fds[0], 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            os.close(fds[0])
            lines = output.decode().replace("\r", "").splitlines()
            assert lines == ["/dev/pts/0", *(os.readlink(f"/proc/{holder}/ns/{n}")
                                            for n in ("ipc", "uts", "net"))]
        finally:
            server.close()
            with contextlib.suppress(ContainerNotFound):  # (create failed)
                runtime.delete(cid, force=True)
