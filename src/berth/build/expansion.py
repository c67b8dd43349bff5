"""ARG/ENV scoping, variable expansion, and applying instructions to a stage (BuildKit's rules).

Parsing (:mod:`berth.build.instructions`) leaves variables alone; they are expanded per
stage, as it is built, because they depend on the base image's ``Env`` and on the
``--build-arg`` values. :class:`StageScope` applies a stage's instructions one by one: it
expands each, updates the variables and the image config, and returns what executing the
instruction needs (:class:`Applied`; :mod:`berth.build.history` turns it into a history
entry). The rules (BuildKit's, which the Dockerfile reference describes):

- :func:`resolve_global_args`: the platform ARGs (``BUILDPLATFORM`` ``BUILDOS`` ``BUILDARCH``
  ``BUILDVARIANT`` ``TARGETPLATFORM`` ``TARGETOS`` ``TARGETARCH`` ``TARGETVARIANT`` ...) are
  set automatically; the meta ARGs follow in order, a ``--build-arg`` overriding a default.
  These are the only variables ``FROM`` sees (:func:`expand_from`).
- Inside a stage (:class:`StageScope`) a variable is visible only once an ``ARG`` in the
  stage declares it (a bare ``ARG NAME`` takes the meta ARG's or platform ARG's value); a
  ``--build-arg`` beats the ARG's default; ``ENV`` sets it too, and whichever of ``ARG`` and
  ``ENV`` comes later wins (both live in the same environment, which is also the one ``RUN``
  commands get; only ``ENV`` reaches the image config). A variable never set expands to the
  empty string. The proxy ARGs (``HTTP_PROXY`` ...) need no declaration: they are passed to
  ``RUN`` (see :func:`proxy_env`) but not expanded and not recorded in the history.
- Expanded: ``ADD COPY ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR``, ARG defaults and
  ``RUN --mount`` options, and ADD/COPY heredoc bodies whose marker was not quoted. Not
  expanded: ``RUN CMD ENTRYPOINT SHELL HEALTHCHECK MAINTAINER`` and ``ONBUILD`` (its trigger is
  expanded when a later build runs it), nor ``COPY --from`` (an error if it tries) or
  ``--exclude`` patterns. Every word of an instruction sees the variables as they were
  before it: ``ENV a=1 b=$a`` gives ``b`` the old ``a``.
"""

from __future__ import annotations

import copy

from berth.build import parser as dfparser
from berth.build.dockerignore import go_clean as go_path_clean
from berth.build.instructions import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    heredoc_marker,
    parse_instruction,
    parse_run_mount,
)
from berth.build.shellwords import ShellLex
from berth.errors import BuildError
from berth.oci.config import ContainerConfig
from berth.oci.config import Healthcheck as ConfigHealthcheck
from berth.values import FrozenValue, init_fields, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeVar

    from berth.build.instructions import CommandLine, Dockerfile, From, RunMount, Stage
    from berth.oci.manifest import Platform

    _I = TypeVar("_I", bound=Instruction)

__all__ = [
    "DEFAULT_UNIX_PATH",
    "PROXY_ARGS",
    "Applied",
    "InlineFile",
    "StageScope",
    "expand_from",
    "normalize_path",
    "path_in_workdir",
    "platform_args",
    "proxy_env",
    "resolve_global_args",
    "triggered_instructions",
]

DEFAULT_UNIX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)  # fmt: skip
_NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})


# -- variables in scope ------------------------------------------------------------------------


