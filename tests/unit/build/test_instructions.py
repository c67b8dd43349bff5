"""Typed instructions, flag checking (instructions), and ARG/ENV scoping (expansion)."""

from __future__ import annotations

import os
import re

import pytest

from berth.build.expansion import (
    Applied,
    StageScope,
    expand_from,
    normalize_path,
    platform_args,
    proxy_env,
    resolve_global_args,
    triggered_instructions,
)
from berth.build.instructions import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    RunMount,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    parse_dockerfile,
    parse_duration,
    parse_run_mount,
)
from berth.errors import BuildError, DockerfileSyntaxError
from berth.oci.config import ContainerConfig
from berth.oci.manifest import Platform

AMD64 = Platform("linux", "amd64")


def one(text: str) -> Instruction:
    """The first instruction after ``FROM a``."""
    return parse_dockerfile("FROM a\n" + text).stages[0].instructions[0]


def syntax_error(text: str) -> str:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse_dockerfile(text)
    return str(info.value)


def scope_for(
    df: Dockerfile, build_args: dict[str, str] | None = None, base: ContainerConfig | None = None
) -> StageScope:
    build_args = build_args or {}
    globals_ = resolve_global_args(df, build_args, target_platform=AMD64)
    return StageScope.for_stage(df, globals_, build_args, base)


def apply_all(
    text: str,
    build_args: dict[str, str] | None = None,
    stage: int = -1,
    base: ContainerConfig | None = None,
) -> tuple[StageScope, list[Applied]]:
    df = parse_dockerfile(text)
    scope = scope_for(df, build_args, base)
    return scope, [scope.apply(i) for i in df.stages[stage].instructions]


# -- parsing ------------------------------------------------------------------------------


def test_stages_meta_args_and_locations() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG V=1\nARG B\nFROM busybox:$V AS Build\nRUN true\n"
        "FROM build\nCOPY --from=Build /a /b\n"
    )
    assert df.syntax == "docker/dockerfile:1"
    assert [a.args for a in df.meta_args] == [(ArgDefinition("V", "1"),), (ArgDefinition("B"),)]
    assert [(s.index, s.name, s.base) for s in df.stages] == [
        (0, "build", "busybox:$V"),
        (1, None, "build"),
    ]
    assert df.stages[0].from_ == From(
        keyword="FROM",
        start_line=4,
        end_line=4,
        original="FROM busybox:$V AS Build",
        image="busybox:$V",
        stage_name="build",
    )
    assert df.find_stage("BUILD") is df.stages[0]
    assert df.find_stage("0") is df.stages[0]
    assert df.find_stage("busybox") is None
    assert df.target() is df.stages[1]
    assert df.target("build") is df.stages[0]


def test_unknown_target_and_stage_index() -> None:
    df = parse_dockerfile("FROM a AS build\nFROM b AS test\n")
    with pytest.raises(
        BuildError, match=r"target stage 'tset' could not be found \(did you mean test\?\)"
    ):
        df.target("tset")
    with pytest.raises(BuildError, match="invalid stage index 5"):
        df.find_stage("5")


def test_every_instruction_is_typed() -> None:
    df = parse_dockerfile(
        "FROM a\nRUN x\nCMD y\nENTRYPOINT z\nLABEL k=v\nENV E=1\nEXPOSE 80\nADD a b\nCOPY a b\n"
        "VOLUME /v\nUSER u\nWORKDIR /w\nARG A\nONBUILD RUN x\nSTOPSIGNAL 9\nHEALTHCHECK NONE\n"
        'SHELL ["sh"]\nMAINTAINER m\n'
    )
    kinds = [type(i) for i in df.stages[0].instructions]
    assert kinds == [
        Run,
        Cmd,
        Entrypoint,
        Label,
        Env,
        Expose,
        Add,
        Copy,
        Volume,
        User,
        Workdir,
        Arg,
        Onbuild,
        Stopsignal,
        Healthcheck,
        Shell,
        Maintainer,
    ]
    assert df.stages[0].instructions[0].name == "RUN"


def test_run_forms() -> None:
    shell = one("RUN echo a  b")
    assert isinstance(shell, Run)
    assert shell.command.args == ("echo a  b",) and shell.command.shell_form
    exec_ = one('RUN ["echo", "a"]')
    assert isinstance(exec_, Run)
    assert exec_.command.args == ("echo", "a") and not exec_.command.shell_form
    assert (exec_.network, exec_.security) == ("default", "sandbox")


def test_entrypoint_empty_json_is_none_but_cmd_is_empty() -> None:
    entry, cmd = one("ENTRYPOINT []"), one("CMD []")
    assert isinstance(entry, Entrypoint) and entry.command.args is None
    assert isinstance(cmd, Cmd) and cmd.command.args == ()


