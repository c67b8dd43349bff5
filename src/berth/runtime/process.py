"""The last steps of a container process: limits, user, the program lookup, and the exec.

Shared by the container's init (``create``/``run``) and by ``exec``. Runs inside the
container, after ``pivot_root`` (or after joining the container's mount namespace): no module
can be imported from here on, so everything these functions need is imported with this module
and loaded (:func:`load_shim`, :func:`security_functions`) by the runtime before it forks.

The final ``execve`` is made by the exec shim (see ``shim/exec_shim.c``), executed from a
sealed memfd: the forked Python process never execs the container's program itself, so no
process in the container ever has the host's python binary behind ``/proc/PID/exe`` once it
runs container code (CVE-2019-5736); until then it is non-dumpable, which keeps container
processes out of its ``/proc/PID`` files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import stat

from berth.errors import CommandNotFound, CommandNotInvokable, ContainerError, HostError
from berth.runtime import signals, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    IdentityFunction = Callable[[dict[str, Any], "dict[str, Any] | None"], None]
    SeccompLoader = Callable[[], None]

SHIM_MARKER = "berth-exec-shim:" + "." * 300
DEFAULT_UMASK = 0o022
MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2
MFD_EXEC = 0x10  # Linux 6.3+: say so explicitly where vm.memfd_noexec is set

RLIMITS = {
    "RLIMIT_CPU": resource.RLIMIT_CPU,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
_RLIM_MAX = 2**64 - 1


# ---------------------------------------------------------------------------------------------
# loaded by the runtime before it forks


_shim_cache: dict[str, bytes] = {}


def shim_path(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim",
                        f"exec_shim.{machine}.bin")


def load_shim() -> bytes:
    """The exec shim for this machine (read once per process)."""
    machine = os.uname().machine
    blob = _shim_cache.get(machine)
    if blob is None:
        path = shim_path(machine)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except FileNotFoundError:
            raise HostError(
                f"berth's exec shim for {machine} is missing ({path})",
                hint="build it with src/berth/runtime/shim/build.py, or reinstall berth",
            ) from None
        _shim_cache[machine] = blob
    return blob


def _fallback_identity(user: dict[str, Any], capabilities: dict[str, Any] | None) -> None:
    """Until berth.runtime.capabilities is there: groups, gid and uid only."""
    del capabilities
    gid = int(user.get("gid", 0))
    uid = int(user.get("uid", 0))
    os.setgroups([int(g) for g in user.get("additionalGids") or []])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def security_functions(
    seccomp_spec: dict[str, Any] | None, seccomp_cache: str | None = None
) -> tuple[IdentityFunction, SeccompLoader, list[str]]:
    """``(apply_identity, load_seccomp, notes)``, imported now (before the fork). The
    seccomp filter is compiled here too, so a bad profile fails ``create``; ``load_seccomp()``
    only loads it, in the container. With ``seccomp_cache`` (a dir), compiled programs are
    kept there and loaded as such (:mod:`berth.runtime.seccomp_bpf`). The fallbacks stand in
    while the capabilities or seccomp module is missing; ``notes`` says so."""
    notes: list[str] = []
    identity: IdentityFunction
    try:
        from berth.runtime.capabilities import apply_identity

        identity = apply_identity
    except ImportError:
        identity = _fallback_identity
        notes.append("berth.runtime.capabilities is not available: capabilities not applied")
    if not seccomp_spec:
        return identity, _no_seccomp, notes
    if seccomp_cache is not None:
        from berth.runtime import seccomp_bpf

        if seccomp_bpf.cacheable(seccomp_spec):
            program = seccomp_bpf.compiled_program(seccomp_spec, seccomp_cache)
            return identity, seccomp_bpf.loader(program), notes
    try:
        from berth.runtime import seccomp
    except ImportError:
        notes.append("berth.runtime.seccomp is not available: no seccomp filter installed")
        return identity, _no_seccomp, notes
    prepared = seccomp.prepare_filter(seccomp_spec)

    def load_seccomp() -> None:
        seccomp.load_filter(prepared)

    return identity, load_seccomp, notes


def _no_seccomp() -> None:
    pass


# ---------------------------------------------------------------------------------------------
# inside the container


def apply_rlimits(rlimits: list[dict[str, Any]]) -> list[str]:
    """Set the spec's rlimits; a hard limit above the current one (which needs
    CAP_SYS_RESOURCE) is lowered to the current one. Returns a note for each such change."""
    notes = []
    for entry in rlimits:
        name = entry["type"]
        which = RLIMITS.get(name)
        if which is None:
            raise ContainerError(
                f"unknown rlimit {name!r}", hint=f"known: {', '.join(sorted(RLIMITS))}"
            )
        soft, hard = _rlim(entry["soft"]), _rlim(entry["hard"])
        if _above(soft, hard):
            raise ContainerError(
                f"invalid {name}: soft {entry['soft']} is above hard {entry['hard']}"
            )
        try:
            resource.setrlimit(which, (soft, hard))
            continue
        except (ValueError, OSError):
            pass  # CPython reports EPERM (raising a hard limit) as ValueError
        _, current_hard = resource.getrlimit(which)
        if _above(hard, current_hard):
            hard = current_hard
        if _above(soft, hard):
            soft = hard
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as exc:
            raise ContainerError(f"cannot set {name} to soft {_show(soft)} hard {_show(hard)}: "
                                 f"{exc}") from None
        notes.append(
            f"{name} lowered to soft {_show(soft)} hard {_show(hard)}: the runtime may not raise "
            "a hard limit (no CAP_SYS_RESOURCE)"
        )
    return notes


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= _RLIM_MAX or value < 0 else value


def _above(a: int, b: int) -> bool:
    inf = resource.RLIM_INFINITY
    if a == b:
        return False
    if a == inf:
        return True
    if b == inf:
        return False
    return a > b


def _show(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise ContainerError(
            f"cannot set oomScoreAdj to {value}: {exc.strerror}",
            hint="lowering it needs CAP_SYS_RESOURCE",
        ) from None


def enter_cwd(cwd: str) -> None:
    """chdir to the process's cwd, which must resolve inside the container's root."""
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ContainerError(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {exc.strerror}",
            hint="the working directory must exist in the container",
        ) from None
    try:
        os.getcwd()
    except FileNotFoundError:
        # getcwd(2) reports a directory outside the process's root as unreachable
        raise ContainerError(f"the working directory {cwd!r} is outside the container") from None


def home_from_passwd(uid: int, passwd: str = "/etc/passwd") -> str:
    """The home directory of ``uid`` in the container's passwd file, else ``/``."""
    try:
        with open(passwd, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def environment(env: list[str], uid: int) -> list[str]:
    """The process's environment; ``HOME`` from /etc/passwd when not set, as runc does."""
    if not any(item.startswith("HOME=") for item in env):
        env = [*env, f"HOME={home_from_passwd(uid)}"]
    return env


def env_value(env: list[str], name: str) -> str | None:
    value = None
    prefix = name + "="
    for item in env:
        if item.startswith(prefix):
            value = item[len(prefix) :]
    return value


def _is_executable_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)


