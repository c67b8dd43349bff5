"""Compiling linux.seccomp with libseccomp: validation, skipped names, AND/OR of conditions.

The compiled filter is inspected through libseccomp's own pseudo-filter-code export, so no
filter is ever loaded into the test process.
"""

from __future__ import annotations

import errno
import tempfile
from typing import Any

import pytest

from berth.errors import InvalidArgument
from berth.runtime.seccomp import PreparedFilter, prepare_filter


def pfc(prepared: PreparedFilter | None) -> str:
    assert prepared is not None
    with tempfile.TemporaryFile(mode="w+", prefix="berth-pfc-") as f:
        prepared.syscall_filter.export_pfc(f)
        f.seek(0)
        return f.read()


def spec(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top}


def test_none_means_no_filter() -> None:
    assert prepare_filter(None) is None


def test_errno_rule_compiles_with_errno() -> None:
    text = pfc(prepare_filter(spec({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                    "errnoRet": errno.EACCES})))
    assert "mkdir" in text
    assert f"ERRNO({errno.EACCES})" in text


def test_errno_defaults_to_eperm() -> None:
    text = pfc(prepare_filter(spec({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"})))
    assert f"ERRNO({errno.EPERM})" in text


def test_unknown_syscall_names_are_skipped() -> None:
    prepared = prepare_filter(spec({"names": ["getcwd", "no_such_syscall_berth"],
                                    "action": "SCMP_ACT_ERRNO"}))
    assert prepared is not None
    assert prepared.skipped_syscalls == ["no_such_syscall_berth"]
    assert "getcwd" in pfc(prepared)


def test_rule_equal_to_default_is_skipped() -> None:
    text = pfc(prepare_filter(spec({"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"})))
    assert "getcwd" not in text


def test_same_argument_conditions_are_ored() -> None:
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                     {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
    lines = pfc(prepare_filter(spec(rule))).splitlines()
    one = next(line for line in lines if "$a0.lo32 == 1" in line)
    two = next(line for line in lines if "$a0.lo32 == 2" in line)
    assert len(one) - len(one.lstrip()) == len(two) - len(two.lstrip())  # siblings: OR


def test_different_argument_conditions_are_anded() -> None:
    rule = {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}
    lines = pfc(prepare_filter(spec(rule))).splitlines()
    first = next(n for n, line in enumerate(lines) if "$a0.lo32 == 1" in line)
    second = next(n for n, line in enumerate(lines) if "$a1.lo32 == 9" in line)
    indent = [len(lines[n]) - len(lines[n].lstrip()) for n in (first, second)]
    assert second > first and indent[1] > indent[0]  # nested: AND


def test_masked_equal_takes_mask_and_value() -> None:
    rule = {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 0x10000000, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}]}
    text = pfc(prepare_filter(spec(rule)))
    assert "0x10000000" in text or "268435456" in text


def test_architectures_and_flags() -> None:
    prepared = prepare_filter(spec(
        {"names": ["getcwd"], "action": "SCMP_ACT_LOG"},
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    ))
    text = pfc(prepared)
    assert "x86_64" in text and "x86" in text


@pytest.mark.parametrize(
    ("seccomp", "message"),
    [
        ({"defaultAction": "SCMP_ACT_MAYBE"}, "unknown seccomp action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "not allowed"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "errnoRet"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "seccomp agent"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]},
         "unknown architecture"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
         "unknown flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
         r"syscalls\[0\].names"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
         r"args\[0\].index"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]},
         "unknown operator"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
         "seccomp agent"),
        ({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]},
         "not allowed"),
        ("SCMP_ACT_ALLOW", "must be an object"),
    ],
)
def test_bad_specs_name_what_is_wrong(seccomp: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        prepare_filter(seccomp)
