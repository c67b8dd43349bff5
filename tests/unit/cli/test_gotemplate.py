"""berth.cli.gotemplate: Go's text/template as docker uses it.

The tables of expected outputs and parse errors were recorded from Go itself: each template
was run through the docker 28.2.2 CLI (``docker version --format TEMPLATE``, Go 1.24), whose
templates have docker's functions, and the execution errors through podman 4.3.1
(``podman version --format``). Only templates that do not read docker's data were kept.
"""

from __future__ import annotations

import pytest

from berth.cli.gotemplate import (
    MISSING,
    docker_format_source,
    format_go_float,
    format_table,
    go_json,
    go_sprint,
    go_sprintf,
    parse,
    render,
)
from berth.errors import UsageError

DOCKER_OUTPUTS = [
    ('plain text', 'plain text'),
    ('{{"abc"}}', 'abc'),
    ('{{`raw\\n`}}', 'raw\\n'),
    ("{{'a'}}", '97'),
    ("{{'\\n'}}", '10'),
    ('{{1}}{{-1}}{{+1}}', '1-11'),
    (
        '{{1.5}} {{1e3}} {{1e6}} {{1.0}} {{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}',
        '1.5 1000 1e+06 1 31 15 15 5 1000',
    ),
    (
        '{{123456}} {{1234567.0}} {{0.0001}} {{0.00001}} {{100000000.0}} {{1e21}} {{1e20}}',
        '123456 1.234567e+06 0.0001 1e-05 1e+08 1e+21 1e+20',
    ),
    ('{{print 1 2 "a" "b" 3 true}}', '1 2ab3 true'),
    ('{{print "x" 1 2}}', 'x1 2'),
    ('{{println 1 "a" true}}', '1 a true\n'),
    (
        '{{printf "%s|%q|%v|%d|%5d|%-5d|%05d|%x|%X|%#x|%o|%#o|%b|%c|%'
        'U" "hi" "q\\"" 1.5 42 42 42 42 255 255 255 8 8 5 65 65}}',
        'hi|"q\\""|1.5|42|   42|42   |00042|ff|FF|0xff|10|010|101|A|U+0041',
    ),
    ('{{printf "%t %v %s" true false nil}}', 'true false %!s(<nil>)'),
    ('{{printf "%d" "x"}}', '%!d(string=x)'),
    ('{{printf "%s" 5}}', '%!s(int=5)'),
    ('{{printf "%d %d" 1}}', '1 %!d(MISSING)'),
    ('{{printf "%d" 1 2}}', '1%!(EXTRA int=2)'),
    ('{{printf "%z" 1}}', '%!z(int=1)'),
    ('{{printf "%"}}', '%!(NOVERB)'),
    (
        '{{printf "%5.2f|%.3e|%g|%G|%e|%8.3f|%-8.3f|%+d|% d|%+.1f" 3.'
        '14159 1234.5678 0.000012345 1e-7 1e6 2.5 2.5 5 5 2.25}}',
        ' 3.14|1.235e+03|1.2345e-05|1E-07|1.000000e+06|   2.500|2.500   |+5| 5|+2.2',
    ),
    (
        '{{printf "%.2s|%5s|%-5s|%q|%x|%X" "hello" "ab" "ab" "tab\\there" "hi" "hi"}}',
        'he|   ab|ab   |"tab\\there"|6869|6869',
    ),
    ('{{printf "%v %v" (split "a,b" ",") (len "héllo")}}', '[a b] 6'),
    ('{{printf "%q" (split "a,b" ",")}}', '["a" "b"]'),
    ('{{printf "%d" (len (split "a,b,c" ","))}}', '3'),
    ('{{printf "%6.2f%%" 12.345}}', ' 12.35%'),
    ('{{printf "%*d|%-*d|" 5 1 4 2}}', '    1|2   |'),
    ('{{printf "%08.3f|%+08d|%x" -3.14159 -42 -255}}', '-003.142|-0000042|-ff'),
    ('{{printf "%s" 1.5}}', '%!s(float64=1.5)'),
    ('{{printf "%d" 1.5}}', '%!d(float64=1.5)'),
    ('{{printf "%f" 1}}', '%!f(int=1)'),
    ('{{printf "%v" 1e21}}', '1e+21'),
    ('{{printf "%t" 1}}', '%!t(int=1)'),
    ('{{if true}}yes{{else}}no{{end}}', 'yes'),
    ('{{if false}}yes{{else if true}}elif{{else}}no{{end}}', 'elif'),
    ('{{if 0}}a{{else if ""}}b{{else if 0.0}}c{{else}}d{{end}}', 'd'),
    ('{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}', '12'),
    ('{{$x := "a"}}{{if true}}{{$x := "b"}}{{$x}}{{end}}{{$x}}', 'ba'),
    ('{{$x := "a"}}{{if true}}{{$x = "b"}}{{$x}}{{end}}{{$x}}', 'bb'),
    ('{{range $i, $e := split "a,b,c" ","}}{{$i}}={{$e}} {{end}}', '0=a 1=b 2=c '),
    ('{{range $e := split "a,b" ","}}{{$e}}{{end}}', 'ab'),
    ('{{range $i, $e := split "a,b,c,d" ","}}{{if eq $i 2}}{{break}}{{end}}{{$e}}{{end}}', 'ab'),
    (
        '{{range $i, $e := split "a,b,c,d" ","}}{{if eq $i 1}}{{continue}}{{end}}{{$e}}{{end}}',
        'acd',
    ),
    ('{{range $i, $e := split "a,b" ","}}{{$i}}{{end}}{{$i := 5}}', '01'),
    ('{{len "abc"}} {{len "héllo"}} {{len (split "a,b" ",")}}', '3 6 2'),
    ('{{index "abc" 1}}', '98'),
    ('{{index (split "a,b,c" ",") 2}}', 'c'),
    (
        '{{slice "abcdef" 1 3}} {{slice "abcdef" 2}} {{slice (split "a,b,c" ",") 1}}',
        'bc cdef [b c]',
    ),
    (
        '{{eq 1 1}} {{eq 1 2}} {{eq "a" "a"}} {{eq 1 2 3 1}} {{ne 1 2}} {{eq true true}}',
        'true false true true true true',
    ),
    ('{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', 'true true true false'),
    (
        '{{and 1 0 2}} {{and 1 2}} {{or 0 "" "x"}} {{or 0 ""}} {{not 0}} {{not "a"}}',
        '0 2 x  true false',
    ),
    (
        '{{json "a<b>&c"}} {{json 1.5}} {{json 1e21}} {{json 1e-7}} {'
        '{json 100}} {{json true}} {{json nil}} {{json (split "a,b" ",")}}',
        '"a<b>&c" 1.5 1e+21 1e-7 100 true null ["a","b"]',
    ),
    (
        '{{json "tab\\there\\nnl \\u2028 \\x01 é \\\\ \\""}}',
        '"tab\\there\\nnl \\u2028 \\u0001 é \\\\ \\""',
    ),
    ('{{join (split "a,b,c" ",") "-"}}', 'a-b-c'),
    ('{{split "a,b,c" ","}}', '[a b c]'),
    ('{{split "abc" ""}}', '[a b c]'),
    ('{{title "hello world-foo_bar ébc 1a"}}', 'Hello World-Foo_bar Ébc 1a'),
    ('{{upper "abcé"}} {{lower "ABCÉ"}}', 'ABCÉ abcé'),
    ('{{pad "ab" 2 3}}|{{pad "" 2 3}}|', '  ab   ||'),
    ('{{truncate "abcdef" 3}} {{truncate "ab" 3}} {{truncate "abc" 3}}', 'abc ab abc'),
    ('{{"abc" | printf "%q"}}', '"abc"'),
    ('{{"a" | printf "%s-%s" "b"}}', 'b-a'),
    ('{{split "a,b" "," | len}}', '2'),
    ('{{print (printf "%d" 3) (len "ab")}}', '32'),
    ('{{html "<a href=\'x\'>&\\"</a>"}}', '&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;'),
    ('  {{- "trim" -}}  ', 'trim'),
    ('x {{- /* comment */ -}} y', 'xy'),
    ('{{/* only a comment */}}z', 'z'),
    ('a{{- "b"}}c', 'abc'),
    ('a {{"b" -}} c', 'a bc'),
    ('{{3 | printf "%d"}}', '3'),
    ('{{true | not}}', 'false'),
    ('{{"x" | len | printf "%03d"}}', '001'),
    ('{{print nil}}', '<nil>'),
    ('{{define "x"}}{{end}}', ''),
]
DOCKER_PARSE_ERRORS = [
    ('{{"abc}}', '1: unterminated quoted string'),
    ('{{`abc}}', '1: unterminated raw quoted string'),
    ('{{if}}', '1: missing value for if'),
    ('{{end}}', '1: unexpected {{end}}'),
    ('{{else}}', '1: unexpected {{else}}'),
    ('{{range}}', '1: missing value for range'),
    ('{{nope}}', '1: function "nope" not defined'),
    ('{{$x}}', '1: undefined variable "$x"'),
    ('{{ | .X}}', '1: unexpected "|" in command'),
    ('{{}}', '1: missing value for command'),
    ('{{(1}}', '1: unclosed left paren'),
    ('{{1)}}', '1: unexpected right paren'),
    ('{{if true}}x', '1: unexpected EOF'),
    ('{{if true}}x{{else}}y{{else}}z{{end}}', '1: expected end; found {{else}}'),
    ('{{range .}}{{else if true}}{{end}}', '1: unexpected <if> in input'),
    ('{{break}}', '1: {{break}} outside {{range}}'),
    ('{{1a}}', '1: bad number syntax: "1a"'),
    ('{{"a" | 3}}', '1: non executable command in pipeline stage 2'),
    ('{{$x := 1 := 2}}', '1: unexpected ":=" in operand'),
    ('{{"a\\q"}}', '1: invalid syntax'),
    ("{{'ab'}}", "1: malformed character constant: 'ab'"),
    ('{{0x}}', '1: illegal number syntax: "0x"'),
    ('{{1.5.2}}', '1: unexpected ".2" in operand'),
    ('{{99999999999999999999}}', '1: integer overflow: "99999999999999999999"'),
    ('{{with $x := 1}}{{$x}}{{end}}{{$x}}', '1: undefined variable "$x"'),
    ('{{range $i, $e, $f := split "a" ","}}{{end}}', '1: too many declarations in range'),
    ('{{range $i := 1, 2}}{{end}}', '1: unexpected "," in operand'),
]
DOCKER_PARSE_ERRORS.append(("{{.Foo}", "1: bad character U+007D '}'"))

