"""``berth-runtime`` as runc's users drive it: each command its own process."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.integration.runtime.helpers import BundleFactory, berth_runtime_cli, new_id, run_cli

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


@pytest.fixture
def cli(workdir: str) -> list[str]:
    return berth_runtime_cli(os.path.join(workdir, "state"))


def _status(cli: list[str], cid: str) -> str:
    result = run_cli([*cli, "state", cid])
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["status"])


def test_lifecycle_across_processes(cli: list[str], bundle: BundleFactory, workdir: str,
                                    runtime: object) -> None:
    del runtime  # cleans up what this test leaves in the same state root
    cid = new_id()
    pid_file = os.path.join(workdir, "init.pid")
    path = bundle(["sleep", "1000"])
    # the container inherits create's stdio: capturing it would wait for the container
    result = run_cli([*cli, "create", "--bundle", path, "--pid-file", pid_file, cid],
                     capture_output=False, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    assert result.returncode == 0
    assert _status(cli, cid) == "created"
    with open(pid_file) as f:
        pid = int(f.read())
    assert run_cli([*cli, "start", cid]).returncode == 0
    assert _status(cli, cid) == "running"
    listed = run_cli([*cli, "list", "--format", "json"])
    assert [(s["id"], s["pid"]) for s in json.loads(listed.stdout)] == [(cid, pid)]
    assert run_cli([*cli, "list", "-q"]).stdout == cid + "\n"
    table = run_cli([*cli, "list"]).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == [cid, str(pid), "running"]
    ps = run_cli([*cli, "ps", "--format", "json", cid])
    assert json.loads(ps.stdout) == [pid]
    assert run_cli([*cli, "pause", cid]).returncode == 0
    assert _status(cli, cid) == "paused"
    assert run_cli([*cli, "resume", cid]).returncode == 0
    update = run_cli([*cli, "update", "--pids-limit", "77", cid])
    assert update.returncode == 0, update.stderr
    with open(f"/proc/{pid}/cgroup") as f:
        cgroup = next(line.split(":", 2)[2].strip() for line in f if ":pids:" in line)
    with open(f"/sys/fs/cgroup/pids{cgroup}/pids.max") as f:
        assert f.read().strip() == "77"
    refused = run_cli([*cli, "delete", cid])
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "running" in refused.stderr
    assert run_cli([*cli, "kill", cid, "SIGKILL"]).returncode == 0
    deadline = time.monotonic() + 10
    while _status(cli, cid) != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert run_cli([*cli, "delete", cid]).returncode == 0
    missing = run_cli([*cli, "state", cid])
    assert missing.returncode == 1
    assert missing.stderr.startswith("berth-runtime: container ")
    assert missing.stderr.count("\n") == 1


def test_run_exit_codes_and_errors(cli: list[str], bundle: BundleFactory) -> None:
    assert run_cli([*cli, "run", "-b", bundle(["sh", "-c", "exit 9"]), new_id()]).returncode == 9
    out = run_cli([*cli, "run", "--bundle", bundle(["echo", "hi"]), new_id()])
    assert (out.returncode, out.stdout) == (0, "hi\n")
    missing = run_cli([*cli, "run", "-b", bundle(["nope"]), new_id()])
    assert missing.returncode == 127
    assert missing.stderr == (
        'berth-runtime: exec: "nope": executable file not found in $PATH '
        "(check the command, and PATH in the container's environment)\n"
    )
    assert run_cli([*cli, "list", "-q"]).stdout == ""


def test_run_detached_and_kill_by_name(cli: list[str], bundle: BundleFactory,
                                       runtime: object) -> None:
    del runtime
    cid = new_id()
    result = run_cli([*cli, "run", "-d", "--bundle", bundle(["sleep", "1000"]), cid],
                     capture_output=False, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    assert result.returncode == 0
    assert _status(cli, cid) == "running"
    assert run_cli([*cli, "kill", "--all", cid, "KILL"]).returncode == 0
    assert run_cli([*cli, "delete", "--force", cid]).returncode == 0


def test_usage_errors(cli: list[str]) -> None:
    for args, text in (
        (["--systemd-cgroup", "list"], "--systemd-cgroup is not supported"),
        (["frobnicate"], "no such command: frobnicate"),
        (["create", "--nope", "x"], "flag provided but not defined: --nope"),
        (["kill", "x", "SIGNOPE"], "invalid signal 'SIGNOPE'"),
        (["create"], "a container id is required"),
    ):
        result = run_cli([*cli, *args])
        assert result.returncode != 0, args
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        assert text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_log_file_in_json(cli: list[str], workdir: str) -> None:
    log = os.path.join(workdir, "runtime.log")
    root_index = cli.index("--root")
    command = [*cli[:root_index], "--log", log, "--log-format", "json", *cli[root_index:],
               "state", "berth-absent"]
    assert run_cli(command).returncode == 1
    with open(log) as f:
        entry = json.loads(f.readline())
    assert entry["level"] == "error"
    assert "berth-absent" in entry["msg"]
    assert entry["time"].endswith("Z")


def test_accepts_runc_global_flags(cli: list[str]) -> None:
    root_index = cli.index("--root")
    command = [*cli[:root_index], "--criu", "criu", "--systemd-cgroup=false",
               *cli[root_index:], "list", "-q"]
    assert run_cli(command).returncode == 0


def test_spec_and_features(cli: list[str], workdir: str) -> None:
    bundle = os.path.join(workdir, "specbundle")
    os.makedirs(bundle)
    assert run_cli([*cli, "spec", "--bundle", bundle]).returncode == 0
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    assert spec["ociVersion"].startswith("1.")
    assert spec["root"]["path"] == "rootfs"
    again = run_cli([*cli, "spec", "--bundle", bundle])
    assert again.returncode != 0 and "exists" in again.stderr
    features = json.loads(run_cli([*cli, "features"]).stdout)
    assert "mount" in features["linux"]["namespaces"]


def test_foreground_run_forwards_signals(cli: list[str], bundle: BundleFactory) -> None:
    import signal

    script = 'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.05; done'
    proc = subprocess.Popen([*cli, "run", "--bundle", bundle(["sh", "-c", script]), new_id()],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 5
        assert proc.stdout.read() == "got-term\n"
    finally:
        proc.kill()
        proc.wait()


def test_exec_process_file_detached_with_pid_file(cli: list[str], bundle: BundleFactory,
                                                  workdir: str, runtime: object) -> None:
    del runtime
    cid = new_id()
    run_cli([*cli, "run", "-d", "--bundle", bundle(["sleep", "1000"]), cid],
            capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process_file = os.path.join(workdir, "process.json")
    with open(process_file, "w") as f:
        json.dump({"args": ["sleep", "999"], "cwd": "/", "env": ["PATH=/bin"],
                   "user": {"uid": 1, "gid": 1}}, f)
    pid_file = os.path.join(workdir, "exec.pid")
    result = run_cli([*cli, "exec", "--process", process_file, "--detach", "--pid-file",
                      pid_file, cid], capture_output=False, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    assert result.returncode == 0
    with open(pid_file) as f:
        pid = int(f.read())
    ps = json.loads(run_cli([*cli, "ps", "--format", "json", cid]).stdout)
    assert pid in ps
    with open(f"/proc/{pid}/status") as f:
        assert any(line.split()[:2] == ["Uid:", "1"] for line in f)
    assert run_cli([*cli, "delete", "--force", cid]).returncode == 0
