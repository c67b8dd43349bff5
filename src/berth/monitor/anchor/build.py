"""Build the anchor (anchor.c) into ``anchor.<arch>.bin`` next to this file.

    python src/berth/monitor/anchor/build.py            # the host's architecture
    python src/berth/monitor/anchor/build.py --all      # x86_64 and aarch64
    python src/berth/monitor/anchor/build.py --out DIR  # elsewhere (a test compares)

The binaries are committed, so installing berth needs no compiler: run this after changing
anchor.c and commit the source and its outputs together. x86_64 builds with the host's gcc,
aarch64 with aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu). The result is a static
ELF without a C library of a few KiB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "anchor.c")
CROSS_COMPILERS = {"x86_64": "x86_64-linux-gnu-gcc", "aarch64": "aarch64-linux-gnu-gcc"}
CFLAGS = [
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
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
    "-Wl,-z,norelro",
    "-Wl,--gc-sections",
    "-s",
]


def binary_path(arch: str, directory: str = HERE) -> str:
    return os.path.join(directory, f"anchor.{arch}.bin")


def find_compiler(arch: str) -> str | None:
    """The cross compiler for ``arch``, or plain gcc when ``arch`` is the host's."""
    candidates = [CROSS_COMPILERS[arch]]
    if os.uname().machine == arch:
        candidates.append("gcc")
    return next((c for c in candidates if shutil.which(c)), None)


def build(arch: str, directory: str = HERE) -> str:
    compiler = find_compiler(arch)
    if compiler is None:
        raise SystemExit(f"no C compiler for {arch}: install {CROSS_COMPILERS[arch]}")
    target = binary_path(arch, directory)
    with tempfile.TemporaryDirectory(prefix="berth-anchor-build-") as work:
        output = os.path.join(work, "anchor")
        subprocess.run([compiler, *CFLAGS, "-o", output, SOURCE], check=True)
        shutil.copyfile(output, target)
    os.chmod(target, 0o644)
    return target


def main(argv: list[str]) -> int:
    arches = list(CROSS_COMPILERS) if "--all" in argv else [os.uname().machine]
    directory = argv[argv.index("--out") + 1] if "--out" in argv else HERE
    for arch in arches:
        path = build(arch, directory)
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