# (template, the error after "template: :"), recorded from podman's Go
GO_EXECUTION_ERRORS = [
    ("{{index (split \"a,b,c\" \",\") 3}}",
     '1:2: executing "" at <index (split "a,b,c" ",") 3>: error calling index: '
     "reflect: slice index out of range"),
    ("{{index (split \"a,b,c\" \",\") -1}}",
     '1:2: executing "" at <index (split "a,b,c" ",") -1>: error calling index: '
     "index out of range: -1"),
    ("{{index 1 2}}",
     '1:2: executing "" at <index 1 2>: error calling index: can\'t index item of type int'),
    ("{{eq 1 1.0}}",
     '1:2: executing "" at <eq 1 1.0>: error calling eq: incompatible types for comparison'),
    ("{{lt true false}}",
     '1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'),
    ("{{and}}", '1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0'),
    ("{{not 1 2}}", '1:2: executing "" at <not>: wrong number of args for not: want 1 got 2'),
    ("{{ne 1 2 3}}", '1:2: executing "" at <ne>: wrong number of args for ne: want 2 got 3'),
    ("{{len 3}}", '1:2: executing "" at <len 3>: error calling len: len of type int'),
    ("{{3 \"a\"}}", '1:2: executing "" at <3>: can\'t give argument to non-function 3'),
    ("{{(1) 2}}", '1:2: executing "" at <(1) 2>: can\'t give argument to non-function 1'),
    ("{{$x := 1}}{{$x 2}}",
     '1:13: executing "" at <$x>: can\'t give argument to non-function $x'),
    ("{{nil}}", '1:2: executing "" at <nil>: nil is not a command'),
    ("{{slice \"abc\" 2 1}}",
     '1:2: executing "" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1'),
    ("{{slice 1}}",
     '1:2: executing "" at <slice 1>: error calling slice: can\'t slice item of type int'),
    ("{{index \"abc\" 5}}",
     '1:2: executing "" at <index "abc" 5>: error calling index: index out of range: 5'),
    ("{{eq}}", '1:2: executing "" at <eq>: wrong number of args for eq: want at least 1 got 0'),
    ("{{eq 1}}",
     '1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison'),
    ("{{range 1.5}}{{end}}", '1:8: executing "" at <1.5>: range can\'t iterate over 1.5'),
    ("{{range \"abc\"}}{{end}}", '1:8: executing "" at <"abc">: range can\'t iterate over abc'),
]  # fmt: skip


