"""Docker's flag rules and a lazily dispatched command tree.

The ``berth`` command must accept exactly what the docker CLI accepts, and docker parses its
command line with spf13/pflag under cobra. This module reimplements those rules (it shares no
code with them) with nothing but the standard library, because it is imported by every
``berth`` invocation and ``berth run`` start latency is a headline number: no ``typing``,
``re``, ``enum`` or ``dataclasses`` at import time.

The rules, as pflag applies them:

- ``--name value``, ``--name=value``, ``-n value``, ``-nvalue``, ``-n=value``;
- boolean flags take no separate value (``--rm``), but accept ``--rm=false`` and ``-d=false``;
- short booleans combine (``-dit``); the last letter of a cluster may take a value
  (``-dp 80:80``, ``-dp80:80``);
- a flag that needs a value takes the next argument whatever it looks like (``--tail -1``);
- ``--`` ends the flags; a lone ``-`` is a positional argument;
- flags may follow positional arguments, unless the command is declared
  ``interspersed=False`` (``run``, ``create``, ``exec``): then the first positional argument
  ends the flags and everything after it belongs to the container command;
- global options (``--root``, ``--debug``...) come before the command, as in docker.

Describing a command::

    IMAGE_LS = Command(
        "ls", aliases=("list",), summary="List images", usage="[OPTIONS] [REPOSITORY[:TAG]]",
        flags=[Flag("all", "a", bool, help="Show all images"),
               Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
               Flag("format", None, str, help="Format output using a custom template")],
        args=(0, 1), handler="berth.cli.images:ls")
    ROOT = Group("berth", summary="A container engine", flags=GLOBAL_FLAGS, commands=[
        Group("image", summary="Manage images", commands=[IMAGE_LS]),
        IMAGE_LS.shortcut("images", top=7),
    ])

    invocation = parse_command_line(ROOT, sys.argv[1:])   # raises UsageError
    sys.exit(run_handler(invocation))                      # prints help or calls the handler

A handler receives the :class:`Invocation`; its module is imported only when it runs.
``--help``, ``-h`` and ``berth help CMD`` print help laid out as docker 28 lays it out
(Usage, Aliases, Options wrapped to the terminal, Common/Management Commands).
Every :class:`~berth.errors.UsageError` raised here carries the complete message the current
docker CLI (28) prints, for example::

    unknown flag: --foo

    Usage:  berth images [OPTIONS] [REPOSITORY[:TAG]]

    Run 'berth images --help' for more information

so the caller prints ``str(error)`` as it is. (Docker exits 125 after a flag error, but 1
after a wrong number of arguments or an unknown command.)
"""

from __future__ import annotations

import os
import sys

from berth.errors import ArgumentError, InvalidArgument, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, TextIO

__all__ = [
    "GLOBAL_FLAGS",
    "Command",
    "Flag",
    "Group",
    "Invocation",
    "go_quote",
    "help_text",
    "parse_command_line",
    "parse_go_bool",
    "parse_go_float",
    "parse_go_int",
    "run_handler",
    "see_help",
]

# Python types accepted as Flag types, and the kind names they stand for.
_KIND_OF_TYPE: dict[object, str] = {
    bool: "bool",
    str: "string",
    int: "int",
    float: "float",
    list: "list",
}
# kind -> the type placeholder pflag prints in help ("" for booleans).
_KINDS = {
    "bool": "",
    "string": "string",
    "int": "int",
    "float": "float",
    "list": "list",
    "filter": "filter",
    "bytes": "bytes",
    "duration": "duration",
}
_REPEATABLE = ("list", "filter")


