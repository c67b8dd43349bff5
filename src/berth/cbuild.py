"""Building the small freestanding C helpers berth ships as committed binaries (the exec shim,
the supervisor's anchor): a static ELF without a C library, one per architecture, named
``<name>.<arch>.bin`` next to its source.

The binaries are committed, so installing berth needs no compiler; each helper's ``build.py``
rebuilds them after its source changes, and a test checks that the committed binary is what
the source builds. x86_64 builds with the host's gcc, aarch64 with aarch64-linux-gnu-gcc
(Debian: gcc-aarch64-linux-gnu).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

CROSS_COMPILERS = {"x86_64": "x86_64-linux-gnu-gcc", "aarch64": "aarch64-linux-gnu-gcc"}

# What every helper is compiled with: no C library, no start files, smallest code.
FREESTANDING_FLAGS = [
    "-Os",
    "-static",
    "-nostdlib",
    "-nostartfiles",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-ident",
    "-fno-pie",
    "-no-pie",
]
# ... and linked with: no build id, no executable stack, no RELRO, unused sections dropped,
# symbols stripped
SMALL_ELF_FLAGS = [
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
    "-Wl,-z,norelro",
    "-Wl,--gc-sections",
    "-s",
]


class StaticBinary:
    """One helper: its C ``source``, the ``name`` of its binaries, its compiler ``flags``."""

    def __init__(self, source: str, name: str, flags: list[str]) -> None:
        self.source = source
        self.name = name
        self.flags = flags

    def binary_path(self, arch: str, directory: str | None = None) -> str:
        directory = directory or os.path.dirname(self.source)
        return os.path.join(directory, f"{self.name}.{arch}.bin")

    def build(self, arch: str, directory: str | None = None) -> str:
        """Compile for ``arch`` into ``directory`` (next to the source by default)."""
        compiler = find_compiler(arch)
        if compiler is None:
            raise SystemExit(f"no C compiler for {arch}: install {CROSS_COMPILERS[arch]}")
        target = self.binary_path(arch, directory)
        with tempfile.TemporaryDirectory(prefix=f"berth-{self.name}-build-") as work:
            output = os.path.join(work, self.name)
            subprocess.run([compiler, *self.flags, "-o", output, self.source], check=True)
            shutil.copyfile(output, target)
        os.chmod(target, 0o644)
        return target

    def main(self, argv: list[str]) -> int:
        """``build.py [--all] [--out DIR]``: the host's architecture, or every one."""
        arches = list(CROSS_COMPILERS) if "--all" in argv else [os.uname().machine]
        directory = argv[argv.index("--out") + 1] if "--out" in argv else None
        for arch in arches:
            path = self.build(arch, directory)
            print(f"{path}: {os.path.getsize(path)} bytes")
        return 0


def find_compiler(arch: str) -> str | None:
    """The cross compiler for ``arch``, or plain gcc when ``arch`` is the host's."""
    candidates = [CROSS_COMPILERS[arch]]
    if os.uname().machine == arch:
        candidates.append("gcc")
    return next((c for c in candidates if shutil.which(c)), None)