@pytest.mark.parametrize(("template", "expected"), DOCKER_OUTPUTS)
def test_output_matches_go(template: str, expected: str) -> None:
    assert render(template, {}) == expected


@pytest.mark.parametrize(("template", "expected"), DOCKER_PARSE_ERRORS)
def test_parse_errors_match_go(template: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        render(template, {})
    assert caught.value.message == f"template parsing error: template: :{expected}"


@pytest.mark.parametrize(("template", "expected"), GO_EXECUTION_ERRORS)
def test_execution_errors_match_go(template: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        render(template, {})
    assert caught.value.message == f"template parsing error: template: :{expected}"


# ------------------------------------------------------------------ data: maps


INSPECT = {
    "Id": "sha256:abc",
    "RepoTags": ["busybox:latest", "busybox:1.36"],
    "Config": {
        "Env": ["PATH=/bin", "A=1"],
        "Labels": {"z": "last", "a": "first"},
        "Cmd": None,
        "Healthcheck": None,
    },
    "State": {"Running": True, "Pid": 42, "ExitCode": 0},
    "Size": 4261234,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Id}}", "sha256:abc"),
        ("{{.State.Running}} {{.State.Pid}}", "true 42"),
        ("{{.RepoTags}}", "[busybox:latest busybox:1.36]"),
        ("{{.Config.Labels}}", "map[a:first z:last]"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Missing.Deeper.Still}}", "<no value>"),
        ("{{index .Config.Labels \"a\"}}", "first"),
        ("{{index .Config.Labels \"nope\"}}", "<no value>"),
        ("{{index .RepoTags 1}}", "busybox:1.36"),
        ("{{index . \"Config\" \"Env\" 0}}", "PATH=/bin"),
        ("{{range .Config.Env}}{{.}};{{end}}", "PATH=/bin;A=1;"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "a=first z=last "),
        ("{{range .Config.Cmd}}x{{else}}no cmd{{end}}", "no cmd"),
        ("{{range .Missing}}x{{else}}none{{end}}", "none"),
        ("{{with .Config}}{{len .Env}}{{end}}", "2"),
        ("{{with .Config.Healthcheck}}yes{{else}}no{{end}}", "no"),
        ("{{if .State.Running}}up{{end}}", "up"),
        ("{{if eq .State.ExitCode 0}}ok{{end}}", "ok"),
        ("{{$.Id}}{{range .RepoTags}} {{$.Size}}{{end}}", "sha256:abc 4261234 4261234"),
        ("{{json .Config}}",
         '{"Env":["PATH=/bin","A=1"],"Labels":{"z":"last","a":"first"},'
         '"Cmd":null,"Healthcheck":null}'),
        ("{{join .RepoTags \", \"}}", "busybox:latest, busybox:1.36"),
        ("{{join .Config.Labels \",\"}}", "first,last"),
        ("{{.Config.Labels.a}}", "first"),
        ("{{(index .RepoTags 0) | upper}}", "BUSYBOX:LATEST"),
        ("{{printf \"%.8s\" .Id}}", "sha256:a"),
    ],
)  # fmt: skip
def test_map_data(template: str, expected: str) -> None:
    assert render(template, INSPECT) == expected


