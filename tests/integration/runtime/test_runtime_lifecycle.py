"""create / start / state / kill / delete / run / list / pause, as root on the real kernel."""

from __future__ import annotations

import json
import os
import time

import pytest

from berth.errors import (
    CommandNotFound,
    CommandNotInvokable,
    ContainerError,
    ContainerNotFound,
    ContainerStateConflict,
    InvalidArgument,
    NameInUse,
)
from berth.runtime import signals
from berth.runtime.container import Runtime
from tests.integration.runtime import helpers
from tests.integration.runtime.helpers import BundleFactory, new_id, run_captured

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


def test_run_returns_exit_code_and_output(runtime: Runtime, bundle: BundleFactory) -> None:
    result = run_captured(runtime, bundle(["sh", "-c", "echo hello; echo oops >&2; exit 42"]))
    assert (result.code, result.out, result.err) == (42, "hello\n", "oops\n")
    assert runtime.list_containers() == []


def test_run_true_and_false(runtime: Runtime, bundle: BundleFactory) -> None:
    assert run_captured(runtime, bundle(["true"])).code == 0
    assert run_captured(runtime, bundle(["false"])).code == 1


def test_create_start_state_kill_delete(runtime: Runtime, bundle: BundleFactory) -> None:
    path = bundle(["sleep", "1000"])
    cid = new_id()
    record = runtime.create(cid, path, stdio=(0, 1, 2))
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert state["pid"] == record.pid > 0
    assert state["bundle"] == path
    assert state["id"] == cid
    assert {"ociVersion", "rootfs", "created", "owner", "annotations"} <= set(state)
    runtime.start(cid)
    assert runtime.state(cid)["status"] == "running"
    with pytest.raises(ContainerStateConflict):
        runtime.start(cid)
    with pytest.raises(ContainerStateConflict, match="running"):
        runtime.delete(cid)
    runtime.kill(cid, signals.SIGKILL)
    assert runtime.wait(cid) == 137
    assert runtime.state(cid)["status"] == "stopped"
    assert runtime.state(cid)["pid"] == 0
    with pytest.raises(ContainerStateConflict, match="not running"):
        runtime.kill(cid, signals.SIGKILL)
    runtime.delete(cid)
    with pytest.raises(ContainerNotFound):
        runtime.state(cid)


def test_created_container_waits_and_can_be_deleted(runtime: Runtime,
                                                     bundle: BundleFactory) -> None:
    cid = new_id()
    record = runtime.create(cid, bundle(["true"]))
    time.sleep(0.2)
    assert runtime.state(cid)["status"] == "created"
    runtime.delete(cid)
    assert not os.path.exists(f"/proc/{record.pid}") or _is_zombie(record.pid) is False
    assert runtime.list_containers() == []


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_kill_term_ends_a_created_container(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["true"]))
    runtime.kill(cid, signals.SIGTERM)
    assert runtime.wait(cid) == 128 + signals.SIGTERM
    assert runtime.state(cid)["status"] == "stopped"
    runtime.delete(cid)


