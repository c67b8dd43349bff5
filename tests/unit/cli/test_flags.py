"""berth.cli.flags: pflag's parsing rules, cobra's dispatch and docker's help and errors."""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import pytest

from berth.cli.flags import (
    GLOBAL_FLAGS,
    Command,
    Flag,
    Group,
    Invocation,
    format_flag_usages,
    go_quote,
    help_text,
    parse_command_line,
    parse_go_bool,
    parse_go_float,
    parse_go_int,
    run_handler,
    see_help,
)
from berth.errors import UsageError

FORMAT_HELP = "Format output using a custom template"

IMAGE_LS = Command(
    "ls",
    aliases=("list",),
    summary="List images",
    usage="[OPTIONS] [REPOSITORY[:TAG]]",
    flags=[
        Flag("all", "a", bool, help="Show all images (default hides intermediate images)"),
        Flag("digests", None, bool, help="Show digests"),
        Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
        Flag("format", None, str, help=FORMAT_HELP),
        Flag("no-trunc", None, bool, help="Don't truncate output"),
        Flag("quiet", "q", bool, help="Only show image IDs"),
    ],
    args=(0, 1),
    handler="tests.nowhere:ls",
)
IMAGE_RM = Command(
    "rm",
    aliases=("remove",),
    summary="Remove one or more images",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[Flag("force", "f", bool, help="Force removal of the image")],
    args=(1, None),
    handler="tests.nowhere:rm",
)
RUN = Command(
    "run",
    summary="Create and run a new container from an image",
    usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
    flags=[
        Flag("detach", "d", bool, help="Run container in background and print container ID"),
        Flag("env", "e", list, help="Set environment variables"),
        Flag("hostname", "h", str, help="Container host name"),
        Flag("interactive", "i", bool, help="Keep STDIN open even if not attached"),
        Flag("memory", "m", "bytes", help="Memory limit"),
        Flag("name", None, str, help="Assign a name to the container"),
        Flag("publish", "p", list, help="Publish a container's port(s) to the host"),
        Flag("rm", None, bool, help="Automatically remove the container when it exits"),
        Flag("tty", "t", bool, help="Allocate a pseudo-TTY"),
        Flag("health-interval", None, "duration", help="Time between running the check"),
        Flag("cpus", None, float, help="Number of CPUs", metavar="decimal"),
        Flag("link", None, list, deprecated="use networks instead"),
    ],
    args=(1, None),
    interspersed=False,
    handler="tests.nowhere:run",
)
PS = Command(
    "ls",
    aliases=("ps", "list"),
    summary="List containers",
    usage="[OPTIONS]",
    flags=[
        Flag("last", "n", int, default=-1, help="Show n last created containers"),
        Flag("all", "a", bool, help="Show all containers (default shows just running)"),
    ],
    args=(0, 0),
    handler="tests.nowhere:ps",
)
LOGS = Command(
    "logs",
    summary="Fetch the logs of a container",
    usage="[OPTIONS] CONTAINER",
    flags=[Flag("tail", "n", str, default="all", help="Number of lines to show")],
    args=(1, 1),
    handler="tests.nowhere:logs",
)
TAG = Command(
    "tag",
    summary="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    usage="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    args=(2, 2),
    handler="tests.nowhere:tag",
)
SAVE = Command(
    "pair",
    summary="Take one or two",
    usage="A [B]",
    args=(1, 2),
    handler="tests.nowhere:pair",
)
ROOT = Group(
    "berth",
    summary="A self-sufficient runtime for containers",
    flags=GLOBAL_FLAGS,
    footer="For more help on how to use berth, read its README",
    commands=[
        Group("image", summary="Manage images", commands=[IMAGE_LS, IMAGE_RM]),
        Group("container", summary="Manage containers", commands=[RUN, PS, LOGS]),
        RUN.shortcut("run", top=1),
        PS.shortcut("ps", top=2),
        IMAGE_LS.shortcut("images", top=3),
        IMAGE_RM.shortcut("rmi"),
        TAG,
        SAVE,
        Command("secret", summary="Hidden", hidden=True, handler="tests.nowhere:secret"),
    ],
)