def test_missing_values_given_to_print_functions_are_nil() -> None:
    assert render('{{print .Missing}} {{printf "%v|%s" .Missing .Missing}}', {}) == (
        "<nil> <nil>|%!s(<nil>)"
    )
    assert render("{{println .Missing}}", {}) == "<nil>\n"


def test_field_of_nil_is_an_error() -> None:
    with pytest.raises(UsageError) as caught:
        render("{{.Config.Cmd.X}}", INSPECT)
    assert caught.value.message == (
        'template parsing error: template: :1:9: executing "" at <.Config.Cmd.X>: '
        "nil pointer evaluating interface {}.X"
    )


def test_field_of_a_string_is_an_error() -> None:
    with pytest.raises(UsageError, match="can't evaluate field X in type string"):
        render("{{.Id.X}}", INSPECT)


def test_map_key_with_arguments_is_an_error() -> None:
    with pytest.raises(UsageError, match="Id is not a method but has arguments"):
        render("{{.Id 1}}", INSPECT)


def test_error_location_counts_lines_and_columns() -> None:
    with pytest.raises(UsageError) as caught:
        render("line one\n  {{.Id.X}}", INSPECT)
    # a chain of fields is reported where its second field starts, as Go does
    assert "template: :2:7: executing" in caught.value.message


