"""``berth run -it``: a pty in the container, this terminal raw, Ctrl-C as Docker has it."""

from __future__ import annotations

import time

import pytest

from tests.support.berthcli import BERTH, BerthCLI
from tests.support.ptydriver import Terminal

pytestmark = pytest.mark.root


def test_interactive_shell_ctrl_c_and_exit_code(cli: BerthCLI, busybox: str) -> None:
    term = Terminal([BERTH, "run", "--rm", "-it", "busybox", "sh"], cli.env())
    term.wait_for(b"/ # ")
    term.send(b"echo inside-$((3+4)); tty\r")
    term.wait_for(b"inside-7")
    term.wait_for(b"/dev/pts/0")
    term.send(b"sleep 30\r")
    term.read_for(0.5)
    term.send(b"\x03")  # reaches the sleep through the container's tty; the shell stays
    term.wait_for(b"^C")
    term.send(b"exit 7\r")
    assert term.wait() == 7
    assert cli("ps", "-aq") == ""


def test_tty_output_is_logged(cli: BerthCLI, busybox: str) -> None:
    term = Terminal([BERTH, "run", "--name", "tty1", "-t", "busybox", "echo", "on-a-tty"],
                    cli.env())
    assert term.wait() == 0
    assert b"on-a-tty" in term.output
    assert "on-a-tty" in cli("logs", "tty1")


def test_detach_keys_leave_run_it_running_and_attach_comes_back(
    cli: BerthCLI, busybox: str
) -> None:
    term = Terminal([BERTH, "run", "--rm", "-it", "--name", "keep", "busybox", "sh"], cli.env())
    term.wait_for(b"/ # ")
    term.send(b"echo first-$((1+1))\r")
    term.wait_for(b"first-2")
    term.send(b"\x10\x11")  # Ctrl-P Ctrl-Q, Docker's default detach keys
    assert term.wait() == 0
    assert cli("ps", "--format", "{{.Names}} {{.State}}").split() == ["keep", "running"]
    again = Terminal([BERTH, "attach", "--detach-keys", "ctrl-x,x", "keep"], cli.env())
    _until_attached(again)
    again.send(b"echo back-$((2+3))\r")
    again.wait_for(b"back-5")
    again.send(b"\x18x")  # the keys given to attach detach it too
    assert again.wait() == 0
    last = Terminal([BERTH, "attach", "keep"], cli.env())
    _until_attached(last)
    last.send(b"exit 3\r")
    assert last.wait() == 3
    for _ in range(100):  # --rm: removed once it has exited
        if cli("ps", "-aq") == "":
            break
        time.sleep(0.05)
    assert cli("ps", "-aq") == ""


def test_the_terminal_size_reaches_the_container_and_follows_it(
    cli: BerthCLI, busybox: str
) -> None:
    term = Terminal([BERTH, "run", "--rm", "-it", "busybox", "sh"], cli.env())
    term.resize(33, 97)
    term.wait_for(b"/ # ")
    term.send(b"stty size\r")
    term.wait_for(b"33 97")
    term.resize(41, 120)  # the window changes: berth gets SIGWINCH and passes the size on
    for _ in range(50):
        term.send(b"stty size\r")
        if b"41 120" in term.read_for(0.2):
            break
    assert b"41 120" in term.output
    term.send(b"exit\r")
    assert term.wait() == 0


def test_run_it_rm_that_cannot_start_is_removed(cli: BerthCLI, busybox: str) -> None:
    term = Terminal([BERTH, "run", "--rm", "-it", "busybox", "no-such-command"], cli.env())
    assert term.wait() == 127
    assert b"executable file not found" in term.output
    assert cli("ps", "-aq") == ""


def _until_attached(term: Terminal) -> None:
    """Input typed before attach makes the terminal raw is flushed: press Enter until the
    shell's prompt comes back through the attachment."""
    for _ in range(50):
        term.send(b"\r")
        if b"/ # " in term.read_for(0.2):
            return
    raise AssertionError(f"never attached; got {term.output[-300:]!r}")


def test_run_it_with_own_detach_keys(cli: BerthCLI, busybox: str) -> None:
    term = Terminal(
        [BERTH, "run", "-it", "--detach-keys", "ctrl-a,d", "--name", "mine", "busybox", "sh"],
        cli.env(),
    )
    term.wait_for(b"/ # ")
    term.send(b"\x10\x11")  # not the keys now: Ctrl-P Ctrl-Q reach the shell
    term.send(b"\x01d")
    assert term.wait() == 0
    assert cli("ps", "--format", "{{.Names}}").split() == ["mine"]
    cli("rm", "-f", "mine")