def parse(*argv: str) -> Invocation:
    return parse_command_line(ROOT, list(argv))


def usage_error(*argv: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse(*argv)
    return caught.value.message


# ------------------------------------------------------------------ values and forms


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--name", "web", "busybox"],
        ["run", "--name=web", "busybox"],
    ],
)
def test_long_flag_value_forms(argv: list[str]) -> None:
    assert parse(*argv).options["name"] == "web"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-e", "A=1", "busybox"],
        ["run", "-eA=1", "busybox"],
        ["run", "-e=A=1", "busybox"],
    ],
)
def test_short_flag_value_forms(argv: list[str]) -> None:
    # pflag strips the "=" of -e=A=1: the value is A=1
    assert parse(*argv).options["env"] == ["A=1"]


@pytest.mark.parametrize("cluster", ["-dit", "-itd", "-tid"])
def test_combined_short_booleans(cluster: str) -> None:
    invocation = parse("run", cluster, "busybox")
    assert invocation.options["detach"] is True
    assert invocation.options["interactive"] is True
    assert invocation.options["tty"] is True
    assert invocation.args == ["busybox"]


def test_value_flag_at_the_end_of_a_cluster() -> None:
    invocation = parse("run", "-it", "-p", "80:80", "-dp", "81:81", "-dp82:82", "busybox")
    assert invocation.options["publish"] == ["80:80", "81:81", "82:82"]
    assert invocation.options["detach"] and invocation.options["tty"]


def test_value_in_the_middle_of_a_cluster_swallows_the_rest() -> None:
    # -ed: "d" is the value of -e, as pflag reads it
    assert parse("run", "-ed", "busybox").options["env"] == ["d"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rm"], True),
        (["--rm=false"], False),
        (["--rm=true"], True),
        (["--rm=0"], False),
        (["--rm=T"], True),
        (["--rm=FALSE"], False),
    ],
)
def test_boolean_flag_values(argv: list[str], expected: bool) -> None:
    assert parse("run", *argv, "busybox").options["rm"] is expected


def test_short_boolean_with_equals() -> None:
    assert parse("run", "-d=false", "busybox").options["detach"] is False


def test_boolean_flag_does_not_take_the_next_argument() -> None:
    invocation = parse("run", "--rm", "false", "x")
    assert invocation.options["rm"] is True
    assert invocation.args == ["false", "x"]


def test_value_starting_with_a_dash_is_taken_as_the_value() -> None:
    assert parse("container", "logs", "--tail", "-1", "c").options["tail"] == "-1"
    assert parse("container", "logs", "--tail=-1", "c").options["tail"] == "-1"
    assert parse("container", "logs", "-n", "-1", "c").options["tail"] == "-1"
    assert parse("run", "--name", "--rm", "busybox").options["name"] == "--rm"


def test_int_flag_accepts_go_syntax() -> None:
    assert parse("ps", "-n", "-1").options["last"] == -1
    assert parse("ps", "--last=0x10").options["last"] == 16
    assert parse("ps", "--last=010").options["last"] == 8
    assert parse("ps", "--last=1_000").options["last"] == 1000
    assert parse("ps", "-n5").options["last"] == 5


def test_float_bytes_and_duration_kinds() -> None:
    invocation = parse(
        "run", "--cpus", "1.5", "-m", "512m", "--health-interval", "1m30s", "busybox"
    )
    assert invocation.options["cpus"] == 1.5
    assert invocation.options["memory"] == 512 * 1024 * 1024
    assert invocation.options["health_interval"] == 90 * 10**9