def test_copy_and_add_fields() -> None:
    copy = one(
        "COPY --from=build --chown=1:2 --chmod=644 --link --parents --exclude=*.md "
        "--exclude=*.txt a b /d/"
    )
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.from_, copy.chown, copy.chmod) == (
        ("a", "b"),
        "/d/",
        "build",
        "1:2",
        "644",
    )
    assert copy.link and copy.parents and copy.excludes == ("*.md", "*.txt")
    add = one("ADD --checksum=sha256:00 --keep-git-dir --unpack=false u /d")
    assert isinstance(add, Add)
    assert (add.checksum, add.keep_git_dir, add.unpack, add.link) == (
        "sha256:00",
        True,
        False,
        False,
    )
    plain = one("ADD a b")
    assert isinstance(plain, Add) and plain.keep_git_dir is None and plain.unpack is None


def test_copy_heredoc_sources() -> None:
    copy = one("COPY <<A <<-'B' src /d/\n$x\nA\n\t$y\n\tB\n")
    assert isinstance(copy, Copy)
    assert copy.sources == ("src",)
    assert [(c.name, c.data, c.expand) for c in copy.contents] == [
        ("A", "$x\n", True),
        ("B", "$y\n", False),
    ]


def test_key_value_instructions() -> None:
    env = one('ENV A=1 B="2 3"')
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue("A", "1"), KeyValue("B", '"2 3"'))
    legacy = one("LABEL key some value")
    assert isinstance(legacy, Label) and legacy.labels == (KeyValue("key", "some value", True),)


def test_simple_instructions() -> None:
    assert one("USER a b") == User(
        keyword="USER", start_line=2, end_line=2, original="USER a b", user="a b"
    )
    workdir = one("WORKDIR  /x ")
    assert isinstance(workdir, Workdir) and workdir.path == "/x"
    volume = one('VOLUME ["/a", "/b"]')
    assert isinstance(volume, Volume) and volume.paths == ("/a", "/b")
    expose = one("EXPOSE 8080 80/udp 443")
    assert isinstance(expose, Expose) and expose.ports == ("443", "80/udp", "8080")
    stop = one("STOPSIGNAL SIGKILL")
    assert isinstance(stop, Stopsignal) and stop.signal == "SIGKILL"
    shell = one('SHELL ["pwsh", "-c"]')
    assert isinstance(shell, Shell) and shell.shell == ("pwsh", "-c")
    maintainer = one("MAINTAINER A B <a@b>")
    assert isinstance(maintainer, Maintainer) and maintainer.maintainer == "A B <a@b>"
    arg = one("ARG A B=2 C=")
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDefinition("A"), ArgDefinition("B", "2"), ArgDefinition("C", ""))


def test_healthcheck_options() -> None:
    check = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s "
        "--start-interval=1.5s --retries=3 CMD curl x"
    )
    assert isinstance(check, Healthcheck)
    assert check.test == ("CMD-SHELL", "curl x")
    assert (
        check.interval_ns,
        check.timeout_ns,
        check.start_period_ns,
        check.start_interval_ns,
        check.retries,
    ) == (90_000_000_000, 500_000_000, 2_000_000_000, 1_500_000_000, 3)
    exec_ = one('HEALTHCHECK CMD ["t", "-f"]')
    assert isinstance(exec_, Healthcheck) and exec_.test == ("CMD", "t", "-f")
    none = one("HEALTHCHECK --interval=5s none")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",) and none.interval_ns == 0


