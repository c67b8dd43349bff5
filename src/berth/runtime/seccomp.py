"""Seccomp: compile the spec's ``linux.seccomp`` with libseccomp (through pyseccomp) and load it.

Two steps, so that everything that can fail on bad input fails early, in the runtime's own
process, with a clear message:

- :func:`prepare_filter` validates the spec and builds the filter in memory (before the
  container's init forks, or at least before ``pivot_root``);
- :func:`load_filter` hands it to the kernel, last, right before the final ``execve``.

:func:`install_filter` does both at once.

Semantics (those of runc, which is the reference a differential test holds berth to):

- a syscall name the installed libseccomp does not know is skipped (logged at debug level):
  profiles name syscalls newer than the library;
- a rule whose action equals the default action is skipped (libseccomp refuses it, and it
  changes nothing);
- ``args`` that all compare the same argument are OR-ed (one rule each, as libseccomp cannot
  compare one argument twice in a rule); otherwise they are AND-ed in one rule;
- ``errnoRet`` (default ``EPERM``) is accepted only with ``SCMP_ACT_ERRNO`` and
  ``SCMP_ACT_TRACE``;
- libseccomp is told not to set ``no_new_privs`` itself: the caller does what
  ``process.noNewPrivileges`` says. Without ``no_new_privs`` the kernel loads a filter only
  for a process holding ``CAP_SYS_ADMIN``, so then the filter must be loaded before the
  capabilities are dropped (runc's order).

pyseccomp loads libseccomp when it is imported, and that needs the host's files: this module
imports it when it is itself imported, so import it before ``pivot_root``. A host without
libseccomp can still import this module; asking for a filter there raises :class:`HostError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Mapping

from berth.errors import HostError, InvalidArgument
from berth.runtime.log import LazyLogger
from berth.runtime.seccomp_bpf import load_error
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

log = LazyLogger(__name__)


def _import_pyseccomp() -> tuple[Any, str]:
    """Import pyseccomp, answering its two library look-ups without running ``ldconfig``.

    Returns the module (``None`` when it cannot be loaded) and why not."""
    sonames = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
    original: Callable[[str], str | None] = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        soname = sonames.get(name)
        if soname is not None:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        return original(name)

    ctypes.util.find_library = find_library
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as exc:
        return None, str(exc)
    finally:
        ctypes.util.find_library = original  # type: ignore[assignment]
    return pyseccomp, ""


_seccomp, _import_error = _import_pyseccomp()


def _lib() -> Any:
    """pyseccomp, or :class:`HostError` when libseccomp cannot be loaded here."""
    if _seccomp is None:
        raise HostError(
            f"cannot load libseccomp: {_import_error}",
            hint="install libseccomp2 (Debian: apt-get install libseccomp2) and pyseccomp",
        )
    return _seccomp


def available() -> bool:
    """Whether seccomp filters can be built and loaded here (for ``berth info``)."""
    if _seccomp is None:
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)

# Runtime-spec architecture names -> pyseccomp.Arch attributes.
ARCHITECTURES: dict[str, str] = {
    "SCMP_ARCH_X86": "X86",
    "SCMP_ARCH_X86_64": "X86_64",
    "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM",
    "SCMP_ARCH_AARCH64": "AARCH64",
    "SCMP_ARCH_MIPS": "MIPS",
    "SCMP_ARCH_MIPS64": "MIPS64",
    "SCMP_ARCH_MIPS64N32": "MIPS64N32",
    "SCMP_ARCH_MIPSEL": "MIPSEL",
    "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32",
    "SCMP_ARCH_PPC": "PPC",
    "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE",
    "SCMP_ARCH_S390": "S390",
    "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC",
    "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64",
}
# Named by the runtime-spec, unknown to the libseccomp binding berth uses: skipped, logged.
_UNSUPPORTED_ARCHITECTURES = ("SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH",
                              "SCMP_ARCH_SHEB")

OPERATORS: dict[str, str] = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

# seccomp(2) flags, as libseccomp filter attributes (enum scmp_filter_attr).
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 4,  # SCMP_FLTATR_CTL_TSYNC
    "SECCOMP_FILTER_FLAG_LOG": 6,  # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,  # SCMP_FLTATR_CTL_SSB
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 10,  # SCMP_FLTATR_CTL_WAITKILL, libseccomp 2.6
}
_ATTR_CTL_NNP = 3  # SCMP_FLTATR_CTL_NNP
# SCMP_FLTATR_CTL_OPTIMIZE (libseccomp 2.5): 2 arranges the syscall checks as a binary tree
# instead of a chain. The same decisions, but the kernel loads Docker's default profile in
# ~0.4 ms instead of ~1.2 (its JIT settles in fewer passes), and each syscall of the container
# walks ~10 comparisons instead of up to ~400.
_ATTR_CTL_OPTIMIZE = 8
_OPTIMIZE_BINARY_TREE = 2

_NR_SCMP_ERROR = -1  # what libseccomp answers for a syscall name it does not know
_U64 = 2**64


class PreparedFilter(Value):
    """A filter built in memory, ready for :func:`load_filter`."""

    __slots__ = ("skipped_syscalls", "syscall_filter")

    def __init__(self, syscall_filter: Any, skipped_syscalls: list[str]) -> None:
        self.syscall_filter = syscall_filter
        self.skipped_syscalls = skipped_syscalls


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name not in ACTIONS:
        raise InvalidArgument(
            f"{where}: unknown seccomp action {name!r}",
            hint=f"use one of {', '.join(ACTIONS)}",
        )
    if errno_ret is not None:
        if name not in _ERRNO_ACTIONS:
            raise InvalidArgument(
                f"{where}: errnoRet {errno_ret!r} is not allowed with {name}",
                hint="only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return an errno",
            )
        if isinstance(errno_ret, bool) or not isinstance(errno_ret, int) or not (
            0 <= errno_ret <= 0xFFFF
        ):
            raise InvalidArgument(f"{where}: errnoRet must be a number from 0 to 65535, "
                                  f"got {errno_ret!r}")
    code = errno.EPERM if errno_ret is None else errno_ret
    if name == "SCMP_ACT_NOTIFY":
        raise InvalidArgument(
            f"{where}: SCMP_ACT_NOTIFY needs a seccomp agent (linux.seccomp.listenerPath), "
            "which berth does not support yet",
            hint="use SCMP_ACT_ERRNO or SCMP_ACT_LOG instead",
        )
    lib = _lib()
    simple: dict[str, int] = {
        "SCMP_ACT_KILL": lib.KILL,
        "SCMP_ACT_KILL_THREAD": lib.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": lib.KILL_PROCESS,
        "SCMP_ACT_TRAP": lib.TRAP,
        "SCMP_ACT_ALLOW": lib.ALLOW,
        "SCMP_ACT_LOG": lib.LOG,
    }
    if name == "SCMP_ACT_ERRNO":
        return int(lib.ERRNO(code))
    if name == "SCMP_ACT_TRACE":
        return int(lib.TRACE(code))
    return simple[name]


def _u64(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise InvalidArgument(f"{where} must be an unsigned 64-bit number, got {value!r}")
    return value


def _conditions(args: Any, where: str) -> list[list[Any]]:
    """The rule's argument conditions, grouped: each group is one libseccomp rule."""
    if args is None:
        return [[]]
    if not isinstance(args, list):
        raise InvalidArgument(f"{where}.args must be a list, got {args!r}")
    conditions: list[Any] = []
    indexes: list[int] = []
    for n, arg in enumerate(args):
        at = f"{where}.args[{n}]"
        if not isinstance(arg, Mapping):
            raise InvalidArgument(f"{at} must be an object, got {arg!r}")
        index = arg.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 5:
            raise InvalidArgument(f"{at}.index must be 0 to 5, got {index!r}")
        op = arg.get("op")
        if op not in OPERATORS:
            raise InvalidArgument(f"{at}.op: unknown operator {op!r}",
                                  hint=f"use one of {', '.join(OPERATORS)}")
        value = _u64(arg.get("value"), f"{at}.value")
        value_two = _u64(arg.get("valueTwo", 0), f"{at}.valueTwo")
        conditions.append(_lib().Arg(index, getattr(_lib(), OPERATORS[op]), value, value_two))
        indexes.append(index)
    if len(conditions) > 1 and len(set(indexes)) == 1:
        return [[condition] for condition in conditions]
    return [conditions]


