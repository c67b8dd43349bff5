"""berth-runtime's flag parser and the process ``exec`` builds from flags (no root needed)."""

from __future__ import annotations

from typing import Any

import pytest

from berth.errors import UsageError
from berth.runtime import cli


def test_global_flags_stop_at_the_command() -> None:
    parsed = cli.parse_flags(["--root", "/x", "--debug", "run", "--bundle", "b", "id"],
                             cli.GLOBAL_FLAGS)
    assert parsed.flags == {"root": "/x", "debug": True}
    assert parsed.positionals == ["run", "--bundle", "b", "id"]


def test_command_flags_forms() -> None:
    parsed = cli.parse_flags(["-b", "bundle", "--pid-file=p", "--no-pivot", "--preserve-fds",
                              "2", "id"], cli.COMMAND_FLAGS["create"])
    assert parsed.flags == {"bundle": "bundle", "pid-file": "p", "no-pivot": True,
                            "preserve-fds": "2"}
    assert parsed.positionals == ["id"]


def test_exec_flags_after_the_id_belong_to_the_command() -> None:
    parsed = cli.parse_flags(["-e", "A=1", "--env", "B=2", "-t", "id", "ls", "-la", "--color"],
                             cli.COMMAND_FLAGS["exec"])
    assert parsed.flags == {"env": ["A=1", "B=2"], "tty": True}
    assert parsed.positionals == ["id", "ls", "-la", "--color"]


def test_boolean_values_and_double_dash() -> None:
    parsed = cli.parse_flags(["--systemd-cgroup=false", "--", "--root"], cli.GLOBAL_FLAGS)
    assert parsed.flags == {"systemd-cgroup": False}
    assert parsed.positionals == ["--root"]
    with pytest.raises(UsageError, match="invalid boolean"):
        cli.parse_flags(["--debug=maybe"], cli.GLOBAL_FLAGS)


def test_unknown_and_incomplete_flags() -> None:
    with pytest.raises(UsageError, match="flag provided but not defined: --nope"):
        cli.parse_flags(["--nope=1"], cli.COMMAND_FLAGS["start"])
    with pytest.raises(UsageError, match="needs an argument"):
        cli.parse_flags(["--bundle"], cli.COMMAND_FLAGS["create"])


def test_parse_size() -> None:
    assert cli.parse_size("512m") == 512 * 1024**2
    assert cli.parse_size("1G") == 1024**3
    assert cli.parse_size("4096") == 4096
    assert cli.parse_size("2kb") == 2048
    with pytest.raises(UsageError):
        cli.parse_size("lots")


def test_update_resources_from_flags() -> None:
    args = cli.parse_flags(["--memory", "64m", "--cpu-quota", "50000", "--pids-limit", "10",
                            "--cpuset-cpus", "0", "id"], cli.COMMAND_FLAGS["update"])
    assert cli._update_resources(args) == {
        "memory": {"limit": 64 * 1024**2},
        "cpu": {"quota": 50000, "cpus": "0"},
        "pids": {"limit": 10},
    }


class _FakeRecord:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec


class _FakeRuntime:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec

    def record(self, container_id: str) -> _FakeRecord:
        del container_id
        return _FakeRecord(self._spec)


def test_exec_process_starts_from_the_containers_process() -> None:
    spec = {"process": {"args": ["sleep"], "env": ["PATH=/bin"], "cwd": "/",
                        "user": {"uid": 0, "gid": 0}, "terminal": True,
                        "consoleSize": {"height": 1, "width": 1},
                        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                         "permitted": ["CAP_KILL"]}}}
    args = cli.parse_flags(["-e", "X=1", "--cwd", "/tmp", "-u", "5:6", "-g", "7", "--cap",
                            "net_admin", "--no-new-privs", "id", "ls", "-l"],
                           cli.COMMAND_FLAGS["exec"])
    proc = cli.exec_process(_FakeRuntime(spec), "id", args)  # type: ignore[arg-type]
    assert proc["args"] == ["ls", "-l"]
    assert proc["env"] == ["PATH=/bin", "X=1"]
    assert proc["cwd"] == "/tmp"
    assert proc["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert proc["terminal"] is False
    assert "consoleSize" not in proc
    assert proc["noNewPrivileges"] is True
    assert proc["capabilities"]["bounding"] == ["CAP_KILL", "CAP_NET_ADMIN"]
    assert "ambient" not in proc["capabilities"]
    assert spec["process"]["env"] == ["PATH=/bin"]  # the container's own is left alone


def test_exec_needs_a_command() -> None:
    args = cli.parse_flags(["id"], cli.COMMAND_FLAGS["exec"])
    with pytest.raises(UsageError, match="a command to run is required"):
        cli.exec_process(_FakeRuntime({"process": {}}), "id", args)  # type: ignore[arg-type]


def test_format_table() -> None:
    assert cli.format_table([["ID", "PID"], ["abc", "1"]]) == "ID    PID\nabc   1\n"


def test_main_reports_usage_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--log-format", "xml", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "berth-runtime: invalid --log-format 'xml' (text or json)\n"
    assert cli.main(["--version"]) == 0
