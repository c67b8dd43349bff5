"""``berth-runtime``: the runc command line over :class:`berth.runtime.container.Runtime`.

    berth-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...

Flags follow runc's rules (urfave/cli): global flags before the command, a command's flags
before its first positional argument, ``--flag value`` or ``--flag=value``. runc's global flags
that tools pass and that make no difference here (``--criu``, ``--rootless``,
``--systemd-cgroup=false``) are accepted. A failure is one line on stderr (and in the ``--log``
file, where containerd looks for it) and a non-zero exit: 127 when the command is not in the
container, 126 when it cannot be executed, 1 otherwise.

The parser is written out here: :mod:`argparse` costs about 8 ms to import, and ``run`` is
measured against ``runc run``.
"""

from __future__ import annotations

import os
import sys

from berth.errors import BerthError, CommandNotFound, CommandNotInvokable, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from berth.runtime.container import Runtime

PROG = "berth-runtime"
VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

# flag spec: canonical name -> (aliases, takes a value, may repeat)
FlagSpec = dict[str, tuple[tuple[str, ...], bool, bool]]

GLOBAL_FLAGS: FlagSpec = {
    "root": ((), True, False),
    "log": ((), True, False),
    "log-format": ((), True, False),
    "debug": ((), False, False),
    "systemd-cgroup": ((), False, False),
    "criu": ((), True, False),
    "rootless": ((), True, False),
    "help": (("h",), False, False),
    "version": (("v",), False, False),
}
_CREATE_FLAGS: FlagSpec = {
    "bundle": (("b",), True, False),
    "console-socket": ((), True, False),
    "pid-file": ((), True, False),
    "no-pivot": ((), False, False),
    "no-new-keyring": ((), False, False),
    "preserve-fds": ((), True, False),
    "pidfd-socket": ((), True, False),
}
COMMAND_FLAGS: dict[str, FlagSpec] = {
    "create": _CREATE_FLAGS,
    "run": {
        **_CREATE_FLAGS,
        "detach": (("d",), False, False),
        "keep": ((), False, False),
        "no-subreaper": ((), False, False),
    },
    "start": {},
    "state": {},
    "kill": {"all": (("a",), False, False)},
    "delete": {"force": (("f",), False, False)},
    "exec": {
        "console-socket": ((), True, False),
        "cwd": ((), True, False),
        "env": (("e",), True, True),
        "tty": (("t",), False, False),
        "user": (("u",), True, False),
        "additional-gids": (("g",), True, True),
        "process": (("p",), True, False),
        "detach": (("d",), False, False),
        "pid-file": ((), True, False),
        "process-label": ((), True, False),
        "apparmor": ((), True, False),
        "no-new-privs": ((), False, False),
        "cap": (("c",), True, True),
        "preserve-fds": ((), True, False),
        "cgroup": ((), True, True),
        "ignore-paused": ((), False, False),
    },
    "spec": {"bundle": (("b",), True, False), "rootless": ((), False, False)},
    "list": {"format": (("f",), True, False), "quiet": (("q",), False, False)},
    "pause": {},
    "resume": {},
    "ps": {"format": (("f",), True, False)},
    "events": {"stats": ((), False, False), "interval": ((), True, False)},
    "update": {
        "resources": (("r",), True, False),
        "memory": ((), True, False),
        "memory-swap": ((), True, False),
        "memory-reservation": ((), True, False),
        "cpu-quota": ((), True, False),
        "cpu-period": ((), True, False),
        "cpu-shares": ((), True, False),
        "cpuset-cpus": ((), True, False),
        "cpuset-mems": ((), True, False),
        "pids-limit": ((), True, False),
        "blkio-weight": ((), True, False),
    },
    "features": {},
}
COMMAND_ALIASES = {"ls": "list"}