class Flag:
    """One command-line flag.

    ``type`` is ``bool``, ``str``, ``int``, ``float`` or ``list`` (repeatable: every
    occurrence is appended, values are not split on commas, as docker's ``-e``), or one of
    the docker value kinds ``"filter"`` (a repeatable ``key=value``, checked when given),
    ``"bytes"`` (``512m``: binary units, parsed to an int number of bytes, as ``-m``) or
    ``"duration"`` (Go's ``1m30s``, parsed to an int number of nanoseconds, as
    ``--health-interval``).

    ``default`` is what the handler sees when the flag is not given (the Go zero value of the
    kind when None). ``env`` names an environment variable that supplies the value when the
    flag is absent (``--root`` / ``BERTH_ROOT``). ``metavar`` replaces the type placeholder
    in help (``map``, ``decimal``, ``ulimit``). ``deprecated`` hides the flag from help and
    warns when it is used; ``hidden`` only hides it.
    """

    __slots__ = (
        "default",
        "deprecated",
        "dest",
        "env",
        "help",
        "hidden",
        "kind",
        "metavar",
        "name",
        "shorthand",
    )

    def __init__(
        self,
        name: str,
        shorthand: str | None = None,
        type: object = str,
        help: str = "",
        *,
        default: object = None,
        hidden: bool = False,
        deprecated: str | None = None,
        metavar: str | None = None,
        env: str | None = None,
    ) -> None:
        kind = _KIND_OF_TYPE.get(type) if not isinstance(type, str) else type
        if kind is None or kind not in _KINDS:
            raise ValueError(f"flag --{name}: unsupported type {type!r}")
        if shorthand is not None and len(shorthand) != 1:
            raise ValueError(f"flag --{name}: shorthand {shorthand!r} is not one character")
        self.name = name
        self.shorthand = shorthand
        self.kind = kind
        self.default = default
        self.help = help
        self.hidden = hidden or deprecated is not None
        self.deprecated = deprecated
        self.metavar = metavar
        self.env = env
        self.dest = name.replace("-", "_")

    def __repr__(self) -> str:
        return f"Flag({self.name!r}, {self.shorthand!r}, {self.kind!r})"

    def initial_value(self) -> object:
        """The value a handler sees when the flag is not on the command line."""
        if self.kind in _REPEATABLE:
            return list(self.default) if self.default else []  # type: ignore[call-overload]
        if self.default is not None:
            return self.default
        if self.kind == "bool":
            return False
        if self.kind == "string":
            return ""
        if self.kind == "float":
            return 0.0
        return 0


class Command:
    """A command that runs a handler: ``berth image ls``.

    ``usage`` is what follows the command path on the usage line (``[OPTIONS] IMAGE``);
    ``flags`` its flags, or a function returning them: then they are built only when this
    command is parsed or its help shown (``run`` has a hundred flags; building them all
    for every ``berth`` invocation would cost start time);
    ``args`` the (min, max) number of positional arguments (max None: no limit);
    ``handler`` names the function to call as ``"package.module:function"``;
    ``top`` puts it under "Common Commands" of ``berth --help`` (in that order).
    """

    __slots__ = (
        "_flags",
        "aliases",
        "args",
        "canonical",
        "description",
        "example",
        "handler",
        "hidden",
        "interspersed",
        "name",
        "summary",
        "top",
        "usage",
    )

    def __init__(
        self,
        name: str,
        *,
        summary: str,
        usage: str = "",
        aliases: Sequence[str] = (),
        flags: Sequence[Flag] | Callable[[], Sequence[Flag]] = (),
        args: tuple[int, int | None] = (0, None),
        handler: str,
        interspersed: bool = True,
        hidden: bool = False,
        description: str = "",
        example: str = "",
        top: int | None = None,
    ) -> None:
        self.name = name
        self.summary = summary
        self.usage = usage
        self.aliases = tuple(aliases)
        self._flags = flags
        self.args = args
        self.handler = handler
        self.interspersed = interspersed
        self.hidden = hidden
        self.description = description
        self.example = example
        self.top = top
        self.canonical: Command | None = None

    def __repr__(self) -> str:
        return f"Command({self.name!r})"

    @property
    def flags(self) -> tuple[Flag, ...]:
        flags = self._flags
        if not isinstance(flags, tuple):
            flags = tuple(flags() if callable(flags) else flags)
            self._flags = flags
        return flags

    def shortcut(self, name: str, *, top: int | None = None, hidden: bool = False) -> Command:
        """The same command under another name at the top level (``berth images``)."""
        copy = Command(
            name,
            summary=self.summary,
            usage=self.usage,
            flags=lambda: self.flags,
            args=self.args,
            handler=self.handler,
            interspersed=self.interspersed,
            hidden=hidden,
            description=self.description,
            example=self.example,
            top=top,
        )
        copy.canonical = self.canonical or self
        return copy


