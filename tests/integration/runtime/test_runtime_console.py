"""Terminals: --console-socket (the pty master over SCM_RIGHTS, as runc sends it) and the
foreground proxy of ``run`` and ``exec``."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import termios
import time

import pytest

from berth.runtime.container import Runtime
from tests.integration.runtime.helpers import BundleFactory, berth_runtime_cli, new_id

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]


def _read_until_closed(fd: int, timeout: float = 10) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _terminal_spec(bundle: BundleFactory, script: str) -> dict:  # type: ignore[type-arg]
    spec = bundle.spec(["sh", "-c", script])
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 33, "width": 101}
    return spec


def test_console_socket_receives_the_pty(runtime: Runtime, bundle: BundleFactory,
                                         workdir: str) -> None:
    path = bundle.write(_terminal_spec(bundle, "tty; stty size; ls -l /dev/console; echo $$"))
    sock_path = os.path.join(workdir, "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    cid = new_id()
    create = subprocess.Popen([*berth_runtime_cli(runtime.root), "create", "--bundle", path,
                               "--console-socket", sock_path, cid], stdin=subprocess.DEVNULL)
    try:
        server.settimeout(30)
        conn, _ = server.accept()
        name, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert create.wait(timeout=30) == 0
        assert name == b"/dev/pts/0"
        master = fds[0]
        assert runtime.state(cid)["status"] == "created"
        runtime.start(cid)
        lines = _read_until_closed(master).replace("\r", "").splitlines()
        os.close(master)
        assert lines[0] == "/dev/pts/0"
        assert lines[1] == "33 101"
        assert lines[2].startswith("crw--w----") and lines[2].endswith("/dev/console")
        assert lines[3] == "1"
    finally:
        create.kill()
        create.wait()
        server.close()
        runtime.delete(cid, force=True)


def test_terminal_without_console_socket_needs_the_foreground(runtime: Runtime,
                                                               bundle: BundleFactory) -> None:
    from berth.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="console socket"):
        runtime.create(new_id(), bundle.write(_terminal_spec(bundle, "true")))


def _run_under_pty(args: list[str], rows: int = 24, cols: int = 80,
                   stdin_text: bytes = b"") -> tuple[int, str]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    if stdin_text:
        time.sleep(0.5)
        os.write(master, stdin_text)
    output = _read_until_closed(master, timeout=30)
    os.close(master)
    return proc.wait(timeout=30), output.replace("\r", "")


def test_foreground_run_proxies_the_terminal(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = _terminal_spec(bundle, "tty; stty size; read line; echo got:$line; exit 7")
    del spec["process"]["consoleSize"]
    code, output = _run_under_pty(
        [*berth_runtime_cli(runtime.root), "run", "--bundle", bundle.write(spec), new_id()],
        rows=40, cols=120, stdin_text=b"hello\r",
    )
    assert code == 7, output
    assert "/dev/pts/0\n40 120\n" in output
    assert "got:hello" in output


def test_exec_tty(runtime: Runtime, bundle: BundleFactory) -> None:
    cid = new_id()
    runtime.create(cid, bundle(["sleep", "1000"]))
    runtime.start(cid)
    try:
        code, output = _run_under_pty(
            [*berth_runtime_cli(runtime.root), "exec", "--tty", cid, "sh", "-c",
             "tty; stty size; exit 5"], rows=30, cols=90,
        )
        assert code == 5, output
        assert "/dev/pts/0\n30 90\n" in output
    finally:
        runtime.delete(cid, force=True)


def test_exec_tty_has_the_size_before_it_runs(runtime: Runtime, bundle: BundleFactory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A foreground exec's pty has its terminal's size before the process runs, not only
    once the proxy has it (a `stty size` at once found 0x0 now and then on a busy host)."""
    from berth.runtime import console

    monkeypatch.setattr(console.TtyProxy, "resize", lambda self: None)  # the proxy's, late
    cid = new_id()
    runtime.create(cid, bundle(["sleep", "1000"]))
    runtime.start(cid)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
    try:
        process = {"terminal": True, "args": ["sh", "-c", "stty size; exit 5"], "cwd": "/",
                   "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}}
        assert runtime.exec(cid, process, stdio=(slave, slave, slave)) == 5
        os.close(slave)
        slave = -1
        assert "30 90" in _read_until_closed(master).replace("\r", "")
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
        runtime.delete(cid, force=True)
