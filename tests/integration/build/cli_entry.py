"""``berth`` with ``build`` and ``builder`` wired in, until cli/commands.py imports them.

Run as ``python -m tests.integration.build.cli_entry ARGS``; once the command tree has the
build commands this adds nothing.
"""

from __future__ import annotations

import sys

from berth.cli import commands
from berth.cli.build_commands import BUILD, BUILDER
from berth.cli.main import main

if commands.ROOT.find("build") is None:
    commands.ROOT.commands.extend([BUILD, BUILDER])

if __name__ == "__main__":
    sys.exit(main())