def platform_args(
    target: Platform,
    build: Platform | None = None,
    target_stage: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The automatic platform ARGs (``BUILDPLATFORM`` ... ``TARGETSTAGE``), build-args winning."""
    build = build or target
    values = {
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDOSVERSION": build.os_version or "",
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETOSVERSION": target.os_version or "",
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
        "TARGETSTAGE": target_stage or "default",
    }
    for key in values:
        if overrides and key in overrides:
            values[key] = overrides[key]
    return values


def resolve_global_args(
    dockerfile: Dockerfile,
    build_args: Mapping[str, str],
    *,
    target_platform: Platform,
    build_platform: Platform | None = None,
    target: str | None = None,
) -> dict[str, str]:
    """The variables ``FROM`` lines see: platform ARGs, then the meta ARGs in order."""
    stage_name = dockerfile.target(target).name if target else dockerfile.stages[-1].name
    scope = platform_args(target_platform, build_platform, stage_name, build_args)
    lex = ShellLex(dockerfile.escape)
    for instruction in dockerfile.meta_args:
        for definition in instruction.args:
            if definition.key in build_args:
                scope[definition.key] = build_args[definition.key]
            elif definition.value is not None:
                scope[definition.key] = _expanding(
                    instruction, dockerfile.filename, lambda w: lex.process_word(w, scope)
                )(definition.value)
    return scope


def expand_from(
    stage: Stage, global_args: Mapping[str, str], escape: str = "\\", filename: str = "Dockerfile"
) -> tuple[str, str | None]:
    """A stage's base image and ``--platform``, expanded with the global ARGs."""
    lex = ShellLex(escape)
    expand = _expanding(stage.from_, filename, lambda w: lex.process_word(w, global_args))
    image = expand(stage.from_.image)
    where = f"{filename}:{stage.from_.start_line}"
    if not image:
        raise BuildError(
            f"{where}: base name ({stage.from_.image}) should not be blank",
            hint="pass the ARG it uses with --build-arg or give the ARG a default before FROM",
        )
    platform = None
    if stage.from_.platform:
        platform = expand(stage.from_.platform)
        if not platform:
            raise BuildError(
                f"{where}: empty platform value from expression {stage.from_.platform}",
                hint="set the ARG the --platform flag uses",
            )
    return image, platform


def proxy_env(build_args: Mapping[str, str]) -> dict[str, str]:
    """Proxy variables from ``--build-arg`` that every RUN gets without an ARG declaration."""
    return {key: value for key, value in build_args.items() if key in PROXY_ARGS}


def _expanding(
    instruction: Instruction, filename: str, expand: Callable[[str], str]
) -> Callable[[str], str]:
    """Wrap an expander so its errors name the file and line of ``instruction``."""

    def run(word: str) -> str:
        try:
            return expand(word)
        except BuildError as exc:
            raise type(exc)(
                f"{filename}:{instruction.start_line}: {exc.message}", hint=exc.hint
            ) from None

    return run


class InlineFile(FrozenValue):
    """A file BuildKit mounts for a RUN heredoc starting with ``#!`` (run as a script)."""

    __slots__ = ("data", "directory", "mode", "name")
    directory: str  # "/dev/pipes"
    name: str
    data: str
    mode: int

    def __init__(self, directory: str, name: str, data: str, mode: int = 0o755) -> None:
        init_fields(self, directory=directory, name=name, data=data, mode=mode)


class Applied(FrozenValue):
    """One instruction applied to a stage: expanded, plus what executing it needs.

    ``argv``/``env``/``build_args`` are set for RUN; ``dest`` for ADD/COPY (absolute, inside
    the image, trailing ``/`` kept); ``workdir`` and ``user`` are those in effect.
    """

    __slots__ = (
        "argv",
        "build_args",
        "dest",
        "env",
        "inline_files",
        "instruction",
        "shell",
        "user",
        "workdir",
    )
    instruction: Instruction
    workdir: str
    user: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    build_args: tuple[ArgDefinition, ...]
    inline_files: tuple[InlineFile, ...]
    dest: str
    shell: tuple[str, ...]

    def __init__(
        self,
        instruction: Instruction,
        workdir: str,
        user: str,
        argv: tuple[str, ...] = (),
        env: tuple[tuple[str, str], ...] = (),
        build_args: tuple[ArgDefinition, ...] = (),
        inline_files: tuple[InlineFile, ...] = (),
        dest: str = "",
        shell: tuple[str, ...] = (),
    ) -> None:
        init_fields(
            self,
            instruction=instruction,
            workdir=workdir,
            user=user,
            argv=argv,
            env=env,
            build_args=build_args,
            inline_files=inline_files,
            dest=dest,
            shell=shell,
        )


class StageScope:
    """The variables and image config of one stage while its instructions are applied.

    ``env`` is BuildKit's stage environment: the base image's ``Env`` (``PATH`` added if
    missing), then ``ENV`` and ``ARG`` values in order; it is what ``$VAR`` sees and what
    RUN gets. ``config`` is the image config being built (only ``ENV`` reaches its ``Env``).
    """

    def __init__(
        self,
        *,
        global_args: Mapping[str, str],
        build_args: Mapping[str, str] | None = None,
        escape: str = "\\",
        filename: str = "Dockerfile",
        os: str = "linux",
        base_config: ContainerConfig | None = None,
    ) -> None:
        self.global_args = dict(global_args)
        self.build_args = dict(build_args or {})
        self.escape = escape
        self.filename = filename
        self.os = os
        self.lex = ShellLex(escape)
        self.env: dict[str, str] = {}
        self.declared_args: list[ArgDefinition] = []
        self.config = copy.deepcopy(base_config) if base_config is not None else ContainerConfig()
        self.onbuild_triggers: list[str] = list(self.config.on_build)
        self.config.on_build = []
        self.author = ""
        self.cmd_set = False
        if not any(e.partition("=")[0] == "PATH" for e in self.config.env) and os != "windows":
            self.config.env.append("PATH=" + DEFAULT_UNIX_PATH)
        for item in self.config.env:
            key, _, value = item.partition("=")
            self.env[key] = value
        if self.config.working_dir:
            self.config.working_dir = normalize_path("/", self.config.working_dir)

    @classmethod
    def for_stage(
        cls,
        dockerfile: Dockerfile,
        global_args: Mapping[str, str],
        build_args: Mapping[str, str] | None = None,
        base_config: ContainerConfig | None = None,
        os: str = "linux",
    ) -> StageScope:
        """The scope of a stage built on an image whose config is ``base_config``."""
        return cls(
            global_args=global_args,
            build_args=build_args,
            escape=dockerfile.escape,
            filename=dockerfile.filename,
            os=os,
            base_config=base_config,
        )

    def inherit(self) -> StageScope:
        """A copy for a stage built ``FROM`` this one (ARGs declared here carry over)."""
        child = copy.copy(self)
        child.env = dict(self.env)
        child.declared_args = list(self.declared_args)
        child.config = copy.deepcopy(self.config)
        child.config.on_build = []
        child.onbuild_triggers = []
        child.cmd_set = False
        return child

    # -- expansion -----------------------------------------------------------------------
    def expander(self, instruction: Instruction) -> Callable[[str], str]:
        env = dict(self.env)
        return _expanding(instruction, self.filename, lambda w: self.lex.process_word(w, env))

    def expand(self, instruction: _I) -> _I:
        """``instruction`` with its variables expanded (the scope is not changed)."""
        ex = self.expander(instruction)
        result: Instruction = instruction
        if isinstance(instruction, Env):
            result = replace(instruction, pairs=_expand_pairs(instruction.pairs, ex))
        elif isinstance(instruction, Label):
            result = replace(instruction, labels=_expand_pairs(instruction.labels, ex))
        elif isinstance(instruction, Add | Copy):
            result = self._expand_copy(instruction, ex)
        elif isinstance(instruction, Workdir):
            result = replace(instruction, path=ex(instruction.path))
        elif isinstance(instruction, User):
            result = replace(instruction, user=ex(instruction.user))
        elif isinstance(instruction, Volume):
            result = replace(instruction, paths=tuple(ex(p) for p in instruction.paths))
        elif isinstance(instruction, Stopsignal):
            result = replace(instruction, signal=ex(instruction.signal))
        elif isinstance(instruction, Expose):
            result = replace(instruction, ports=self._expand_ports(instruction))
        elif isinstance(instruction, Run):
            where = f"{self.filename}:{instruction.start_line}"
            mounts = tuple(_located(where, parse_run_mount, s, ex) for s in instruction.mount_specs)
            result = replace(instruction, mounts=mounts)
        assert isinstance(result, type(instruction))
        return result

    def _expand_copy(self, instruction: Add | Copy, ex: Callable[[str], str]) -> Add | Copy:
        raw = ShellLex("\\", skip_process_quotes=True)
        env = dict(self.env)
        raw_ex = _expanding(instruction, self.filename, lambda w: raw.process_word(w, env))
        contents = tuple(
            replace(c, data=raw_ex(c.data)) if c.expand else c for c in instruction.contents
        )
        common: dict[str, Any] = {
            "chown": ex(instruction.chown),
            "chmod": ex(instruction.chmod),
            "sources": tuple(ex(s) for s in instruction.sources),
            "dest": ex(instruction.dest),
            "contents": contents,
        }
        if isinstance(instruction, Add):
            return replace(instruction, checksum=ex(instruction.checksum), **common)
        return replace(instruction, **common)

    def _expand_ports(self, instruction: Expose) -> tuple[str, ...]:
        env = dict(self.env)
        words = _expanding(
            instruction, self.filename, lambda w: " ".join(self.lex.process_words(w, env))
        )
        ports: list[str] = []
        for raw in instruction.ports:
            for word in words(raw).split(" "):
                if word:
                    ports += _parse_port(word, f"{self.filename}:{instruction.start_line}")
        return tuple(ports)

    # -- applying ------------------------------------------------------------------------
    def apply(self, instruction: Instruction) -> Applied:
        """Expand ``instruction`` and apply it to the stage's variables and image config."""
        if isinstance(instruction, Arg):
            return self._apply_arg(instruction)
        expanded = self.expand(instruction)
        match expanded:
            case Run():
                return self._apply_run(expanded)
            case Env():
                return self._apply_env(expanded)
            case Add() | Copy():
                return self._apply_copy(expanded)
            case Workdir():
                return self._apply_workdir(expanded)
            case Label():
                return self._apply_label(expanded)
            case Cmd():
                return self._apply_cmd(expanded)
            case Entrypoint():
                return self._apply_entrypoint(expanded)
            case Healthcheck():
                return self._apply_healthcheck(expanded)
            case Expose():
                return self._apply_expose(expanded)
            case User():
                self.config.user = expanded.user
            case Volume():
                return self._apply_volume(expanded)
            case Stopsignal():
                _check_signal(expanded.signal, f"{self.filename}:{expanded.start_line}")
                self.config.stop_signal = expanded.signal
            case Shell():
                self.config.shell = list(expanded.shell)
            case Onbuild():
                self.config.on_build.append(expanded.expression)
            case Maintainer():
                self.author = expanded.maintainer
        return self._applied(expanded)

    def _applied(self, instruction: Instruction) -> Applied:
        return Applied(instruction, self.config.working_dir or "/", self.config.user)

    def _apply_arg(self, instruction: Arg) -> Applied:
        resolved = []
        for definition in instruction.args:
            key, value = definition.key, definition.value
            if key in self.build_args:
                value = self.build_args[key]
            elif value is not None:
                value = self.expander(instruction)(value)
            elif key in self.global_args:
                value = self.global_args[key]
            if value is not None and key not in _NON_ENV_ARGS:
                self.env[key] = value
            resolved.append(ArgDefinition(key, value))
            self.declared_args.append(ArgDefinition(key, value))
        return self._applied(replace(instruction, args=tuple(resolved)))

    def shell(self) -> list[str]:
        if self.config.shell:
            return list(self.config.shell)
        return ["cmd", "/S", "/C"] if self.os == "windows" else ["/bin/sh", "-c"]

    def with_shell(self, command: CommandLine) -> list[str] | None:
        if command.args is None:
            return [*self.shell(), ""] if command.shell_form else None
        if command.shell_form:
            return [*self.shell(), " ".join(command.args)]
        return list(command.args)

    def _apply_run(self, run: Run) -> Applied:
        args = list(run.command.args or ())
        files = run.command.files
        inline: tuple[InlineFile, ...] = ()
        if files:
            if len(args) != 1 or not run.command.shell_form:
                raise BuildError(
                    f"{self.filename}:{run.start_line}: parsing produced an invalid run command"
                )
            if heredoc_marker(args[0]) is not None:
                data = files[0].content
                if files[0].chomp:
                    data = dfparser.chomp_heredoc(data)
                if self.os != "windows" and data.startswith("#!"):
                    inline = (InlineFile("/dev/pipes", files[0].name, data),)
                    args = [normalize_path("/dev/pipes", files[0].name)]
                else:
                    args = [data]
            else:
                args = [args[0] + "".join("\n" + f.content + f.name for f in files)]
        if run.command.shell_form:
            args = [*self.shell(), " ".join(args)]
        if run.devices:
            raise BuildError(
                f"{self.filename}:{run.start_line}: RUN --device is only supported in the "
                "docker/dockerfile:1-labs syntax, which berth does not implement",
                hint="remove --device",
            )
        return replace(
            self._applied(run),
            argv=tuple(args),
            env=tuple(self.env.items()),
            build_args=tuple(self.declared_args),
            inline_files=inline,
            shell=tuple(self.shell()),
        )

    def _apply_env(self, env: Env) -> Applied:
        for pair in env.pairs:
            self.env[pair.key] = pair.value
            _set_env(self.config.env, pair.key, pair.value)
        return self._applied(env)

    def _apply_copy(self, instruction: Add | Copy) -> Applied:
        dest = path_in_workdir(self.config.working_dir or "/", instruction.dest)
        return replace(self._applied(instruction), dest=dest)

    def _apply_workdir(self, workdir: Workdir) -> Applied:
        path = normalize_path(self.config.working_dir or "/", workdir.path)
        self.config.working_dir = path
        return self._applied(replace(workdir, path=path))

    def _apply_label(self, label: Label) -> Applied:
        for pair in label.labels:
            self.config.labels[pair.key] = pair.value
        return self._applied(label)

    def _apply_cmd(self, cmd: Cmd) -> Applied:
        self.config.cmd = self.with_shell(cmd.command)
        self.config.args_escaped = True
        self.cmd_set = True
        return replace(self._applied(cmd), shell=tuple(self.shell()))

    def _apply_entrypoint(self, entrypoint: Entrypoint) -> Applied:
        self.config.entrypoint = self.with_shell(entrypoint.command)
        if not self.cmd_set:
            self.config.cmd = None
        return replace(self._applied(entrypoint), shell=tuple(self.shell()))

    def _apply_healthcheck(self, check: Healthcheck) -> Applied:
        self.config.healthcheck = ConfigHealthcheck(
            test=list(check.test),
            interval_ns=check.interval_ns,
            timeout_ns=check.timeout_ns,
            start_period_ns=check.start_period_ns,
            start_interval_ns=check.start_interval_ns,
            retries=check.retries,
        )
        return self._applied(check)

    def _apply_expose(self, expose: Expose) -> Applied:
        for port in expose.ports:
            if port not in self.config.exposed_ports:
                self.config.exposed_ports.append(port)
        return self._applied(expose)

    def _apply_volume(self, volume: Volume) -> Applied:
        for path in volume.paths:
            if not path:
                raise BuildError(
                    f"{self.filename}:{volume.start_line}: VOLUME specified can not be an empty "
                    "string"
                )
            if path not in self.config.volumes:
                self.config.volumes.append(path)
        return self._applied(volume)


def triggered_instructions(expressions: Sequence[str], at: From) -> list[Instruction]:
    """Parse ONBUILD trigger texts (from a base image or stage) into instructions.

    They run first in the stage built from that base, located at its ``FROM`` line.
    """
    out = []
    for expression in expressions:
        ast = dfparser.parse(expression, "ONBUILD trigger")
        if len(ast.nodes) != 1:
            raise BuildError(
                f"onbuild trigger should be a single expression: {expression!r}",
                hint="the base image's ONBUILD triggers are malformed",
            )
        node = ast.nodes[0]
        node.start_line, node.end_line = at.start_line, at.end_line
        out.append(parse_instruction(node, "ONBUILD trigger"))
    return out


def _expand_pairs(pairs: tuple[KeyValue, ...], ex: Callable[[str], str]) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(ex(p.key), ex(p.value), p.legacy) for p in pairs)


