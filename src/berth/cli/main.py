"""``berth``: parse the command line, run the command, map errors to exit codes.

Nothing is imported here beyond the flag parser and the command table; each command's module
is imported only when that command runs, so ``berth run`` starts fast.
"""

from __future__ import annotations

import gc
import os
import sys

from berth import trace
from berth.cli.commands import ROOT
from berth.cli.flags import parse_command_line, run_handler
from berth.errors import BerthError

# The berth process runs these with the cyclic garbage collector off: importing their modules
# allocates enough objects for 15-30 collections (3-8 ms of ``berth run``) that free nothing
# reference counting does not. They start, signal or remove containers: short-lived, or (a
# foreground container, an attach) waiting and copying bytes, which makes no reference cycles.
# Every other command (pull, build, a server...) runs with it on.
WITHOUT_GC = frozenset(
    f"berth.cli.containers:{name}"
    for name in ("run", "create", "start", "stop", "restart", "kill", "rm", "wait", "exec_")
)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: this process's, and then the process ends here,
    see :func:`_end_process`); the exit status."""
    if argv is not None:
        return _run(argv)
    code = run_command(sys.argv[1:])
    _end_process(code)
    return code


def run_command(args: list[str]) -> int:
    """Run ``berth ARGS`` as this process's one command, as :func:`main` does but without
    ending the process (a fork server's worker does that); the exit status."""
    gc.disable()  # until the command is known (see WITHOUT_GC)
    return _run(args)


def _run(args: list[str]) -> int:
    command: tuple[str, ...] = ()
    debug = False
    try:
        trace.mark("command table imported")
        invocation = parse_command_line(ROOT, args)
        trace.mark("command line parsed")
        if not gc.isenabled() and getattr(invocation.command, "handler", "") not in WITHOUT_GC:
            gc.enable()
        command = invocation.command_path
        debug = bool(invocation.globals.get("debug"))
        root = invocation.globals.get("root")
        if invocation.is_global_set("root") or os.environ.get("BERTH_ROOT"):
            os.environ["BERTH_ROOT"] = str(root)
        if invocation.globals.get("version") and not command:
            from berth import __version__

            sys.stdout.write(f"berth version {__version__}\n")
            return 0
        code = run_handler(invocation)
        trace.mark("command done")
        return code
    except BerthError as error:
        from berth.cli.exitcodes import exit_code_for

        _report(str(error), prefix=not _is_usage(error))
        return exit_code_for(error, command)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except Exception as error:  # a bug: say so in one line, traceback only with --debug
        if debug:
            import traceback

            traceback.print_exc()
        _report(
            f"internal error: {type(error).__name__}: {error} "
            "(this is a bug in berth; run again with --debug for details and report it)"
        )
        return 1


def _end_process(code: int) -> None:
    """End the process now, without the interpreter's teardown, when nothing is left to do at
    exit: no ``atexit`` function (logging, temp files... register one) and no other thread.

    Everything the command does is done and recorded by now; what the teardown would add is
    the finalisation of every module and object (several ms) and the database's close-time
    checkpoint (three fsyncs), which the next writer's checkpoint does anyway (WAL mode)."""
    import atexit

    threading = sys.modules.get("threading")
    if atexit._ncallbacks() or (threading is not None and threading.active_count() > 1):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # let the interpreter report or swallow it as it always does
    trace.mark("exiting")
    os._exit(code)


def _is_usage(error: BerthError) -> bool:
    from berth.errors import UsageError

    return isinstance(error, UsageError)


def _report(message: str, *, prefix: bool = True) -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _silence_stdout()
    sys.stderr.write(f"Error: {message}\n" if prefix else f"{message}\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    """After EPIPE, make the interpreter's final flush of stdout harmless."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