def test_defaults_and_is_set() -> None:
    invocation = parse("ps")
    assert invocation.options == {"last": -1, "all": False}
    assert not invocation.is_set("last")
    invocation = parse("ps", "-n", "-1")
    assert invocation.options["last"] == -1
    assert invocation.is_set("last")
    assert invocation.is_set("last") and not invocation.is_set("all")


def test_zero_values_of_every_kind() -> None:
    options = parse("run", "busybox").options
    assert options["name"] == "" and options["env"] == [] and options["memory"] == 0
    assert options["cpus"] == 0.0 and options["health_interval"] == 0 and options["rm"] is False


def test_list_defaults_are_not_shared_between_parses() -> None:
    first = parse("run", "busybox").options["env"]
    first.append("mutated")
    assert parse("run", "busybox").options["env"] == []


def test_python_names_and_typed_getters() -> None:
    invocation = parse("image", "ls", "--no-trunc", "--format", "{{.ID}}", "-f", "dangling=true")
    assert invocation.options["no_trunc"] is True
    assert invocation.is_set("no-trunc") and invocation.is_set("no_trunc")
    assert invocation.get_bool("no-trunc") is True
    assert invocation.get_str("format") == "{{.ID}}"
    assert invocation.get_list("filter") == ["dangling=true"]
    assert parse("ps", "-n", "3").get_int("last") == 3
    with pytest.raises(TypeError):
        invocation.get_int("format")


def test_empty_filter_value_is_ignored_like_docker() -> None:
    invocation = parse("images", "--filter", "")
    assert invocation.options["filter"] == []
    assert invocation.is_set("filter")


# ------------------------------------------------------------------ positionals


def test_double_dash_ends_flags() -> None:
    invocation = parse("image", "rm", "--", "-f", "x")
    assert invocation.options["force"] is False
    assert invocation.args == ["-f", "x"]
    assert invocation.dash_index == 0


def test_lone_dash_is_a_positional() -> None:
    assert parse("tag", "-", "b").args == ["-", "b"]


def test_interspersed_flags_after_positionals() -> None:
    invocation = parse("images", "busybox", "-q")
    assert invocation.args == ["busybox"]
    assert invocation.options["quiet"] is True


def test_run_stops_at_the_image() -> None:
    invocation = parse("run", "--rm", "busybox", "ls", "-l", "--rm")
    assert invocation.args == ["busybox", "ls", "-l", "--rm"]
    assert invocation.options["rm"] is True
    invocation = parse("run", "-d", "busybox", "-d")
    assert invocation.args == ["busybox", "-d"]


def test_run_keeps_a_double_dash_after_the_image() -> None:
    invocation = parse("run", "busybox", "--", "ls")
    assert invocation.args == ["busybox", "--", "ls"]
    assert invocation.dash_index is None


# ------------------------------------------------------------------ errors
# Expected texts are what docker 28's CLI prints for the same mistakes.


def flag_error(message: str, command: str, usage: str) -> str:
    return f"{message}\n\nUsage:  {usage}\n\nRun '{command} --help' for more information"


def test_unknown_long_flag() -> None:
    assert usage_error("images", "--foo") == flag_error(
        "unknown flag: --foo", "berth images", "berth images [OPTIONS] [REPOSITORY[:TAG]]"
    )


def test_unknown_flag_names_the_command_as_resolved() -> None:
    assert usage_error("image", "list", "--foo=1") == flag_error(
        "unknown flag: --foo", "berth image ls", "berth image ls [OPTIONS] [REPOSITORY[:TAG]]"
    )


def test_unknown_shorthand() -> None:
    assert usage_error("images", "-x").startswith("unknown shorthand flag: 'x' in -x\n\n")
    assert usage_error("images", "-aqx").startswith("unknown shorthand flag: 'x' in -x\n\n")


def test_missing_values() -> None:
    usage = "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    assert usage_error("run", "--name") == flag_error(
        "flag needs an argument: --name", "berth run", usage
    )
    assert usage_error("run", "-e") == flag_error(
        "flag needs an argument: 'e' in -e", "berth run", usage
    )
    assert usage_error("run", "-ie").startswith("flag needs an argument: 'e' in -e\n")
    assert usage_error("run", "-h").startswith("flag needs an argument: 'h' in -h\n")


