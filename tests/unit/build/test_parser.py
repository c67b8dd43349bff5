"""Dockerfile lexing: lines, comments, directives, continuations, heredocs, JSON vs shell form."""

from __future__ import annotations

import time

import pytest

from berth.build.parser import (
    Node,
    chomp_heredoc,
    extract_flags,
    parse,
    parse_heredoc_word,
    parse_words,
    split_command,
)
from berth.errors import DockerfileSyntaxError


def nodes(text: str) -> list[Node]:
    return parse(text).nodes


def test_instructions_with_line_numbers_and_original_text() -> None:
    ns = nodes('FROM busybox\n\nRUN echo hi\n  CMD ["a"]\n')
    assert [(n.keyword, n.start_line, n.end_line) for n in ns] == [
        ("FROM", 1, 1),
        ("RUN", 3, 3),
        ("CMD", 4, 4),
    ]
    assert ns[1].original == "RUN echo hi"
    assert ns[2].args == ["a"] and ns[2].json


def test_keyword_case_is_kept_and_instruction_is_lower() -> None:
    node = nodes("fRoM busybox")[0]
    assert node.keyword == "fRoM"
    assert node.instruction == "from"


def test_comments_anywhere_at_line_start_but_not_inside_lines() -> None:
    ns = nodes("# one\n   # indented\nFROM a\nRUN echo '# kept' # also kept\n")
    assert ns[0].comments == ["one", "# indented"]  # BuildKit drops the first byte, not the '#'
    assert ns[1].args == ["echo '# kept' # also kept"]


def test_continuation_joins_lines_without_separator() -> None:
    node = nodes("FROM a\nRUN echo one \\\n    two\\\nthree\n")[1]
    assert node.args == ["echo one     twothree"]
    assert (node.start_line, node.end_line) == (2, 4)


def test_continuation_skips_comments_and_blank_lines_with_a_warning() -> None:
    result = parse("FROM a\nRUN a \\\n# comment\n   # indented comment\n\n  \nb\n")
    assert result.nodes[1].args == ["a b"]
    assert result.nodes[1].end_line == 7
    assert [w.line for w in result.warnings] == [7]
    assert "Empty continuation line" in result.warnings[0].message


def test_trailing_blanks_after_escape_still_continue() -> None:
    assert nodes("FROM a\nRUN a \\  \t\nb")[1].args == ["a b"]


def test_escaped_escape_does_not_continue() -> None:
    ns = nodes("FROM a\nRUN echo a\\\\\nRUN b\n")
    assert ns[1].args == ["echo a\\\\"]
    assert len(ns) == 3


def test_backslash_alone_on_a_line_continues() -> None:
    assert nodes("FROM a\nRUN a \\\n\\\nb")[1].args == ["a b"]


def test_continuation_at_end_of_file() -> None:
    node = nodes("FROM a\nRUN echo end \\\n")[1]
    assert node.args == ["echo end"]


def test_escape_directive_switches_to_backtick() -> None:
    result = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo\nCOPY a\\b c:\\\n")
    assert result.escape == "`"
    assert result.directives == {"escape": "`"}
    assert result.nodes[1].args == ["dir c:\\   && echo"]
    assert result.nodes[2].args == ["a\\b", "c:\\"]


@pytest.mark.parametrize(
    "header",
    ["#directive=value", "# escape =`", "#\tescape= `", "# escape = `", "#\t  eScApE=`"],
)
def test_directive_spacing_and_case(header: str) -> None:
    text = header.replace("directive=value", "escape=`") + "\nFROM a\nRUN a `\nb\n"
    assert parse(text).escape == "`"


def test_directives_stop_at_first_other_line() -> None:
    for text in (
        "FROM a\n# escape=`\nRUN a `\n",
        "# comment\n# escape=`\nFROM a\n",
        "\n# escape=`\nFROM a\n",
        "# unknown=x\n# escape=`\nFROM a\n",
    ):
        assert parse(text).escape == "\\", text


def test_syntax_and_check_directives() -> None:
    result = parse("# syntax = docker/dockerfile:1.7 --opt\n# check=skip=all\nFROM a\n")
    assert result.syntax == "docker/dockerfile:1.7"
    assert result.directives["check"] == "skip=all"


def test_repeated_or_invalid_directive_is_an_error_with_its_line() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"Dockerfile:2: only one escape"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(DockerfileSyntaxError, match=r"Dockerfile:1: invalid escape token 'x'"):
        parse("# escape=x\nFROM a\n")


def test_bom_and_crlf() -> None:
    ns = nodes("\ufeffFROM a\r\nRUN echo \\\r\n  b\r\nLABEL k=v\r\n")
    assert ns[0].args == ["a"]
    assert ns[1].args == ["echo   b"]
    assert ns[2].args == ["k", "v", "="]


def test_bom_does_not_hide_a_directive() -> None:
    assert parse("\ufeff# escape=`\nFROM a\n").escape == "`"


