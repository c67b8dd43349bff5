"""Capabilities, no_new_privs and seccomp on the real kernel.

Each test forks a child that sets itself up as a container's init would (apply_identity,
no_new_privs, the seccomp filter), optionally probes syscalls with ctypes, and then execs
busybox to report what the kernel says (``/proc/self/status``, ``id``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from berth.runtime.capabilities import apply_identity, caps_to_mask, parse_cap_names
from berth.runtime.defaults import DEFAULT_CAPABILITIES, default_capabilities
from berth.runtime.seccomp import install_filter
from berth.runtime.seccomp_profile import docker_default_profile
from tests.support.rootfs import require_busybox

pytestmark = pytest.mark.root

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PR_SET_NO_NEW_PRIVS = 38
DEFAULT_MASK = caps_to_mask(parse_cap_names(DEFAULT_CAPABILITIES))
CLONE_NEWUTS = 0x04000000
CLONE_NEWNS = 0x00020000


@dataclass
class ChildResult:
    status: int
    output: str
    probes: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int | None:
        return os.waitstatus_to_exitcode(self.status)

    def proc_status(self) -> dict[str, str]:
        fields = {}
        for line in self.output.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        return fields

    def caps(self) -> dict[str, int]:
        status = self.proc_status()
        return {key: int(status[key], 16)
                for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def run_child(setup: Callable[[], None], argv: list[str] | None,
              probe: Callable[[], dict[str, Any]] | None = None) -> ChildResult:
    """Fork; the child runs ``setup``, then ``probe`` (its result comes back as JSON), then
    execs ``argv`` with stdout and stderr captured."""
    report_r, report_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(report_r)
            os.close(out_r)
            setup()
            result = probe() if probe else {}
            os.write(report_w, json.dumps(result).encode())
            os.close(report_w)
            if argv:
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                os.execv(argv[0], argv)
            os._exit(0)
        except BaseException as exc:
            try:
                os.write(report_w, json.dumps(
                    {"error": type(exc).__name__, "message": str(exc)}).encode())
            finally:
                os._exit(111)
    os.close(report_w)
    os.close(out_w)
    with os.fdopen(report_r, "rb") as f:
        report = f.read()
    with os.fdopen(out_r, "rb") as f:
        output = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return ChildResult(status, output, json.loads(report) if report else {})


def no_new_privs() -> None:
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def syscall_number(name: str) -> int:
    import pyseccomp

    number = int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))
    assert number >= 0, f"{name} has no number on this machine"
    return number


def probe_syscall(name: str, *args: int | bytes | None) -> tuple[int, int]:
    ctypes.set_errno(0)
    result = int(libc.syscall(syscall_number(name), *args))
    return result, ctypes.get_errno()


def status_of(user: dict[str, Any], caps: dict[str, Any] | None, *,
              nnp: bool = True) -> ChildResult:
    def setup() -> None:
        apply_identity(user, caps)
        if nnp:
            no_new_privs()

    return run_child(setup, [require_busybox(), "cat", "/proc/self/status"])


ROOT = {"uid": 0, "gid": 0}


# --- capabilities -----------------------------------------------------------------------


def test_docker_defaults_for_root() -> None:
    child = status_of(ROOT, default_capabilities())
    assert child.exit_code == 0, child.probes or child.output
    caps = child.caps()
    assert caps["CapBnd"] == DEFAULT_MASK
    assert caps["CapPrm"] == DEFAULT_MASK
    assert caps["CapEff"] == DEFAULT_MASK
    assert caps["CapInh"] == 0
    assert caps["CapAmb"] == 0
    assert child.proc_status()["NoNewPrivs"] == "1"


def test_all_five_sets_exactly_as_asked() -> None:
    names = list(DEFAULT_CAPABILITIES)
    caps_spec = {key: names for key in ("bounding", "effective", "permitted", "inheritable")}
    caps_spec["ambient"] = ["CAP_KILL"]
    child = status_of(ROOT, caps_spec)
    assert child.exit_code == 0, child.probes or child.output
    caps = child.caps()
    for key in ("CapBnd", "CapPrm", "CapEff", "CapInh"):
        assert caps[key] == DEFAULT_MASK, key
    assert caps["CapAmb"] == 1 << 5


def test_non_root_user_has_no_effective_or_permitted_caps() -> None:
    child = status_of({"uid": 1000, "gid": 1000, "additionalGids": [100, 5]},
                      default_capabilities())
    assert child.exit_code == 0, child.probes or child.output
    status = child.proc_status()
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1000"] * 4
    assert sorted(status["Groups"].split()) == ["100", "5"]
    caps = child.caps()
    assert caps["CapPrm"] == 0 and caps["CapEff"] == 0 and caps["CapAmb"] == 0
    assert caps["CapBnd"] == DEFAULT_MASK


def test_non_root_user_with_an_ambient_capability() -> None:
    one = ["CAP_NET_BIND_SERVICE"]
    caps_spec = {"bounding": list(DEFAULT_CAPABILITIES), "effective": one, "permitted": one,
                 "inheritable": one, "ambient": one}
    child = status_of({"uid": 1000, "gid": 1000}, caps_spec)
    assert child.exit_code == 0, child.probes or child.output
    caps = child.caps()
    assert caps["CapAmb"] == caps["CapPrm"] == caps["CapEff"] == 1 << 10


def test_capabilities_none_leaves_the_sets_alone() -> None:
    child = status_of({"uid": 0, "gid": 0}, None, nnp=False)
    assert child.exit_code == 0, child.probes or child.output
    assert child.caps()["CapBnd"] == int(
        Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)


def test_a_capability_the_host_withholds_is_a_clear_error() -> None:
    own = Path("/proc/self/status").read_text()
    bounding = int(own.split("CapBnd:")[1].split()[0], 16)
    sys_resource = 24
    caps_spec = {key: ["CAP_SYS_RESOURCE"] for key in ("bounding", "effective", "permitted")}
    child = status_of(ROOT, caps_spec)
    if bounding >> sys_resource & 1:
        assert child.exit_code == 0, child.probes
    else:  # this CI host: berth itself runs without CAP_SYS_RESOURCE
        assert child.probes["error"] == "ContainerError"
        assert "CAP_SYS_RESOURCE" in child.probes["message"]


# --- seccomp ----------------------------------------------------------------------------


def default_container(*extra_caps: str) -> Callable[[], None]:
    names = [*DEFAULT_CAPABILITIES, *extra_caps]

    def setup() -> None:
        apply_identity(ROOT, default_capabilities(names))
        no_new_privs()
        install_filter(docker_default_profile(names))

    return setup


def test_default_profile_denials_and_clone3() -> None:
    def probe() -> dict[str, Any]:
        return {
            "unshare": probe_syscall("unshare", CLONE_NEWUTS),
            "mount": probe_syscall("mount", b"none", b"/berth-no-such-dir", b"tmpfs", 0, None),
            "keyctl": probe_syscall("keyctl", 0, -2 & 0xFFFFFFFF, 0),
            "swapon": probe_syscall("swapon", b"/berth-no-such-file", 0),
            "add_key": probe_syscall("add_key", b"user", b"berth", b"x", 1, -2 & 0xFFFFFFFF),
            "clone3": probe_syscall("clone3", None, 0),
            "getppid": probe_syscall("getppid"),
        }

    child = run_child(default_container(), [require_busybox(), "cat", "/proc/self/status"],
                      probe)
    assert child.exit_code == 0, child.probes or child.output
    for name in ("unshare", "mount", "keyctl", "swapon", "add_key"):
        assert child.probes[name] == [-1, errno.EPERM], name
    assert child.probes["clone3"] == [-1, errno.ENOSYS]
    assert child.probes["getppid"][0] == os.getpid()
    status = child.proc_status()
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"


def test_busybox_forks_but_cannot_unshare_under_the_default_profile() -> None:
    script = "echo started; (true); true & wait; unshare -u true; echo unshare=$?"
    child = run_child(default_container(), [require_busybox(), "sh", "-c", script])
    assert child.exit_code == 0, child.probes or child.output
    assert "started" in child.output
    assert "Operation not permitted" in child.output
    assert "unshare=0" not in child.output


def test_cap_sys_admin_unlocks_namespaces_and_clone3() -> None:
    def probe() -> dict[str, Any]:
        return {"unshare": probe_syscall("unshare", CLONE_NEWUTS),
                "clone3": probe_syscall("clone3", None, 0)}

    child = run_child(default_container("CAP_SYS_ADMIN"), None, probe)
    assert child.exit_code == 0, child.probes
    assert child.probes["unshare"][0] == 0
    assert child.probes["clone3"][1] != errno.ENOSYS  # EINVAL for a bad size: it ran


# --- no_new_privs against a setuid binary -----------------------------------------------


def _setuid_python() -> str:
    for candidate in ("/usr/bin/python3", os.path.realpath(sys.executable)):
        if os.path.exists(candidate):
            return os.path.realpath(candidate)
    raise RuntimeError("no python interpreter binary to make a setuid copy of")


@pytest.fixture
def setuid_copy() -> Iterator[str]:
    """A setuid-root copy of a Python interpreter (busybox drops setuid by itself)."""
    directory = tempfile.mkdtemp(prefix="berth-test-suid-")
    try:
        os.chmod(directory, 0o755)
        target = os.path.join(directory, "python3")
        shutil.copy2(_setuid_python(), target)
        os.chown(target, 0, 0)
        os.chmod(target, 0o4755)
        assert os.stat(target).st_mode & stat.S_ISUID
        yield target
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("nnp", [True, False])
def test_setuid_binary_gains_nothing_under_no_new_privs(setuid_copy: str, nnp: bool) -> None:
    def setup() -> None:
        apply_identity({"uid": 1000, "gid": 1000}, default_capabilities())
        if nnp:
            no_new_privs()

    code = "import os; print('ids', *os.getresuid())"
    child = run_child(setup, [setuid_copy, "-I", "-S", "-c", code])
    assert child.exit_code == 0, child.probes or child.output
    line = next(line for line in child.output.splitlines() if line.startswith("ids"))
    real, effective, saved = (int(n) for n in line.split()[1:])
    assert real == 1000
    if nnp:
        assert (effective, saved) == (1000, 1000)
    else:  # the control: without no_new_privs the setuid bit works, so the test means it
        assert (effective, saved) == (0, 0)
