"""The command name a fork server learns a command's pages under (berth.runtime.prefault)."""

from __future__ import annotations

from berth.cli.forkserver import _command_name


def test_the_command_is_the_first_word_that_is_not_a_global_flag_or_its_value() -> None:
    assert _command_name(["run", "--rm", "busybox", "true"]) == "run"
    assert _command_name(["--root", "/s", "-D", "ps", "-a"]) == "ps"
    assert _command_name(["-l", "debug", "--log-level", "info", "images"]) == "images"
    assert _command_name(["container", "ls"]) == "container"
    assert _command_name(["--version"]) == ""
    assert _command_name([]) == ""
