"""The fork server: a ``berth`` command it serves behaves as one run in its own process (exit
status, stdio, environment, working directory, umask, signals, death of the client), and it
refuses what it may not serve (another namespace, changed code), leaves when idle or told to,
and takes its socket with it.

Both clients are checked against one server: the compiled one (``berth`` as scripts/install
builds it, src/berth/cli/forkclient.c) and the Python launcher (berth.cli.forkclient). The
server is always started by the Python launcher, so the compiled client finding it shows that
both name the same socket.

Each test has a server of its own (``BERTH_FORKSERVER_DIR``), ended by its PID afterwards.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from berth.cli.forkclient import running_servers
from tests.support.berthcli import BERTH, BERTH_PYTHON_LAUNCHER, BerthCLI

pytestmark = pytest.mark.root

SERVED = "forked by the fork server"
AHEAD = "runtime: init forked ahead taken"  # berth.runtime.preforked


CLIENTS = {"compiled": BERTH, "python": BERTH_PYTHON_LAUNCHER}


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    """The ``berth`` command of one client (each test using it runs with both)."""
    path = CLIENTS[request.param]
    if request.param == "compiled":
        with open(path, "rb") as f:
            assert f.read(4) == b"\x7fELF", (
                f"{path} is not the compiled client: scripts/install found no C compiler "
                "(or could not build src/berth/cli/forkclient.c)")
    return path


class ForkServer:
    def __init__(self, directory: str, cli: BerthCLI) -> None:
        self.directory = directory
        self.cli = cli
        self.command = BERTH

    def env(self, **extra: str) -> dict[str, str]:
        return {"BERTH_FORKSERVER_DIR": self.directory, **extra}

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        extra = kwargs.pop("env", {})
        assert isinstance(extra, dict)
        command = kwargs.pop("command", self.command)
        assert isinstance(command, str)
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [command, *args], env=self.cli.env(self.env(**extra)), capture_output=True,
            timeout=120, check=False, **kwargs)

    def socket(self) -> str | None:
        names = [n for n in os.listdir(self.directory) if n.endswith(".sock")]
        return os.path.join(self.directory, names[0]) if names else None

    def pid(self) -> int | None:
        """The server's pid (the first found, if several run: one per cgroup)."""
        pids = self.pids()
        return pids[0] if pids else None

    def pids(self) -> list[int]:
        """The pids of the servers using this directory that still run."""
        return running_servers(self.directory)

    def start(self) -> int:
        """Start the server (the first command starts it; the Python launcher's) and wait
        until it serves."""
        self.run("version", command=BERTH_PYTHON_LAUNCHER)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.socket() and SERVED in self.run(
                    "version", env={"BERTH_TRACE": "1"},
                    command=BERTH_PYTHON_LAUNCHER).stderr.decode():
                pid = self.pid()
                assert pid is not None
                return pid
            time.sleep(0.05)
        raise AssertionError("the fork server did not start serving within 30 s")

    def workers(self, server: int) -> list[int]:
        """The server's children: the workers running commands, and its spare."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == server:
                    found.append(int(entry))
        return found


@pytest.fixture
def forkserver(cli: BerthCLI) -> Iterator[ForkServer]:
    """A server of the test's own; its commands run with the installed ``berth`` unless the
    test picks a client."""
    directory = tempfile.mkdtemp(prefix="berth-forkserver-", dir="/var/tmp")
    server = ForkServer(directory, cli)
    try:
        yield server
    finally:
        try:
            for pid in server.pids():
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # ended; its parent reaps it
        except OSError:
            return
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}"), f"process {pid} is still there"


def test_a_served_command_is_the_client_own(forkserver: ForkServer, busybox: str,
                                            tmp_path: str, client: str) -> None:
    forkserver.start()
    forkserver.command = client
    script = 'echo "$GREETING"; cat; exit 3'
    result = forkserver.run(
        "run", "-i", "--rm", "-e", "GREETING", "busybox", "sh", "-c", script,
        input=b"from stdin\n", env={"GREETING": "hello", "BERTH_TRACE": "1"})
    assert result.returncode == 3
    assert result.stdout == b"hello\nfrom stdin\n"
    assert SERVED in result.stderr.decode()
    # the working directory and umask are the client's: --cidfile is written relative to it
    os.chmod(tmp_path, 0o755)
    result = forkserver.run(
        "create", "--cidfile", "cid", "busybox", cwd=tmp_path,
        preexec_fn=lambda: os.umask(0o077))
    assert result.returncode == 0, result.stderr
    cidfile = os.path.join(tmp_path, "cid")
    with open(cidfile) as f:
        assert f.read() == result.stdout.decode().strip()
    assert os.stat(cidfile).st_mode & 0o777 == 0o600
    # errors: the message on the client's stderr, Docker's exit code
    missing = forkserver.run("run", "--pull", "never", "--rm", "no-such-image:here")
    assert missing.returncode == 125
    assert b"no-such-image" in missing.stderr


def test_a_served_container_runs_with_normal_scheduling(forkserver: ForkServer,
                                                         busybox: str) -> None:
    """The spare gets ready on idle CPU time (SCHED_IDLE); the command it becomes, and the
    container that command runs, must not keep that policy (or its niceness)."""
    forkserver.start()
    time.sleep(0.5)  # a spare forked after the last command, now ready
    for _ in range(2):
        result = forkserver.run("run", "--rm", "busybox", "cat", "/proc/self/sched",
                                env={"BERTH_TRACE": "1"})
        assert result.returncode == 0, result.stderr
        assert SERVED in result.stderr.decode()
        assert AHEAD in result.stderr.decode()  # the init was forked at the spare's priority
        fields = {line.split(":")[0].strip(): line.split(":")[-1].strip()
                  for line in result.stdout.decode().splitlines() if ":" in line}
        assert (fields["policy"], fields["prio"]) == ("0", "120")


def test_the_server_keeps_no_directory_of_the_client_that_started_it(
        forkserver: ForkServer, tmp_path: str) -> None:
    """Its working directory is /, not the first client's: else unmounting that directory's
    filesystem would find it busy for as long as the server lives."""
    result = forkserver.run("version", command=BERTH_PYTHON_LAUNCHER, cwd=tmp_path)
    assert result.returncode == 0
    server = forkserver.start()
    assert os.readlink(f"/proc/{server}/cwd") == "/"  # and so its spares' (workers take
    # their client's)


def test_the_store_is_let_go_of_when_the_client_returns(forkserver: ForkServer) -> None:
    """As with a command in its own process: once `berth` returns, nothing of it holds the
    store's filesystem or the working directory (the worker reports the status before it
    has exited; SQLite maps the store's WAL index), so an unmount right after succeeds."""
    from berth.runtime import syscalls

    forkserver.start()
    mountpoint = tempfile.mkdtemp(prefix="berth-umount-", dir="/var/tmp")
    mounted = False
    try:
        for _ in range(5):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mountpoint],
                           check=True)
            mounted = True
            result = forkserver.run("images", env={"BERTH_ROOT": f"{mountpoint}/store",
                                                   "BERTH_TRACE": "1"}, cwd=mountpoint)
            assert result.returncode == 0, result.stderr
            assert SERVED in result.stderr.decode()
            syscalls.umount2(mountpoint)  # EBUSY if the worker still held anything there
            mounted = False
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(mountpoint, ignore_errors=True)


