"""The parts of the final process setup that need no container (no root needed)."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from berth.errors import CommandNotFound, CommandNotInvokable
from berth.runtime import namespaces, process, signals
from berth.runtime.sync import Channel, error_from_message, error_message


def _exe(path: str, mode: int = 0o755) -> None:
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(path, mode)


def test_find_program(tmp_path: Any) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _exe(str(a / "tool"), 0o644)  # not executable: skipped in the PATH search
    _exe(str(b / "tool"))
    env = [f"PATH={a}:{b}"]
    assert process.find_program("tool", env) == str(b / "tool")
    with pytest.raises(CommandNotFound, match=r'exec: "missing": executable file not found'):
        process.find_program("missing", env)
    with pytest.raises(CommandNotFound):
        process.find_program("tool", [])  # no PATH at all, as runc
    with pytest.raises(CommandNotInvokable, match="permission denied"):
        process.find_program(str(a / "tool"), env)
    with pytest.raises(CommandNotInvokable, match="is a directory"):
        process.find_program(str(a), env)
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        process.find_program(str(a / "nope"), env)


def test_environment_gets_home_from_passwd(tmp_path: Any) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n")
    assert process.home_from_passwd(33, str(passwd)) == "/var/www"
    assert process.home_from_passwd(1000, str(passwd)) == "/"
    assert process.environment(["HOME=/x", "A=1"], 0) == ["HOME=/x", "A=1"]
    assert process.env_value(["A=1", "A=2"], "A") == "2"


def test_shim_blob_and_marker() -> None:
    blob = process.load_shim()
    assert blob[:4] == b"\x7fELF"
    assert len(blob) < 8192
    assert b"berth-exec-shim:" in blob
    # longer than the kernel reads of a "#!" line, so no script can name it
    assert len(process.SHIM_MARKER) > 256


def test_shim_fd_is_sealed() -> None:
    import fcntl

    fd = process.make_shim_fd(b"\x7fELF" + b"\0" * 60)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_committed_shim_is_what_the_source_builds(tmp_path: Any) -> None:
    from berth.runtime.shim import build

    machine = os.uname().machine
    built = build.build(machine, str(tmp_path))
    with open(built, "rb") as f:
        assert f.read() == process.load_shim(), (
            "exec_shim.c changed: run src/berth/runtime/shim/build.py and commit the .bin"
        )


def test_id_map_text() -> None:
    mappings = [{"containerID": 0, "hostID": 100000, "size": 65536},
                {"containerID": 65536, "hostID": 5, "size": 1}]
    assert namespaces.format_id_map(mappings) == "0 100000 65536\n65536 5 1\n"


def test_signal_names() -> None:
    assert signals.parse_signal("9") == 9
    assert signals.parse_signal("KILL") == signals.SIGKILL
    assert signals.parse_signal("sigterm") == signals.SIGTERM
    assert signals.parse_signal("RTMIN+1") == signals.signal_names()["RTMIN"] + 1
    assert signals.signal_name(signals.SIGHUP) == "SIGHUP"
    for bad in ("0", "99", "NOPE", ""):
        with pytest.raises(Exception, match="invalid signal"):
            signals.parse_signal(bad)


def test_channel_round_trip_and_errors() -> None:
    down, up = os.pipe(), os.pipe()
    parent = Channel(up[0], down[1])
    child = Channel(down[0], up[1])
    child.send("ready", value=[1, 2])
    assert parent.recv() == {"t": "ready", "value": [1, 2]}
    child.send("error", **error_message(CommandNotFound("gone", hint="look")))
    with pytest.raises(CommandNotFound, match="gone"):
        parent.expect("ready", "testing")
    child.close()
    assert parent.recv() is None
    parent.close()
    err = error_from_message({"kind": "NotAnError", "message": "m"})
    assert type(err).__name__ == "ContainerError"


@pytest.mark.parametrize(("machine", "e_machine"), [("x86_64", 62), ("aarch64", 183)])
def test_committed_shims_are_static_elfs_for_their_machine(machine: str, e_machine: int) -> None:
    with open(process.shim_path(machine), "rb") as f:
        blob = f.read()
    assert blob[:4] == b"\x7fELF" and blob[4] == 2  # 64-bit
    assert int.from_bytes(blob[18:20], "little") == e_machine
    assert int.from_bytes(blob[16:18], "little") == 2  # ET_EXEC: static, no interpreter
    assert b"berth-exec-shim:" in blob
    assert len(blob) < 8192
