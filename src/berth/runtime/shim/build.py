"""Build the exec shim (exec_shim.c) into ``exec_shim.<arch>.bin`` next to this file.

    python src/berth/runtime/shim/build.py            # the host's architecture
    python src/berth/runtime/shim/build.py --all      # x86_64 and aarch64 (cross gcc needed)
    python src/berth/runtime/shim/build.py --out DIR  # elsewhere (the tests compare)

The output is committed, so installing berth needs no compiler; run this after changing
exec_shim.c and commit both. x86_64 uses the host gcc; aarch64 uses aarch64-linux-gnu-gcc
(Debian: gcc-aarch64-linux-gnu). The result is a static ELF without a C library, about 1 KiB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "exec_shim.c")
COMPILERS = {"x86_64": "x86_64-linux-gnu-gcc", "aarch64": "aarch64-linux-gnu-gcc"}
FLAGS = [
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
    "-Werror",
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
    "-Wl,-z,norelro",
    "-Wl,--gc-sections",
    "-Wl,-n",
    "-s",
]


def output_path(arch: str, directory: str = HERE) -> str:
    return os.path.join(directory, f"exec_shim.{arch}.bin")


def compiler_for(arch: str) -> str | None:
    for name in (COMPILERS[arch], "gcc" if os.uname().machine == arch else ""):
        if name and shutil.which(name):
            return name
    return None


def build(arch: str, directory: str = HERE) -> str:
    cc = compiler_for(arch)
    if cc is None:
        raise SystemExit(f"no C compiler for {arch}: install {COMPILERS[arch]}")
    out = output_path(arch, directory)
    with tempfile.TemporaryDirectory(prefix="berth-shim-") as tmp:
        binary = os.path.join(tmp, "shim")
        subprocess.run([cc, *FLAGS, "-o", binary, SOURCE], check=True)
        shutil.copyfile(binary, out)
    os.chmod(out, 0o644)
    return out


def main(argv: list[str]) -> int:
    arches = list(COMPILERS) if "--all" in argv else [os.uname().machine]
    directory = argv[argv.index("--out") + 1] if "--out" in argv else HERE
    for arch in arches:
        path = build(arch, directory)
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