def test_a_served_run_rm_leaves_nothing(forkserver: ForkServer, busybox: str) -> None:
    """The container's dir is out of the store's way (moved into the trash) when the client
    returns, and removed by the time the worker ends (on a filesystem no one can unmount,
    after the client is told its status: see the next test)."""
    forkserver.start()
    root = forkserver.cli.root
    for _ in range(3):
        result = forkserver.run("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                                "echo hi > /tmp/file; exit 4", env={"BERTH_TRACE": "1"})
        assert result.returncode == 4, result.stderr
        assert SERVED in result.stderr.decode()
        assert os.listdir(os.path.join(root, "containers")) == []
        deadline = time.monotonic() + 30  # the worker removes it as it ends
        while os.listdir(os.path.join(root, "trash")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.listdir(os.path.join(root, "trash")) == []


def test_only_what_no_one_can_unmount_is_let_go_of_after_the_status() -> None:
    """A worker closes the store's database and removes the trees it left after telling the
    client its status only when they are on the root filesystem's own mount; anywhere else
    (a tmpfs, a bind mount even of the root filesystem) before, so that an unmount right
    after the command succeeds (the test before the previous one)."""
    from berth.cli.forkworker import _only_on_the_root_filesystem

    assert not _only_on_the_root_filesystem([])
    assert _only_on_the_root_filesystem(["/", "/usr/bin"])
    mountpoint = tempfile.mkdtemp(prefix="berth-mounts-", dir="/var/tmp")
    try:
        for how in (["-t", "tmpfs", "tmpfs"], ["--bind", "/etc"]):
            subprocess.run(["mount", *how, mountpoint], check=True)
            try:
                assert not _only_on_the_root_filesystem(["/", f"{mountpoint}/berth.db"])
            finally:
                subprocess.run(["umount", mountpoint], check=True)
    finally:
        os.rmdir(mountpoint)


def test_a_served_run_gets_what_the_client_would_give_its_init(forkserver: ForkServer,
                                                              busybox: str) -> None:
    """The container's init was forked ahead by the spare (berth.runtime.preforked), before
    the client came: it still gets the client's rlimits and niceness, and --network none's
    loopback up, as an init forked by the client's own process would."""
    forkserver.start()
    time.sleep(0.5)
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    wanted = 4096 * 1024 if hard == resource.RLIM_INFINITY else min(hard, 4096 * 1024)

    def as_client() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))
        os.nice(5)

    script = "cat /sys/class/net/lo/flags; grep 'core file' /proc/self/limits; " \
        "cut -d' ' -f19 /proc/self/stat"
    for network in ("none", "bridge"):
        result = forkserver.run("run", "--rm", "--network", network, "busybox", "sh", "-c",
                                script, env={"BERTH_TRACE": "1"}, preexec_fn=as_client)
        assert result.returncode == 0, result.stderr
        assert AHEAD in result.stderr.decode()
        flags, core, nice = result.stdout.decode().splitlines()
        assert flags == "0x9"
        assert core.split()[4] == str(wanted)
        assert nice == "5"