def test_delete_force_kills_every_process(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    path = bundle(["sh", "-c", "sleep 1000 & sleep 1000 & sleep 1000 & wait"])
    runtime.create(cid, path)
    runtime.start(cid)
    deadline = time.monotonic() + 5
    while len(runtime.ps(cid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = runtime.ps(cid)
    assert len(pids) == 4
    with open(f"/proc/{pids[0]}/cgroup") as f:
        cgroup = next(line.split(":", 2)[2].strip() for line in f if ":pids:" in line)
    assert os.path.isdir(f"/sys/fs/cgroup/pids{cgroup}")
    runtime.delete(cid, force=True)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    assert not os.path.exists(f"/sys/fs/cgroup/pids{cgroup}")
    with pytest.raises(ContainerNotFound):
        runtime.state(cid)


def test_kill_all_signals_every_process(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"]))
    runtime.start(cid)
    deadline = time.monotonic() + 5
    while len(runtime.ps(cid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = [p for p in runtime.ps(cid) if p != runtime.record(cid).pid]
    runtime.kill(cid, signals.SIGKILL, all=True)
    assert runtime.wait(cid) == 137
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    runtime.delete(cid)


def test_command_not_found(runtime: Runtime, bundle: BundleFactory) -> None:
    with pytest.raises(CommandNotFound, match=r'exec: "nope": executable file not found in \$PATH'):
        runtime.run(new_id(), bundle(["nope"]))
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        runtime.run(new_id(), bundle(["/bin/nope"]))
    assert runtime.list_containers() == []


def test_command_not_invokable(runtime: Runtime, bundle: BundleFactory) -> None:
    rootfs = bundle.private_rootfs()
    with open(os.path.join(rootfs, "notexec"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    spec = bundle.spec(["/notexec"])
    spec["root"]["path"] = rootfs
    with pytest.raises(CommandNotInvokable, match="permission denied"):
        runtime.run(new_id(), bundle.write(spec))
    spec["process"]["args"] = ["/etc"]
    with pytest.raises(CommandNotInvokable, match="is a directory"):
        runtime.run(new_id(), bundle.write(spec))


def test_ids_are_checked_and_unique(runtime: Runtime, bundle: BundleFactory) -> None:
    with pytest.raises(InvalidArgument):
        runtime.create("../escape", bundle(["true"]))
    with pytest.raises(ContainerNotFound):
        runtime.state("berth-never-created")
    cid = new_id()
    path = bundle(["true"])
    runtime.create(cid, path)
    with pytest.raises(NameInUse):
        runtime.create(cid, path)
    runtime.delete(cid)


def test_pid_file_and_list(runtime: Runtime, bundle: BundleFactory, workdir: str) -> None:
    cid = new_id()
    pid_file = os.path.join(workdir, "pid")
    record = runtime.create(cid, bundle(["true"]), pid_file=pid_file)
    with open(pid_file) as f:
        assert int(f.read()) == record.pid
    listed = runtime.list_containers()
    assert [(s["id"], s["status"], s["pid"]) for s in listed] == [(cid, "created", record.pid)]
    runtime.delete(cid)


def test_while_setting_up_runs_once_the_init_runs_and_its_failure_abandons_it(
        runtime: Runtime, bundle: BundleFactory) -> None:
    """The caller's bookkeeping runs while the init sets the container up: with the init's
    pid, with the container's state already findable (as created); if it raises, the
    container is gone (its init, state, cgroup) and the error is the caller's."""
    seen: list[tuple[int, str]] = []
    cid = new_id()
    record = runtime.create(cid, bundle(["true"]), while_setting_up=lambda pid: seen.append(
        (pid, runtime.state(cid)["status"])))
    assert seen == [(record.pid, "created")]
    runtime.delete(cid)

    class Refused(Exception):
        pass

    def refuse(pid: int) -> None:
        seen.append((pid, "refused"))
        raise Refused("the caller's bookkeeping failed")

    cid = new_id()
    with pytest.raises(Refused):
        runtime.create(cid, bundle(["true"]), while_setting_up=refuse)
    pid = seen[-1][0]
    assert runtime.list_containers() == []
    with pytest.raises(ContainerNotFound):
        runtime.state(cid)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}")


def test_missing_cwd_fails_create(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["true"])
    spec["process"]["cwd"] = "/does/not/exist"
    with pytest.raises(ContainerError, match="cwd"):
        runtime.run(new_id(), bundle.write(spec))


def test_process_settings(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["sh", "-c", "hostname; id; umask; pwd; ulimit -n; echo $HOME $FOO; "
                                    "cat /proc/sys/kernel/domainname"])
    spec["hostname"] = "berth-host"
    spec["domainname"] = "example.org"
    spec["process"]["user"] = {"uid": 33, "gid": 33, "additionalGids": [100, 5], "umask": 0o027}
    spec["process"]["cwd"] = "/tmp"
    spec["process"]["env"].append("FOO=bar")
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 777}]
    result = run_captured(runtime, bundle.write(spec))
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "berth-host",
        "uid=33(www-data) gid=33(www-data) groups=5(tty),100(users)",
        "0027",
        "/tmp",
        "512",
        "/var/www bar",
        "example.org",
    ]


def test_rlimit_above_the_hard_limit_is_clamped(runtime: Runtime, bundle: BundleFactory) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spec = bundle.spec(["sh", "-c", "ulimit -Hn"])
    spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}
    ]
    result = run_captured(runtime, bundle.write(spec))
    assert (result.code, result.out.strip()) == (0, str(hard))


def test_readonly_rootfs_masked_and_readonly_paths(runtime: Runtime,
                                                    bundle: BundleFactory) -> None:
    script = (
        "touch /berth-x 2>/dev/null && echo rootfs-rw || echo rootfs-ro; "
        "cat /proc/keys | wc -c; ls /sys/firmware | wc -l; "
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-rw || echo sys-ro; "
        "touch /dev/shm/ok && echo shm-rw"
    )
    result = run_captured(runtime, bundle(["sh", "-c", script]))
    assert result.out.split() == ["rootfs-ro", "0", "0", "sys-ro", "shm-rw"], result


def test_writable_rootfs(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["sh", "-c", "touch /berth-x && echo ok"])
    spec["root"] = {"path": bundle.private_rootfs(), "readonly": False}
    assert run_captured(runtime, bundle.write(spec)).out == "ok\n"


def test_sysctl_and_devices(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; ls -ln /dev/fuse"])
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    spec["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 0, "gid": 5}
    ]
    result = run_captured(runtime, bundle.write(spec))
    lines = result.out.splitlines()
    assert lines[0] == "1", result
    assert lines[1].split()[:6] == ["crw-r-----", "1", "0", "5", "10,", "229"], result


def test_no_uts_namespace_with_hostname_is_refused(runtime: Runtime,
                                                   bundle: BundleFactory) -> None:
    spec = bundle.spec(["true"])
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "uts"]
    with pytest.raises(ContainerError, match="uts namespace"):
        runtime.run(new_id(), bundle.write(spec))


def test_join_a_network_namespace_by_path(runtime: Runtime, bundle: BundleFactory) -> None:
    with helpers.namespace_holder("net") as holder:
        ns_path = f"/proc/{holder}/ns/net"
        spec = bundle.spec(["sh", "-c", "stat -L -c %i /proc/self/ns/net"])
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = ns_path
        result = run_captured(runtime, bundle.write(spec))
        assert int(result.out) == os.stat(ns_path).st_ino, result


def test_hostname_in_a_joined_uts_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    """A uts namespace joined by path is the container's: the spec's hostname is set in it,
    as runc does (it was refused as "no uts namespace")."""
    import subprocess

    with helpers.namespace_holder("uts") as holder:
        spec = bundle.spec(["hostname"])
        spec["hostname"] = "joined-uts"
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "uts":
                ns["path"] = f"/proc/{holder}/ns/uts"
        result = run_captured(runtime, bundle.write(spec))
        assert (result.code, result.out) == (0, "joined-uts\n"), result
        seen = subprocess.run(["nsenter", "-t", str(holder), "-u", "hostname"],
                              capture_output=True, text=True, check=True).stdout
        assert seen == "joined-uts\n"
        assert os.uname().nodename != "joined-uts"


def test_pause_and_resume(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["sleep", "1000"]))
    runtime.start(cid)
    runtime.pause(cid)
    assert runtime.state(cid)["status"] == "paused"
    runtime.resume(cid)
    assert runtime.state(cid)["status"] == "running"
    runtime.delete(cid, force=True)


def test_user_namespace(runtime: Runtime, bundle: BundleFactory, workdir: str) -> None:
    rootfs = bundle.private_rootfs()
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), 100000, 100000)
    os.lchown(rootfs, 100000, 100000)
    spec = bundle.spec(["sh", "-c", "id -u; cat /proc/self/uid_map; echo $$; ls -ln /dev/null"])
    spec["root"]["path"] = rootfs
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    result = run_captured(runtime, bundle.write(spec))
    lines = result.out.splitlines()
    assert result.code == 0, result
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == "1"
    assert lines[3].startswith("crw-rw-rw-")