class Group:
    """A command with subcommands (``berth image``), or the root (``berth``) itself.

    ``flags`` are only meaningful on the root: docker's global options, accepted before the
    command. ``footer`` is printed at the end of the group's help. ``usage`` follows the
    path on the usage line of error messages (the root's defaults to docker's
    "[OPTIONS] COMMAND [ARG...]").
    """

    __slots__ = (
        "aliases",
        "commands",
        "description",
        "flags",
        "footer",
        "hidden",
        "name",
        "summary",
        "top",
        "usage",
    )

    def __init__(
        self,
        name: str,
        *,
        summary: str,
        commands: Sequence[Command | Group] = (),
        aliases: Sequence[str] = (),
        flags: Sequence[Flag] = (),
        hidden: bool = False,
        description: str = "",
        footer: str = "",
        top: int | None = None,
        usage: str = "",
    ) -> None:
        self.name = name
        self.summary = summary
        self.usage = usage
        self.commands = list(commands)
        self.aliases = tuple(aliases)
        self.flags = tuple(flags)
        self.hidden = hidden
        self.description = description
        self.footer = footer
        self.top = top

    def __repr__(self) -> str:
        return f"Group({self.name!r})"

    def find(self, name: str) -> Command | Group | None:
        """The direct subcommand called ``name`` (or aliased so)."""
        for child in self.commands:
            if child.name == name or name in child.aliases:
                return child
        return None


GLOBAL_FLAGS: tuple[Flag, ...] = (
    Flag("debug", "D", bool, help="Enable debug mode"),
    Flag(
        "log-level",
        "l",
        str,
        help='Set the logging level ("debug", "info", "warn", "error", "fatal")',
        default="info",
    ),
    Flag(
        "root",
        None,
        str,
        help="Root directory of the berth store (env BERTH_ROOT)",
        default="/var/lib/berth",
        env="BERTH_ROOT",
    ),
    Flag("version", "v", bool, help="Print version information and quit"),
)

_HELP_LONG = Flag("help", "h", bool, help="Print usage", hidden=True)
_HELP_LONG_ONLY = Flag("help", None, bool, help="Print usage", hidden=True)


class Invocation:
    """A parsed command line: which command, its options and positional arguments.

    ``options`` and ``globals`` map python-ized flag names (``no_trunc``) to values, defaults
    included; :meth:`is_set` tells whether the user gave a flag. ``path`` is the command as
    resolved from what was typed (``("berth", "images")``), ``command_path`` the canonical
    path of the command that runs (``("image", "ls")`` for ``berth images`` too).
    ``help`` is ``"stdout"`` or ``"stderr"`` when help is to be printed instead of running
    anything; ``dash_index`` the number of positional arguments before ``--`` (None when
    there was none); ``warnings`` the deprecation notices pflag would print on stderr.
    """

    __slots__ = (
        "args",
        "command",
        "dash_index",
        "globals",
        "globals_set",
        "help",
        "help_shorthand",
        "options",
        "options_set",
        "path",
        "root",
        "warnings",
    )

    def __init__(self, root: Group, command: Command | Group, path: tuple[str, ...]) -> None:
        self.root = root
        self.command = command
        self.path = path
        self.options: dict[str, Any] = {}
        self.options_set: set[str] = set()
        self.globals: dict[str, Any] = {}
        self.globals_set: set[str] = set()
        self.args: list[str] = []
        self.dash_index: int | None = None
        self.help: str | None = None
        self.help_shorthand = False
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return (
            f"Invocation(path={self.path!r}, options={self.options!r}, args={self.args!r}, "
            f"globals={self.globals!r}, help={self.help!r})"
        )

    @property
    def command_path(self) -> tuple[str, ...]:
        """The canonical path of the command, without the root name."""
        target = self.command
        if isinstance(target, Command) and target.canonical is not None:
            target = target.canonical
        found = _find_path(self.root, target)
        return tuple(found[1:]) if found else tuple(self.path[1:])

    @property
    def prog(self) -> str:
        """The command as docker names it in messages: ``berth images``."""
        return " ".join(self.path)

    def is_set(self, name: str) -> bool:
        """Whether the flag (``"no-trunc"`` or ``"no_trunc"``) was on the command line."""
        return name.replace("-", "_") in self.options_set

    def is_global_set(self, name: str) -> bool:
        return name.replace("-", "_") in self.globals_set

    def get_str(self, name: str) -> str:
        value = self.options[name.replace("-", "_")]
        if not isinstance(value, str):
            raise TypeError(f"option {name!r} is not a string")
        return value

    def get_bool(self, name: str) -> bool:
        value = self.options[name.replace("-", "_")]
        if not isinstance(value, bool):
            raise TypeError(f"option {name!r} is not a bool")
        return value

    def get_int(self, name: str) -> int:
        value = self.options[name.replace("-", "_")]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"option {name!r} is not an int")
        return value

    def get_float(self, name: str) -> float:
        value = self.options[name.replace("-", "_")]
        if not isinstance(value, float):
            raise TypeError(f"option {name!r} is not a float")
        return value

    def get_list(self, name: str) -> list[str]:
        value = self.options[name.replace("-", "_")]
        if not isinstance(value, list):
            raise TypeError(f"option {name!r} is not a list")
        return value

    def usage_error(self, message: str) -> UsageError:
        """A UsageError worded as docker words a bad flag of this command::

            invalid argument "x" for "--restart" flag: ...

            Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]

            Run 'berth run --help' for more information
        """
        command = self.command
        if isinstance(command, Command):
            use_line = _use_line(command, self.path)
        else:
            use_line = _group_use_line(self.root, command, self.path)
        return _flag_error(message, self.path, use_line)

    def help_text(self, width: int | None = None) -> str:
        return help_text(self.root, self.command, self.path, width=width)


