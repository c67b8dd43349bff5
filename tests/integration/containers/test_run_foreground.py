"""``berth run`` in the foreground: a real process, isolated by the kernel, Docker's rules."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import release_store
from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root


def test_output_exit_codes_and_rm(cli: BerthCLI, busybox: str) -> None:
    assert cli("run", "--rm", "busybox", "echo", "hello") == "hello\n"
    assert cli.run("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    missing = cli.run("run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    not_exec = cli.run("run", "--rm", "busybox", "/etc/passwd")
    assert not_exec.returncode == 126
    assert cli("ps", "-aq") == ""  # --rm removed them all, failed starts included


def test_detached_rm_container_that_cannot_start_is_removed(cli: BerthCLI, busybox: str) -> None:
    missing = cli.run("run", "-d", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    assert cli("ps", "-aq") == ""  # as Docker's daemon removes it
    kept = cli.run("run", "-d", "--name", "kept", "busybox", "no-such-command")
    assert kept.returncode == 127
    assert cli("ps", "-a", "--format", "{{.Names}} {{.Status}}").split() == ["kept", "Created"]


def test_docker_defaults_inside(cli: BerthCLI, busybox: str) -> None:
    script = "id; hostname; echo $HOME; pwd; grep -E '^(CapEff|NoNewPrivs|Seccomp):' " \
        "/proc/self/status"
    out = cli("run", "--rm", "busybox", "sh", "-c", script)
    lines = out.splitlines()
    assert lines[0] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    assert len(lines[1]) == 12  # the short container id
    assert lines[2:4] == ["/root", "/"]
    caps = dict(line.split(":\t") for line in lines[4:])
    assert caps["CapEff"] == "00000000a80425fb"  # Docker's 14 default capabilities
    assert caps["NoNewPrivs"] == "1"
    assert caps["Seccomp"] == "2"


def test_run_options_reach_the_process(cli: BerthCLI, busybox: str, tmp_path: object) -> None:
    env_file = os.path.join(str(tmp_path), "env")
    with open(env_file, "w") as f:
        f.write("# comment\nFROM_FILE=yes\n")
    out = cli("run", "--rm", "-e", "A=1", "--env-file", env_file, "-w", "/tmp", "-u",
              "nobody", "-h", "myhost", "--entrypoint", "sh", "busybox", "-c",
              "echo $A $FROM_FILE; pwd; id -u; hostname")
    assert out.splitlines() == ["1 yes", "/tmp", "65534", "myhost"]


def test_a_bad_flag_value_is_a_clear_125(cli: BerthCLI, busybox: str) -> None:
    for args, message in ((("--restart", "sometimes"), "invalid restart policy"),
                          (("--ulimit", "bogus=1"), "invalid ulimit type"),
                          (("-m", "lots"), "invalid"),
                          (("-v", "not/a-name:/x"), "includes invalid characters")):
        result = cli.run("run", "--rm", *args, "busybox", "true")
        assert result.returncode == 125, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_unknown_image_and_name_in_use(cli: BerthCLI, busybox: str) -> None:
    unknown = cli.run("run", "--rm", "--pull", "never", "nonexistent:1", "true")
    assert unknown.returncode == 125
    assert "Unable to find image 'nonexistent:1' locally" in unknown.stderr
    cli("create", "--name", "taken", "busybox", "true")
    again = cli.run("run", "--name", "taken", "busybox", "true")
    assert again.returncode == 125
    assert 'The container name "/taken" is already in use' in again.stderr


def test_bind_mounts_and_read_only(cli: BerthCLI, busybox: str, tmp_path: object) -> None:
    host_dir = os.path.join(str(tmp_path), "shared")
    os.makedirs(host_dir)
    with open(os.path.join(host_dir, "in.txt"), "w") as f:
        f.write("from host\n")
    out = cli("run", "--rm", "-v", f"{host_dir}:/data", "busybox", "sh", "-c",
              "cat /data/in.txt; echo from container > /data/out.txt")
    assert out == "from host\n"
    assert open(os.path.join(host_dir, "out.txt")).read() == "from container\n"
    ro = cli.run("run", "--rm", "-v", f"{host_dir}:/data:ro", "busybox", "touch", "/data/x")
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    rootfs_ro = cli.run("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert rootfs_ro.returncode != 0
    assert cli("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
               "touch /scratch/x && echo ok") == "ok\n"
    missing = cli.run("run", "--rm", "--mount", "type=bind,source=/nonexistent/berth,target=/x",
                      "busybox", "true")
    assert missing.returncode == 125 and "bind source path does not exist" in missing.stderr


def test_named_volume_outlives_the_container_and_is_seeded(cli: BerthCLI, busybox: str) -> None:
    cli("run", "--rm", "-v", "appdata:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert cli("run", "--rm", "-v", "appdata:/data", "busybox", "cat", "/data/f") == "kept\n"
    # a new volume mounted over a path with image content starts as a copy of it
    assert "root:x:0:0" in cli("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat",
                               "/etc/passwd")
    volumes = cli("volume", "ls", "-q").split()
    assert {"appdata", "etcvol"} <= set(volumes)
    in_use = cli.run("volume", "rm", "appdata")
    assert in_use.returncode == 0  # no container uses it any more
    assert "appdata" not in cli("volume", "ls", "-q").split()


def test_memory_limit_oom_is_137_and_recorded(cli: BerthCLI, busybox: str) -> None:
    result = cli.run("run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox",
                     "sh", "-c", "x=a; while true; do x=$x$x; done")
    assert result.returncode == 137
    state = json.loads(cli("inspect", "hog"))[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert state["Status"] == "exited"


def test_limits_capabilities_and_init(cli: BerthCLI, busybox: str) -> None:
    assert cli("run", "--rm", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
               "ulimit -n") == "512\n"
    limited = cli.run("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
                      "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait")
    assert limited.returncode != 0 and "can't fork" in limited.stderr
    dropped = cli("run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff",
                  "/proc/self/status")
    assert dropped.split()[1] == "0000000000000000"
    added = cli("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "grep", "CapEff",
                "/proc/self/status")
    assert int(added.split()[1], 16) & (1 << 12)  # CAP_NET_ADMIN
    assert cli("run", "--rm", "--init", "busybox", "sh", "-c",
               "cat /proc/1/cmdline | tr '\\0' ' '").startswith("/sbin/docker-init -- sh")
    privileged = cli("run", "--rm", "--privileged", "busybox", "grep", "Seccomp:",
                     "/proc/self/status")
    assert privileged.split()[1] == "0"


def test_inspect_ps_and_states(cli: BerthCLI, busybox: str) -> None:
    cli("create", "--name", "c1", "-l", "tier=web", "busybox", "echo", "hi")
    created = json.loads(cli("inspect", "c1"))[0]
    assert created["State"]["Status"] == "created" and created["Name"] == "/c1"
    assert created["Config"]["Cmd"] == ["echo", "hi"] and created["Path"] == "echo"
    assert created["Config"]["Labels"] == {"tier": "web"}
    listing = cli("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Command}}")
    assert listing == 'c1 Created "echo hi"\n'
    assert cli("ps", "-q") == ""
    assert cli("ps", "-aq", "--filter", "label=tier=web") != ""
    assert cli("ps", "-aq", "--filter", "status=running") == ""
    cli("rm", "c1")
    assert cli.run("inspect", "c1").returncode == 1


def test_network_none_has_only_loopback_up(cli: BerthCLI, busybox: str) -> None:
    out = cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "UP" in out


def test_bridge_network_gets_an_address_and_resolv_conf(cli: BerthCLI, busybox: str) -> None:
    out = cli("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route")
    assert " inet " in out and "default via" in out



@pytest.mark.peers
@pytest.mark.parametrize("runtime", ["berth", "runc", "crun"])
def test_the_same_container_through_each_runtime(cli: BerthCLI, busybox: str, runtime: str,
                                                 tmp_path: object) -> None:
    host_dir = os.path.join(str(tmp_path), "data")
    os.makedirs(host_dir)
    script = ("id; hostname; cat /data/in; grep -E '^CapEff' /proc/self/status; "
              "ulimit -n; cat /etc/hostname; exit 5")
    with open(os.path.join(host_dir, "in"), "w") as f:
        f.write("mounted\n")
    result = cli.run("run", "--rm", "--runtime", runtime, "-h", "samehost", "--ulimit",
                     "nofile=256:256", "-v", f"{host_dir}:/data:ro", "busybox", "sh", "-c",
                     script)
    assert result.returncode == 5, result.stderr
    assert result.stdout.splitlines() == [
        "uid=0(root) gid=0(root) groups=0(root),10(wheel)", "samehost", "mounted",
        "CapEff:\t00000000a80425fb", "256", "samehost"]
    # released, the store leaves no cgroup of its name in any hierarchy (runc and crun also
    # use the named name=systemd one, which berth's runtime does not)
    release_store(cli.root)
    parent = cli.store_cgroup()
    left = [h for h in os.listdir("/sys/fs/cgroup")
            if os.path.isdir(os.path.join("/sys/fs/cgroup", h, parent))]
    assert left == []


def test_start_attached_gets_output_and_exit_code(cli: BerthCLI, busybox: str) -> None:
    cli("create", "--name", "later", "busybox", "sh", "-c", "echo from-later; exit 3")
    started = cli.run("start", "-a", "later")
    assert (started.returncode, started.stdout) == (3, "from-later\n")
    cli("create", "--rm", "--name", "broken", "busybox", "no-such-command")
    failed = cli.run("start", "-a", "broken")
    assert failed.returncode == 127 and "executable file not found" in failed.stderr
    assert cli("ps", "-a", "--format", "{{.Names}}").split() == ["later"]  # --rm: removed
