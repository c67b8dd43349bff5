"""Build the anchor (anchor.c) into ``anchor.<arch>.bin`` next to this file.

    python src/berth/monitor/anchor/build.py            # the host's architecture
    python src/berth/monitor/anchor/build.py --all      # x86_64 and aarch64
    python src/berth/monitor/anchor/build.py --out DIR  # elsewhere (a test compares)

Run it after changing anchor.c and commit the source and its outputs together (see
:mod:`berth.cbuild`). The result is a static ELF without a C library of a few KiB.
"""

from __future__ import annotations

import os
import sys

from berth.cbuild import FREESTANDING_FLAGS, SMALL_ELF_FLAGS, StaticBinary, find_compiler

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = StaticBinary(
    os.path.join(HERE, "anchor.c"),
    "anchor",
    [
        *FREESTANDING_FLAGS,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-parameter",
        *SMALL_ELF_FLAGS,
    ],
)
binary_path = ANCHOR.binary_path
build = ANCHOR.build
__all__ = ["ANCHOR", "binary_path", "build", "find_compiler"]

if __name__ == "__main__":
    sys.exit(ANCHOR.main(sys.argv[1:]))