def test_onbuild_expression_and_inner() -> None:
    onbuild = one("onbuild  COPY <<EOF /x\nbody\nEOF\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "COPY <<EOF /x\nbody\nEOF"
    assert isinstance(onbuild.inner, Copy) and onbuild.inner.contents[0].data == "body\n"
    lenient = one("ONBUILD RUNN x")
    assert isinstance(lenient, Onbuild) and lenient.inner is None


def test_stage_onbuild_triggers_parse_at_the_child_from() -> None:
    df = parse_dockerfile("FROM a AS p\nONBUILD RUN echo $X\nONBUILD ENV Y=1\nFROM p\n")
    triggers = triggered_instructions(df.stages[0].onbuild_expressions(), df.stages[1].from_)
    assert [type(t) for t in triggers] == [Run, Env]
    assert triggers[0].start_line == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a\nRUNN x\n", "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\ncopyy a b\n", "unknown instruction: copyy (did you mean copy?)"),
        ("FROM a\nFOO x\n", "unknown instruction: FOO"),
        ("FROM a\nCOPY --form=x a b\n", "unknown flag: --form (did you mean from?)"),
        (
            "FROM a\nRUN --mount=type=cache,target=/c --networkk=none y\n",
            "unknown flag: --networkk (did you mean network?)",
        ),
        ("FROM a\nENV --x=1 A=b\n", "unknown flag: --x"),
        ("FROM a\nCOPY --from=a --from=b a b\n", "duplicate flag specified: --from"),
        ("FROM a\nCOPY --link=yes a b\n", "expecting boolean value for flag --link, not: yes"),
        ("FROM a\nCOPY --link= a b\n", "missing a value on flag: --link"),
        ("FROM a\nCOPY --from a b\n", "missing a value on flag: --from"),
        ("FROM a\nCOPY a\n", "COPY requires at least two arguments"),
        ("FROM a\nADD a\n", "ADD requires at least two arguments"),
        ("FROM a\nCOPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination"),
        ("FROM\n", "FROM requires either one or three arguments"),
        ("FROM a AS\n", "FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", 'invalid name for build stage: "1st"'),
        ("FROM a AS b c\n", "FROM requires either one or three arguments"),
        ("FROM --platform a\n", "missing a value on flag: --platform"),
        ("RUN x\nFROM a\n", "Dockerfile:1: no build stage in current context"),
        ("ARG A\n", "dockerfile contains no stages to build"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM b\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD MAINTAINER b\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD\n", "ONBUILD requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK RUN x\n", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("FROM a\nHEALTHCHECK --interval=5 CMD x\n", 'time: missing unit in duration "5"'),
        (
            "FROM a\nHEALTHCHECK --interval=1ns CMD x\n",
            'Interval "interval" cannot be less than 1ms',
        ),
        ("FROM a\nHEALTHCHECK --timeout=-1s CMD x\n", 'Interval "timeout" cannot be less than 1ms'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "--retries cannot be negative (-1)"),
        ("FROM a\nHEALTHCHECK --retries=x CMD x\n", 'parsing "x": invalid syntax'),
        ("FROM a\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []\n", "SHELL requires at least one argument"),
        ("FROM a\nUSER\n", "USER requires exactly one argument"),
        ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument"),
        ("FROM a\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument"),
        ("FROM a\nVOLUME\n", "VOLUME requires at least one argument"),
        ('FROM a\nVOLUME [" "]\n', "VOLUME specified can not be an empty string"),
        ("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument"),
        ("FROM a\nARG\n", "ARG requires at least one argument"),
        ("FROM a\nARG =x\n", "ARG names can not be blank"),
        ("FROM a\nENV =x\n", "ENV names can not be blank"),
        ("FROM a\nLABEL\n", "LABEL requires at least one argument"),
        ("FROM a\nMAINTAINER\n", "MAINTAINER requires exactly one argument"),
        ("FROM a\nRUN --network=bridge x\n", 'invalid network mode "bridge"'),
        ("FROM a\nRUN --security=root x\n", 'security "root" is not valid'),
        ("FROM a\nCOPY --from=$X a b\n", "variable expansion is not supported for --from"),
        ("FROM a\nRUN --mount=from=$X,target=/x y\n", "'from' doesn't support variable expansion"),
    ],
)
def test_errors_name_the_line_and_what_is_expected(text: str, message: str) -> None:
    assert message in syntax_error(text)


def test_unparsed_flags_of_stopsignal_and_arg_are_ignored_like_buildkit() -> None:
    stop = one("STOPSIGNAL --whatever SIGTERM")
    assert isinstance(stop, Stopsignal) and stop.signal == "SIGTERM"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1ns", 1),
        ("1.5us", 1500),
        ("2µs", 2000),
        ("3ms", 3_000_000),
        ("1s", 10**9),
        ("1m", 60 * 10**9),
        ("1h", 3600 * 10**9),
        ("1h2m3.5s", 3723_500_000_000),
        (".5s", 5 * 10**8),
        ("+1s", 10**9),
        ("-1s", -(10**9)),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1.s.", "--1s", "1 s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match="time: "):
        parse_duration(text)


# -- RUN --mount -----------------------------------------------------------------------------


def ident(value: str) -> str:
    return value


