"""exec into a container, and what reaches the container's processes: no host fd, and never the
host's python binary behind /proc/PID/exe (CVE-2019-5736)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from berth.errors import CommandNotFound, ContainerStateConflict
from berth.runtime import process, signals
from berth.runtime.container import Runtime
from tests.integration.runtime.helpers import (
    BundleFactory,
    berth_runtime_cli,
    new_id,
    run_captured,
    run_cli,
)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


def wait_exec(pid: int) -> None:
    """Until ``pid`` runs a program from the container (start returns before the exec)."""
    deadline = time.monotonic() + 5
    while not os.readlink(f"/proc/{pid}/exe").endswith("/bin/busybox"):
        assert time.monotonic() < deadline, os.readlink(f"/proc/{pid}/exe")
        time.sleep(0.005)


@pytest.fixture
def sleeping(runtime: Runtime, bundle: BundleFactory) -> Iterator[str]:
    cid = new_id()
    record = runtime.create(cid, bundle(["sleep", "1000"]))
    runtime.start(cid)
    wait_exec(record.pid)
    try:
        yield cid
    finally:
        runtime.delete(cid, force=True)


def exec_captured(runtime: Runtime, cid: str, args: list[str],
                  **changes: object) -> tuple[int, str, str]:
    proc = dict(runtime.record(cid).spec["process"])
    proc["args"] = args
    proc.update(changes)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            code = runtime.exec(cid, proc, stdio=(null, out.fileno(), err.fileno()))
        finally:
            os.close(null)
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode()


def test_exec_runs_in_the_container(runtime: Runtime, sleeping: str) -> None:
    script = "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; pwd; exit 3"
    code, out, _ = exec_captured(runtime, sleeping, ["sh", "-c", script], cwd="/tmp")
    assert code == 3
    assert out.splitlines() == ["runc", "sleep 1000 ", "/tmp"]


def test_exec_joins_the_cgroup_and_pid_namespace(runtime: Runtime, sleeping: str) -> None:
    code, out, _ = exec_captured(runtime, sleeping, ["sh", "-c", "echo $$; cat /proc/self/cgroup"])
    assert code == 0
    lines = out.splitlines()
    assert int(lines[0]) > 1
    init_cgroup = open(f"/proc/{runtime.record(sleeping).pid}/cgroup").read().splitlines()
    assert sorted(lines[1:]) == sorted(init_cgroup)


def test_exec_user_env_and_not_found(runtime: Runtime, sleeping: str) -> None:
    code, out, _ = exec_captured(
        runtime, sleeping, ["sh", "-c", "id -u; echo $EXTRA"],
        user={"uid": 65534, "gid": 65534}, env=["PATH=/bin", "EXTRA=yes"],
    )
    assert (code, out.split()) == (0, ["65534", "yes"])
    with pytest.raises(CommandNotFound):
        exec_captured(runtime, sleeping, ["no-such-command"])


def test_exec_detached_returns_the_pid(runtime: Runtime, sleeping: str) -> None:
    proc = dict(runtime.record(sleeping).spec["process"])
    proc["args"] = ["sleep", "1000"]
    pid = runtime.exec_detached(sleeping, proc)
    try:
        assert pid in runtime.ps(sleeping)
        wait_exec(pid)
    finally:
        os.kill(pid, signals.SIGKILL)
        os.waitpid(pid, 0)


def test_exec_into_a_stopped_container_is_refused(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["true"]))
    runtime.start(cid)
    runtime.wait(cid)
    proc = dict(runtime.record(cid).spec["process"])
    with pytest.raises(ContainerStateConflict, match="stopped"):
        runtime.exec(cid, proc)
    runtime.delete(cid)


def test_exec_cli(runtime: Runtime, sleeping: str) -> None:
    result = run_cli([*berth_runtime_cli(runtime.root), "exec", "--env", "A=1", "--cwd", "/dev",
                      sleeping, "sh", "-c", "echo $A $(pwd)"])
    assert (result.returncode, result.stdout) == (0, "1 /dev\n")
    result = run_cli([*berth_runtime_cli(runtime.root), "exec", sleeping, "nope"])
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert 'exec: "nope": executable file not found in $PATH' in result.stderr


# ---------------------------------------------------------------------------------------------
# file descriptors


def _fd_targets(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return out


def test_no_host_fd_reaches_the_container(runtime: Runtime, bundle: BundleFactory,
                                          workdir: str) -> None:
    leak_path = os.path.join(workdir, "berth-leak-me")
    leaked = os.open(leak_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(leaked, True)
    r, w = os.pipe()
    os.set_inheritable(r, True)
    cid = new_id()
    try:
        record = runtime.create(cid, bundle(["sleep", "1000"]))
        fds = _fd_targets(record.pid)
        # while created, the init holds stdio, the exec fifo it waits on (read end) and the
        # write end of its pipe to the runtime (to report a failure after start); both are
        # close-on-exec
        assert set(fds) - {0, 1, 2} == {
            fd for fd, target in fds.items() if fd > 2 and (
                target.endswith("/exec.fifo") or target.startswith("pipe:"))
        }
        assert len(set(fds) - {0, 1, 2}) == 2, fds
        assert leak_path not in fds.values()
        for fd in set(fds) - {0, 1, 2}:
            with open(f"/proc/{record.pid}/fdinfo/{fd}") as f:
                flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
            assert flags & os.O_CLOEXEC, (fd, fds[fd])
        runtime.start(cid)
        wait_exec(record.pid)
        assert sorted(_fd_targets(record.pid)) == [0, 1, 2]
    finally:
        os.close(leaked)
        os.close(r)
        os.close(w)
        runtime.delete(cid, force=True)


def test_preserve_fds(runtime: Runtime, bundle: BundleFactory) -> None:
    r, w = os.pipe()
    try:
        result = subprocess.run(
            [*berth_runtime_cli(runtime.root), "run", "--preserve-fds", "1", "--bundle",
             bundle(["sh", "-c", "echo through-fd3 >&3; ls /proc/self/fd"]), new_id()],
            pass_fds=(3,), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL, preexec_fn=(lambda: os.dup2(w, 3)) if w != 3 else None,
            check=False,
        )
        os.close(w)
        w = -1
        assert result.returncode == 0, result.stderr
        assert os.read(r, 100) == b"through-fd3\n"
        assert result.stdout.split() == ["0", "1", "2", "3", "4"]  # 4: ls's own directory
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# ---------------------------------------------------------------------------------------------
# CVE-2019-5736


def _python_binary_digest() -> str:
    with open(os.path.realpath(sys.executable), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _script_rootfs(bundle: BundleFactory) -> str:
    rootfs = bundle.private_rootfs()
    entry = os.path.join(rootfs, "entry")
    with open(entry, "w") as f:
        f.write("#!/proc/self/exe\nprint('host python ran')\n")
    os.chmod(entry, 0o755)
    return rootfs


def test_proc_self_exe_script_entrypoint_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    before = _python_binary_digest()
    spec = bundle.spec(["/entry"])
    spec["root"]["path"] = _script_rootfs(bundle)
    result = run_captured(runtime, bundle.write(spec))
    assert result.code == 126, result
    assert "cannot execute" in result.err
    assert "host python ran" not in result.out + result.err
    assert _python_binary_digest() == before


def test_proc_self_exe_script_fails_in_exec(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["sleep", "1000"])
    spec["root"]["path"] = _script_rootfs(bundle)
    cid = new_id()
    runtime.create(cid, bundle.write(spec))
    runtime.start(cid)
    try:
        code, out, err = exec_captured(runtime, cid, ["/entry"])
        assert code == 126
        assert "cannot execute" in err
        assert "host python ran" not in out + err
    finally:
        runtime.delete(cid, force=True)


def test_container_cannot_open_the_runtime_process_exe(runtime: Runtime,
                                                       bundle: BundleFactory) -> None:
    """While created, the init is still the runtime's (python) process: a process exec'd in
    the container can neither read nor write its /proc/PID/exe."""
    cid = new_id()
    runtime.create(cid, bundle(["true"]))
    try:
        script = ("cat /proc/1/exe >/dev/null 2>&1; echo read=$?; "
                  "(exec 3>>/proc/1/exe) 2>/dev/null; echo write=$?")
        code, out, _ = exec_captured(runtime, cid, ["sh", "-c", script])
        assert (code, out.split()) == (0, ["read=1", "write=1"])
    finally:
        runtime.delete(cid, force=True)


def test_container_cannot_write_an_entering_exec_exe(runtime: Runtime, bundle: BundleFactory,
                                                     workdir: str) -> None:
    """A process in the container opens /proc/PID/exe of every process that appears while
    processes are exec'd in; nothing it gets is writable, and none of it is the host python."""
    before = _python_binary_digest()
    hits = os.path.join(workdir, "hits")
    os.makedirs(hits)
    os.chmod(hits, 0o777)
    watcher = (
        "i=0; while [ $i -lt 4000 ]; do i=$((i+1)); for p in /proc/[0-9]*; do "
        "case $p in /proc/1|/proc/$$) continue;; esac; "
        "if exec 3</$p/exe 2>/dev/null; then "
        "  t=$(readlink /proc/self/fd/3); "
        "  if (exec 4>>/proc/self/fd/3; echo pwned >&4) 2>/dev/null; then "
        "    echo \"WROTE $t\" >> /hits/log; fi; "
        "  echo \"$t\" >> /hits/seen; exec 3<&-; fi; done; done; echo done >> /hits/log"
    )
    spec = bundle.spec(["sleep", "1000"])
    spec["mounts"].append({"destination": "/hits", "type": "bind", "source": hits,
                           "options": ["rbind", "rw"]})
    cid = new_id()
    runtime.create(cid, bundle.write(spec))
    runtime.start(cid)
    try:
        base = dict(runtime.record(cid).spec["process"])
        attacker = runtime.exec_detached(cid, {**base, "args": ["sh", "-c", watcher]})
        for _ in range(25):
            exec_captured(runtime, cid, ["true"])
        os.kill(attacker, signals.SIGKILL)
        os.waitpid(attacker, 0)
    finally:
        runtime.delete(cid, force=True)
    log = open(os.path.join(hits, "log")).read() if os.path.exists(
        os.path.join(hits, "log")) else ""
    seen = open(os.path.join(hits, "seen")).read() if os.path.exists(
        os.path.join(hits, "seen")) else ""
    assert "WROTE" not in log, log
    python = os.path.realpath(sys.executable)
    assert python not in seen and "python" not in seen, seen
    assert _python_binary_digest() == before