def test_invalid_int() -> None:
    assert usage_error("ps", "-n", "abc") == flag_error(
        'invalid argument "abc" for "-n, --last" flag: '
        'strconv.ParseInt: parsing "abc": invalid syntax',
        "berth ps",
        "berth ps [OPTIONS]",
    )
    assert usage_error("ps", "--last", "99999999999999999999").startswith(
        'invalid argument "99999999999999999999" for "-n, --last" flag: '
        'strconv.ParseInt: parsing "99999999999999999999": value out of range\n'
    )


def test_invalid_bool_float_bytes_duration_filter() -> None:
    assert usage_error("run", "--rm=maybe", "b").startswith(
        'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": '
        "invalid syntax\n"
    )
    assert usage_error("run", "--cpus", "x", "b").startswith(
        'invalid argument "x" for "--cpus" flag: strconv.ParseFloat: parsing "x": invalid syntax'
    )
    assert usage_error("run", "-m", "abc", "b").startswith(
        "invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'\n"
    )
    assert usage_error("run", "--health-interval", "5", "b").startswith(
        'invalid argument "5" for "--health-interval" flag: '
        'time: missing unit in duration "5"\n'
    )
    assert usage_error("images", "-f", "dangling").startswith(
        'invalid argument "dangling" for "-f, --filter" flag: '
        "bad format of filter (expected name=value)\n"
    )


def test_bad_flag_syntax() -> None:
    assert usage_error("images", "---x").startswith("bad flag syntax: ---x\n")
    assert usage_error("images", "--=x").startswith("bad flag syntax: --=x\n")


def test_global_flags_only_before_the_command() -> None:
    assert parse("--root", "/x", "images").globals["root"] == "/x"
    assert usage_error("images", "--root", "/x").startswith("unknown flag: --root\n")
    assert usage_error("images", "-D").startswith("unknown shorthand flag: 'D' in -D\n")


def test_unknown_global_flag_shows_the_root_usage() -> None:
    assert usage_error("--nope", "images") == flag_error(
        "unknown flag: --nope", "berth", "berth [OPTIONS] COMMAND [ARG...]"
    )


def test_unknown_flag_of_a_group() -> None:
    assert usage_error("image", "--foo") == flag_error(
        "unknown flag: --foo", "berth image", "berth image"
    )


def test_unknown_command() -> None:
    assert usage_error("frobnicate") == (
        "berth: unknown command: berth frobnicate\n\n"
        "Run 'berth --help' for more information"
    )


def test_unknown_subcommand() -> None:
    assert usage_error("image", "frobnicate") == (
        "berth: unknown command: berth image frobnicate\n\n"
        "Usage:  berth image\n\n"
        "Run 'berth image --help' for more information"
    )


def test_argument_count_errors() -> None:
    assert usage_error("rmi") == (
        "berth: 'berth rmi' requires at least 1 argument\n\n"
        "Usage:  berth rmi [OPTIONS] IMAGE [IMAGE...]\n\n"
        "See 'berth rmi --help' for more information"
    )
    assert usage_error("ps", "x") == (
        "berth: 'berth ps' accepts no arguments\n\n"
        "Usage:  berth ps [OPTIONS]\n\n"
        "Run 'berth ps --help' for more information"
    )
    assert usage_error("tag", "a") == (
        "berth: 'berth tag' requires 2 arguments\n\n"
        "Usage:  berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\n"
        "Run 'berth tag --help' for more information"
    )
    assert usage_error("images", "a", "b").startswith(
        "berth: 'berth images' requires at most 1 argument\n\n"
    )
    assert usage_error("pair").startswith(
        "berth: 'berth pair' requires at least 1 and at most 2 arguments\n\n"
    )
    assert usage_error("container", "logs").startswith(
        "berth: 'berth container logs' requires 1 argument\n\n"
    )