def _located(
    where: str,
    parse: Callable[[str, Callable[[str], str]], RunMount],
    spec: str,
    ex: Callable[[str], str],
) -> RunMount:
    try:
        return parse(spec, ex)
    except BuildError as exc:
        if exc.message.startswith(where):
            raise
        raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None


def _set_env(env: list[str], key: str, value: str) -> None:
    """Replace ``key`` in place or append, as BuildKit's ``addEnv`` does."""
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            return
    env.append(f"{key}={value}")


def normalize_path(parent: str, path: str, keep_slash: bool = False) -> str:
    """BuildKit's ``NormalizePath`` for Linux: ``path`` made absolute against ``parent``."""
    original = path
    parent = parent or "/"
    if not parent.startswith("/"):
        parent = go_path_clean("/" + parent)
    if not path:
        path = parent
    if not path.startswith("/"):
        path = go_path_clean(parent + "/" + path)
    else:
        path = go_path_clean(path)
    if keep_slash:
        if original.endswith("/") and not path.endswith("/"):
            path += "/"
        elif original.endswith("/."):
            if path != "/":
                path += "/"
            path += "."
    return path


def path_in_workdir(workdir: str, path: str) -> str:
    """An ADD/COPY destination made absolute: relative ones are under the working directory."""
    if path.startswith("/"):
        return normalize_path("/", path, keep_slash=True)
    if path in (".", ""):
        path = "./"
    return normalize_path(workdir, path, keep_slash=True)