def _resolve(name: Any, where: str) -> int | None:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}: syscall names must be non-empty strings, got {name!r}")
    lib = _lib()
    number = int(lib.resolve_syscall(lib.Arch.NATIVE, name))
    return None if number == _NR_SCMP_ERROR else number


def _add_architectures(syscall_filter: Any, architectures: Any) -> None:
    if architectures is None:
        return
    if not isinstance(architectures, list):
        raise InvalidArgument(
            f"linux.seccomp.architectures must be a list, got {architectures!r}"
        )
    for arch in architectures:
        if arch in _UNSUPPORTED_ARCHITECTURES:
            log.warning("seccomp: architecture %s is not supported here; skipped", arch)
            continue
        if arch not in ARCHITECTURES:
            raise InvalidArgument(
                f"linux.seccomp.architectures: unknown architecture {arch!r}",
                hint=f"use names like {', '.join(list(ARCHITECTURES)[:3])}",
            )
        try:
            syscall_filter.add_arch(getattr(_lib().Arch, ARCHITECTURES[arch]))
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise HostError(f"libseccomp cannot add architecture {arch}: {exc}") from exc


def _set_flags(syscall_filter: Any, flags: Any) -> None:
    syscall_filter.set_attr(_ATTR_CTL_NNP, 0)
    if flags is None:
        return
    if not isinstance(flags, list):
        raise InvalidArgument(f"linux.seccomp.flags must be a list, got {flags!r}")
    for flag in flags:
        if flag not in FLAGS:
            raise InvalidArgument(
                f"linux.seccomp.flags: unknown flag {flag!r}",
                hint=f"use one of {', '.join(FLAGS)}",
            )
        try:
            syscall_filter.set_attr(FLAGS[flag], 1)
        except OSError as exc:
            raise HostError(
                f"seccomp flag {flag} is not supported by this kernel or libseccomp: {exc}",
                hint="remove it from linux.seccomp.flags",
            ) from exc