def test_empty_file_and_comment_only_file_are_errors() -> None:
    for text in ("", "\n\n", "# only a comment\n"):
        with pytest.raises(DockerfileSyntaxError, match="file with no instructions"):
            parse(text, "my.Dockerfile")


def test_error_names_the_file_and_line() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^app\.Dockerfile:3: ENV must have two"):
        parse("FROM a\n\nENV onlykey\n", "app.Dockerfile")


# -- flags and splitting -----------------------------------------------------------------


def test_flags_are_leading_double_dash_words() -> None:
    keyword, flags, rest = split_command("COPY --from=build --chown='a b' src --notflag /d")
    assert keyword == "COPY"
    assert flags == ["--from=build", "--chown=a b"]
    assert rest == "src --notflag /d"


def test_double_dash_ends_flags_and_escapes_apply() -> None:
    assert extract_flags("--a=1 -- --b=2 x") == (" --b=2 x", ["--a=1"])
    assert extract_flags('--x="" --y=\\"q') == ("", ["--x=", '--y="q'])
    assert extract_flags("--x=a`b", "`") == ("", ["--x=ab"])
    assert extract_flags("--") == ("", [])


def test_flags_then_json() -> None:
    node = nodes('FROM a\nRUN --network=none ["echo", "x"]')[1]
    assert node.flags == ["--network=none"]
    assert node.json and node.args == ["echo", "x"]


@pytest.mark.parametrize(
    ("rest", "args", "is_json"),
    [
        ('["echo", "a b"]', ["echo", "a b"], True),
        ('  [ "x" ] ', ["x"], True),
        ("[]", [], True),
        ("['single']", ["['single']"], False),
        ('["unterminated', ['["unterminated'], False),
        ('["a"] trailing', ['["a"] trailing'], False),
        ('["c:\\windows"]', ['["c:\\windows"]'], False),
        ('["\\u00e9\\n"]', ["é\n"], True),
        ("[NaN]", ["[NaN]"], False),
        ("echo [x]", ["echo [x]"], False),
    ],
)
def test_json_or_shell_form(rest: str, args: list[str], is_json: bool) -> None:
    node = nodes(f"FROM a\nCMD {rest}")[1]
    assert (node.args, node.json) == (args, is_json)


def test_json_array_of_non_strings_is_an_error() -> None:
    with pytest.raises(DockerfileSyntaxError, match="Dockerfile:2: when using JSON array"):
        parse('FROM a\nCMD ["a", 1]')


def test_list_instructions_split_on_whitespace_unless_json() -> None:
    ns = nodes('FROM a\nCOPY a  b\t/c/\nVOLUME ["/x y"]\nEXPOSE 80  443\n')
    assert ns[1].args == ["a", "b", "/c/"]
    assert ns[2].args == ["/x y"] and ns[2].json
    assert ns[3].args == ["80", "443"]


def test_env_and_label_pairs_keep_quotes_for_the_expander() -> None:
    ns = nodes('FROM a\nENV A="x y" B=\'z\' C=a\\ b\nLABEL "k k"=v\n')
    assert ns[1].args == ["A", '"x y"', "=", "B", "'z'", "=", "C", "a\\ b", "="]
    assert ns[2].args == ['"k k"', "v", "="]


def test_env_legacy_form_takes_the_rest_as_value() -> None:
    assert nodes("FROM a\nENV K  v1 v2 \n")[1].args == ["K", "v1 v2", ""]


def test_env_errors() -> None:
    with pytest.raises(DockerfileSyntaxError, match="can't find = in"):
        parse("FROM a\nENV A=1 B\n")
    with pytest.raises(DockerfileSyntaxError, match="LABEL must have two arguments"):
        parse("FROM a\nLABEL k\n")


def test_parse_words_quotes_and_escapes() -> None:
    assert parse_words("a=\"x y\" b='c d' e=f\\ g") == ['a="x y"', "b='c d'", "e=f\\ g"]
    assert parse_words("x '' y") == ["x", "''", "y"]
    assert parse_words("k=end\\") == ["k=end"]


def test_arg_words() -> None:
    assert nodes('FROM a\nARG A B=2 C="3 4"\n')[1].args == ["A", "B=2", 'C="3 4"']


def test_whole_rest_instructions() -> None:
    ns = nodes("FROM a\nUSER  app:grp \nWORKDIR /a b\nSTOPSIGNAL SIGKILL\nMAINTAINER Me <m@x>")
    assert [n.args for n in ns[1:]] == [["app:grp"], ["/a b"], ["SIGKILL"], ["Me <m@x>"]]


def test_healthcheck_type_and_command() -> None:
    ns = nodes(
        'FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --retries=2 CMD ["t", "x"]\nHEALTHCHECK CMD t x\n'
    )
    assert ns[1].args == ["NONE"]
    assert ns[2].args == ["CMD", "t", "x"] and ns[2].json and ns[2].flags == ["--retries=2"]
    assert ns[3].args == ["CMD", "t x"] and not ns[3].json


