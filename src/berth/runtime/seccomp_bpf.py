"""Seccomp filters as compiled BPF programs, kept per runtime root and loaded with ``prctl``.

Every container of a store gets the same ``linux.seccomp`` (Docker's default profile for the
default capabilities), and libseccomp compiles it to the same program every time. Compiling
(loading libseccomp through pyseccomp, validating and adding ~400 rules, generating the BPF)
costs about 15 ms per container; loading a kept program is one system call. So the runtime
compiles a profile once (:mod:`berth.runtime.seccomp`, which also validates it), keeps the
program that libseccomp generates, and from then on loads that program itself:

- the key of a kept program is the SHA-256 of the ``linux.seccomp`` object (compact JSON), the
  machine, the boot id (``/proc/sys/kernel/random/boot_id``: the kernel's seccomp features,
  which libseccomp's output depends on, change only with a reboot) and the layout berth asks
  libseccomp for (a binary tree, :mod:`berth.runtime.seccomp`);
- ``<runtime root>/seccomp/<key>.bpf`` holds one line naming the libseccomp library that
  compiled it (path, device, inode, size, modification time), then the program (an array of
  ``struct sock_filter``); it is used only while that library is the same file, while the file
  is owned by this user and writable by nobody else, and when the program is whole
  instructions; anything else is compiled again (and the entry replaced);
- the dir is made ``0700``; entries are written to a temp file and renamed into place.

A filter with ``flags`` or a ``listenerPath`` is not kept: libseccomp loads it, with the
``seccomp(2)`` flags it asks for. Loading a program is ``prctl(PR_SET_SECCOMP,
SECCOMP_MODE_FILTER, &prog)``, which is what libseccomp's ``seccomp_load`` does without flags
(``seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)`` is the same call), with the same requirement:
``no_new_privs`` or ``CAP_SYS_ADMIN``.
"""

from __future__ import annotations

import ctypes
import errno
import os

from berth import jsonio
from berth.errors import ContainerError
from berth.oci.digest import hex_digest
from berth.runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS
_MAGIC = b"berth-seccomp-bpf 1"
_LAYOUT = b"binary-tree"  # how berth.runtime.seccomp has libseccomp lay programs out


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def cacheable(seccomp: Mapping[str, Any]) -> bool:
    """Whether the filter can be kept and loaded as a plain program (no flags, no agent)."""
    return not seccomp.get("flags") and not seccomp.get("listenerPath")


def compiled_program(seccomp: Mapping[str, Any], cache_dir: str) -> bytes:
    """The BPF program of ``linux.seccomp``: the kept one, or compiled now (and kept).

    Compiling validates the object and raises :class:`~berth.errors.InvalidArgument` naming
    a bad field, as :func:`berth.runtime.seccomp.prepare_filter` does."""
    path = os.path.join(cache_dir, _key(seccomp) + ".bpf")
    program = _read_kept(path)
    if program is not None:
        return program
    from berth.runtime import seccomp as compiler

    prepared = compiler.prepare_filter(seccomp)
    assert prepared is not None
    program = compiler.export_program(prepared)
    _check_program(program)
    _keep(path, compiler.library_identity(), program)
    return program


def loader(program: bytes) -> Callable[[], None]:
    """A function that loads ``program`` into the calling process (made before the fork, so
    the container's init allocates nothing for it)."""
    _check_program(program)
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // INSTRUCTION_SIZE, ctypes.addressof(buffer))
    held = (buffer, prog)  # the closure keeps both alive until the program is loaded

    def load() -> None:
        try:
            syscalls.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(held[1]), 0, 0)
        except OSError as exc:
            raise load_error(exc) from exc

    return load


def load_error(exc: OSError) -> ContainerError:
    """What a failed load of a seccomp filter is reported as."""
    if exc.errno == errno.EACCES:
        return ContainerError(
            "cannot load the seccomp filter: the process has neither no_new_privs nor "
            "CAP_SYS_ADMIN",
            hint="set process.noNewPrivileges, or load the filter before dropping capabilities",
        )
    return ContainerError(f"cannot load the seccomp filter: {exc}")


def _key(seccomp: Mapping[str, Any]) -> str:
    text = jsonio.dumps(seccomp).encode()
    return hex_digest("sha256", b"\0".join((text, os.uname().machine.encode(), _boot_id(),
                                            _LAYOUT)))


def _boot_id() -> bytes:
    if not _boot:
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                _boot.append(f.read().strip())
        except OSError:
            return b"unknown"
    return _boot[0]


_boot: list[bytes] = []  # this boot's id, once read


def rehearse(seccomp: Mapping[str, Any]) -> None:
    """Work out the cache key of ``seccomp`` and drop it: done ahead in a process that will
    look a program up later (an init forked ahead of time, :mod:`berth.runtime.preforked`),
    so that the lookup runs on warm code and pages."""
    _key(seccomp)


def _read_kept(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    finally:
        os.close(fd)
    header, newline, program = data.partition(b"\n")
    if not newline or not _same_library(header):
        return None
    try:
        _check_program(program)
    except ContainerError:
        return None
    return program


def _same_library(header: bytes) -> bool:
    magic, _, identity = header.partition(b"\t")
    if magic != _MAGIC:
        return False
    library, _, expected = identity.decode(errors="replace").partition("\t")
    return bool(library) and _library_stat(library) == expected


def _library_stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


def _keep(path: str, library: str | None, program: bytes) -> None:
    """Write the entry (best effort: a store that cannot keep it just compiles again)."""
    if not library:
        return
    directory = os.path.dirname(path)
    header = b"\t".join((_MAGIC, library.encode(), _library_stat(library).encode()))
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return
        data = header + b"\n" + program
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.ENOSPC, "short write")
        os.rename(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def _check_program(program: bytes) -> None:
    count, rest = divmod(len(program), INSTRUCTION_SIZE)
    if rest or not 0 < count <= MAX_INSTRUCTIONS:
        raise ContainerError(
            f"the seccomp program is {len(program)} bytes, not 1 to {MAX_INSTRUCTIONS} instructions"
        )