# ------------------------------------------------------------------ data: objects (structs)


class ImageRow:
    """Shaped like docker's formatter contexts: capitalised fields, a method."""

    def __init__(self, repository: str, tag: str) -> None:
        self.Repository = repository
        self.Tag = tag
        self.private = "not a Go field"

    @property
    def ID(self) -> str:
        return "sha256:0123456789abcdef"[7:19]

    def Short(self, length: int) -> str:
        return self.Repository[:length]

    def Broken(self) -> str:
        raise RuntimeError("boom")


def test_object_fields_properties_and_methods() -> None:
    row = ImageRow("busybox", "latest")
    assert render("{{.Repository}}:{{.Tag}} {{.ID}} {{.Short 4}}", row) == (
        "busybox:latest 0123456789ab busy"
    )
    assert render("{{3 | .Short}}", row) == "bus"


def test_missing_object_field_is_an_error() -> None:
    with pytest.raises(UsageError) as caught:
        render("{{.Foo}}", ImageRow("a", "b"))
    assert caught.value.message == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: '
        "can't evaluate field Foo in type ImageRow"
    )


def test_lowercase_and_private_attributes_are_not_go_fields() -> None:
    for template in ("{{.private}}", "{{.__class__}}"):
        with pytest.raises(UsageError, match="can't evaluate field"):
            render(template, ImageRow("a", "b"))


def test_method_errors_are_reported() -> None:
    with pytest.raises(UsageError, match="error calling Broken: boom"):
        render("{{.Broken}}", ImageRow("a", "b"))


def test_field_with_arguments_is_an_error() -> None:
    with pytest.raises(UsageError, match="Tag has arguments but cannot be invoked as function"):
        render("{{.Tag 1}}", ImageRow("a", "b"))


def test_json_of_an_object_is_sorted_and_html_escaped_like_dockers_contexts() -> None:
    row = ImageRow("<none>", "<none>")
    assert render("{{json .}}", row) == (
        '{"ID":"0123456789ab","Repository":"\\u003cnone\\u003e","Tag":"\\u003cnone\\u003e"}'
    )


def test_printing_an_object() -> None:
    assert go_sprint(ImageRow("a", "b")) == "{0123456789ab a b}"

    class WithStr:
        def __str__(self) -> str:
            return "custom"

    assert go_sprint(WithStr()) == "custom"


# ------------------------------------------------------------------ control and variables


def test_whitespace_trimming() -> None:
    assert render("a  {{- 1 -}}  b", {}) == "a1b"
    assert render("a\n\t{{- 1}}\n", {}) == "a1\n"
    assert render("{{1 -}}\n\n  x", {}) == "1x"
    assert render("{{- /* note */ -}}  x", {}) == "x"
    assert render("{{-3}}", {}) == "-3"


def test_multiline_action() -> None:
    assert render("{{if\n  true}}yes{{end}}", {}) == "yes"


def test_variables_scope_and_assignment() -> None:
    template = "{{$x := 1}}{{range .}}{{$x = .}}{{end}}{{$x}}"
    assert render(template, [5, 6]) == "6"
    assert render("{{range $i, $v := .}}{{end}}{{$x := 1}}{{$x}}", [1]) == "1"