@pytest.mark.parametrize(
    ("spec", "mount"),
    [
        ("target=/ctx", RunMount(target="/ctx", readonly=True)),
        ("type=bind,from=src,source=/a,target=/b,rw", RunMount("bind", "src", "/a", "/b", False)),
        (
            "type=bind,src=/a,dst=/b,readonly=false",
            RunMount(source="/a", target="/b", readonly=False),
        ),
        (
            "type=cache,target=/c,id=x,sharing=LOCKED,mode=0700,uid=1,gid=2",
            RunMount(
                "cache",
                target="/c",
                readonly=False,
                id="x",
                sharing="locked",
                mode=0o700,
                uid=1,
                gid=2,
            ),
        ),
        ("type=cache,target=/c,ro", RunMount("cache", target="/c", readonly=True)),
        (
            "type=tmpfs,target=/t,size=64m",
            RunMount("tmpfs", target="/t", readonly=False, size_limit=64 << 20),
        ),
        (
            "type=tmpfs,target=/t,size=1.5GiB",
            RunMount("tmpfs", target="/t", readonly=False, size_limit=int(1.5 * (1 << 30))),
        ),
        ("type=secret,id=tok,required", RunMount("secret", id="tok", required=True)),
        ("type=secret,id=tok,env=TOKEN,required=false", RunMount("secret", id="tok", env="TOKEN")),
        (
            "type=secret,target=/run/s,mode=0400,uid=5",
            RunMount("secret", target="/run/s", mode=0o400, uid=5),
        ),
        ("type=ssh,id=default,required=true", RunMount("ssh", id="default", required=True)),
        ('"type=bind","target=/a,b"', RunMount(target="/a,b")),
        ("Type=CACHE,Target=/c", RunMount("cache", target="/c", readonly=False)),
    ],
)
def test_mounts(spec: str, mount: RunMount) -> None:
    assert parse_run_mount(spec, ident) == mount


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=volume,target=/x", 'unsupported mount type "volume"'),
        ("type=bindd,target=/x", "(did you mean bind?)"),
        ("type=cache,target=/x,sharing=wide", 'unsupported sharing value "wide"'),
        ("type=bind,target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
        ("type=tmpfs,target=/x,uid=1", 'uid not allowed for "tmpfs" type mounts'),
        ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
        ("type=cache,target=/x,required", "unexpected key 'required' for mount type 'cache'"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,id=a,source=b", "both source and id can't be set"),
        ("type=secret,id=a,from=x", "secret mount should not have a from"),
        ("type=bind,target=/x,sharing=shared", "invalid cache sharing set for bind mount"),
        ("target=/x,bogus=1", "unexpected key 'bogus'"),
        ("target=/x,ro=maybe", "invalid value for ro: maybe"),
        ("target=/x,junk", "invalid field 'junk' must be a key=value pair"),
        ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
        ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
        ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
        ('"target=/x', 'extraneous or missing "'),
        ('"target=/x"junk', 'extraneous or missing "'),
        ('tar"get=/x', 'bare " in non-quoted-field'),
        ("", "failed to parse csv mounts: EOF"),
    ],
)
def test_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse_run_mount(spec, ident)
    assert message in str(info.value)


def test_mounts_are_typed_and_expanded_when_applied() -> None:
    _, applied = apply_all(
        "FROM a\nARG ID=c1\nARG T=/cache\nRUN --mount=type=cache,id=$ID,target=${T} x\n"
    )
    run = applied[-1].instruction
    assert isinstance(run, Run)
    assert run.mounts == (RunMount("cache", target="/cache", readonly=False, id="c1"),)


def test_mount_errors_at_apply_time_carry_the_line() -> None:
    df = parse_dockerfile("FROM a\nRUN --mount=type=tmpfs,target=/t,size=huge x\n")
    with pytest.raises(DockerfileSyntaxError, match=r"Dockerfile:2: invalid value for size"):
        scope_for(df).apply(df.stages[0].instructions[0])


# -- variables in scope ---------------------------------------------------------------------


def test_platform_args() -> None:
    args = platform_args(Platform("linux", "arm", "v7"), AMD64, "final", {"TARGETOS": "custom"})
    assert args["TARGETPLATFORM"] == "linux/arm/v7"
    assert (args["TARGETARCH"], args["TARGETVARIANT"], args["TARGETOS"]) == ("arm", "v7", "custom")
    assert (args["BUILDPLATFORM"], args["BUILDARCH"], args["BUILDVARIANT"]) == (
        "linux/amd64",
        "amd64",
        "",
    )
    assert args["TARGETSTAGE"] == "final"
    assert platform_args(AMD64)["TARGETSTAGE"] == "default"


def test_meta_args_are_seen_by_from_only() -> None:
    df = parse_dockerfile(
        "ARG IMG=busybox\nARG TAG=${IMG}-1\nARG NODEF\nFROM ${IMG}:${TAG} AS a\nRUN echo\n"
        "FROM --platform=$BUILDPLATFORM $NODEF:x\n"
    )
    globals_ = resolve_global_args(df, {}, target_platform=AMD64)
    assert expand_from(df.stages[0], globals_) == ("busybox:busybox-1", None)
    assert "NODEF" not in globals_
    assert expand_from(df.stages[1], globals_) == (":x", "linux/amd64")
    overridden = resolve_global_args(df, {"IMG": "alpine", "NODEF": "x"}, target_platform=AMD64)
    assert expand_from(df.stages[0], overridden) == ("alpine:alpine-1", None)
    assert expand_from(df.stages[1], overridden)[0] == "x:x"