def test_onbuild_nests_the_instruction() -> None:
    node = nodes("FROM a\nONBUILD  RUN --mount=type=cache,target=/c echo hi\n")[1]
    assert node.args == [] and node.inner is not None
    assert node.inner.keyword == "RUN"
    assert node.inner.flags == ["--mount=type=cache,target=/c"]
    assert node.inner.args == ["echo hi"]


def test_unknown_instruction_is_kept_for_the_typed_layer() -> None:
    node = nodes("FROM a\nRUNN x\n")[1]
    assert node.keyword == "RUNN" and node.args == [""]


# -- heredocs -----------------------------------------------------------------------------


def test_run_heredoc_body_and_lines() -> None:
    node = nodes("FROM a\nRUN <<EOF\necho 1\n  echo 2\nEOF\nRUN x\n")[1]
    assert node.args == ["<<EOF"]
    assert [(h.name, h.content, h.expand, h.chomp) for h in node.heredocs] == [
        ("EOF", "echo 1\n  echo 2\n", True, False)
    ]
    assert (node.start_line, node.end_line) == (2, 5)


def test_heredoc_chomp_and_quoted_markers() -> None:
    ns = nodes("FROM a\nRUN <<-X\n\tx\n\tX\nCOPY <<'Y' <<\"Z\" /d/\ny\nY\nz\nZ\n")
    assert ns[1].heredocs[0].chomp and ns[1].heredocs[0].content == "\tx\n"
    assert chomp_heredoc(ns[1].heredocs[0].content) == "x\n"
    assert [(h.name, h.expand) for h in ns[2].heredocs] == [("Y", False), ("Z", False)]
    assert ns[2].args == ["<<'Y'", '<<"Z"', "/d/"]


def test_heredoc_with_space_after_marker_and_fd() -> None:
    ns = nodes("FROM a\nRUN << EOF\nbody\nEOF\nRUN 3<<EOF cat <&3\nfd\nEOF\n")
    assert ns[1].heredocs[0].name == "EOF"
    assert ns[2].heredocs[0].file_descriptor == 3


def test_heredoc_keeps_crlf_and_comment_lines_verbatim() -> None:
    node = nodes("FROM a\r\nRUN <<EOF\r\n# not a comment\r\nEOF\r\n")[1]
    assert node.heredocs[0].content == "# not a comment\r\n"


def test_heredocs_only_for_add_copy_run_in_shell_form() -> None:
    ns = nodes('FROM a\nRUN ["<<EOF"]\nCMD <<EOF\nLABEL a=<<EOF\n')
    assert [n.heredocs for n in ns[1:]] == [[], [], []]
    assert len(ns) == 4


def test_onbuild_heredoc_is_read() -> None:
    node = nodes("FROM a\nONBUILD RUN <<EOF\nhi\nEOF\nRUN x\n")[1]
    assert node.heredocs[0].content == "hi\n"
    assert node.end_line == 4


def test_escaped_heredoc_marker_is_not_a_heredoc() -> None:
    assert nodes("FROM a\nRUN echo \\<<EOF\n")[1].heredocs == []


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"Dockerfile:2: unterminated heredoc EOF"):
        parse("FROM a\nRUN <<EOF\necho\n")


@pytest.mark.parametrize(
    ("word", "name", "expand", "chomp", "fd"),
    [
        ("<<EOF", "EOF", True, False, 0),
        ("<<-EOF", "EOF", True, True, 0),
        ("<<'EOF'", "EOF", False, False, 0),
        ('<<"EOF"', "EOF", False, False, 0),
        ('<<E"O"F', "EOF", False, False, 0),
        ("2<<EOF", "EOF", True, False, 2),
        ("<<  EOF", "EOF", True, False, 0),
    ],
)
def test_parse_heredoc_word(word: str, name: str, expand: bool, chomp: bool, fd: int) -> None:
    doc = parse_heredoc_word(word)
    assert doc is not None
    assert (doc.name, doc.expand, doc.chomp, doc.file_descriptor) == (name, expand, chomp, fd)


@pytest.mark.parametrize("word", ["<<", "x<<EOF", "<<a b", "<<<EOF", "EOF"])
def test_not_heredoc_words(word: str) -> None:
    assert parse_heredoc_word(word) is None


def test_a_thousand_line_dockerfile_parses_quickly() -> None:
    lines = ["FROM busybox"]
    for i in range(250):
        lines += [f'ENV V{i}=x{i} W{i}="y z"', f"RUN echo {i} \\", "  && true", "LABEL a=b"]
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    result = parse(text)
    elapsed = time.perf_counter() - start
    assert len(result.nodes) == 751
    assert elapsed < 5  # generous bound only to catch accidental quadratic behaviour
