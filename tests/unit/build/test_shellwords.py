"""The Dockerfile word lexer: quotes, escapes and every expansion form, as BuildKit does them."""

from __future__ import annotations

import json

import pytest

from berth.build.shellwords import ShellLex
from berth.errors import BuildError, DockerfileSyntaxError

ENV = {"HOME": "/root", "EMPTY": "", "FOO": "foobarbaz", "SP": "a  b", "K": "한국어"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("plain", "plain"),
        ("it''s", "its"),
        ("'single $HOME \\n'", "single $HOME \\n"),
        ('"double $HOME"', "double /root"),
        ('"keeps \\t but not \\$HOME"', "keeps \\t but not $HOME"),
        ('"\\"quoted\\""', '"quoted"'),
        ('"back\\\\slash"', "back\\slash"),
        ("esc\\aped", "escaped"),
        ("trailing\\", "trailing"),
        ("two\\\\", "two\\"),
        ("\\$HOME", "$HOME"),
        ("\\${HOME}", "${HOME}"),
        ("$HOME/x", "/root/x"),
        ("${HOME}x", "/rootx"),
        ("$UNSET.", "."),
        ("$", "$"),
        ("a$", "a$"),
        ("$.x", "$.x"),
        ("$1x", "x"),
        ("$@ $* $# $? $- $$ $! $0", "       "),
        ("${FOO:-d}", "foobarbaz"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${FOO:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${HOME:-x}}", "/root"),
        ("${UNSET:-$HOME}", "/root"),
        ("${UNSET:-\\$HOME}", "$HOME"),
        ("${UNSET:-'q }'}", "q }"),
        ("${FOO?}", "foobarbaz"),
        ("${EMPTY?}", ""),
        ("${FOO#f*b}", "arbaz"),
        ("${FOO##f*b}", "az"),
        ("${FOO%b*}", "foobar"),
        ("${FOO%%b*}", "foo"),
        ("${FOO#nomatch}", "foobarbaz"),
        ("${FOO#*}", "foobarbaz"),
        ("${FOO##*}", ""),
        ("${FOO#?}", "oobarbaz"),
        ("${FOO/ba/fo}", "fooforbaz"),
        ("${FOO//ba/fo}", "fooforfoz"),
        ("${FOO//a/}", "foobrbz"),
        ("${FOO/#/x}", "foobarbaz"),
        ("${UNSET/a/b}", ""),
        ("${FOO//*/x}", "x"),
        ("${FOO//?/x}", "xxxxxxxxx"),
        ("${K}", "한국어"),
        ("안'녕'", "안녕"),
        ('"$SP"', "a  b"),
        ("<<EOF", "<<EOF"),
        ("<<  EOF", "<<  EOF"),
        ("a<b", "a<b"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert ShellLex().process_word(word, ENV) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
        ('"open\\"', "matching double-quote"),
        ("${", "missing '}'"),
        ("${HOME", "missing '}'"),
        ("${HOME:-x", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:-x}", "bad substitution"),
        ("${{x}}", "bad substitution"),
        ("${HOME=x}", "unsupported modifier (=)"),
        ("${HOME:=x}", "unsupported modifier (:=)"),
        ("${HOME:x}", "unsupported modifier (:x)"),
        ("${HOME:#x}", "unsupported modifier (:#)"),
        ("${HOME:%x}", "unsupported modifier (:%)"),
        ("${HOME/a", "missing '/' in ${}"),
        ("${FOO//a}", "missing '/' in ${}"),
        ("it'''s", "matching single-quote"),
        ("${HOME#\\x}", "invalid pattern"),
        ("he${.}", "unsupported modifier (.)"),
    ],
)
def test_syntax_errors_say_what_is_wrong(word: str, message: str) -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        ShellLex().process_word(word, ENV)
    assert message in str(info.value)
    assert json.dumps(word, ensure_ascii=False) in str(info.value)


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET?set it $HOME}", "UNSET: set it /root"),
        ("${EMPTY:?give a value}", "EMPTY: give a value"),
    ],
)
def test_required_variables(word: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        ShellLex().process_word(word, ENV)
    assert not isinstance(info.value, DockerfileSyntaxError)


def test_pattern_metacharacters_are_literal_and_escapes_work() -> None:
    env = {"V": "()[]{}^$.*?|\\x", "S": "xx**"}
    assert ShellLex().process_word("${V#()[]{\\}^$.\\*\\?|\\\\}", env) == "x"
    assert ShellLex().process_word("${S%%\\**}", env) == "xx"
    assert ShellLex().process_word("${S/\\*/-}", env) == "xx-*"


def test_replacement_escapes_slash_and_brace() -> None:
    assert ShellLex().process_word("${FOO/bar/\\}}", ENV) == "foo\\}baz"
    assert ShellLex().process_word("${FOO/bar\\/x/y}", {"FOO": "bar/x"}) == "y"


@pytest.mark.parametrize(
    ("word", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ("a${SP}b", ["aa", "bb"]),
        ('a"${SP}"b', ["aa  bb"]),
        ("'' x", ["x"]),
        ('"" ""', []),
        ("a\\ b", ["a b"]),
        ('a\\" b', ['a"', "b"]),
        ("  lead trail  ", ["lead", "trail"]),
        ("${UNSET:-x y}", ["x", "y"]),
        ("p${UNSET:-8 9}", ["p8", "9"]),
    ],
)
def test_process_words_splits_after_expansion(word: str, words: list[str]) -> None:
    assert ShellLex().process_words(word, ENV) == words


def test_backtick_escape_character() -> None:
    lex = ShellLex("`")
    assert lex.process_word("C:\\dir\\`$HOME", ENV) == "C:\\dir\\$HOME"
    assert lex.process_word('"a`"b"', ENV) == 'a"b'
    assert lex.process_word("a\\ b", ENV) == "a\\ b"


def test_raw_modes_keep_quotes_and_escapes() -> None:
    raw = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert raw.process_word("'a' \"b\" \\c $X ${Y} ${Z:-d}", {}) == "'a' \"b\" \\c $X ${Y} ${Z:-d}"
    assert raw.process_word("$HOME", ENV) == "/root"


def test_skip_process_quotes_treats_quotes_literally() -> None:
    lex = ShellLex(skip_process_quotes=True)
    assert lex.process_word('it\'s "$HOME"', ENV) == 'it\'s "/root"'


def test_matches_report_found_and_missing_names() -> None:
    result = ShellLex().process_word_with_matches("$HOME ${UNSET:-x} ${EMPTY+y}", ENV)
    assert result.result == "/root x y"
    assert result.matched == {"HOME", "EMPTY"}
    assert result.unmatched == {"UNSET"}


def test_lexer_is_reusable_and_rejects_other_escape_characters() -> None:
    lex = ShellLex()
    assert [lex.process_word("$HOME", ENV) for _ in range(3)] == ["/root"] * 3
    with pytest.raises(ValueError):
        ShellLex("/")


def test_long_words_expand_in_linear_time() -> None:
    word = "$HOME " * 20000
    assert ShellLex().process_word(word, ENV) == "/root " * 20000