def test_blank_base_name_is_an_error() -> None:
    df = parse_dockerfile("ARG IMG\nFROM $IMG\n")
    with pytest.raises(BuildError, match=r"Dockerfile:2: base name \(\$IMG\) should not be blank"):
        expand_from(df.stages[0], resolve_global_args(df, {}, target_platform=AMD64))


def test_arg_must_be_redeclared_in_the_stage() -> None:
    scope, applied = apply_all("ARG V=1\nFROM a\nENV BEFORE=[$V]\nARG V\nENV AFTER=[$V]\n", {})
    envs = [a.instruction for a in applied if isinstance(a.instruction, Env)]
    assert [e.pairs[0].value for e in envs] == ["[]", "[1]"]
    assert scope.config.env_dict()["AFTER"] == "[1]"


def test_build_arg_beats_arg_default_and_meta_value() -> None:
    _, applied = apply_all("ARG V=meta\nFROM a\nARG V=stage\nENV X=$V\n", {"V": "cli"})
    assert applied[-1].instruction == applied[-1].instruction
    env = applied[-1].instruction
    assert isinstance(env, Env) and env.pairs[0].value == "cli"
    _, applied = apply_all("ARG V=meta\nFROM a\nARG V=stage\nENV X=$V\n", {})
    env = applied[-1].instruction
    assert isinstance(env, Env) and env.pairs[0].value == "stage"
    _, applied = apply_all("ARG V=meta\nFROM a\nARG V\nENV X=$V\n", {})
    env = applied[-1].instruction
    assert isinstance(env, Env) and env.pairs[0].value == "meta"


def test_env_overrides_arg_and_later_arg_overrides_env_in_the_stage_environment() -> None:
    scope, applied = apply_all("FROM a\nARG V=arg\nENV V=env\nRUN one\nARG V=again\nRUN two\n", {})
    first, second = applied[2], applied[4]
    assert dict(first.env)["V"] == "env"
    assert dict(second.env)["V"] == "again"
    assert scope.config.env_dict()["V"] == "env"  # only ENV reaches the image


def test_unset_variable_expands_to_empty() -> None:
    _, applied = apply_all("FROM a\nARG NOVALUE\nLABEL l=[$NOVALUE][${NEVER}]\n")
    label = applied[-1].instruction
    assert isinstance(label, Label) and label.labels[0].value == "[][]"
    assert applied[0].instruction == Arg(
        keyword="ARG",
        start_line=2,
        end_line=2,
        original="ARG NOVALUE",
        args=(ArgDefinition("NOVALUE"),),
    )


def test_platform_args_need_a_declaration_in_the_stage() -> None:
    _, applied = apply_all("FROM a\nENV A=[$TARGETARCH]\nARG TARGETARCH\nENV B=[$TARGETARCH]\n")
    values = [a.instruction.pairs[0].value for a in applied if isinstance(a.instruction, Env)]
    assert values == ["[]", "[amd64]"]


def test_proxy_args_are_not_expanded_nor_declared() -> None:
    build_args = {"HTTP_PROXY": "http://proxy:3128", "OTHER": "x"}
    _, applied = apply_all("FROM a\nENV P=[$HTTP_PROXY]\nRUN true\n", build_args)
    env = applied[0].instruction
    assert isinstance(env, Env) and env.pairs[0].value == "[]"
    assert "HTTP_PROXY" not in dict(applied[1].env)
    assert proxy_env(build_args) == {"HTTP_PROXY": "http://proxy:3128"}


