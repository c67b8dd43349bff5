"""Typed Dockerfile instructions, stages, and ARG/ENV expansion with BuildKit's scoping.

:func:`parse_dockerfile` turns Dockerfile text into a :class:`Dockerfile`: the ``ARG``s
before the first ``FROM`` (meta ARGs) and the stages, each a ``FROM`` and its instructions,
every one a frozen value (:mod:`berth.values`) that knows its keyword as written, its line
range and its original text. Flags are checked here as BuildKit checks them (unknown flags,
duplicates, booleans, durations), so a Dockerfile that parses is one BuildKit accepts.

Expansion and applying instructions to a stage live in :mod:`berth.build.expansion`.
"""

from __future__ import annotations

from berth.build import parser as dfparser
from berth.build.lazy_re import compiled
from berth.build.parser import parse_heredoc_word
from berth.build.shellwords import ShellLex
from berth.errors import BuildError, DockerfileSyntaxError
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import TypedDict, Unpack

    from berth.build.parser import DockerfileAST, Heredoc, Node

    class CommonFields(TypedDict):
        """The fields every instruction has (see :class:`Instruction`)."""

        keyword: str
        start_line: int
        end_line: int
        original: str


__all__ = [
    "Add",
    "Arg",
    "ArgDefinition",
    "Cmd",
    "CommandLine",
    "Copy",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "KeyValue",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "RunMount",
    "Shell",
    "SourceContent",
    "Stage",
    "Stopsignal",
    "User",
    "Volume",
    "Workdir",
    "heredoc_marker",
    "parse_dockerfile",
    "parse_duration",
    "parse_instruction",
    "parse_run_mount",
]

INSTRUCTION_NAMES = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip
_COMMON = ("end_line", "keyword", "original", "start_line")
_STAGE_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyz")
_STAGE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_ONBUILD_PREFIX = r"(?i)^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*"  # compiled on first use

# -- the instructions ------------------------------------------------------------------------


class Instruction(FrozenValue):
    """What every instruction has: the keyword as written, its lines and its source text.

    Each kind of instruction is a subclass listing these four fields and its own in
    ``__slots__`` (:class:`berth.values.FrozenValue` compares, hashes and prints them).
    """

    __slots__ = ()
    keyword: str
    start_line: int
    end_line: int
    original: str  # the logical line, continuations joined, without heredoc bodies

    @property
    def name(self) -> str:
        """The instruction name in upper case (``RUN``)."""
        return self.keyword.upper()


class KeyValue(FrozenValue):
    __slots__ = ("key", "legacy", "value")
    key: str
    value: str
    legacy: bool  # written ``KEY value`` (no ``=``), which BuildKit's linter flags

    def __init__(self, key: str, value: str, legacy: bool = False) -> None:
        init_fields(self, key=key, value=value, legacy=legacy)


class ArgDefinition(FrozenValue):
    __slots__ = ("key", "value")
    key: str
    value: str | None  # None: declared without a default

    def __init__(self, key: str, value: str | None = None) -> None:
        init_fields(self, key=key, value=value)


class SourceContent(FrozenValue):
    """A heredoc used as an ADD/COPY source: a file named ``name`` holding ``data``."""

    __slots__ = ("data", "expand", "name")
    name: str
    data: str  # already chomped for ``<<-``
    expand: bool

    def __init__(self, name: str, data: str, expand: bool) -> None:
        init_fields(self, name=name, data=data, expand=expand)


class CommandLine(FrozenValue):
    """RUN/CMD/ENTRYPOINT arguments: exec form (JSON) or shell form (one string)."""

    __slots__ = ("args", "files", "shell_form")
    args: tuple[str, ...] | None  # None only for ``ENTRYPOINT []``
    shell_form: bool  # True: run through the SHELL (``/bin/sh -c`` by default)
    files: tuple[Heredoc, ...]

    def __init__(
        self,
        args: tuple[str, ...] | None,
        shell_form: bool,
        files: tuple[Heredoc, ...] = (),
    ) -> None:
        init_fields(self, args=args, shell_form=shell_form, files=files)