USAGE = f"""usage: {PROG} [global options] COMMAND [options] ARGS

commands:
  create    create a container (its init waits for start)
  start     start a created container
  run       create and start a container (in the foreground unless --detach)
  state     print the state of a container as JSON
  kill      send a signal to a container's init (or --all its processes)
  delete    delete a container (--force kills it first)
  exec      run a process in a running container
  list      list containers
  ps        list the processes of a container
  pause     freeze a container's processes
  resume    thaw a paused container
  update    change a container's cgroup limits
  events    print a container's resource usage (--stats)
  spec      write a default config.json in a bundle
  features  print the features of this runtime as JSON

global options:
  --root DIR          state directory (default /run/berth-runtime)
  --log FILE          log file (errors also go to stderr)
  --log-format FMT    text or json
  --debug             log debug messages
"""


class ParsedArgs:
    """Flags (canonical name -> value, True, or a list) and the positional arguments."""

    __slots__ = ("flags", "positionals")

    def __init__(self) -> None:
        self.flags: dict[str, Any] = {}
        self.positionals: list[str] = []

    def value(self, name: str, default: str | None = None) -> str | None:
        value = self.flags.get(name, default)
        return value if value is None else str(value)

    def has(self, name: str) -> bool:
        return bool(self.flags.get(name))

    def values(self, name: str) -> list[str]:
        return list(self.flags.get(name) or [])


_BOOL_VALUES = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def parse_flags(args: list[str], spec: FlagSpec, stop_at_positional: bool = True) -> ParsedArgs:
    """Parse ``args`` with ``spec``; flags end at ``--`` or, with ``stop_at_positional``, at
    the first positional argument (everything after it is positional)."""
    lookup: dict[str, str] = {}
    for name, (aliases, _, _) in spec.items():
        lookup[name] = name
        for alias in aliases:
            lookup[alias] = name
    parsed = ParsedArgs()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            parsed.positionals.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            if stop_at_positional:
                parsed.positionals.extend(args[i:])
                break
            continue
        key, has_value, inline = arg.lstrip("-").partition("=")
        found = lookup.get(key)
        if found is None:
            raise UsageError(f"flag provided but not defined: {arg.partition('=')[0]}",
                             hint=f"see '{PROG} --help'")
        name = found
        _, takes_value, repeats = spec[name]
        value: Any
        if takes_value:
            if has_value:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise UsageError(f"flag needs an argument: {arg}")
        elif has_value:
            if inline.lower() not in _BOOL_VALUES:
                raise UsageError(f"invalid boolean value {inline!r} for {arg.partition('=')[0]}")
            value = _BOOL_VALUES[inline.lower()]
        else:
            value = True
        if repeats:
            parsed.flags.setdefault(name, []).append(value)
        else:
            parsed.flags[name] = value
    return parsed


def _one_id(args: ParsedArgs, command: str, extra: int = 0) -> str:
    if not args.positionals:
        raise UsageError(f"{command}: a container id is required", hint=f"{PROG} {command} ID")
    if len(args.positionals) > 1 + extra:
        raise UsageError(f"{command}: unexpected arguments {' '.join(args.positionals[1:])!r}")
    return args.positionals[0]


