"""Kept seccomp programs (runtime/seccomp_bpf.py): compiled once, reused, never trusted blindly,
and the same program libseccomp would load."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from berth.runtime import seccomp, seccomp_bpf
from berth.runtime.defaults import DEFAULT_CAPABILITIES
from berth.runtime.seccomp_profile import docker_default_profile


@pytest.fixture
def profile() -> dict[str, Any]:
    return docker_default_profile(list(DEFAULT_CAPABILITIES))


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.bpf"))


def test_a_program_is_compiled_once_then_reused(
    tmp_path: Path, profile: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "@seccomp"
    program = seccomp_bpf.compiled_program(profile, str(cache))
    prepared = seccomp.prepare_filter(profile)
    assert prepared is not None
    assert program == seccomp.export_program(prepared)  # what libseccomp itself loads
    assert len(entries(cache)) == 1 and oct(cache.stat().st_mode & 0o777) == "0o700"

    def no_compiling(_: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(seccomp, "prepare_filter", no_compiling)
    assert seccomp_bpf.compiled_program(profile, str(cache)) == program


def test_an_entry_anyone_could_write_or_a_torn_one_is_compiled_again(
    tmp_path: Path, profile: dict[str, Any]
) -> None:
    cache = tmp_path / "@seccomp"
    program = seccomp_bpf.compiled_program(profile, str(cache))
    (entry,) = entries(cache)
    entry.chmod(0o666)
    assert seccomp_bpf.compiled_program(profile, str(cache)) == program
    assert entry.stat().st_mode & 0o777 == 0o600  # replaced
    entry.write_bytes(entry.read_bytes()[:-3])
    assert seccomp_bpf.compiled_program(profile, str(cache)) == program
    header = entry.read_bytes().split(b"\n", 1)[0]
    entry.write_bytes(header.replace(b"\t", b"\tX", 1) + b"\n" + program)
    assert seccomp_bpf.compiled_program(profile, str(cache)) == program
    assert entry.read_bytes().split(b"\n", 1)[0] == header


def test_flags_are_left_to_libseccomp(profile: dict[str, Any]) -> None:
    assert seccomp_bpf.cacheable(profile)
    assert not seccomp_bpf.cacheable({**profile, "flags": ["SECCOMP_FILTER_FLAG_LOG"]})


def test_the_kept_program_filters(tmp_path: Path, profile: dict[str, Any]) -> None:
    """Loaded in a child with no_new_privs (no privilege needed): personality(2) with an odd
    persona is refused, as the profile says; the query persona is allowed."""
    load = seccomp_bpf.loader(seccomp_bpf.compiled_program(profile, str(tmp_path)))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality.argtypes = [ctypes.c_ulong]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            load()
            odd = libc.personality(0x1234) == -1 and ctypes.get_errno() == errno.EPERM
            query = libc.personality(0xFFFFFFFF) != -1
            os.write(write, b"ok" if odd and query else b"no")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 2)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"ok"