def test_range_over_int_and_break_continue() -> None:
    assert render("{{range $i := 5}}{{if eq $i 3}}{{break}}{{end}}{{$i}}{{end}}", {}) == "012"
    assert render("{{range .}}{{if not .}}{{continue}}{{end}}{{.}}{{end}}", [1, 0, 2]) == "12"


def test_else_with() -> None:
    template = "{{with .A}}a{{else with .B}}b={{.}}{{else}}none{{end}}"
    assert render(template, {"B": 2}) == "b=2"
    assert render(template, {}) == "none"


def test_and_or_short_circuit() -> None:
    # the second argument would fail if evaluated
    assert render("{{and 0 (index 1 2)}}", {}) == "0"
    assert render("{{or 1 (index 1 2)}}", {}) == "1"


def test_define_template_and_block() -> None:
    template = '{{define "item"}}<{{.}}>{{end}}{{range .}}{{template "item" .}}{{end}}'
    assert render(template, ["a", "b"]) == "<a><b>"
    assert render('{{block "b" .}}[{{.}}]{{end}}', "x") == "[x]"
    assert render('{{template "t"}}{{define "t"}}{{.}}{{end}}', "x") == "<no value>"
    with pytest.raises(UsageError, match='template "nope" not defined'):
        render('{{template "nope"}}', {})
    with pytest.raises(UsageError, match="exceeded maximum template depth"):
        render('{{define "r"}}{{template "r"}}{{end}}{{template "r"}}', {})


def test_equality_with_missing_values_is_false_not_an_error() -> None:
    assert render('{{eq .Missing "x"}}', {}) == "false"


def test_comparison_of_lists_is_an_error() -> None:
    with pytest.raises(UsageError, match="non-comparable type"):
        render("{{eq .A .B}}", {"A": [1], "B": [1]})


def test_parse_caches_templates() -> None:
    assert parse("{{.X}}") is parse("{{.X}}")


# ------------------------------------------------------------------ docker functions


def test_docker_functions() -> None:
    assert render('{{title "hello wORLD x_y 3d"}}', {}) == "Hello WORLD X_y 3d"
    assert render('{{pad "a" 1 2}}|{{pad "" 1 2}}', {}) == " a  |"
    assert render('{{truncate "abcdef" 4}}', {}) == "abcd"
    assert render('{{split "a b" " "}}', {}) == "[a b]"
    assert render("{{join .L \"-\"}}", {"L": [1, 2.5, True]}) == "1-2.5-true"
    assert render("{{join .Missing \"-\"}}", {}) == ""
    assert render('{{json "é<"}}', {}) == '"é<"'


def test_docker_function_type_errors() -> None:
    with pytest.raises(UsageError, match="wrong type for value; expected string; got int"):
        render("{{upper 5}}", {})
    with pytest.raises(UsageError, match="error calling join: expected slice, got int"):
        render('{{join 5 ","}}', {})
    with pytest.raises(UsageError, match="invalid value; expected string"):
        render("{{lower .Missing}}", {})


# ------------------------------------------------------------------ Go value formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (-0.0, "-0"), (1.0, "1"), (0.5, "0.5"), (100.0, "100"), (123456.0, "123456"),
     (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (1.5e-05, "1.5e-05"),
     (-2.5, "-2.5"), (1e100, "1e+100"), (float("nan"), "NaN"), (float("inf"), "+Inf"),
     (float("-inf"), "-Inf")],
)  # fmt: skip
def test_format_go_float(value: float, text: str) -> None:
    assert format_go_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e6, "1000000"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (1e-6, "0.000001"),
     (1e-7, "1e-7"), (1.5e-10, "1.5e-10"), (-0.5, "-0.5")],
)  # fmt: skip
def test_format_go_float_json(value: float, text: str) -> None:
    assert format_go_float(value, json=True) == text


def test_go_json() -> None:
    assert go_json({"b": 1, "a": [True, None, MISSING]}) == '{"b":1,"a":[true,null,null]}'
    assert go_json("q\"\\\n\r\t\b\f\x01\u2028<&>") == (
        '"q\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u2028<&>"'
    )
    assert go_json("<&>", escape_html=True) == '"\\u003c\\u0026\\u003e"'
    assert go_json((1, 2.5)) == "[1,2.5]"
    with pytest.raises(UsageError, match="json: unsupported value: NaN"):
        render("{{json .}}", float("nan"))


