"""The one place that turns an error into an exit code, as the docker CLI chooses them.

- flag errors: 125; a wrong number of arguments or an unknown command: 1 (as docker)
- ``run`` and ``create``: 125 for engine errors, 126 when the command cannot be invoked,
  127 when it is not found; otherwise the container's own exit code
- every other command: 1
"""

from __future__ import annotations

from berth.errors import (
    ArgumentError,
    BerthError,
    BuildStepFailed,
    CommandNotFound,
    CommandNotInvokable,
    UsageError,
)

ENGINE_ERROR = 125
CANNOT_INVOKE = 126
NOT_FOUND = 127
GENERIC = 1
INTERRUPTED = 130

CONTAINER_STARTING_COMMANDS = frozenset({"run", "create", "start"})


def exit_code_for(error: BerthError, command: tuple[str, ...]) -> int:
    """Exit code for ``error`` raised by ``command`` (e.g. ("container", "run"))."""
    if isinstance(error, ArgumentError):
        return GENERIC
    if isinstance(error, UsageError):
        return ENGINE_ERROR
    leaf = command[-1] if command else ""
    if leaf in CONTAINER_STARTING_COMMANDS or leaf == "exec":
        if isinstance(error, CommandNotFound):
            return NOT_FOUND if leaf != "exec" else CANNOT_INVOKE
        if isinstance(error, CommandNotInvokable):
            return CANNOT_INVOKE
        if leaf in ("run", "create"):
            return ENGINE_ERROR
    if isinstance(error, BuildStepFailed):
        return GENERIC
    return GENERIC