def _add_rules(syscall_filter: Any, rules: Any, default_action: int) -> list[str]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise InvalidArgument(f"linux.seccomp.syscalls must be a list, got {rules!r}")
    skipped: list[str] = []
    for n, rule in enumerate(rules):
        where = f"linux.seccomp.syscalls[{n}]"
        if not isinstance(rule, Mapping):
            raise InvalidArgument(f"{where} must be an object, got {rule!r}")
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise InvalidArgument(f"{where}.names must be a non-empty list of syscall names")
        action = _action(rule.get("action"), rule.get("errnoRet"), where)
        groups = _conditions(rule.get("args"), where)
        if action == default_action:
            continue
        for name in names:
            number = _resolve(name, f"{where}.names")
            if number is None:
                skipped.append(name)
                continue
            for conditions in groups:
                try:
                    syscall_filter.add_rule(action, number, *conditions)
                except OSError as exc:
                    raise InvalidArgument(
                        f"{where}: libseccomp rejects the rule for {name}: {exc.strerror}",
                        hint="check its args (index, op, value)",
                    ) from exc
    if skipped:
        log.debug("seccomp: syscalls unknown to libseccomp, skipped: %s", ", ".join(skipped))
    return skipped


def prepare_filter(seccomp: Mapping[str, Any] | None) -> PreparedFilter | None:
    """Validate ``linux.seccomp`` and build its filter; ``None`` for no seccomp.

    Raises :class:`InvalidArgument` naming the bad field.
    """
    if seccomp is None:
        return None
    if not isinstance(seccomp, Mapping):
        raise InvalidArgument(f"linux.seccomp must be an object, got {seccomp!r}")
    default_action = _action(
        seccomp.get("defaultAction"), seccomp.get("defaultErrnoRet"), "linux.seccomp"
    )
    try:
        syscall_filter = _lib().SyscallFilter(default_action)
    except OSError as exc:
        raise HostError(f"libseccomp cannot make a filter: {exc}") from exc
    try:
        syscall_filter.set_attr(_ATTR_CTL_OPTIMIZE, _OPTIMIZE_BINARY_TREE)
    except (OSError, ValueError):
        pass  # libseccomp before 2.5: the chain
    _add_architectures(syscall_filter, seccomp.get("architectures"))
    _set_flags(syscall_filter, seccomp.get("flags"))
    skipped = _add_rules(syscall_filter, seccomp.get("syscalls"), default_action)
    return PreparedFilter(syscall_filter, skipped)


def load_filter(prepared: PreparedFilter | None) -> None:
    """Load a prepared filter into the kernel, for this process and what it executes."""
    if prepared is None:
        return
    try:
        prepared.syscall_filter.load()
    except OSError as exc:
        raise load_error(exc) from exc


def export_program(prepared: PreparedFilter) -> bytes:
    """The BPF program libseccomp generates for the filter: what :func:`load_filter` loads
    (``seccomp_export_bpf`` and ``seccomp_load`` generate it the same way)."""
    fd = os.memfd_create("berth-seccomp-bpf", os.MFD_CLOEXEC)
    try:
        with open(fd, "rb", closefd=False) as file:
            try:
                prepared.syscall_filter.export_bpf(file)
            except OSError as exc:
                raise HostError(f"libseccomp cannot export the filter: {exc}") from exc
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def library_identity() -> str | None:
    """The path of the libseccomp this process has loaded, if it has."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and "/libseccomp.so" in fields[5]:
                    return fields[5].rstrip("\n")
    except OSError:
        return None
    return None


def install_filter(seccomp: dict[str, Any] | None) -> None:
    """Compile ``linux.seccomp`` and load it; ``None`` does nothing.

    Called last, right before the final ``execve``, after ``no_new_privs`` is set.
    """
    load_filter(prepare_filter(seccomp))