def test_flag_errors_win_over_help_as_in_pflag() -> None:
    assert usage_error("images", "--help", "--bogus").startswith("unknown flag: --bogus")


def test_see_help_and_usage_error_helpers() -> None:
    assert see_help("boom", "berth run") == "boom\n\nRun 'berth run --help' for more information"
    assert parse("run", "x").usage_error("bad").message == flag_error(
        "bad", "berth run", "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    )


# ------------------------------------------------------------------ the command tree


def test_shortcuts_and_aliases_reach_the_same_command() -> None:
    for argv in (["images"], ["image", "ls"], ["image", "list"]):
        invocation = parse(*argv)
        assert invocation.command_path == ("image", "ls")
        assert invocation.command.handler == "tests.nowhere:ls"
    assert parse("images").path == ("berth", "images")
    assert parse("image", "list").path == ("berth", "image", "ls")
    assert parse("rmi", "x").command_path == ("image", "rm")
    assert parse("container", "ps").command_path == ("container", "ls")


def test_deprecated_flag_warns_and_still_works() -> None:
    invocation = parse("run", "--link", "a:b", "busybox")
    assert invocation.options["link"] == ["a:b"]
    assert invocation.warnings == ["Flag --link has been deprecated, use networks instead"]


def test_global_flags_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_ROOT", raising=False)
    invocation = parse("images")
    assert invocation.globals == {
        "debug": False,
        "log_level": "info",
        "root": "/var/lib/berth",
        "version": False,
    }
    monkeypatch.setenv("BERTH_ROOT", "/srv/berth")
    invocation = parse("images")
    assert invocation.globals["root"] == "/srv/berth"
    assert not invocation.is_global_set("root")
    invocation = parse("--root", "/x", "-D", "images")
    assert invocation.globals["root"] == "/x" and invocation.globals["debug"] is True
    assert invocation.is_global_set("root")


def test_version_flag_stops_at_the_root() -> None:
    invocation = parse("-v")
    assert invocation.globals["version"] is True
    assert invocation.command is ROOT
    assert invocation.command_path == ()
    assert invocation.help is None


def test_flags_given_as_a_function_are_built_on_first_use() -> None:
    built: list[str] = []

    def make_flags() -> list[Flag]:
        built.append("yes")
        return [Flag("force", "f", bool)]

    lazy = Command("lazy", summary="Lazy", flags=make_flags, handler="x:y")
    tree = Group("berth", summary="root", commands=[lazy, lazy.shortcut("lz")])
    assert parse_command_line(tree, ["--help"]).help == "stdout"
    assert built == []
    assert parse_command_line(tree, ["lazy", "-f"]).options == {"force": True}
    assert parse_command_line(tree, ["lz", "-f"]).options == {"force": True}
    assert built == ["yes"]


def test_flag_definition_errors() -> None:
    with pytest.raises(ValueError, match="unsupported type"):
        Flag("x", None, dict)
    with pytest.raises(ValueError, match="shorthand"):
        Flag("x", "xy", bool)


# ------------------------------------------------------------------ help


def test_help_requests() -> None:
    assert parse("images", "--help").help == "stdout"
    assert parse("images", "-h").help == "stdout"
    assert parse("image", "ls", "busybox", "--help").help == "stdout"
    assert parse("image", "--help").command.name == "image"
    assert parse("--help").command is ROOT
    assert parse("help", "images").command.name == "images"
    assert parse("help", "image", "ls").path == ("berth", "image", "ls")
    assert parse("--help", "image", "ls").path == ("berth", "image", "ls")


def test_help_even_with_missing_arguments() -> None:
    assert parse("rmi", "--help").help == "stdout"


def test_run_h_is_hostname_not_help() -> None:
    invocation = parse("run", "-h", "box", "busybox")
    assert invocation.options["hostname"] == "box"
    assert invocation.help is None
    assert parse("run", "--help").help == "stdout"
    assert parse("run", "busybox", "--help").args == ["busybox", "--help"]


def test_bare_group_and_root_print_help_on_stderr() -> None:
    assert parse("image").help == "stderr"
    assert parse().help == "stderr"


def test_unknown_help_topic() -> None:
    assert usage_error("help", "nope") == "unknown help topic: nope"


def test_command_help_text_matches_docker_layout() -> None:
    text = help_text(ROOT, IMAGE_LS, ("berth", "image", "ls"), width=0)
    assert text == textwrap.dedent(
        """\
        Usage:  berth image ls [OPTIONS] [REPOSITORY[:TAG]]

        List images

        Aliases:
          berth image ls, berth image list, berth images

        Options:
          -a, --all             Show all images (default hides intermediate images)
              --digests         Show digests
          -f, --filter filter   Filter output based on conditions provided
              --format string   Format output using a custom template
              --no-trunc        Don't truncate output
          -q, --quiet           Only show image IDs
        """
    )


def test_shortcut_help_lists_every_path() -> None:
    text = parse("ps", "--help").help_text(width=0)
    assert text.startswith("Usage:  berth ps [OPTIONS]\n\nList containers\n\nAliases:\n")
    assert "  berth container ls, berth container ps, berth container list, berth ps\n" in text
    assert "  -n, --last int   Show n last created containers (default -1)\n" in text


def test_command_without_aliases_has_no_aliases_section() -> None:
    text = parse("tag", "--help").help_text(width=0)
    assert text == (
        "Usage:  berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\n"
        "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n"
    )


def test_option_types_defaults_and_hidden_flags() -> None:
    text = parse("run", "--help").help_text(width=0)
    assert "      --cpus decimal               Number of CPUs\n" in text
    assert "  -m, --memory bytes               Memory limit\n" in text
    assert "      --health-interval duration   Time between running the check\n" in text
    assert "  -e, --env list                   Set environment variables\n" in text
    assert "--link" not in text and "--help" not in text


def test_defaults_are_shown_as_pflag_shows_them() -> None:
    flags = [
        Flag("level", "l", str, default="info", help="Level"),
        Flag("count", None, int, default=3, help="Count"),
        Flag("ratio", None, float, default=1e6, help="Ratio"),
        Flag("on", None, bool, default=True, help="On"),
        Flag("off", None, bool, help="Off"),
        Flag("size", None, "bytes", default=64 * 1024 * 1024, help="Size"),
        Flag("wait", None, "duration", default=30 * 10**9, help="Wait"),
        Flag("add", None, list, default=["a", "b"], help="Add"),
        Flag("zero", None, int, help="Zero"),
    ]
    assert format_flag_usages(flags) == (
        "  -l, --level string    Level (default \"info\")\n"
        "      --count int       Count (default 3)\n"
        "      --ratio float     Ratio (default 1e+06)\n"
        "      --on              On (default true)\n"
        "      --off             Off\n"
        "      --size bytes      Size (default 64MiB)\n"
        "      --wait duration   Wait (default 30s)\n"
        "      --add list        Add (default [a b])\n"
        "      --zero int        Zero\n"
    )


def test_backquoted_word_names_the_value() -> None:
    flag = Flag("config", None, str, help="Location of client `dir`ectory")
    assert format_flag_usages([flag]) == "      --config dir   Location of client directory\n"


def test_multiline_help_is_indented_to_the_column() -> None:
    flag = Flag("format", None, str, help="Format output:\n'json': JSON")
    assert format_flag_usages([flag]) == (
        "      --format string   Format output:\n"
        "                        'json': JSON\n"
    )


def test_wrapping_follows_pflag() -> None:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    flag = Flag("x", None, bool, help=words)
    # usage column 12; 49 columns leave 37, less pflag's slop of 5: break before 32,
    # unless the rest fits in 37
    assert format_flag_usages([flag], 49) == (
        "      --x   alpha beta gamma delta epsilon\n"
        "            zeta eta theta iota kappa lambda mu\n"
    )


def test_too_narrow_wraps_as_a_block_on_the_next_line() -> None:
    flag = Flag("very-long-flag-name", None, str, help="one two three")
    assert format_flag_usages([flag], 40) == (
        "      --very-long-flag-name string   \n"
        "                one two three\n"
    )


def test_group_help() -> None:
    text = parse("image", "--help").help_text(width=0)
    assert text == (
        "Usage:  berth image COMMAND\n\n"
        "Manage images\n\n"
        "Commands:\n"
        "  ls          List images\n"
        "  rm          Remove one or more images\n\n"
        "Run 'berth image COMMAND --help' for more information on a command.\n"
    )


def test_root_help() -> None:
    text = parse("--help").help_text(width=0)
    assert text.startswith(
        "Usage:  berth [OPTIONS] COMMAND\n\n"
        "A self-sufficient runtime for containers\n\n"
        "Common Commands:\n"
        "  run         Create and run a new container from an image\n"
        "  ps          List containers\n"
        "  images      List images\n\n"
        "Management Commands:\n"
        "  container   Manage containers\n"
        "  image       Manage images\n\n"
        "Commands:\n"
        "  pair        Take one or two\n"
        "  rmi         Remove one or more images\n"
        "  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n\n"
        "Global Options:\n"
        "  -D, --debug              Enable debug mode\n"
    )
    assert "secret" not in text
    assert text.endswith(
        "  -v, --version            Print version information and quit\n\n"
        "Run 'berth COMMAND --help' for more information on a command.\n\n"
        "For more help on how to use berth, read its README\n"
    )


# ------------------------------------------------------------------ running handlers


def test_run_handler_imports_the_module_only_when_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "berth_test_lazy_handler_module"
    (tmp_path / f"{module}.py").write_text(
        "def handle(invocation):\n"
        "    print('ran', invocation.args, invocation.options['force'])\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    tree = Group(
        "berth",
        summary="root",
        commands=[
            Command(
                "go",
                summary="Go",
                flags=[Flag("force", "f", bool)],
                handler=f"{module}:handle",
            )
        ],
    )
    invocation = parse_command_line(tree, ["go", "-f", "x"])
    assert module not in sys.modules
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert run_handler(invocation) == 3
    assert module in sys.modules
    assert out.getvalue() == "ran ['x'] True\n"


def test_run_handler_prints_help_and_warnings() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_handler(parse("image", "ls", "--help"), stdout=out, stderr=err) == 0
    assert out.getvalue().startswith("Usage:  berth image ls [OPTIONS]")
    assert err.getvalue() == ""
    out, err = io.StringIO(), io.StringIO()
    assert run_handler(parse("image"), stdout=out, stderr=err) == 0
    assert out.getvalue() == ""
    assert err.getvalue().startswith("Usage:  berth image COMMAND")
    out, err = io.StringIO(), io.StringIO()
    assert run_handler(parse("run", "--link", "x", "--help"), stdout=out, stderr=err) == 0
    assert "Usage:  berth run" in out.getvalue()


# ------------------------------------------------------------------ Go value syntax


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("-12", -12), ("+7", 7), ("0x1F", 31), ("0o17", 15), ("017", 15),
     ("0b101", 5), ("1_000", 1000), ("0x_1F", 31), ("9223372036854775807", 2**63 - 1),
     ("-9223372036854775808", -(2**63))],
)  # fmt: skip
def test_parse_go_int(text: str, value: int) -> None:
    assert parse_go_int(text) == value