def test_no_pivot(runtime: Runtime, bundle: BundleFactory) -> None:
    result = run_captured(runtime, bundle(["sh", "-c", "ls /; cat /proc/self/mountinfo"]))
    cid = new_id()
    path = bundle(["sh", "-c", "ls /"])
    with_move = _run_no_pivot(runtime, path, cid)
    assert with_move.code == 0
    assert with_move.out.split() == result.out.split()[: len(with_move.out.split())]


def _run_no_pivot(runtime: Runtime, path: str, cid: str) -> helpers.Captured:
    import tempfile

    with tempfile.TemporaryFile() as out:
        code = runtime.run(cid, path, stdio=(0, out.fileno(), 2), no_pivot=True)
        out.seek(0)
        return helpers.Captured(code, out.read().decode(), "")


def test_state_json_on_disk_is_private(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["true"]))
    state_file = os.path.join(runtime.root, cid, "state.json")
    assert os.stat(state_file).st_mode & 0o077 == 0
    with open(state_file) as f:
        assert json.load(f)["id"] == cid
    runtime.delete(cid)


def test_create_with_start_runs_the_program_at_once(runtime: Runtime, bundle: BundleFactory,
                                                    workdir: str) -> None:
    """create(start=True), what the engine's run uses: no start call; the program's output
    comes, the state says running once it returns, a second start is refused."""
    log = os.path.join(workdir, "poststart")
    spec = bundle.spec(["sh", "-c", "echo started; exec sleep 1000"])
    spec["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {log}"]}]}
    path = bundle.write(spec)
    cid = new_id()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        record = runtime.create(cid, path, stdio=(0, write_end, write_end), start=True)
        os.close(write_end)
        write_end = -1
        assert runtime.state(cid)["status"] == "running"
        assert os.read(read_end, 100) == b"started\n"
        with open(log) as f:
            assert json.load(f)["pid"] == record.pid
        with pytest.raises(ContainerStateConflict, match="running"):
            runtime.start(cid)
        runtime.kill(cid, signals.SIGKILL)
        assert runtime.wait(cid) == 137
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
        runtime.delete(cid, force=True)