class RunMount(FrozenValue):
    """One ``RUN --mount=...``. Read-only defaults to True except for cache and tmpfs."""

    __slots__ = (
        "env",
        "from_",
        "gid",
        "id",
        "mode",
        "readonly",
        "required",
        "sharing",
        "size_limit",
        "source",
        "target",
        "type",
        "uid",
    )
    type: str
    from_: str
    source: str
    target: str
    readonly: bool
    size_limit: int  # tmpfs only, bytes
    id: str  # cache id, or secret/ssh id
    sharing: str  # cache only: shared (default), private, locked
    required: bool  # secret and ssh only
    env: str | None  # secret only: expose as this environment variable
    mode: int | None
    uid: int | None
    gid: int | None

    def __init__(
        self,
        type: str = "bind",
        from_: str = "",
        source: str = "",
        target: str = "",
        readonly: bool = True,
        size_limit: int = 0,
        id: str = "",
        sharing: str = "",
        required: bool = False,
        env: str | None = None,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        init_fields(
            self,
            type=type,
            from_=from_,
            source=source,
            target=target,
            readonly=readonly,
            size_limit=size_limit,
            id=id,
            sharing=sharing,
            required=required,
            env=env,
            mode=mode,
            uid=uid,
            gid=gid,
        )


class From(Instruction):
    __slots__ = (*_COMMON, "image", "platform", "stage_name")
    image: str  # the base as written (an image reference, ``scratch`` or an earlier stage)
    stage_name: str | None  # lower-cased, as BuildKit compares them
    platform: str | None

    def __init__(
        self,
        *,
        image: str,
        stage_name: str | None = None,
        platform: str | None = None,
        **common: Unpack[CommonFields],
    ) -> None:
        init_fields(self, image=image, stage_name=stage_name, platform=platform, **common)


class Run(Instruction):
    __slots__ = (
        *_COMMON,
        "command",
        "devices",
        "flags_used",
        "mount_specs",
        "mounts",
        "network",
        "security",
    )
    command: CommandLine
    mount_specs: tuple[str, ...]
    mounts: tuple[RunMount, ...]  # typed and expanded by StageScope.apply
    network: str
    security: str
    devices: tuple[str, ...]
    flags_used: tuple[str, ...]

    def __init__(
        self,
        *,
        command: CommandLine,
        mount_specs: tuple[str, ...] = (),
        mounts: tuple[RunMount, ...] = (),
        network: str = "default",
        security: str = "sandbox",
        devices: tuple[str, ...] = (),
        flags_used: tuple[str, ...] = (),
        **common: Unpack[CommonFields],
    ) -> None:
        init_fields(
            self,
            command=command,
            mount_specs=mount_specs,
            mounts=mounts,
            network=network,
            security=security,
            devices=devices,
            flags_used=flags_used,
            **common,
        )


class Cmd(Instruction):
    __slots__ = (*_COMMON, "command")
    command: CommandLine

    def __init__(self, *, command: CommandLine, **common: Unpack[CommonFields]) -> None:
        init_fields(self, command=command, **common)


class Entrypoint(Instruction):
    __slots__ = (*_COMMON, "command")
    command: CommandLine

    def __init__(self, *, command: CommandLine, **common: Unpack[CommonFields]) -> None:
        init_fields(self, command=command, **common)


class Label(Instruction):
    __slots__ = (*_COMMON, "labels")
    labels: tuple[KeyValue, ...]

    def __init__(self, *, labels: tuple[KeyValue, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, labels=labels, **common)


class Env(Instruction):
    __slots__ = (*_COMMON, "pairs")
    pairs: tuple[KeyValue, ...]

    def __init__(self, *, pairs: tuple[KeyValue, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, pairs=pairs, **common)


class Expose(Instruction):
    __slots__ = (*_COMMON, "ports")
    ports: tuple[str, ...]  # as written, sorted; after expansion ``80/tcp``-style

    def __init__(self, *, ports: tuple[str, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, ports=ports, **common)


class Add(Instruction):
    __slots__ = (
        *_COMMON,
        "checksum",
        "chmod",
        "chown",
        "contents",
        "dest",
        "excludes",
        "keep_git_dir",
        "link",
        "sources",
        "unpack",
    )
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    chown: str
    chmod: str
    checksum: str
    keep_git_dir: bool | None
    link: bool
    unpack: bool | None
    excludes: tuple[str, ...]

    def __init__(
        self,
        *,
        sources: tuple[str, ...],
        contents: tuple[SourceContent, ...],
        dest: str,
        chown: str = "",
        chmod: str = "",
        checksum: str = "",
        keep_git_dir: bool | None = None,
        link: bool = False,
        unpack: bool | None = None,
        excludes: tuple[str, ...] = (),
        **common: Unpack[CommonFields],
    ) -> None:
        init_fields(
            self,
            sources=sources,
            contents=contents,
            dest=dest,
            chown=chown,
            chmod=chmod,
            checksum=checksum,
            keep_git_dir=keep_git_dir,
            link=link,
            unpack=unpack,
            excludes=excludes,
            **common,
        )


class Copy(Instruction):
    __slots__ = (
        *_COMMON,
        "chmod",
        "chown",
        "contents",
        "dest",
        "excludes",
        "from_",
        "link",
        "parents",
        "sources",
    )
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    from_: str
    chown: str
    chmod: str
    link: bool
    parents: bool
    excludes: tuple[str, ...]

    def __init__(
        self,
        *,
        sources: tuple[str, ...],
        contents: tuple[SourceContent, ...],
        dest: str,
        from_: str = "",
        chown: str = "",
        chmod: str = "",
        link: bool = False,
        parents: bool = False,
        excludes: tuple[str, ...] = (),
        **common: Unpack[CommonFields],
    ) -> None:
        init_fields(
            self,
            sources=sources,
            contents=contents,
            dest=dest,
            from_=from_,
            chown=chown,
            chmod=chmod,
            link=link,
            parents=parents,
            excludes=excludes,
            **common,
        )


class Volume(Instruction):
    __slots__ = (*_COMMON, "paths")
    paths: tuple[str, ...]

    def __init__(self, *, paths: tuple[str, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, paths=paths, **common)


class User(Instruction):
    __slots__ = (*_COMMON, "user")
    user: str

    def __init__(self, *, user: str, **common: Unpack[CommonFields]) -> None:
        init_fields(self, user=user, **common)


class Workdir(Instruction):
    __slots__ = (*_COMMON, "path")
    path: str  # after StageScope.apply: the absolute, cleaned working directory

    def __init__(self, *, path: str, **common: Unpack[CommonFields]) -> None:
        init_fields(self, path=path, **common)


class Arg(Instruction):
    __slots__ = (*_COMMON, "args")
    args: tuple[ArgDefinition, ...]

    def __init__(self, *, args: tuple[ArgDefinition, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, args=args, **common)


class Onbuild(Instruction):
    __slots__ = (*_COMMON, "expression", "inner")
    expression: str  # the trigger's text (heredoc bodies appended), stored in the image config
    inner: Instruction | None  # the trigger parsed, or None where BuildKit would only fail later

    def __init__(
        self, *, expression: str, inner: Instruction | None, **common: Unpack[CommonFields]
    ) -> None:
        init_fields(self, expression=expression, inner=inner, **common)


class Stopsignal(Instruction):
    __slots__ = (*_COMMON, "signal")
    signal: str

    def __init__(self, *, signal: str, **common: Unpack[CommonFields]) -> None:
        init_fields(self, signal=signal, **common)


class Healthcheck(Instruction):
    __slots__ = (
        *_COMMON,
        "interval_ns",
        "retries",
        "start_interval_ns",
        "start_period_ns",
        "test",
        "timeout_ns",
    )
    test: tuple[str, ...]  # ("NONE",) or ("CMD", ...) or ("CMD-SHELL", command)
    interval_ns: int
    timeout_ns: int
    start_period_ns: int
    start_interval_ns: int
    retries: int

    def __init__(
        self,
        *,
        test: tuple[str, ...],
        interval_ns: int = 0,
        timeout_ns: int = 0,
        start_period_ns: int = 0,
        start_interval_ns: int = 0,
        retries: int = 0,
        **common: Unpack[CommonFields],
    ) -> None:
        init_fields(
            self,
            test=test,
            interval_ns=interval_ns,
            timeout_ns=timeout_ns,
            start_period_ns=start_period_ns,
            start_interval_ns=start_interval_ns,
            retries=retries,
            **common,
        )


class Shell(Instruction):
    __slots__ = (*_COMMON, "shell")
    shell: tuple[str, ...]

    def __init__(self, *, shell: tuple[str, ...], **common: Unpack[CommonFields]) -> None:
        init_fields(self, shell=shell, **common)


class Maintainer(Instruction):
    __slots__ = (*_COMMON, "maintainer")
    maintainer: str

    def __init__(self, *, maintainer: str, **common: Unpack[CommonFields]) -> None:
        init_fields(self, maintainer=maintainer, **common)


class Stage(Value):
    """A ``FROM`` and the instructions up to the next one."""

    __slots__ = ("from_", "index", "instructions")

    def __init__(
        self,
        index: int,
        from_: From,
        instructions: list[Instruction] | None = None,
    ) -> None:
        self.index = index
        self.from_ = from_
        self.instructions: list[Instruction] = [] if instructions is None else instructions

    @property
    def name(self) -> str | None:
        return self.from_.stage_name

    @property
    def base(self) -> str:
        return self.from_.image

    def onbuild_expressions(self) -> list[str]:
        """The ONBUILD triggers a stage built ``FROM`` this one runs first."""
        return [i.expression for i in self.instructions if isinstance(i, Onbuild)]


class Dockerfile(Value):
    __slots__ = ("ast", "directives", "escape", "filename", "meta_args", "stages")

    def __init__(
        self,
        stages: list[Stage],
        meta_args: list[Arg],
        escape: str,
        directives: dict[str, str],
        filename: str,
        ast: DockerfileAST,
    ) -> None:
        self.stages = stages
        self.meta_args = meta_args
        self.escape = escape
        self.directives = directives
        self.filename = filename
        self.ast = ast

    @property
    def syntax(self) -> str | None:
        return self.ast.syntax

    def find_stage(self, ref: str) -> Stage | None:
        """The stage ``COPY --from``/``FROM`` names: a stage name (any case) or index."""
        if ref.isdigit() or (ref[:1] in "+-" and ref[1:].isdigit()):
            index = int(ref)
            if 0 <= index < len(self.stages):
                return self.stages[index]
            raise BuildError(
                f"invalid stage index {index}",
                hint=f"this Dockerfile has stages 0 to {len(self.stages) - 1}",
            )
        wanted = ref.lower()
        for stage in reversed(self.stages):
            if stage.name == wanted:
                return stage
        return None

    def target(self, name: str | None = None) -> Stage:
        """The stage to build: ``--target`` or the last one."""
        if not name:
            return self.stages[-1]
        for stage in reversed(self.stages):
            if stage.name == name.lower():
                return stage
        names = [s.name for s in self.stages if s.name]
        raise BuildError(
            f"target stage {name!r} could not be found" + _suggestion(name, names, False),
            hint="stages: " + (", ".join(names) or "none is named (use FROM ... AS name)"),
        )


# -- parsing ---------------------------------------------------------------------------------


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and type a whole Dockerfile; errors name the file and line."""
    ast = dfparser.parse(text, filename)
    stages: list[Stage] = []
    meta: list[Arg] = []
    for node in ast.nodes:
        instruction = parse_instruction(node, filename, ast.escape)
        if isinstance(instruction, From):
            stages.append(Stage(len(stages), instruction))
        elif not stages and isinstance(instruction, Arg):
            meta.append(instruction)
        elif not stages:
            raise DockerfileSyntaxError(
                f"{filename}:{node.start_line}: no build stage in current context",
                hint=f"{instruction.name} must come after a FROM; only ARG may precede it",
            )
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileSyntaxError(
            f"{filename}: dockerfile contains no stages to build",
            hint="add a FROM instruction",
        )
    return Dockerfile(stages, meta, ast.escape, dict(ast.directives), filename, ast)


def parse_instruction(node: Node, filename: str = "Dockerfile", escape: str = "\\") -> Instruction:
    """Type one parsed node; raises DockerfileSyntaxError with the file and line."""
    try:
        parse = _PARSERS.get(node.instruction)
        if parse is None:
            raise DockerfileSyntaxError(
                f"unknown instruction: {node.keyword}"
                + _suggestion(node.keyword, INSTRUCTION_NAMES, False)
            )
        return parse(_Request(node, escape))
    except BuildError as exc:
        if exc.message.startswith(f"{filename}:"):
            raise
        raise DockerfileSyntaxError(
            f"{filename}:{node.start_line}: {exc.message}", hint=exc.hint
        ) from None


class _Request:
    """One node's pieces, and its flags as BuildKit's BFlags checks them."""

    def __init__(self, node: Node, escape: str) -> None:
        self.node = node
        self.escape = escape
        self.args = _node_args(node)
        self.flags = list(node.flags)
        self.defined: dict[str, str] = {}
        self.values: dict[str, str | list[str]] = {}

    def base(self) -> CommonFields:
        n = self.node
        return {
            "keyword": n.keyword,
            "start_line": n.start_line,
            "end_line": n.end_line,
            "original": dfparser.trim_space(n.original),
        }

    def define(self, **kinds: str) -> None:
        """Declare flags: ``bool``, ``str`` or ``strs`` (repeatable)."""
        for name, kind in kinds.items():
            self.defined[name.rstrip("_").replace("_", "-")] = kind

    def parse_flags(self) -> None:
        for flag in self.flags:
            if flag == "--":
                return
            if not flag.startswith("--"):
                raise DockerfileSyntaxError(f"arg should start with -- : {flag}")
            flag_name, has_value, value = flag.partition("=")
            name = flag_name[2:]
            kind = self.defined.get(name)
            if kind is None:
                raise DockerfileSyntaxError(
                    f"unknown flag: {flag_name}" + _suggestion(name, list(self.defined), True),
                    hint=_flag_hint(self.node.keyword.upper(), self.defined),
                )
            if name in self.values and kind != "strs":
                raise DockerfileSyntaxError(f"duplicate flag specified: {flag_name}")
            if kind == "bool":
                if has_value and value == "":
                    raise DockerfileSyntaxError(f"missing a value on flag: {flag_name}")
                if value.lower() not in ("true", "false", ""):
                    raise DockerfileSyntaxError(
                        f"expecting boolean value for flag {flag_name}, not: {value}"
                    )
                self.values[name] = "false" if value.lower() == "false" else "true"
            elif not has_value:
                raise DockerfileSyntaxError(
                    f"missing a value on flag: {flag_name}", hint=f"write {flag_name}=VALUE"
                )
            elif kind == "strs":
                existing = self.values.setdefault(name, [])
                assert isinstance(existing, list)
                existing.append(value)
            else:
                self.values[name] = value

    def string(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        return value if isinstance(value, str) else default

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name, [])
        return tuple(value) if isinstance(value, list) else ()

    def boolean(self, name: str) -> bool:
        return self.values.get(name) == "true"

    def optional_bool(self, name: str) -> bool | None:
        return None if name not in self.values else self.values[name] == "true"


def _node_args(node: Node) -> list[str]:
    if node.instruction == "onbuild":
        if node.inner is None:
            return []
        return [node.inner.keyword, *_node_args(node.inner)]
    return list(node.args)


def _flag_hint(instruction: str, defined: Mapping[str, str]) -> str:
    if not defined:
        return f"{instruction} takes no flags"
    return f"{instruction} accepts " + ", ".join(f"--{name}" for name in sorted(defined))


def _one(req: _Request, instruction: str) -> str:
    if len(req.args) != 1:
        raise DockerfileSyntaxError(f"{instruction} requires exactly one argument")
    return req.args[0]


def _key_values(req: _Request, instruction: str) -> tuple[KeyValue, ...]:
    args = req.args
    if not args:
        raise DockerfileSyntaxError(f"{instruction} requires at least one argument")
    if len(args) % 3:
        raise DockerfileSyntaxError(f"Bad input to {instruction}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise DockerfileSyntaxError(f"{instruction} names can not be blank")
        pairs.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return tuple(pairs)


def _parse_env(req: _Request) -> Instruction:
    req.parse_flags()
    return Env(**req.base(), pairs=_key_values(req, "ENV"))


def _parse_label(req: _Request) -> Instruction:
    req.parse_flags()
    return Label(**req.base(), labels=_key_values(req, "LABEL"))


def _parse_maintainer(req: _Request) -> Instruction:
    value = _one(req, "MAINTAINER")
    req.parse_flags()
    return Maintainer(**req.base(), maintainer=value)


def _sources_and_dest(
    req: _Request, instruction: str
) -> tuple[tuple[str, ...], tuple[SourceContent, ...], str]:
    *sources, dest = req.args
    if heredoc_marker(dest) is not None:
        raise DockerfileSyntaxError(f"{instruction} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in req.node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for source in sources:
        marker = heredoc_marker(source)
        if marker is None:
            paths.append(source)
            continue
        body = bodies.get(marker.name)
        data = body.content if body is not None else ""
        if marker.chomp:
            data = dfparser.chomp_heredoc(data)
        contents.append(SourceContent(marker.name, data, marker.expand))
    return tuple(paths), tuple(contents), dest


def heredoc_marker(word: str) -> Heredoc | None:
    """The heredoc a word starts, ignoring lexing errors (BuildKit's MustParseHeredoc)."""
    try:
        return parse_heredoc_word(word)
    except BuildError:
        return None


def _parse_add(req: _Request) -> Instruction:
    if len(req.args) < 2:
        raise _no_destination("ADD")
    req.define(chown="str", chmod="str", link="bool", keep_git_dir="bool", checksum="str",
               unpack="bool", exclude="strs")  # fmt: skip
    req.parse_flags()
    sources, contents, dest = _sources_and_dest(req, "ADD")
    return Add(
        **req.base(),
        sources=sources,
        contents=contents,
        dest=dest,
        chown=req.string("chown"),
        chmod=req.string("chmod"),
        checksum=req.string("checksum"),
        keep_git_dir=req.optional_bool("keep-git-dir"),
        link=req.boolean("link"),
        unpack=req.optional_bool("unpack"),
        excludes=req.strings("exclude"),
    )


def _parse_copy(req: _Request) -> Instruction:
    if len(req.args) < 2:
        raise _no_destination("COPY")
    req.define(chown="str", from_="str", chmod="str", link="bool", exclude="strs", parents="bool")
    req.parse_flags()
    sources, contents, dest = _sources_and_dest(req, "COPY")
    source_stage = req.string("from")
    if source_stage and ShellLex(req.escape).process_word(source_stage, {}) != source_stage:
        raise DockerfileSyntaxError(
            "variable expansion is not supported for --from, define a new stage with FROM "
            "using ARG from global scope as a workaround"
        )
    return Copy(
        **req.base(),
        sources=sources,
        contents=contents,
        dest=dest,
        from_=source_stage,
        chown=req.string("chown"),
        chmod=req.string("chmod"),
        link=req.boolean("link"),
        parents=req.boolean("parents"),
        excludes=req.strings("exclude"),
    )


def _no_destination(instruction: str) -> DockerfileSyntaxError:
    return DockerfileSyntaxError(
        f"{instruction} requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
        hint=f"write {instruction} <src>... <dest>",
    )


def _parse_from(req: _Request) -> Instruction:
    args = req.args
    stage_name = None
    if len(args) == 3 and args[1].lower() == "as":
        stage_name = args[2].lower()
        if stage_name[:1] not in _STAGE_NAME_START or not set(stage_name) <= _STAGE_NAME_CHARS:
            raise DockerfileSyntaxError(
                f'invalid name for build stage: "{args[2]}", name can\'t start with a number '
                "or contain symbols"
            )
    elif len(args) != 1:
        raise DockerfileSyntaxError(
            "FROM requires either one or three arguments", hint="write FROM <image> [AS <name>]"
        )
    req.define(platform="str")
    req.parse_flags()
    return From(
        **req.base(),
        image=args[0],
        stage_name=stage_name,
        platform=req.string("platform") or None,
    )


def _parse_onbuild(req: _Request) -> Instruction:
    if not req.args:
        raise DockerfileSyntaxError("ONBUILD requires at least one argument")
    req.parse_flags()
    trigger = req.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise DockerfileSyntaxError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileSyntaxError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = compiled(_ONBUILD_PREFIX).sub("", req.node.original, count=1)
    for doc in req.node.heredocs:
        expression += "\n" + doc.content + doc.name
    inner: Instruction | None = None
    if req.node.inner is not None:
        try:
            inner = parse_instruction(req.node.inner, escape=req.escape)
        except BuildError:
            inner = None  # BuildKit only fails when a child build runs the trigger
    return Onbuild(**req.base(), expression=expression, inner=inner)


def _parse_workdir(req: _Request) -> Instruction:
    path = _one(req, "WORKDIR")
    req.parse_flags()
    return Workdir(**req.base(), path=path)


def _command_line(req: _Request, empty_as_none: bool) -> CommandLine:
    args: tuple[str, ...] | None
    if req.node.json:
        args = tuple(req.args)
    else:
        args = (" ".join(req.args),) if req.args else ()
    if empty_as_none and not args:
        args = None
    return CommandLine(args, not req.node.json, tuple(req.node.heredocs))


def _parse_run(req: _Request) -> Instruction:
    req.define(mount="strs", network="str", security="str", device="strs")
    req.parse_flags()
    specs = req.strings("mount")
    for spec in specs:
        parse_run_mount(spec, None)
    network = req.string("network", "default")
    if network not in ("default", "none", "host"):
        raise DockerfileSyntaxError(
            f'invalid network mode "{network}"', hint="use --network=default, none or host"
        )
    security = req.string("security", "sandbox")
    if security not in ("sandbox", "insecure"):
        raise DockerfileSyntaxError(
            f'security "{security}" is not valid', hint="use --security=sandbox or insecure"
        )
    return Run(
        **req.base(),
        command=_command_line(req, False),
        mount_specs=specs,
        network=network,
        security=security,
        devices=req.strings("device"),
        flags_used=tuple(sorted(req.values)),
    )


def _parse_cmd(req: _Request) -> Instruction:
    req.parse_flags()
    return Cmd(**req.base(), command=_command_line(req, False))


def _parse_entrypoint(req: _Request) -> Instruction:
    req.parse_flags()
    return Entrypoint(**req.base(), command=_command_line(req, True))


def _parse_healthcheck(req: _Request) -> Instruction:
    if not req.args:
        raise DockerfileSyntaxError("HEALTHCHECK requires at least one argument")
    kind = req.args[0].upper()
    rest = req.args[1:]
    if kind == "NONE":
        if rest:
            raise DockerfileSyntaxError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**req.base(), test=("NONE",))
    req.define(interval="str", timeout="str", start_period="str", start_interval="str",
               retries="str")  # fmt: skip
    req.parse_flags()
    if kind != "CMD":
        raise DockerfileSyntaxError(
            f'Unknown type "{kind}" in HEALTHCHECK (try CMD)',
            hint="write HEALTHCHECK CMD <command>",
        )
    command = rest if req.node.json else ([" ".join(rest)] if rest else [])
    if not command:
        raise DockerfileSyntaxError("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if req.node.json else "CMD-SHELL", *command)
    retries_text = req.string("retries")
    retries = 0
    if retries_text:
        try:
            retries = int(retries_text, 10)
        except ValueError:
            raise DockerfileSyntaxError(
                f'strconv.ParseInt: parsing "{retries_text}": invalid syntax',
                hint="--retries takes a whole number",
            ) from None
        if retries < 0:
            raise DockerfileSyntaxError(f"--retries cannot be negative ({retries})")
        if retries >= 2**31:
            raise DockerfileSyntaxError(
                f'strconv.ParseInt: parsing "{retries_text}": value out of range'
            )
    return Healthcheck(
        **req.base(),
        test=test,
        interval_ns=_interval(req, "interval"),
        timeout_ns=_interval(req, "timeout"),
        start_period_ns=_interval(req, "start-period"),
        start_interval_ns=_interval(req, "start-interval"),
        retries=retries,
    )


def _interval(req: _Request, name: str) -> int:
    text = req.string(name)
    if not text:
        return 0
    value = parse_duration(text)
    if value == 0:
        return 0
    if value < 1_000_000:
        raise DockerfileSyntaxError(f'Interval "{name}" cannot be less than 1ms')
    return value


def _parse_expose(req: _Request) -> Instruction:
    if not req.args:
        raise DockerfileSyntaxError("EXPOSE requires at least one argument")
    req.parse_flags()
    return Expose(**req.base(), ports=tuple(sorted(req.args)))


def _parse_user(req: _Request) -> Instruction:
    user = _one(req, "USER")
    req.parse_flags()
    return User(**req.base(), user=user)


def _parse_volume(req: _Request) -> Instruction:
    if not req.args:
        raise DockerfileSyntaxError("VOLUME requires at least one argument")
    req.parse_flags()
    paths = tuple(dfparser.trim_space(v) for v in req.args)
    if not all(paths):
        raise DockerfileSyntaxError("VOLUME specified can not be an empty string")
    return Volume(**req.base(), paths=paths)


def _parse_stopsignal(req: _Request) -> Instruction:
    return Stopsignal(**req.base(), signal=_one(req, "STOPSIGNAL"))


def _parse_arg(req: _Request) -> Instruction:
    if not req.args:
        raise DockerfileSyntaxError("ARG requires at least one argument")
    defs = []
    for word in req.args:
        key, sep, value = word.partition("=")
        if sep and not key:
            raise DockerfileSyntaxError("ARG names can not be blank")
        defs.append(ArgDefinition(key, value if sep else None))
    return Arg(**req.base(), args=tuple(defs))


def _parse_shell(req: _Request) -> Instruction:
    req.parse_flags()
    if not req.args:
        raise DockerfileSyntaxError("SHELL requires at least one argument")
    if not req.node.json:
        raise DockerfileSyntaxError(
            "SHELL requires the arguments to be in JSON form",
            hint='write SHELL ["/bin/bash", "-c"]',
        )
    return Shell(**req.base(), shell=tuple(req.args))


_PARSERS: dict[str, Callable[[_Request], Instruction]] = {
    "add": _parse_add,
    "arg": _parse_arg,
    "cmd": _parse_cmd,
    "copy": _parse_copy,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "from": _parse_from,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "onbuild": _parse_onbuild,
    "run": _parse_run,
    "shell": _parse_shell,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


# -- RUN --mount ------------------------------------------------------------------------------

_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
    "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
)  # fmt: skip


def parse_run_mount(spec: str, expand: Callable[[str], str] | None) -> RunMount:
    """Parse one ``--mount`` value (CSV ``key=value`` fields) as BuildKit does.

    With ``expand`` None only the checks BuildKit makes when parsing run (``from`` may not use
    variables); the full mount is typed when the stage is expanded, with ``expand``.
    """
    fields = _csv_fields(spec)
    m: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for item in fields:
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if expand is None:
                continue
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
            elif key == "required":
                _require_type(m, key, ("secret", "ssh"))
                m["required"] = True
            else:
                raise DockerfileSyntaxError(f"invalid field '{item}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        elif key == "from":
            if "$" in value[:-1]:
                raise DockerfileSyntaxError(
                    "'from' doesn't support variable expansion, define alias stage instead"
                )
            continue
        else:
            continue
        ro_auto = _mount_field(m, key, value, item) and ro_auto
    return _finish_mount(m, ro_auto)


def _mount_field(m: dict[str, object], key: str, value: str, item: str) -> bool:
    """Apply one ``key=value``; returns False if it set read-only-ness explicitly."""
    if key == "type":
        if value.lower() not in _MOUNT_TYPES:
            raise DockerfileSyntaxError(
                f'unsupported mount type "{value}"' + _suggestion(value, _MOUNT_TYPES, True),
                hint="types: " + ", ".join(_MOUNT_TYPES),
            )
        m["type"] = value.lower()
    elif key == "from":
        m["from_"] = value
    elif key in ("source", "src"):
        m["source"] = value
    elif key in ("target", "dst", "destination"):
        m["target"] = value
    elif key in ("readonly", "ro", "readwrite", "rw"):
        flag = _go_bool(value, key)
        m["readonly"] = flag if key in ("readonly", "ro") else not flag
        return False
    elif key == "required":
        _require_type(m, key, ("secret", "ssh"))
        m["required"] = _go_bool(value, key)
    elif key == "size":
        _require_type(m, key, ("tmpfs",))
        m["size_limit"] = _ram_in_bytes(value, key)
    elif key == "id":
        m["id"] = value
    elif key == "sharing":
        if value.lower() not in ("shared", "private", "locked"):
            raise DockerfileSyntaxError(
                f'unsupported sharing value "{value}"', hint="use shared, private or locked"
            )
        m["sharing"] = value.lower()
    elif key == "mode":
        m["mode"] = _uint(value, 8, "mode")
    elif key in ("uid", "gid"):
        m[key] = _uint(value, 10, key)
    elif key == "env":
        m["env"] = value
    else:
        raise DockerfileSyntaxError(
            f"unexpected key '{key}' in '{item}'" + _suggestion(key, _MOUNT_KEYS, True)
        )
    return True


def _finish_mount(m: dict[str, object], ro_auto: bool) -> RunMount:
    mount_type = str(m["type"])
    if mount_type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in m:
                raise DockerfileSyntaxError(f'{key} not allowed for "{mount_type}" type mounts')
    if ro_auto:
        m["readonly"] = mount_type not in ("cache", "tmpfs")
    mount = RunMount(**m)  # type: ignore[arg-type]
    if mount_type == "secret":
        if mount.from_:
            raise DockerfileSyntaxError("secret mount should not have a from")
        if mount.sharing:
            raise DockerfileSyntaxError("secret mount should not define sharing")
        if not mount.source and not mount.target and not mount.id:
            raise DockerfileSyntaxError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise DockerfileSyntaxError("both source and id can't be set")
    if mount.sharing and mount_type != "cache":
        raise DockerfileSyntaxError(f"invalid cache sharing set for {mount_type} mount")
    return mount


def _require_type(m: Mapping[str, object], key: str, types: Sequence[str]) -> None:
    if m["type"] not in types:
        raise DockerfileSyntaxError(f"unexpected key '{key}' for mount type '{m['type']}'")


def _go_bool(value: str, key: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise DockerfileSyntaxError(f"invalid value for {key}: {value}")


def _uint(value: str, base: int, key: str) -> int:
    digits = value[1:] if value.startswith("+") else value
    try:
        number = int(digits, base) if digits and digits.isalnum() else -1
    except ValueError:
        number = -1
    if number < 0 or number >= 2**32 or "_" in value:
        raise DockerfileSyntaxError(f"invalid value {value} for {key}")
    return number


_SIZE = r"\A([0-9.]+) ?([a-zA-Z]*)\Z"


def _ram_in_bytes(value: str, key: str) -> int:
    """docker/go-units ``RAMInBytes``: ``64m``, ``1.5GiB``, ``100`` (binary units)."""
    match = compiled(_SIZE).match(value)
    try:
        number = float(match.group(1)) if match else -1.0
    except ValueError:
        number = -1.0
    suffix = match.group(2).lower() if match else ""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    unit = suffix[:1]
    if (
        number < 0
        or unit not in units
        or suffix[1:] not in ("", "b", "ib")
        or (unit == "b" and len(suffix) > 1)
    ):
        raise DockerfileSyntaxError(f"invalid value for {key}: {value}")
    return int(number * units[unit])


def _csv_fields(line: str) -> list[str]:
    """One CSV record (Go's encoding/csv rules: ``"`` quoting, ``""`` escapes a quote)."""
    if line.endswith("\n"):
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    if not line:
        raise DockerfileSyntaxError("failed to parse csv mounts: EOF", hint="--mount needs options")
    fields: list[str] = []
    pos = 0
    n = len(line)
    while True:
        if pos >= n or line[pos] != '"':
            end = line.find(",", pos)
            text = line[pos:] if end < 0 else line[pos:end]
            if '"' in text:
                raise DockerfileSyntaxError(
                    f'failed to parse csv mounts: bare " in non-quoted-field: {line}',
                    hint='quote the whole field: "target=/a,b"',
                )
            fields.append(text)
            if end < 0:
                return fields
            pos = end + 1
            continue
        pos += 1
        parts: list[str] = []
        while True:
            end = line.find('"', pos)
            if end < 0:
                raise DockerfileSyntaxError(
                    f'failed to parse csv mounts: extraneous or missing " in quoted-field: {line}'
                )
            parts.append(line[pos:end])
            pos = end + 1
            if pos < n and line[pos] == '"':
                parts.append('"')
                pos += 1
                continue
            break
        fields.append("".join(parts))
        if pos >= n:
            return fields
        if line[pos] != ",":
            raise DockerfileSyntaxError(
                f'failed to parse csv mounts: extraneous or missing " in quoted-field: {line}'
            )
        pos += 1


# -- Go helpers ------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}  # fmt: skip
_DURATION_PART = r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)"


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds: ``30s``, ``1m30s``, ``1.5h``, ``500ms``."""
    original = text
    bad = DockerfileSyntaxError(
        f'time: invalid duration "{original}"', hint="write durations like 30s, 1m30s or 500ms"
    )
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise bad
    total = 0
    pos = 0
    while pos < len(text):
        match = compiled(_DURATION_PART).match(text, pos)
        assert match is not None
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise bad
        if not unit:
            raise DockerfileSyntaxError(f'time: missing unit in duration "{original}"')
        if unit not in _DURATION_UNITS:
            raise DockerfileSyntaxError(f'time: unknown unit "{unit}" in duration "{original}"')
        scale = _DURATION_UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        pos = match.end()
    if total > 2**63 - 1:
        raise bad
    return sign * total


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _suggestion(value: str, options: Iterable[str], case_sensitive: bool) -> str:
    """`` (did you mean X?)`` for the closest option within distance 2, as BuildKit suggests."""
    wanted = value if case_sensitive else value.lower()
    best, best_distance = "", 3
    for option in options:
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return ""
        distance = _levenshtein(wanted, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if not best:
        return ""
    if not case_sensitive:
        if value == value.lower():
            best = best.lower()
        elif value == value.upper():
            best = best.upper()
    return f" (did you mean {best}?)"