def _int_flag(args: ParsedArgs, name: str, default: int = 0) -> int:
    value = args.value(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--{name} must be a number, not {value!r}") from None


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# commands


def cmd_create(rt: Runtime, args: ParsedArgs) -> int:
    container_id = _one_id(args, "create")
    rt.create(
        container_id,
        args.value("bundle") or os.getcwd(),
        console_socket=args.value("console-socket"),
        pid_file=args.value("pid-file"),
        no_pivot=args.has("no-pivot"),
        no_new_keyring=args.has("no-new-keyring"),
        preserve_fds=_int_flag(args, "preserve-fds"),
    )
    return 0


def cmd_run(rt: Runtime, args: ParsedArgs) -> int:
    container_id = _one_id(args, "run")
    bundle = args.value("bundle") or os.getcwd()
    if args.has("detach"):
        rt.create(
            container_id,
            bundle,
            console_socket=args.value("console-socket"),
            pid_file=args.value("pid-file"),
            no_pivot=args.has("no-pivot"),
            no_new_keyring=args.has("no-new-keyring"),
            preserve_fds=_int_flag(args, "preserve-fds"),
        )
        rt.start(container_id)
        return 0
    return rt.run(
        container_id,
        bundle,
        console_socket=args.value("console-socket"),
        pid_file=args.value("pid-file"),
        no_pivot=args.has("no-pivot"),
        no_new_keyring=args.has("no-new-keyring"),
        preserve_fds=_int_flag(args, "preserve-fds"),
        keep=args.has("keep"),
    )


def cmd_start(rt: Runtime, args: ParsedArgs) -> int:
    rt.start(_one_id(args, "start"))
    return 0


def cmd_state(rt: Runtime, args: ParsedArgs) -> int:
    _print(_pretty(rt.state(_one_id(args, "state"))))
    return 0


def cmd_kill(rt: Runtime, args: ParsedArgs) -> int:
    from berth.runtime import signals

    container_id = _one_id(args, "kill", extra=1)
    signum = signals.SIGTERM
    if len(args.positionals) > 1:
        signum = signals.parse_signal(args.positionals[1])
    rt.kill(container_id, signum, all=args.has("all"))
    return 0


def cmd_delete(rt: Runtime, args: ParsedArgs) -> int:
    if not args.positionals:
        raise UsageError("delete: a container id is required", hint=f"{PROG} delete ID")
    for container_id in args.positionals:
        rt.delete(container_id, force=args.has("force"))
    return 0


def exec_process(rt: Runtime, container_id: str, args: ParsedArgs) -> dict[str, Any]:
    """The process to exec: ``--process FILE``, or the container's process changed by the
    flags (as runc builds it)."""
    from berth import jsonio

    path = args.value("process")
    if path:
        try:
            with open(path, "rb") as f:
                process: dict[str, Any] = jsonio.loads(f.read())
        except OSError as exc:
            raise UsageError(f"cannot read --process {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"--process {path} is not valid JSON: {exc}") from None
        return process
    command = args.positionals[1:]
    if not command:
        raise UsageError("exec: a command to run is required",
                         hint=f"{PROG} exec ID COMMAND [ARGS...] or --process FILE")
    base = dict(rt.record(container_id).spec.get("process") or {})
    base.pop("consoleSize", None)
    base["args"] = command
    base["terminal"] = args.has("tty")
    if args.value("cwd"):
        base["cwd"] = args.value("cwd")
    env = list(base.get("env") or [])
    env.extend(args.values("env"))
    base["env"] = env
    user = dict(base.get("user") or {})
    if args.value("user"):
        uid, _, gid = str(args.value("user")).partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise UsageError(
                f"--user {args.value('user')!r} must be numeric uid[:gid]"
            ) from None
    if args.values("additional-gids"):
        try:
            user["additionalGids"] = [int(g) for g in args.values("additional-gids")]
        except ValueError:
            raise UsageError("--additional-gids must be numbers") from None
    base["user"] = user
    if args.has("no-new-privs"):
        base["noNewPrivileges"] = True
    caps = args.values("cap")
    if caps:
        current = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for cap in caps:
            name = cap.upper() if cap.upper().startswith("CAP_") else "CAP_" + cap.upper()
            for key in ("bounding", "effective", "permitted", "ambient", "inheritable"):
                if key in ("ambient", "inheritable") and key not in current:
                    continue
                values = current.setdefault(key, [])
                if name not in values:
                    values.append(name)
        base["capabilities"] = current
    return base


def cmd_exec(rt: Runtime, args: ParsedArgs) -> int:
    if not args.positionals:
        raise UsageError("exec: a container id is required", hint=f"{PROG} exec ID COMMAND")
    container_id = args.positionals[0]
    process = exec_process(rt, container_id, args)
    kwargs: dict[str, Any] = {
        "console_socket": args.value("console-socket"),
        "pid_file": args.value("pid-file"),
        "preserve_fds": _int_flag(args, "preserve-fds"),
    }
    if args.has("detach"):
        rt.exec_detached(container_id, process, **kwargs)
        return 0
    return rt.exec(container_id, process, **kwargs)


def cmd_spec(rt: Runtime, args: ParsedArgs) -> int:
    del rt
    from berth.oci.runtime_spec import default_spec

    bundle = args.value("bundle") or os.getcwd()
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first")
    spec = default_spec(rootless=args.has("rootless"))
    with open(path, "w") as f:
        f.write(_pretty(spec))
    return 0


def cmd_list(rt: Runtime, args: ParsedArgs) -> int:
    states = rt.list_containers()
    if args.has("quiet"):
        _print("".join(s["id"] + "\n" for s in states))
        return 0
    fmt = args.value("format") or "table"
    if fmt == "json":
        _print(_pretty(states))
        return 0
    if fmt != "table":
        raise UsageError(f"invalid --format {fmt!r}", hint="table or json")
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for s in states:
        rows.append([s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]])
    _print(format_table(rows))
    return 0


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def cmd_pause(rt: Runtime, args: ParsedArgs) -> int:
    rt.pause(_one_id(args, "pause"))
    return 0


def cmd_resume(rt: Runtime, args: ParsedArgs) -> int:
    rt.resume(_one_id(args, "resume"))
    return 0


def cmd_ps(rt: Runtime, args: ParsedArgs) -> int:
    if not args.positionals:
        raise UsageError("ps: a container id is required", hint=f"{PROG} ps ID [ps options]")
    pids = rt.ps(args.positionals[0])
    fmt = args.value("format") or "table"
    if fmt == "json":
        _print(_pretty(pids))
        return 0
    if fmt != "table":
        raise UsageError(f"invalid --format {fmt!r}", hint="table or json")
    import subprocess

    ps_args = args.positionals[1:] or ["-ef"]
    try:
        output = subprocess.run(["ps", *ps_args], check=True, capture_output=True,
                                text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UsageError(f"cannot run ps {' '.join(ps_args)}: {exc}") from None
    lines = output.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("the ps output has no PID column", hint="pass options that show PID")
    column = header.index("PID")
    wanted = {str(p) for p in pids}
    out = [lines[0]] + [
        line for line in lines[1:] if len(line.split()) > column and line.split()[column] in wanted
    ]
    _print("\n".join(out) + "\n")
    return 0


def cmd_events(rt: Runtime, args: ParsedArgs) -> int:
    import json

    container_id = _one_id(args, "events")
    stats = rt.stats(container_id)
    event = {"type": "stats", "id": container_id, "data": stats}
    if args.has("stats"):
        _print(json.dumps(event) + "\n")
        return 0
    import time

    text = args.value("interval") or "5s"
    try:
        interval = float(text.rstrip("s"))
    except ValueError:
        raise UsageError(f"invalid --interval {text!r}", hint="e.g. 5s") from None
    while True:
        _print(json.dumps({"type": "stats", "id": container_id,
                           "data": rt.stats(container_id)}) + "\n")
        time.sleep(interval)


def _update_resources(args: ParsedArgs) -> dict[str, Any]:
    from berth import jsonio

    path = args.value("resources")
    resources: dict[str, Any] = {}
    if path:
        try:
            resources = jsonio.loads(sys.stdin.buffer.read() if path == "-" else _read(path))
        except OSError as exc:
            raise UsageError(f"cannot read --resources {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"--resources {path} is not valid JSON: {exc}") from None
    memory = resources.setdefault("memory", {})
    cpu = resources.setdefault("cpu", {})
    for flag, section, key in (
        ("memory", memory, "limit"),
        ("memory-swap", memory, "swap"),
        ("memory-reservation", memory, "reservation"),
        ("cpu-quota", cpu, "quota"),
        ("cpu-period", cpu, "period"),
        ("cpu-shares", cpu, "shares"),
    ):
        if args.value(flag) is not None:
            section[key] = parse_size(str(args.value(flag))) if "memory" in flag else _int_flag(
                args, flag)
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if args.value(flag) is not None:
            cpu[key] = args.value(flag)
    if args.value("pids-limit") is not None:
        resources["pids"] = {"limit": _int_flag(args, "pids-limit")}
    if args.value("blkio-weight") is not None:
        resources["blockIO"] = {"weight": _int_flag(args, "blkio-weight")}
    return {k: v for k, v in resources.items() if v != {}}


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def parse_size(text: str) -> int:
    """``512m``, ``1g``, ``1048576``, ``-1`` -> bytes (as runc's update accepts them)."""
    text = text.strip().lower()
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    number = text.rstrip("bkmgt") if text[-1:] in units else text
    unit = text[len(number) :].rstrip("b") or "b"
    try:
        return int(float(number) * units[unit[0]])
    except (ValueError, KeyError):
        raise UsageError(f"invalid size {text!r}", hint="e.g. 512m, 1g, or bytes") from None


def cmd_update(rt: Runtime, args: ParsedArgs) -> int:
    container_id = _one_id(args, "update")
    resources = _update_resources(args)
    if not resources:
        raise UsageError("update: nothing to change",
                         hint="pass -r FILE or flags such as --memory, --pids-limit")
    rt.update(container_id, resources)
    return 0


def cmd_features(rt: Runtime, args: ParsedArgs) -> int:
    del rt, args
    from berth.runtime import mounts, namespaces

    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted([*mounts.PROPAGATION_OPTIONS, "ro", "rw", "nosuid", "suid",
                                "nodev", "dev", "noexec", "exec", "bind", "rbind"]),
        "linux": {
            "namespaces": sorted(k for k in namespaces.NS_FLAGS if k != "time"),
            "cgroup": {"v1": True, "v2": True, "systemd": False},
            "seccomp": {"enabled": True},
        },
        "annotations": {"org.opencontainers.runc.version": VERSION},
    }
    _print(_pretty(features))
    return 0


COMMANDS: dict[str, Callable[[Runtime, ParsedArgs], int]] = {
    "create": cmd_create,
    "run": cmd_run,
    "start": cmd_start,
    "state": cmd_state,
    "kill": cmd_kill,
    "delete": cmd_delete,
    "exec": cmd_exec,
    "spec": cmd_spec,
    "list": cmd_list,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "ps": cmd_ps,
    "events": cmd_events,
    "update": cmd_update,
    "features": cmd_features,
}


def main(argv: list[str] | None = None) -> int:
    """The command. Called without ``argv`` it is the process's entry point and ends the
    process itself: stdio flushed, then ``os._exit``, skipping the interpreter's teardown
    (several milliseconds of module cleanup that a runtime command does not need)."""
    if argv is not None:
        return _main(argv)
    from berth import stdfds

    stdfds.ensure_open()  # a closed stdout must not become a state file the container writes
    code = _main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


def _main(argv: list[str]) -> int:
    log = None
    try:
        global_args = parse_flags(argv, GLOBAL_FLAGS)
        if global_args.has("version"):
            _print(f"{PROG} version {VERSION}\nspec: {SPEC_VERSION}\n")
            return 0
        if global_args.has("help") or not global_args.positionals:
            _print(USAGE)
            return 0 if global_args.has("help") else 2
        if global_args.has("systemd-cgroup"):
            raise UsageError("--systemd-cgroup is not supported by berth-runtime",
                             hint="drop the flag: cgroups are managed through cgroupfs")
        fmt = global_args.value("log-format") or "text"
        if fmt not in ("text", "json"):
            raise UsageError(f"invalid --log-format {fmt!r}", hint="text or json")
        from berth.runtime.container import DEFAULT_STATE_ROOT, Runtime
        from berth.runtime.log import RuntimeLog

        log = RuntimeLog(global_args.value("log"), fmt, debug=global_args.has("debug"))
        command, *rest = global_args.positionals
        command = COMMAND_ALIASES.get(command, command)
        handler = COMMANDS.get(command)
        if handler is None:
            raise UsageError(f"no such command: {command}", hint=f"see '{PROG} --help'")
        args = parse_flags(rest, COMMAND_FLAGS[command])
        runtime = Runtime(global_args.value("root") or DEFAULT_STATE_ROOT, log)
        return handler(runtime, args)
    except BerthError as exc:
        return _report(exc, log)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _report(exc, log)
    finally:
        if log is not None:
            log.close()


def _report(exc: BaseException, log: Any) -> int:
    message = str(exc).replace("\n", " ")
    if log is not None and log.to_file:
        log.error(message)
    try:
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()
    except OSError:
        pass
    if isinstance(exc, CommandNotFound):
        return 127
    if isinstance(exc, CommandNotInvokable):
        return 126
    return 2 if isinstance(exc, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
