"""Build the exec shim (exec_shim.c) into ``exec_shim.<arch>.bin`` next to this file.

    python src/berth/runtime/shim/build.py            # the host's architecture
    python src/berth/runtime/shim/build.py --all      # x86_64 and aarch64 (cross gcc needed)
    python src/berth/runtime/shim/build.py --out DIR  # elsewhere (the tests compare)

Run it after changing exec_shim.c and commit both (see :mod:`berth.cbuild`). The result is a
static ELF without a C library, about 1 KiB.
"""

from __future__ import annotations

import os
import sys

from berth.cbuild import FREESTANDING_FLAGS, SMALL_ELF_FLAGS, StaticBinary

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = StaticBinary(
    os.path.join(HERE, "exec_shim.c"),
    "exec_shim",
    [
        *FREESTANDING_FLAGS,
        "-Wall",
        "-Werror",
        "-Wl,-n",
        *SMALL_ELF_FLAGS,
    ],
)
build = SHIM.build
__all__ = ["SHIM", "build"]

if __name__ == "__main__":
    sys.exit(SHIM.main(sys.argv[1:]))