def test_create_with_start_of_a_program_done_before_its_creator_looks(
        runtime: Runtime, bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container created and started in one may have run its program and exited before
    its creator, on a busy host, reads its init's start time: the create still succeeds
    (it was "exited during create", exit 125, for a `berth run busybox true` now and then)
    and the exit status is the program's."""
    from berth.runtime.cgroups import warm

    stop = warm.stop

    def descheduled() -> None:  # right after [go]: the init sets up, runs and exits meanwhile
        stop()
        time.sleep(1.0)

    monkeypatch.setattr(warm, "stop", descheduled)
    cid = new_id()
    try:
        runtime.create(cid, bundle(["sh", "-c", "exit 3"]), stdio=(0, 1, 2), start=True)
        assert runtime.wait(cid) == 3
    finally:
        runtime.delete(cid, force=True)


def test_create_with_start_takes_the_spec_it_is_given(runtime: Runtime,
                                                      bundle: BundleFactory) -> None:
    """The caller's spec is the one run (the launcher has just written it: no second read),
    and it is checked as config.json would be."""
    path = bundle(["sh", "-c", "exit 3"])
    given = bundle.spec(["sh", "-c", "exit 7"])
    cid = new_id()
    try:
        runtime.create(cid, path, stdio=(0, 1, 2), start=True, spec=given)
        assert runtime.wait(cid) == 7
    finally:
        runtime.delete(cid, force=True)
    del given["process"]["args"]
    with pytest.raises(InvalidArgument, match="args"):
        runtime.create(new_id(), path, stdio=(0, 1, 2), start=True, spec=given)
    assert runtime.list_containers() == []