def _parse_port(raw: str, where: str) -> list[str]:
    """``[ip:][host:]port[-end][/proto]`` to ``port/proto`` entries (BuildKit's EXPOSE)."""
    parts = raw.split(":")
    container = parts[-1]
    port, _, proto = container.partition("/")
    bad = f"{where}: invalid port: {raw!r}"
    if not port:
        raise BuildError(f"{bad}: no port specified", hint="write EXPOSE 80 or EXPOSE 80/udp")
    if proto.lower() not in ("", "tcp", "udp", "sctp"):
        raise BuildError(f"{bad}: invalid proto: {proto}", hint="use tcp, udp or sctp")
    start, end = _port_range(port, f"{where}: invalid containerPort: {port}")
    if len(parts) > 1 and parts[-2]:
        host_start, host_end = _port_range(parts[-2], f"{where}: invalid hostPort: {parts[-2]}")
        if end - start != host_end - host_start and end != start:
            raise BuildError(
                f"{where}: invalid ranges specified for container and host Ports: "
                f"{port} and {parts[-2]}"
            )
    protocol = (proto or "tcp").lower()
    return [f"{p}/{protocol}" for p in range(start, end + 1)]


def _port_range(text: str, error: str) -> tuple[int, int]:
    start_text, dash, end_text = text.partition("-")
    start = _port_number(start_text, error)
    if not dash or start_text == end_text:
        return start, start
    end = _port_number(end_text, error)
    if end < start:
        raise BuildError(error)
    return start, end


def _port_number(text: str, error: str) -> int:
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or not digits.isascii():
        raise BuildError(error, hint="ports are numbers from 0 to 65535")
    value = int(text)
    if not 0 <= value <= 65535:
        raise BuildError(error, hint="ports are numbers from 0 to 65535")
    return value


_SIGNALS = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1,
    "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27,
    "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15,
    "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12,
    "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25, "RTMIN": 34, "RTMAX": 64,
    **{f"RTMIN+{i}": 34 + i for i in range(1, 16)},
    **{f"RTMAX-{i}": 64 - i for i in range(1, 15)},
}  # fmt: skip


def _check_signal(signal: str, where: str) -> None:
    """moby's ``signal.ParseSignal``: a number other than 0, or a name with or without SIG."""
    text = signal[1:] if signal[:1] in "+-" else signal
    if text.isdigit() and text.isascii():
        if int(signal) != 0:
            return
    elif signal.upper().removeprefix("SIG") in _SIGNALS:
        return
    raise BuildError(
        f"{where}: invalid signal: {signal}", hint="use a signal name such as SIGTERM or a number"
    )