def find_program(name: str, env: list[str]) -> str:
    """The file to execute for ``args[0]``: a name with a slash as given, else the first
    executable match in the container's ``PATH``. Raises :class:`CommandNotFound` (docker's
    exit code 127) or :class:`CommandNotInvokable` (126) with runc's wording."""
    if "/" in name:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise CommandNotFound(
                f'exec: "{name}": stat {name}: no such file or directory',
                hint="check the command and the image",
            ) from None
        except OSError as exc:
            raise CommandNotInvokable(f'exec: "{name}": stat {name}: {exc.strerror}') from None
        if stat.S_ISDIR(st.st_mode):
            raise CommandNotInvokable(f'exec: "{name}": is a directory')
        if not stat.S_ISREG(st.st_mode) or not os.access(name, os.X_OK):
            raise CommandNotInvokable(
                f'exec: "{name}": permission denied',
                hint="the file must be executable by the container's user",
            )
        return name
    search = env_value(env, "PATH") or ""
    for directory in search.split(":") if search else []:
        candidate = os.path.join(directory or ".", name)
        if _is_executable_file(candidate):
            return candidate
    raise CommandNotFound(
        f'exec: "{name}": executable file not found in $PATH',
        hint="check the command, and PATH in the container's environment",
    )


def set_no_new_privileges() -> None:
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


def make_shim_fd(blob: bytes) -> int:
    """A sealed memfd holding the exec shim (no one can change it once sealed)."""
    flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC
    try:
        fd = os.memfd_create("berth-exec-shim", flags)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        fd = os.memfd_create("berth-exec-shim", flags & ~MFD_EXEC)
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view) :]
    fcntl.fcntl(
        fd,
        fcntl.F_ADD_SEALS,
        fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
    )
    return fd


def mark_fds_cloexec(first: int) -> None:
    """Close-on-exec for every fd from ``first`` up: only stdio and preserved fds survive."""
    try:
        syscalls.close_range(first, 0xFFFFFFFF, syscalls.CLOSE_RANGE_CLOEXEC)
    except OSError:
        for fd in _open_fds():
            if fd >= first:
                try:
                    fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
                except OSError:
                    pass


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def exec_via_shim(shim_fd: int, path: str, argv: list[str], env: list[str]) -> NoReturn:
    """Replace this process with the shim, which executes ``path``."""
    signals.reset_to_defaults()
    syscalls.execveat(shim_fd, [SHIM_MARKER, path, *argv], env)