def test_each_instruction_sees_variables_as_before_it() -> None:
    scope, _ = apply_all("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env = scope.config.env_dict()
    assert (env["abc"], env["def"], env["ghi"]) == ("bye", "hello", "bye")


def test_base_image_env_and_path_default() -> None:
    base = ContainerConfig(
        env=["HOME=/root", "LANG=C"], working_dir="/srv", user="app", on_build=["RUN echo trigger"]
    )
    scope, applied = apply_all("FROM a\nENV X=$HOME-$LANG\n", base=base)
    assert scope.config.env == [
        "HOME=/root",
        "LANG=C",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "X=/root-C",
    ]
    assert scope.onbuild_triggers == ["RUN echo trigger"] and scope.config.on_build == []
    assert (applied[0].workdir, applied[0].user) == ("/srv", "app")
    keeps_path = StageScope(global_args={}, base_config=ContainerConfig(env=["PATH=/bin"]))
    assert keeps_path.config.env == ["PATH=/bin"]


def test_env_replaces_in_place() -> None:
    base = ContainerConfig(env=["A=1", "PATH=/bin", "B=2"])
    scope, _ = apply_all("FROM a\nENV A=3\n", base=base)
    assert scope.config.env == ["A=3", "PATH=/bin", "B=2"]


def test_which_instructions_expand() -> None:
    text = (
        "FROM a\nARG V=val\n"
        'RUN echo $V\nCMD echo $V\nENTRYPOINT ["$V"]\nSHELL ["$V"]\n'
        "HEALTHCHECK CMD $V\nONBUILD RUN $V\nMAINTAINER $V\n"
        "USER $V\nWORKDIR /$V\nVOLUME /$V\nSTOPSIGNAL SIG${V:+TERM}\nLABEL $V=$V\n"
        "COPY --chown=$V --chmod=$V --exclude=$V $V /$V\nADD --checksum=$V $V /$V/\n"
    )
    _, applied = apply_all(text)
    by_type = {type(a.instruction): a.instruction for a in applied}
    assert by_type[Run].command.args == ("echo $V",)  # type: ignore[attr-defined]
    assert by_type[Cmd].command.args == ("echo $V",)  # type: ignore[attr-defined]
    assert by_type[Entrypoint].command.args == ("$V",)  # type: ignore[attr-defined]
    assert by_type[Shell].shell == ("$V",)  # type: ignore[attr-defined]
    assert by_type[Healthcheck].test == ("CMD-SHELL", "$V")  # type: ignore[attr-defined]
    assert by_type[Onbuild].expression == "RUN $V"  # type: ignore[attr-defined]
    assert by_type[Maintainer].maintainer == "$V"  # type: ignore[attr-defined]
    assert by_type[User].user == "val"  # type: ignore[attr-defined]
    assert by_type[Workdir].path == "/val"  # type: ignore[attr-defined]
    assert by_type[Volume].paths == ("/val",)  # type: ignore[attr-defined]
    assert by_type[Stopsignal].signal == "SIGTERM"  # type: ignore[attr-defined]
    assert by_type[Label].labels == (KeyValue("val", "val"),)  # type: ignore[attr-defined]
    copy = by_type[Copy]
    assert isinstance(copy, Copy)
    assert (copy.chown, copy.chmod, copy.sources, copy.dest, copy.excludes) == (
        "val",
        "val",
        ("val",),
        "/val",
        ("$V",),
    )
    add = by_type[Add]
    assert isinstance(add, Add) and (add.checksum, add.sources, add.dest) == (
        "val",
        ("val",),
        "/val/",
    )


def test_heredoc_bodies_expand_unless_the_marker_is_quoted() -> None:
    _, applied = apply_all(
        "FROM a\nARG N=world\nCOPY <<A <<'B' /d/\nhi $N \"q\" \\$N\nA\nhi $N\nB\n"
        "RUN <<C\necho $N\nC\n"
    )
    copy = applied[1].instruction
    assert isinstance(copy, Copy)
    assert [c.data for c in copy.contents] == ['hi world "q" $N\n', "hi $N\n"]
    assert applied[2].argv == ("/bin/sh", "-c", "echo $N\n")


def test_expose_splits_words_and_normalises_ports() -> None:
    scope, applied = apply_all(
        'FROM a\nENV P="8080 9090"\nEXPOSE $P 53/UDP 7000-7002/tcp 1.2.3.4:80:80\n'
    )
    expose = applied[-1].instruction
    assert isinstance(expose, Expose)
    # BuildKit sorts the words as written, then expands them
    assert expose.ports == (
        "8080/tcp",
        "9090/tcp",
        "80/tcp",
        "53/udp",
        "7000/tcp",
        "7001/tcp",
        "7002/tcp",
    )
    assert scope.config.exposed_ports == list(expose.ports)


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("http", "invalid containerPort: http"),
        ("80/icmp", "invalid proto: icmp"),
        ("70000", "invalid containerPort"),
        ("90-80", "invalid containerPort"),
        ("/tcp", "no port"),
    ],
)
def test_bad_ports(port: str, message: str) -> None:
    df = parse_dockerfile(f"FROM a\nEXPOSE {port}\n")
    with pytest.raises(BuildError, match=message):
        scope_for(df).apply(df.stages[0].instructions[0])


def test_expansion_errors_carry_file_and_line() -> None:
    df = parse_dockerfile('FROM a\n\nENV A="${NOPE:?set NOPE}"\n', "ci.Dockerfile")
    with pytest.raises(BuildError, match=r"^ci\.Dockerfile:3: .*NOPE: set NOPE"):
        scope_for(df).apply(df.stages[0].instructions[0])


