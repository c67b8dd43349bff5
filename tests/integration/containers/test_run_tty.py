"""``berth run -it``: a pty in the container, this terminal raw, Ctrl-C as Docker has it."""

from __future__ import annotations

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