# ---------------------------------------------------------------------------------------------
# Go value syntax: strconv.ParseInt / ParseFloat / ParseBool / Quote, as pflag uses them.


def parse_go_bool(text: str) -> bool:
    """strconv.ParseBool: 1 t T TRUE true True, 0 f F FALSE false False."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_go_int(text: str, bits: int = 64) -> int:
    """strconv.ParseInt(text, 0, bits): signs, 0x 0o 0b and leading-0 octal, underscores."""
    syntax = ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    body = text
    negative = False
    if body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    if not body:
        raise syntax
    base = 10
    prefixed = False
    if body[0] == "0" and len(body) > 1:
        marker = body[1].lower()
        if marker in ("x", "o", "b"):
            base = {"x": 16, "o": 8, "b": 2}[marker]
            body = body[2:]
            prefixed = True
        else:
            base = 8
            body = body[1:]
            prefixed = True
    if not _underscores_ok(body, prefixed):
        raise syntax
    digits = body.replace("_", "")
    if not digits and not (base == 8 and prefixed and body == ""):
        raise syntax
    allowed = _DIGITS[base]
    for char in digits:
        if char not in allowed:
            raise syntax
    value = int(digits, base) if digits else 0
    if negative:
        value = -value
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _underscores_ok(body: str, prefixed: bool) -> bool:
    """Go's rule: '_' only between digits, or right after a base prefix."""
    if "_" not in body:
        return True
    previous = "0" if prefixed else "^"  # '0' stands for "a digit or a base prefix"
    for char in body:
        if char == "_":
            if previous != "0":
                return False
            previous = "_"
        else:
            previous = "0"
    return previous != "_"


def parse_go_float(text: str) -> float:
    """strconv.ParseFloat(text, 64), including inf/nan and hex floats; no spaces."""
    syntax = ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
    body = text[1:] if text[:1] in ("+", "-") else text
    lowered = body.lower()
    if lowered in ("inf", "infinity", "nan"):
        return float(text)
    if not body or not body.isascii() or body.strip() != body:
        raise syntax
    try:
        if lowered.startswith("0x"):
            if "p" not in lowered or not _underscores_ok(body[2:].split("p")[0], True):
                raise syntax
            value = float.fromhex(text.replace("_", ""))
        else:
            if not all(c in "0123456789._eE+-" for c in body):
                raise syntax
            value = float(text)
    except ValueError:
        raise syntax from None
    except OverflowError:
        value = float("inf")
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: value out of range")
    return value


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\"}


def go_quote(text: str, quote: str = '"') -> str:
    """strconv.Quote (or QuoteRune with ``quote="'"``): Go's %q of a string."""
    out = [quote]
    for char in text:
        if char == quote:
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


def _convert(flag: Flag, text: str) -> object:
    kind = flag.kind
    if kind == "string" or kind == "list":
        return text
    if kind == "bool":
        return parse_go_bool(text)
    if kind == "int":
        return parse_go_int(text)
    if kind == "float":
        return parse_go_float(text)
    if kind == "filter":
        if text and "=" not in text:
            raise ValueError("bad format of filter (expected name=value)")
        return text
    from berth import units

    if kind == "bytes":
        return units.parse_ram_size(text)
    return units.parse_duration(text)


# ---------------------------------------------------------------------------------------------
# Parsing