def test_workdir_and_destinations() -> None:
    _, applied = apply_all(
        "FROM a\nCOPY a b\nWORKDIR app\nWORKDIR ../srv/./x/\nCOPY a rel/\nCOPY a .\nCOPY a ./\n"
        "COPY a /abs/../b\nCOPY a sub/.\nWORKDIR /\n"
    )
    assert applied[0].dest == "/b"
    assert [a.instruction.path for a in applied if isinstance(a.instruction, Workdir)] == [
        "/app",
        "/srv/x",
        "/",
    ]
    assert [a.dest for a in applied[3:8]] == [
        "/srv/x/rel/",
        "/srv/x/",
        "/srv/x/",
        "/b",
        "/srv/x/sub/.",
    ]
    assert applied[3].workdir == "/srv/x"


def test_normalize_path() -> None:
    assert normalize_path("/a", "b/../c") == "/a/c"
    assert normalize_path("", "x") == "/x"
    assert normalize_path("/a", "") == "/a"
    assert normalize_path("/a", "/../..") == "/"
    assert normalize_path("/a", "d/", keep_slash=True) == "/a/d/"
    assert normalize_path("/", "/.", keep_slash=True) == "/."


def test_cmd_entrypoint_and_shell_in_config() -> None:
    scope, _ = apply_all('FROM a\nCMD ["c"]\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT e x\n')
    assert scope.config.entrypoint == ["/bin/bash", "-c", "e x"]
    assert scope.config.cmd == ["c"]  # CMD in the same stage survives a later ENTRYPOINT
    assert scope.config.args_escaped
    base = ContainerConfig(cmd=["from-base"])
    scope, _ = apply_all('FROM a\nENTRYPOINT ["e"]\n', base=base)
    assert scope.config.cmd is None  # an inherited CMD is reset by ENTRYPOINT
    scope, _ = apply_all("FROM a\nENTRYPOINT []\nCMD\n")
    assert scope.config.entrypoint is None and scope.config.cmd == ["/bin/sh", "-c", ""]


def test_metadata_instructions_reach_the_config() -> None:
    scope, _ = apply_all(
        "FROM a\nLABEL a=1 b=2\nLABEL a=3\nVOLUME /v /w\nVOLUME /v\nUSER u:g\nSTOPSIGNAL 9\n"
        "HEALTHCHECK --interval=2s --retries=1 CMD t\nONBUILD RUN x\nMAINTAINER me\n"
    )
    c = scope.config
    assert c.labels == {"a": "3", "b": "2"}
    assert c.volumes == ["/v", "/w"]
    assert (c.user, c.stop_signal, c.on_build, scope.author) == ("u:g", "9", ["RUN x"], "me")
    assert c.healthcheck is not None
    assert (c.healthcheck.test, c.healthcheck.interval_ns, c.healthcheck.retries) == (
        ["CMD-SHELL", "t"],
        2 * 10**9,
        1,
    )


@pytest.mark.parametrize("signal", ["SIGKILL", "kill", "RTMIN+3", "SIGRTMAX-1", "15"])
def test_valid_stop_signals(signal: str) -> None:
    scope, _ = apply_all(f"FROM a\nSTOPSIGNAL {signal}\n")
    assert scope.config.stop_signal == signal


@pytest.mark.parametrize("signal", ["0", "SIGNOPE", "RTMIN+16"])
def test_invalid_stop_signals(signal: str) -> None:
    with pytest.raises(BuildError, match=re.escape(f"invalid signal: {signal}")):
        apply_all(f"FROM a\nSTOPSIGNAL {signal}\n")


def test_run_argv_env_and_heredoc_forms() -> None:
    _, applied = apply_all(
        'FROM a\nARG A=1\nENV E=2\nRUN echo x\nRUN ["/bin/true", "y"]\n'
        "RUN <<EOF\n#!/bin/sh\necho script\nEOF\n"
        "RUN <<-EOF\n\techo tab\n\tEOF\n"
        "RUN cat <<EOF >/f\nbody\nEOF\n"
    )
    run, exec_, script, chomped, complex_ = applied[2:]
    assert run.argv == ("/bin/sh", "-c", "echo x")
    assert dict(run.env)["A"] == "1" and dict(run.env)["E"] == "2"
    assert run.build_args == (ArgDefinition("A", "1"),)
    assert exec_.argv == ("/bin/true", "y")
    assert script.argv == ("/bin/sh", "-c", "/dev/pipes/EOF")
    assert script.inline_files[0].data == "#!/bin/sh\necho script\n"
    assert script.inline_files[0].mode == 0o755
    assert chomped.argv == ("/bin/sh", "-c", "echo tab\n")
    assert complex_.argv == ("/bin/sh", "-c", "cat <<EOF >/f\nbody\nEOF")