@pytest.mark.parametrize(
    "text", ["", "-", "abc", "1.5", "_1", "1_", "1__0", "08", "0x", "1e3", " 1", "0xg"]
)
def test_parse_go_int_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        parse_go_int(text)


def test_parse_go_int_range() -> None:
    with pytest.raises(ValueError, match="value out of range"):
        parse_go_int("9223372036854775808")


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5", 1.5), ("-2", -2.0), (".5", 0.5), ("1e3", 1000.0), ("1_000.5", 1000.5),
     ("0x1p4", 16.0), ("Inf", float("inf")), ("-infinity", float("-inf"))],
)  # fmt: skip
def test_parse_go_float(text: str, value: float) -> None:
    assert parse_go_float(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.5x", " 1", "1 ", "0x1", "1__0", "٣"])
def test_parse_go_float_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        parse_go_float(text)


def test_parse_go_float_range() -> None:
    with pytest.raises(ValueError, match="value out of range"):
        parse_go_float("1e400")


def test_parse_go_bool() -> None:
    assert [parse_go_bool(t) for t in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [parse_go_bool(t) for t in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
    with pytest.raises(ValueError, match='parsing "yes": invalid syntax'):
        parse_go_bool("yes")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("abc", '"abc"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("\n\t", '"\\n\\t"'),
     ("\x01", '"\\x01"'), ("\x7f", '"\\x7f"'), ("é", '"é"'), ("\u200b", '"\\u200b"'),
     ("\U0001f600", '"\U0001f600"')],
)  # fmt: skip
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_go_quote_rune() -> None:
    assert go_quote("x", "'") == "'x'"
    assert go_quote("'", "'") == "'\\''"


# ------------------------------------------------------------------ against docker's own output
# Recorded from the docker 28.2.2 CLI (`docker images --help`, stdin not a terminal, so
# 80 columns) for a command defined with the same flags.

DOCKER_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates"
)

DOCKER_IMAGES_HELP = """\
Usage:  docker images [OPTIONS] [REPOSITORY[:TAG]]

List images

Aliases:
  docker image ls, docker image list, docker images

Options:
  -a, --all             Show all images (default hides intermediate images)
      --digests         Show digests
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template:
                        'table':            Print output in table format
                        with column headers (default)
                        'table TEMPLATE':   Print output in table format
                        using the given Go template
                        'json':             Print in JSON format
                        'TEMPLATE':         Print output using the given
                        Go template.
                        Refer to https://docs.docker.com/go/formatting/
                        for more information about formatting output with
                        templates
      --no-trunc        Don't truncate output
  -q, --quiet           Only show image IDs
      --tree            List multi-platform images as a tree (EXPERIMENTAL)
"""


def test_help_is_byte_for_byte_dockers() -> None:
    image_ls = Command(
        "ls",
        aliases=("list",),
        summary="List images",
        usage="[OPTIONS] [REPOSITORY[:TAG]]",
        flags=[
            Flag("all", "a", bool, help="Show all images (default hides intermediate images)"),
            Flag("digests", None, bool, help="Show digests"),
            Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
            Flag("format", None, str, help=DOCKER_FORMAT_HELP),
            Flag("no-trunc", None, bool, help="Don't truncate output"),
            Flag("quiet", "q", bool, help="Only show image IDs"),
            Flag("tree", None, bool, help="List multi-platform images as a tree (EXPERIMENTAL)"),
        ],
        handler="x:y",
    )
    docker = Group(
        "docker",
        summary="A self-sufficient runtime for containers",
        commands=[
            Group("image", summary="Manage images", commands=[image_ls]),
            image_ls.shortcut("images"),
        ],
    )
    invocation = parse_command_line(docker, ["images", "--help"])
    assert invocation.help_text(width=80) == DOCKER_IMAGES_HELP


def test_h_shorthand_prints_dockers_deprecation_notice_with_the_help() -> None:
    out = io.StringIO()
    assert run_handler(parse("images", "-h"), stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue().startswith(
        "Flag shorthand -h has been deprecated, use --help\nUsage:  berth images [OPTIONS]"
    )
    out = io.StringIO()
    run_handler(parse("images", "--help"), stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("Usage:  berth images")