class _FlagSet:
    """The flags of one command while its arguments are parsed (pflag's FlagSet)."""

    __slots__ = ("changed", "flags", "help_shorthand", "long", "short", "values", "warnings")

    def __init__(self, flags: Sequence[Flag], with_help: bool) -> None:
        self.flags = list(flags)
        self.long: dict[str, Flag] = {}
        self.short: dict[str, Flag] = {}
        for flag in flags:
            self.long[flag.name] = flag
            if flag.shorthand:
                self.short[flag.shorthand] = flag
        if with_help and "help" not in self.long:
            help_flag = _HELP_LONG if "h" not in self.short else _HELP_LONG_ONLY
            self.flags.append(help_flag)
            self.long["help"] = help_flag
            if help_flag.shorthand:
                self.short["h"] = help_flag
        self.values: dict[str, object] = {}
        self.changed: set[str] = set()
        self.warnings: list[str] = []
        self.help_shorthand = False

    def assign(self, flag: Flag, text: str) -> None:
        try:
            value = _convert(flag, text)
        except (ValueError, InvalidArgument) as error:
            if flag.shorthand:
                name = f"-{flag.shorthand}, --{flag.name}"
            else:
                name = f"--{flag.name}"
            raise _ParseError(
                f"invalid argument {go_quote(text)} for {go_quote(name)} flag: {error}"
            ) from None
        if flag.kind in _REPEATABLE:
            current = self.values.get(flag.dest)
            if not isinstance(current, list):
                current = []
                self.values[flag.dest] = current
            if text:
                current.append(value)
        else:
            self.values[flag.dest] = value
        self.changed.add(flag.dest)
        if flag.deprecated is not None:
            self.warnings.append(f"Flag --{flag.name} has been deprecated, {flag.deprecated}")

    def parse(self, args: list[str], interspersed: bool) -> tuple[list[str], int | None]:
        """Consume flags from ``args``; return the positional arguments and the dash index."""
        positional: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            index += 1
            if len(arg) < 2 or arg[0] != "-":
                if not interspersed:
                    positional.append(arg)
                    positional.extend(args[index:])
                    return positional, None
                positional.append(arg)
                continue
            if arg == "--":
                dash = len(positional)
                positional.extend(args[index:])
                return positional, dash
            if arg[1] == "-":
                index = self._parse_long(arg, args, index)
            else:
                index = self._parse_shorts(arg, args, index)
        return positional, None

    def _parse_long(self, arg: str, args: list[str], index: int) -> int:
        body = arg[2:]
        if body[0] in "-=":
            raise _ParseError(f"bad flag syntax: {arg}")
        name, has_value, value = body.partition("=")
        flag = self.long.get(name)
        if flag is None:
            raise _ParseError(f"unknown flag: --{name}")
        if not has_value:
            if flag.kind == "bool":
                value = "true"
            elif index < len(args):
                value = args[index]
                index += 1
            else:
                raise _ParseError(f"flag needs an argument: --{name}")
        self.assign(flag, value)
        return index

    def _parse_shorts(self, arg: str, args: list[str], index: int) -> int:
        shorts = arg[1:]
        while shorts:
            letter = shorts[0]
            flag = self.short.get(letter)
            if flag is None:
                raise _ParseError(
                    f"unknown shorthand flag: {go_quote(letter, chr(39))} in -{shorts}"
                )
            if len(shorts) > 2 and shorts[1] == "=":
                value, shorts = shorts[2:], ""
            elif flag.kind == "bool":
                value, shorts = "true", shorts[1:]
                self.help_shorthand |= flag is _HELP_LONG
            elif len(shorts) > 1:
                value, shorts = shorts[1:], ""
            elif index < len(args):
                value, shorts = args[index], ""
                index += 1
            else:
                raise _ParseError(
                    f"flag needs an argument: {go_quote(letter, chr(39))} in -{shorts}"
                )
            self.assign(flag, value)
        return index

    def fill(self, values: dict[str, Any], changed: set[str]) -> bool:
        """Store every flag's value (defaults and env included); return the help flag."""
        wants_help = False
        for flag in self.flags:
            if flag is _HELP_LONG or flag is _HELP_LONG_ONLY:
                wants_help = bool(self.values.get("help"))
                continue
            if flag.dest in self.values:
                values[flag.dest] = self.values[flag.dest]
            elif flag.env and os.environ.get(flag.env):
                values[flag.dest] = os.environ[flag.env]
            else:
                values[flag.dest] = flag.initial_value()
        changed.update(self.changed)
        changed.discard("help")
        return wants_help


class _ParseError(Exception):
    pass


def see_help(message: str, command: str) -> str:
    """Docker's call to action after a usage error, for handlers that find one.

    ``see_help("invalid restart policy", "berth run")`` gives
    "invalid restart policy\n\nRun 'berth run --help' for more information".
    """
    return f"{message}\n\n{_run_help(command)}"