def test_exe_is_the_container_binary_after_exec(runtime: Runtime, sleeping: str) -> None:
    # seen from the host, outside the container's mount namespace: the path in the rootfs
    pid = runtime.record(sleeping).pid
    assert os.readlink(f"/proc/{pid}/exe") == "/bin/busybox"


def test_shim_refuses_without_its_marker(workdir: str) -> None:
    shim = os.path.join(workdir, "shim")
    with open(shim, "wb") as f:
        f.write(process.load_shim())
    os.chmod(shim, stat.S_IRWXU)
    refused = subprocess.run([shim, "/bin/echo", "echo", "hi"], capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 126
    assert "cannot execute" in refused.stderr
    ran = subprocess.run([process.SHIM_MARKER, "/bin/echo", "echo", "hi"], executable=shim,
                         capture_output=True, text=True, check=False)
    assert (ran.returncode, ran.stdout) == (0, "hi\n")
    missing = subprocess.run([process.SHIM_MARKER, "/nope", "nope"], executable=shim,
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 127
    assert missing.stderr == "berth: exec /nope: no such file or directory\n"


def test_exec_into_a_user_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    rootfs = bundle.private_rootfs()
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), 100000, 100000)
    os.lchown(rootfs, 100000, 100000)
    spec = bundle.spec(["sleep", "1000"])
    spec["root"]["path"] = rootfs
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cid = new_id()
    record = runtime.create(cid, bundle.write(spec))
    runtime.start(cid)
    try:
        wait_exec(record.pid)
        code, out, err = exec_captured(
            runtime, cid, ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"])
        assert code == 0, err
        assert out.split() == ["0", "0", "100000", "65536", "runc"]
    finally:
        runtime.delete(cid, force=True)