def test_run_device_is_refused_with_a_reason() -> None:
    with pytest.raises(
        BuildError, match="--device is only supported in the docker/dockerfile:1-labs"
    ):
        apply_all("FROM a\nRUN --device=nvidia.com/gpu=all x\n")


def test_inherit_carries_stage_args_and_config_not_triggers() -> None:
    df = parse_dockerfile("FROM a AS p\nARG X=1\nENV Y=2\nONBUILD RUN t\nFROM p\nRUN echo\n")
    parent = scope_for(df)
    for instruction in df.stages[0].instructions:
        parent.apply(instruction)
    child = parent.inherit()
    applied = child.apply(df.stages[1].instructions[0])
    assert applied.build_args == (ArgDefinition("X", "1"),)
    assert dict(applied.env)["Y"] == "2"
    assert child.config.on_build == [] and parent.config.on_build == ["RUN t"]


# -- the fixture corpus ------------------------------------------------------------------------

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dockerfiles")
PARSE_ERRORS = {
    "unknown-instruction": "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)",
    "bad-flag": "Dockerfile:2: unknown flag: --form (did you mean from?)",
    "unterminated-heredoc": "Dockerfile:2: unterminated heredoc EOF",
}
APPLY_ERRORS = {"expansions-error": "Dockerfile:2: "}


def fixture_text(name: str) -> str:
    with open(os.path.join(FIXTURES, name, "Dockerfile"), encoding="utf-8", newline="") as f:
        return f.read()


@pytest.mark.parametrize("name", sorted(os.listdir(FIXTURES)))
def test_every_fixture_types_and_applies(name: str) -> None:
    text = fixture_text(name)
    if name in PARSE_ERRORS:
        assert PARSE_ERRORS[name] in syntax_error(text)
        return
    df = parse_dockerfile(text)
    globals_ = resolve_global_args(df, {}, target_platform=AMD64)
    scopes: dict[int, StageScope] = {}
    try:
        for stage in df.stages:
            image, _ = expand_from(stage, globals_, df.escape)
            parent = df.find_stage(image) if not image.startswith("$") else None
            if parent is not None and parent.index < stage.index:
                scope = scopes[parent.index].inherit()
                instructions = triggered_instructions(parent.onbuild_expressions(), stage.from_)
            else:
                scope = StageScope.for_stage(df, globals_)
                instructions = []
            for instruction in [*instructions, *stage.instructions]:
                scope.apply(instruction)
            scopes[stage.index] = scope
    except BuildError as exc:
        assert name in APPLY_ERRORS, str(exc)
        assert str(exc).startswith(APPLY_ERRORS[name])
        return
    assert name not in APPLY_ERRORS


def test_expansions_fixture_values() -> None:
    df = parse_dockerfile(fixture_text("expansions"))
    scope = StageScope.for_stage(df, {})
    for instruction in df.stages[0].instructions:
        scope.apply(instruction)
    env = scope.config.env_dict()
    expected = {
        "A": "foobarbaz",
        "B": "default",
        "C": "default",
        "D": "",
        "E": "alt",
        "F": "",
        "G": "set",
        "H": "",
        "I": "arbaz",
        "J": "az",
        "K": "foobar",
        "L": "foo",
        "M": "fooforbaz",
        "N": "fooforfoz",
        "O": "$FOO",
        "P": "$FOO",
        "Q": "foobarbaz",
        "R": "foobarbaz_suffix",
        "S": "foobarbaz.ext",
        "T": "a b",
        "U": "a b",
        "abc": "bye",
        "def": "hello",
        "ghi": "bye",
    }
    assert {k: env[k] for k in expected} == expected
    assert scope.config.working_dir == "/foobarbaz"
    assert scope.config.labels == {"key with space": "foobarbaz"}


def test_escape_backtick_fixture_values() -> None:
    df = parse_dockerfile(fixture_text("escape-backtick"))
    scope = StageScope.for_stage(df, {})
    applied = [scope.apply(i) for i in df.stages[0].instructions]
    assert applied[0].argv == ("/bin/sh", "-c", "echo one     two > /out")
    copy = applied[1].instruction
    assert isinstance(copy, Copy) and (copy.sources, copy.dest) == (("hello.txt",), "C:\\target\\")
    env = scope.config.env_dict()
    assert (env["WIN_PATH"], env["LIT"]) == ("C:\\Windows\\System32", "$HOME")