def test_go_sprint_containers() -> None:
    assert go_sprint([1, "a", None, [True]]) == "[1 a <nil> [true]]"
    assert go_sprint({"b": {"y": 1, "x": 2}, "a": []}) == "map[a:[] b:map[x:2 y:1]]"
    assert go_sprint({2: "b", 10: "a"}) == "map[2:b 10:a]"
    assert go_sprint(MISSING) == "<no value>"


def test_go_sprintf() -> None:
    assert go_sprintf("%s=%d", "a", 1) == "a=1"
    assert go_sprintf("%v|%v", [1, 2], {"k": "v"}) == "[1 2]|map[k:v]"
    assert go_sprintf("%q", ["a", "b"]) == '["a" "b"]'
    assert go_sprintf("%d", [1, 2]) == "[1 2]"
    assert go_sprintf("%-6s|%6.1f|%x", "ab", 3.14159, "hi") == "ab    |   3.1|6869"
    assert go_sprintf("%5t|%v", True, None) == " true|<nil>"
    assert go_sprintf("%.2f %e", float("inf"), float("nan")) == "+Inf NaN"
    assert go_sprintf("%c%c", 72, 105) == "Hi"


# ------------------------------------------------------------------ docker's --format


HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
           "Size": "SIZE"}  # fmt: skip
ROWS = [
    {"Repository": "busybox", "Tag": "latest", "ID": "0123456789ab", "CreatedSince": "2 hours ago",
     "Size": "4.26MB"},
    {"Repository": "registry.example.com:5000/team/app", "Tag": "v1.2.3", "ID": "ba9876543210",
     "CreatedSince": "", "Size": "1.23GB"},
]  # fmt: skip
DOCKER_DEFAULT = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)


def test_table_format_like_docker_images() -> None:
    assert format_table(DOCKER_DEFAULT, ROWS, HEADERS) == (
        "REPOSITORY                           TAG       IMAGE ID       CREATED       SIZE\n"
        "busybox                              latest    0123456789ab   2 hours ago   4.26MB\n"
        "registry.example.com:5000/team/app   v1.2.3    ba9876543210   N/A           1.23GB\n"
    )


def test_table_with_literal_backslash_t_and_unknown_header() -> None:
    text = format_table("table {{.Tag}}\\t{{.Other}}\\t{{.ID}}", ROWS[:1], HEADERS)
    # the unknown field's header is empty; its column is as wide as "<no value>" + 3
    assert text == "TAG" + " " * 20 + "IMAGE ID\nlatest    <no value>   0123456789ab\n"


def test_non_table_format_has_no_header() -> None:
    assert format_table("{{.Repository}}:{{.Tag}}", ROWS, HEADERS) == (
        "busybox:latest\nregistry.example.com:5000/team/app:v1.2.3\n"
    )
    assert format_table("  {{.Tag}}\\n", ROWS[:1], HEADERS) == "latest\n\n"


def test_json_format() -> None:
    text = format_table("json", ROWS[:1], HEADERS)
    assert text == (
        '{"Repository":"busybox","Tag":"latest","ID":"0123456789ab",'
        '"CreatedSince":"2 hours ago","Size":"4.26MB"}\n'
    )


def test_header_row_keeps_names_and_survives_errors() -> None:
    # header functions leave names alone; an error ends the header row quietly
    text = format_table("table {{upper .Tag}}\t{{json .}}", ROWS[:1], HEADERS)
    assert text.splitlines()[0].rstrip() == "TAG"
    assert format_table("table {{lower .ID | printf \"%s!\"}}", [], HEADERS) == "IMAGE ID!\n"


def test_table_row_errors_are_raised() -> None:
    with pytest.raises(UsageError, match="can't evaluate field Nope in type ImageRow"):
        format_table("table {{.Nope}}", [ImageRow("a", "b")], HEADERS)