def test_signals_reach_the_command_and_a_killed_client_takes_its_worker(
        forkserver: ForkServer, busybox: str, client: str) -> None:
    server = forkserver.start()
    env = forkserver.cli.env(forkserver.env())
    # SIGTERM to the client: the worker gets it and passes it to the container (sig-proxy)
    script = 'trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done'
    process = subprocess.Popen([client, "run", "--rm", "busybox", "sh", "-c", script], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 42
    # SIGKILL of the client: its worker dies too, as the command's own process would
    process = subprocess.Popen([client, "logs", "-f", "nothing-here-yet"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.wait(timeout=30) == 1  # no such container: served and answered
    process = subprocess.Popen([client, "run", "-d", "--name", "long", "busybox", "sleep", "60"],
                               env=env, stdout=subprocess.PIPE)
    assert process.wait(timeout=60) == 0
    process = subprocess.Popen([client, "wait", "long"], env=env, stdout=subprocess.PIPE)
    assert process.stdout is not None
    worker = _worker_of(forkserver, server, process.stdout.fileno())
    process.kill()
    process.wait(timeout=10)
    _wait_gone(worker)
    assert forkserver.cli.run("rm", "-f", "long").returncode == 0


def _worker_of(forkserver: ForkServer, server: int, client_stdout: int) -> int:
    """The server's child whose stdout is the client's (the worker running its command)."""
    pipe = os.fstat(client_stdout).st_ino
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in forkserver.workers(server):
            try:
                if os.stat(f"/proc/{pid}/fd/1").st_ino == pipe:
                    return pid
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError("no worker of the fork server runs the client's command")


def _long_command(forkserver: ForkServer) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BERTH, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "sleep 3"],
        env=forkserver.cli.env(forkserver.env()), stdout=subprocess.PIPE)


def _spares(forkserver: ForkServer, server: int, *workers: int) -> list[int]:
    return [pid for pid in forkserver.workers(server) if pid not in workers]


def _wait_for_spares(forkserver: ForkServer, server: int, count: int, *workers: int) -> None:
    """Until the server has ``count`` children besides ``workers`` for 0.3 s in a row (a
    worker that has just ended is its child until it is reaped)."""
    deadline = time.monotonic() + 30
    held_since = None
    while time.monotonic() < deadline:
        if len(_spares(forkserver, server, *workers)) != count:
            held_since = None
        elif held_since is None:
            held_since = time.monotonic()
        elif time.monotonic() - held_since >= 0.3:
            return
        time.sleep(0.02)
    found = _spares(forkserver, server, *workers)
    raise AssertionError(f"not {count} spares but {[_describe(pid) for pid in found]}")


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        children = [e for e in os.listdir("/proc") if e.isdigit() and _parent(int(e)) == pid]
    except OSError as exc:
        return f"{pid}: {exc}"
    return f"{pid}: state {state}, waiting in {wchan}, children {children}"


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def test_two_spares_and_none_made_beside_a_command_while_one_is_left(
        forkserver: ForkServer, busybox: str) -> None:
    """Getting a spare ready slows a command running beside it on a small machine: the
    server keeps two, and one taken while the other is left is replaced once its command
    has ended; one taken when none is left, at once."""
    server = forkserver.start()
    _wait_for_spares(forkserver, server, 2)
    first = _long_command(forkserver)
    second = None
    assert first.stdout is not None
    try:
        worker = _worker_of(forkserver, server, first.stdout.fileno())
        time.sleep(0.2)
        assert len(_spares(forkserver, server, worker)) == 1  # none forked beside it
        second = _long_command(forkserver)  # served by the one left, replaced at once
        assert second.stdout is not None
        other = _worker_of(forkserver, server, second.stdout.fileno())
        _wait_for_spares(forkserver, server, 1, worker, other)
    finally:
        assert first.wait(timeout=60) == 0
        assert second is None or second.wait(timeout=60) == 0
    _wait_for_spares(forkserver, server, 2)  # and two again once both are over


def test_spares_copy_ahead_what_commands_were_seen_to_write(forkserver: ForkServer,
                                                            busybox: str) -> None:
    """The first commands of a name teach the server which pages they write
    (berth.runtime.prefault); its later spares copy those, not all; the server takes what
    it learned with it when it leaves."""
    from berth.runtime.prefault import LEARN_TIMES, LearnedPages

    server = forkserver.start()
    socket = forkserver.socket()
    assert socket is not None

    def learned_runs() -> int:
        """The `run`s learned, once LEARN_TIMES are and 0.3 s has passed (a worker learns
        after its client has the status)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            learned = LearnedPages.load(socket + ".pages", server)
            if learned is not None and learned.counts.get("run", 0) >= LEARN_TIMES:
                time.sleep(0.3)
                learned = LearnedPages.load(socket + ".pages", server)
                assert learned is not None
                return learned.counts["run"]
            time.sleep(0.02)
        raise AssertionError("the server's workers learned no `run`")

    for _ in range(LEARN_TIMES):
        assert forkserver.run("run", "--rm", busybox, "true").returncode == 0
    assert learned_runs() == LEARN_TIMES
    assert forkserver.run("run", "--rm", busybox, "true").returncode == 0
    assert learned_runs() == LEARN_TIMES  # then no more: enough to know
    learned = LearnedPages.load(socket + ".pages", server)
    assert learned is not None
    written = sum(end - start for start, end in learned.ranges)
    assert 0 < written < 64 << 20
    os.kill(server, signal.SIGTERM)
    _wait_gone(server)
    assert not os.path.exists(socket + ".pages")


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_the_server_keeps_the_cgroup_lock_warm_not_each_waiting_spare(
        forkserver: ForkServer, busybox: str) -> None:
    """After a command, the server's one thread keeps the cgroup-migration lock warm for
    the next (berth.runtime.cgroups.warm); its spares wait without a thread of their own
    (each waking every 3 ms would cost CPU), and it ends on its own two seconds later."""
    server = forkserver.start()
    assert forkserver.run("run", "--rm", busybox, "true").returncode == 0
    assert _threads(server) == 2  # the server and its warm-up, for two seconds from the run
    _wait_for_spares(forkserver, server, 2)
    spares = _spares(forkserver, server)
    assert [_threads(pid) for pid in spares] == [1, 1], [_describe(pid) for pid in spares]
    deadline = time.monotonic() + 10
    while _threads(server) != 1:
        assert time.monotonic() < deadline, "the server's warm-up did not end by itself"
        time.sleep(0.05)


def test_refuses_another_namespace_and_changed_code(forkserver: ForkServer, client: str) -> None:
    server = forkserver.start()
    forkserver.command = client
    other_netns = subprocess.run(
        ["unshare", "--net", client, "version"], env=forkserver.cli.env(
            forkserver.env(BERTH_TRACE="1")), capture_output=True, timeout=60, check=False)
    assert other_netns.returncode == 0  # it ran in its own process
    assert "refused: credentials or namespaces" in other_netns.stderr.decode()
    assert SERVED not in other_netns.stderr.decode()
    # a berth source file changed since the server started: refused, and the server leaves
    import berth.cli.render as module

    path = module.__file__
    assert path is not None
    before = os.stat(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        stale = forkserver.run("version", env={"BERTH_TRACE": "1"})
    finally:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stale.returncode == 0
    assert "refused: stale" in stale.stderr.decode()
    _wait_gone(server)


def test_leaves_when_idle_or_told_and_takes_its_socket(forkserver: ForkServer,
                                                        busybox: str) -> None:
    server = forkserver.start()
    # SIGTERM: no new command, but the running one finishes and its client gets its status
    client = subprocess.Popen(
        [BERTH, "run", "--rm", "busybox", "sh", "-c", "sleep 1; exit 5"],
        env=forkserver.cli.env(forkserver.env()), stdout=subprocess.PIPE)
    assert client.stdout is not None
    _worker_of(forkserver, server, client.stdout.fileno())
    os.kill(server, signal.SIGTERM)
    assert client.wait(timeout=60) == 5
    _wait_gone(server)
    assert forkserver.socket() is None
    # idle: BERTH_FORKSERVER_IDLE seconds after its last command
    server = forkserver.start()
    os.kill(server, signal.SIGTERM)
    _wait_gone(server)
    forkserver.run("version", env={"BERTH_FORKSERVER_IDLE": "0.5"})  # starts one that idles
    deadline = time.monotonic() + 30
    while forkserver.pid() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    idle = forkserver.pid()
    assert idle is not None
    _wait_gone(idle)
    assert forkserver.socket() is None
    assert forkserver.run("version").returncode == 0  # and the next command runs anyway


def test_disabled_by_the_environment(forkserver: ForkServer, client: str) -> None:
    forkserver.command = client
    result = forkserver.run("version", env={"BERTH_NO_FORKSERVER": "1", "BERTH_TRACE": "1"})
    assert result.returncode == 0
    assert SERVED not in result.stderr.decode()
    time.sleep(0.3)
    assert forkserver.pid() is None  # and none was started


def test_with_no_server_the_command_runs_and_starts_one(forkserver: ForkServer,
                                                       client: str) -> None:
    forkserver.command = client
    result = forkserver.run("version", env={"BERTH_TRACE": "1"})
    assert result.returncode == 0
    assert b"Version:" in result.stdout
    assert SERVED not in result.stderr.decode()  # it ran in its own process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and forkserver.socket() is None:
        time.sleep(0.02)
    assert forkserver.socket() is not None  # and started a server for the next command


def test_a_client_in_another_cgroup_has_a_server_of_its_own(forkserver: ForkServer) -> None:
    """The server lives in its clients' cgroup (a systemd service's commands get one inside the
    service): a client elsewhere gets another server, never this one's workers."""
    first = forkserver.start()
    hierarchy = "/sys/fs/cgroup/unified"
    if not os.path.isdir(hierarchy):
        hierarchy = "/sys/fs/cgroup"
    group = tempfile.mkdtemp(prefix="berth-forkserver-test-", dir=hierarchy)
    others: list[int] = []
    try:
        script = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        for _ in range(2):  # the first starts its server, the second is served by it
            result = subprocess.run(
                ["sh", "-c", script, "sh", BERTH, "version"],
                env=forkserver.cli.env(forkserver.env(BERTH_TRACE="1")),
                capture_output=True, timeout=60, check=False)
            assert result.returncode == 0
            time.sleep(0.5)
        sockets = [n for n in os.listdir(forkserver.directory) if n.endswith(".sock")]
        assert len(sockets) == 2
        others = [pid for pid in _pids_in(group) if pid != first]
        assert others, "no fork server runs in the other cgroup"
        assert first not in _pids_in(group)
    finally:
        for pid in _pids_in(group):
            os.kill(pid, signal.SIGKILL)
        for pid in others:
            _wait_gone(pid)
        deadline = time.monotonic() + 10
        while _pids_in(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.rmdir(group)


def _pids_in(group: str) -> list[int]:
    with open(os.path.join(group, "cgroup.procs")) as f:
        return [int(line) for line in f if line.strip()]


def test_ctrl_z_stops_the_client_with_its_worker_and_fg_resumes_both(
        forkserver: ForkServer, busybox: str, client: str) -> None:
    server = forkserver.start()
    script = 'trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done'
    process = subprocess.Popen([client, "run", "--rm", "busybox", "sh", "-c", script],
                               env=forkserver.cli.env(forkserver.env()),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    worker = _worker_of(forkserver, server, process.stdout.fileno())
    process.send_signal(signal.SIGTSTP)
    _wait_state(process.pid, "T")
    _wait_state(worker, "T")
    process.send_signal(signal.SIGCONT)
    _wait_state(process.pid, "S")
    _wait_state(worker, "S")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 42


def _wait_state(pid: int, state: str) -> None:
    deadline = time.monotonic() + 10
    seen = ""
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            seen = f.read().rsplit(")", 1)[1].split()[0]
        if seen == state or (state == "S" and seen in "RS"):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} is in state {seen}, not {state}")