def _run_help(command: str) -> str:
    return f"Run '{command} --help' for more information"


def _flag_error(message: str, path: Sequence[str], use_line: str) -> UsageError:
    """A flag error as docker's FlagErrorFunc words it (the usage line, then --help)."""
    return UsageError(f"{message}\n\nUsage:  {use_line}\n\n{_run_help(' '.join(path))}")


def parse_command_line(root: Group, argv: Sequence[str]) -> Invocation:
    """Resolve ``argv`` (without the program name) against the command tree.

    Raises :class:`~berth.errors.UsageError` with docker's message for unknown flags or
    commands, missing or bad values and wrong numbers of arguments.
    """
    args = list(argv)
    path: list[str] = [root.name]
    flagset = _FlagSet(root.flags, with_help=True)
    try:
        rest, _ = flagset.parse(args, interspersed=False)
    except _ParseError as error:
        raise _flag_error(str(error), path, _group_use_line(root, root, path)) from None
    invocation = Invocation(root, root, (root.name,))
    wants_help = flagset.fill(invocation.globals, invocation.globals_set)
    invocation.warnings.extend(flagset.warnings)
    invocation.help_shorthand = flagset.help_shorthand
    help_topic = False
    if not wants_help:
        if invocation.globals.get("version"):
            invocation.args = rest
            return invocation
        if rest and rest[0] == "help" and root.find("help") is None:
            rest = rest[1:]
            wants_help = help_topic = True

    node: Command | Group = root
    while isinstance(node, Group):
        if not rest:
            # docker prints the help of a bare group (and of a bare `docker`) on stderr
            invocation.help = "stdout" if wants_help else "stderr"
            return invocation
        name = rest.pop(0)
        child = node.find(name)
        if child is None:
            if help_topic:
                raise UsageError(f"unknown help topic: {' '.join([name, *rest])}")
            raise _unknown_command(root, node, path, name)
        node = child
        path.append(child.name)
        invocation.command = node
        invocation.path = tuple(path)
        if isinstance(node, Group):
            group_flags = _FlagSet((), with_help=True)
            try:
                rest, _ = group_flags.parse(rest, interspersed=False)
            except _ParseError as error:
                raise _flag_error(str(error), path, _group_use_line(root, node, path)) from None
            if group_flags.fill({}, set()):
                wants_help = True
                invocation.help_shorthand = group_flags.help_shorthand
    if wants_help:
        if help_topic and rest:
            raise UsageError(f"unknown help topic: {' '.join(rest)}")
        invocation.help = "stdout"
        return invocation
    _parse_command(invocation, node, rest)
    return invocation


def _group_use_line(root: Group, group: Group, path: Sequence[str]) -> str:
    usage = group.usage or ("[OPTIONS] COMMAND [ARG...]" if group is root else "")
    return " ".join(path) + (f" {usage}" if usage else "")


def _unknown_command(root: Group, group: Group, path: list[str], name: str) -> ArgumentError:
    prog = " ".join(path)
    problem = f"{root.name}: unknown command: {prog} {name}"
    if group is root:
        return ArgumentError(f"{problem}\n\n{_run_help(prog)}")
    use_line = _group_use_line(root, group, path)
    return ArgumentError(f"{problem}\n\nUsage:  {use_line}\n\n{_run_help(prog)}")


def _parse_command(invocation: Invocation, command: Command, rest: list[str]) -> None:
    flagset = _FlagSet(command.flags, with_help=True)
    try:
        positional, dash = flagset.parse(rest, command.interspersed)
    except _ParseError as error:
        raise invocation.usage_error(str(error)) from None
    if flagset.fill(invocation.options, invocation.options_set):
        invocation.help = "stdout"
        invocation.help_shorthand = flagset.help_shorthand
        return
    invocation.warnings.extend(flagset.warnings)
    invocation.args = positional
    invocation.dash_index = dash
    _check_arg_count(invocation, command, len(positional))


def _check_arg_count(invocation: Invocation, command: Command, count: int) -> None:
    """Docker's messages for a wrong number of positional arguments (cli/required.go)."""
    low, high = command.args
    if low <= count and (high is None or count <= high):
        return
    prog = invocation.prog

    def plural(number: int) -> str:
        return "argument" if number == 1 else "arguments"

    action = "Run"
    if high == 0:
        problem = "accepts no arguments"
    elif high is None:
        problem = f"requires at least {low} {plural(low)}"
        action = "See"
    elif low == high:
        problem = f"requires {low} {plural(low)}"
    elif low == 0:
        problem = f"requires at most {high} {plural(high)}"
    else:
        problem = f"requires at least {low} and at most {high} {plural(high)}"
    raise ArgumentError(
        f"{invocation.root.name}: '{prog}' {problem}\n\n"
        f"Usage:  {_use_line(command, invocation.path)}\n\n"
        f"{action} '{prog} --help' for more information"  # docker says "See" for "at least"
    )