def test_docker_format_source() -> None:
    assert docker_format_source("json") == "{{json .}}"
    assert docker_format_source("table {{.A}}\\t{{.B}}") == "{{.A}}\t{{.B}}"
    assert docker_format_source("  {{.A}}\t ") == "{{.A}}\t"


# more fmt verbs and flags, recorded the same way
DOCKER_PRINTF = [
    ('{{printf "%#v %#v" "s" 1}}', '"s" 1'),
    ('{{printf "%+q" "é"}}', '"\\u00e9"'),
    ('{{printf "%05s|" "ab"}}', '000ab|'),
    ('{{printf "%T %T %T %T" 1 1.5 "s" true}}', 'int float64 string bool'),
    ('{{printf "%[1]d" 5}}', '5'),
    (
        '{{printf "%#v|%#v|%#v|%#v" (split "a,b" ",") 1.0 true nil}}',
        '[]string{"a", "b"}|1|true|<nil>',
    ),
    ('{{printf "%+v|%+d|%x|%#q" "a" 5 "é" "x`"}}', 'a|+5|c3a9|"x`"'),
    ('{{printf "%[2]d %[1]d|%d %[1]d %d|%[3]d" 1 2}}', '2 1|2 1 2|%!d(BADINDEX)'),
    ('{{printf "%*[1]d|%.*d|%-*d|" 3 2 5 -4 7}}', '  3|05|7   |'),
    ('{{printf "%[5]d" 1}}', '%!d(BADINDEX)'),
    ('{{printf "%[0]d" 1}}', '%!d(BADINDEX)'),
    ('{{printf "%[x]d" 1}}', '%!d(BADINDEX)'),
    ('{{printf "%[1]" 1}}', '%!(NOVERB)'),
    ('{{printf "%.*d" "x" 1}}', '%!(BADPREC)1'),
    ('{{printf "%*d" "x" 1}}', '%!(BADWIDTH)1'),
    ('{{printf "%[2]*[1]d" 12 5}}', '   12'),
    ('{{printf "%d %d %[1]d" 1 2 3}}', '1 2 1'),
    ('{{printf "%.d|%.0d|%5.0d|" 0 0 0}}', '||     |'),
    ('{{printf "%#x %#X %#o" "hi" 10 0}}', '0x6869 0XA 0'),
    ('{{printf "% x|% #X|%#x|%x" "hi" "hi" "" ""}}', '68 69|0X68 0X69||'),
    ('{{printf "%-5q|%5.1q|" "x" "yz"}}', '"x"  |  "y"|'),
    ('{{printf "%5%|"}}', '%|'),
    ('{{printf "%-+5d|% 05d|" 3 3}}', '+3   | 0003|'),
    ('{{printf "%08.3f|%+08d" -3.14159 -42}}', '-003.142|-0000042'),
    ('{{printf "%-08d|" 5}}', '5       |'),
    ('{{printf "%x" -255}}', '-ff'),
    ('{{printf "%.3d" 7}}', '007'),
    ('{{printf "%6.2s|" "abc"}}', '    ab|'),
    ('{{printf "%.0f %.1f" 2.5 0.05}}', '2 0.1'),
    ('{{printf "%e" 0.0}}', '0.000000e+00'),
    ('{{printf "%g" 100000.0}}', '100000'),
    ('{{printf "%G" 1e-10}}', '1E-10'),
    ('{{printf "%o %O" 8 8}}', '10 0o10'),
    ('{{printf "%U" 0x1F600}}', 'U+1F600'),
    ('{{printf "%c" 0x1F600}}', '😀'),
    ('{{printf "%q" 65}}', "'A'"),
    ('{{printf "%d" true}}', '%!d(bool=true)'),
    ('{{printf "%s" true}}', '%!s(bool=true)'),
    ('{{printf "%5.1f|%-7.2e|" 3.14159 31415.9}}', '  3.1|3.14e+04|'),
    ('{{html "a" 1}}', 'a1'),
    ('{{print 1.0 2.5}}', '1 2.5'),
    ('{{index "é" 0}}', '195'),
]


@pytest.mark.parametrize(("template", "expected"), DOCKER_PRINTF)
def test_printf_matches_go(template: str, expected: str) -> None:
    assert render(template, {}) == expected
