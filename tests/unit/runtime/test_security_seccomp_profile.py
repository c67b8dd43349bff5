"""The shape of berth's default seccomp profile (Docker's semantics)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from berth.oci.runtime_spec import validate
from berth.runtime.defaults import DEFAULT_CAPABILITIES
from berth.runtime.seccomp import prepare_filter
from berth.runtime.seccomp_profile import (
    AF_ALG,
    AF_VSOCK,
    EVERYDAY,
    NAMESPACE_FLAGS,
    allowed_syscalls,
    docker_default_profile,
)

X86 = {"machine": "x86_64", "kernel": "6.1.0"}


def profile(*extra: str, caps: tuple[str, ...] = DEFAULT_CAPABILITIES,
            **where: str) -> dict[str, Any]:
    return docker_default_profile(list(caps) + list(extra), **(where or X86))


def rules_for(prof: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in prof["syscalls"] if name in rule["names"]]


def test_default_action_is_eperm() -> None:
    prof = profile()
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    assert prof["defaultErrnoRet"] == errno.EPERM


def test_architectures_follow_the_machine() -> None:
    assert profile()["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    arm = profile(machine="aarch64", kernel="6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_everyday_syscalls_allowed_and_dangerous_ones_not() -> None:
    allowed = allowed_syscalls(profile())
    for name in ("read", "write", "openat", "execve", "fork", "mmap", "futex", "exit_group",
                 "setuid", "capset", "chown", "kill", "bind", "accept4", "pidfd_open",
                 "arch_prctl", "chroot"):
        assert name in allowed, name
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key",
                 "swapon", "swapoff", "kexec_load", "init_module", "reboot", "ptrace_attach",
                 "userfaultfd", "io_uring_setup", "bpf", "perf_event_open", "settimeofday",
                 "open_by_handle_at", "kcmp", "acct", "clone3", "personality", "socket"):
        assert name not in allowed, name


def test_no_syscall_listed_twice_in_the_everyday_groups() -> None:
    names = [name for grant in EVERYDAY for name in grant.names]
    assert len(names) == len(set(names))


def test_clone3_fails_with_enosys_without_sys_admin() -> None:
    (rule,) = rules_for(profile(), "clone3")
    assert rule["action"] == "SCMP_ACT_ERRNO"
    assert rule["errnoRet"] == errno.ENOSYS


def test_clone3_and_clone_unrestricted_with_sys_admin() -> None:
    prof = profile("CAP_SYS_ADMIN")
    for name in ("clone3", "clone"):
        (rule,) = rules_for(prof, name)
        assert rule["action"] == "SCMP_ACT_ALLOW"
        assert "args" not in rule


def test_clone_without_sys_admin_only_without_namespace_flags() -> None:
    (rule,) = rules_for(profile(), "clone")
    assert rule["args"] == [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0,
                             "op": "SCMP_CMP_MASKED_EQ"}]
    (s390,) = rules_for(profile(machine="s390x", kernel="6.1"), "clone")
    assert s390["args"][0]["index"] == 1


@pytest.mark.parametrize(
    ("cap", "names"),
    [
        ("CAP_SYS_ADMIN", ("mount", "umount2", "unshare", "setns", "sethostname", "bpf")),
        ("CAP_SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise")),
        ("CAP_SYS_MODULE", ("init_module", "finit_module", "delete_module")),
        ("CAP_SYS_TIME", ("settimeofday", "clock_settime", "stime")),
        ("CAP_SYS_BOOT", ("reboot",)),
        ("CAP_SYS_PACCT", ("acct",)),
        ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
        ("CAP_SYS_NICE", ("mbind", "set_mempolicy")),
        ("CAP_SYSLOG", ("syslog",)),
        ("CAP_BPF", ("bpf",)),
        ("CAP_PERFMON", ("perf_event_open",)),
        ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
        ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
    ],
)
def test_capability_conditional_syscalls(cap: str, names: tuple[str, ...]) -> None:
    without = allowed_syscalls(profile())
    with_cap = allowed_syscalls(profile(cap))
    for name in names:
        assert name not in without, name
        assert name in with_cap, name


def test_chroot_follows_sys_chroot() -> None:
    assert "chroot" in allowed_syscalls(profile())
    no_chroot = tuple(c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT")
    assert "chroot" not in allowed_syscalls(profile(caps=no_chroot))


def test_personality_only_for_known_personas() -> None:
    values = sorted(rule["args"][0]["value"] for rule in rules_for(profile(), "personality"))
    assert values == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(rule["args"][0]["op"] == "SCMP_CMP_EQ"
               for rule in rules_for(profile(), "personality"))


def test_socket_excludes_af_alg_and_af_vsock() -> None:
    conditions = [rule["args"][0] for rule in rules_for(profile(), "socket")]

    def allowed(family: int) -> bool:
        for cond in conditions:
            op, value = cond["op"], cond["value"]
            if (op == "SCMP_CMP_LT" and family < value) or \
                    (op == "SCMP_CMP_EQ" and family == value) or \
                    (op == "SCMP_CMP_GT" and family > value):
                return True
        return False

    assert allowed(1) and allowed(2) and allowed(10) and allowed(16) and allowed(39)
    assert allowed(41)
    assert not allowed(AF_ALG) and not allowed(AF_VSOCK)


def test_machine_specific_grants() -> None:
    assert "arch_prctl" in allowed_syscalls(profile())
    assert "modify_ldt" in allowed_syscalls(profile())
    arm = allowed_syscalls(profile(machine="aarch64", kernel="6.1"))
    assert "arch_prctl" not in arm
    assert "set_tls" in arm


def test_ptrace_needs_kernel_4_8() -> None:
    assert "ptrace" in allowed_syscalls(profile(machine="x86_64", kernel="4.8.0"))
    assert "ptrace" not in allowed_syscalls(profile(machine="x86_64", kernel="4.4.0"))


def test_profile_is_a_valid_spec_member_and_compiles() -> None:
    prof = docker_default_profile(DEFAULT_CAPABILITIES)
    validate({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
              "linux": {"seccomp": prof}})
    prepared = prepare_filter(prof)
    assert prepared is not None


def test_rules_are_json_plain_and_sorted() -> None:
    for rule in profile()["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
        assert rule["names"] == sorted(rule["names"])