def run_handler(
    invocation: Invocation,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print help if that was asked for, else import the command's handler and call it.

    The handler is called with the invocation; what it returns (an int, or None for 0) is
    the exit status. Deprecation warnings go to ``stderr`` first, as pflag prints them.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    for warning in invocation.warnings:
        err.write(warning + "\n")
    command = invocation.command
    if invocation.help is not None or not isinstance(command, Command):
        stream = err if invocation.help == "stderr" else out
        if invocation.help_shorthand:
            stream.write("Flag shorthand -h has been deprecated, use --help\n")
        stream.write(invocation.help_text())
        return 0
    module_name, _, function_name = command.handler.partition(":")
    __import__(module_name)
    handler = getattr(sys.modules[module_name], function_name)
    result = handler(invocation)
    return int(result) if result is not None else 0


# ---------------------------------------------------------------------------------------------
# Help, as docker's cobra templates render it


def _find_path(node: Command | Group, target: Command | Group) -> list[str] | None:
    if node is target:
        return [node.name]
    if isinstance(node, Group):
        for child in node.commands:
            if isinstance(child, Command) and child.canonical is not None:
                continue
            found = _find_path(child, target)
            if found:
                return [node.name, *found]
    return None


def _use_line(command: Command, path: Sequence[str]) -> str:
    line = " ".join(path)
    return f"{line} {command.usage}" if command.usage else line


def _visible_flags(flags: Iterable[Flag]) -> list[Flag]:
    return sorted((f for f in flags if not f.hidden), key=lambda f: f.name)


def _alias_line(root: Group, node: Command | Group, path: Sequence[str]) -> str:
    canonical = node.canonical if isinstance(node, Command) and node.canonical else node
    canonical_path = _find_path(root, canonical) or list(path)
    names = [" ".join(canonical_path)]
    prefix = " ".join(canonical_path[:-1])
    names.extend(f"{prefix} {alias}" for alias in canonical.aliases)
    for child in root.commands:
        if isinstance(child, Command) and child.canonical is canonical and child is not node:
            names.append(f"{root.name} {child.name}")
    if node is not canonical:
        names.append(" ".join(path))
    return ", ".join(names) if len(names) > 1 else ""


def help_text(
    root: Group,
    node: Command | Group,
    path: Sequence[str],
    *,
    width: int | None = None,
) -> str:
    """What ``--help`` prints for ``node`` reached by ``path`` (``("berth", "images")``).

    ``width`` is the terminal width the option help is wrapped to (docker reads the
    terminal of stdin; 80 when that is not a terminal); 0 turns wrapping off.
    """
    return _usage_string(root, node, tuple(path), width)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(0).columns
    except OSError:
        return 80


def _usage_string(
    root: Group, node: Command | Group, path: tuple[str, ...], width: int | None
) -> str:
    if width is None:
        width = _terminal_width()
    columns = width - 1 if width > 0 else 0  # docker wraps to the terminal width minus one
    is_root = node is root
    parts: list[str] = []
    if isinstance(node, Group):
        options = " [OPTIONS]" if _visible_flags(node.flags) else ""
        parts.append(f"Usage:  {' '.join(path)}{options} COMMAND")
    else:
        parts.append(f"Usage:  {_use_line(node, path)}")
    parts.append("\n\n" + (node.description or node.summary).strip())
    aliases = _alias_line(root, node, path) if not is_root else ""
    if aliases:
        parts.append(f"\n\nAliases:\n  {aliases}")
    if isinstance(node, Command) and node.example:
        parts.append(f"\n\nExamples:\n{node.example}")
    flags = _visible_flags(node.flags)
    if not is_root and flags:
        parts.append("\n\nOptions:\n" + format_flag_usages(flags, columns).rstrip())
    if isinstance(node, Group):
        parts.append(_commands_sections(node, is_root))
        if is_root and flags:
            parts.append("\n\nGlobal Options:\n" + format_flag_usages(flags, columns).rstrip())
        parts.append(
            f"\n\nRun '{' '.join(path)} COMMAND --help' for more information on a command."
        )
        if node.footer:
            parts.append(f"\n\n{node.footer}")
    parts.append("\n")
    return "".join(parts)


def _commands_sections(group: Group, is_root: bool) -> str:
    pad = max([11, *(len(child.name) for child in group.commands)])
    visible = [c for c in group.commands if not c.hidden]
    top = sorted((c for c in visible if c.top is not None and is_root), key=lambda c: c.top or 0)
    groups = sorted((c for c in visible if isinstance(c, Group)), key=lambda c: c.name)
    leaves = sorted(
        (c for c in visible if isinstance(c, Command) and (c.top is None or not is_root)),
        key=lambda c: c.name,
    )
    out = []
    if top:
        out.append("\n\nCommon Commands:")
        out.extend(f"\n  {child.name + ' ':<{pad + 1}}{child.summary}" for child in top)
    if groups:
        out.append("\n\nManagement Commands:")
        out.extend(f"\n  {child.name + ' ':<{pad + 1}}{child.summary}" for child in groups)
    if leaves:
        out.append("\n\nCommands:")
        out.extend(f"\n  {child.name:<{pad}} {child.summary}" for child in leaves)
    return "".join(out)


def _default_text(flag: Flag) -> str:
    """pflag's DefValue for the flag, or "" when it is the zero value (not shown)."""
    default = flag.default
    kind = flag.kind
    if default is None or default == "" or (default == 0 and kind != "bool"):
        return ""
    if kind == "bool":
        return "true" if default else ""
    if kind == "string":
        return go_quote(str(default))
    if kind in _REPEATABLE:
        return "[" + " ".join(str(v) for v in default) + "]" if default else ""  # type: ignore[attr-defined]
    if kind == "float":
        from berth.cli.gotemplate import format_go_float

        return format_go_float(float(default))  # type: ignore[arg-type]
    if kind == "bytes":
        from berth.units import bytes_size

        return bytes_size(int(default))  # type: ignore[call-overload]
    if kind == "duration":
        from berth.units import format_duration

        return format_duration(int(default))  # type: ignore[call-overload]
    return str(default)


def format_flag_usages(flags: Sequence[Flag], columns: int = 0) -> str:
    """The Options table, as pflag's FlagUsagesWrapped prints it (``columns`` 0: no wrap)."""
    lines: list[tuple[str, str]] = []
    longest = 0
    for flag in flags:
        if flag.shorthand:
            line = f"  -{flag.shorthand}, --{flag.name}"
        else:
            line = f"      --{flag.name}"
        varname, usage = _unquote_usage(flag)
        if varname:
            line += " " + varname
        longest = max(longest, len(line) + 1)
        default = _default_text(flag)
        if default:
            usage += f" (default {default})"
        if flag.deprecated:
            usage += f" (DEPRECATED: {flag.deprecated})"
        lines.append((line, usage))
    out = []
    for line, usage in lines:
        spacing = " " * (longest - len(line))
        out.append(f"{line} {spacing} {_wrap(longest + 2, columns, usage)}\n")
    return "".join(out)


def _unquote_usage(flag: Flag) -> tuple[str, str]:
    """A `backquoted` word in the help names the value; else the type placeholder."""
    usage = flag.help
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end > start:
            name = usage[start + 1 : end]
            return name, usage[:start] + name + usage[end + 1 :]
    return (flag.metavar if flag.metavar is not None else _KINDS[flag.kind]), usage


def _wrap_once(limit: int, slop: int, text: str) -> tuple[str, str]:
    if limit + slop > len(text):
        return text, ""
    head = text[:limit]
    cut = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
    if cut <= 0:
        return text, ""
    newline = head.rfind("\n")
    if 0 < newline < cut:
        return text[:newline], text[newline + 1 :]
    return text[:cut], text[cut + 1 :]


def _wrap(indent: int, columns: int, text: str) -> str:
    """pflag's wrap(): the first line is placed by the caller, later ones are indented."""
    if columns == 0:
        return text.replace("\n", "\n" + " " * indent)
    room = columns - indent
    result = ""
    if room < 24:
        indent = 16
        room = columns - indent
        result += "\n" + " " * indent
    if room < 24:
        return text.replace("\n", result)
    slop = 5
    room -= slop
    line, text = _wrap_once(room, slop, text)
    result += line.replace("\n", "\n" + " " * indent)
    while text:
        line, text = _wrap_once(room, slop, text)
        result += "\n" + " " * indent + line.replace("\n", "\n" + " " * indent)
    return result
