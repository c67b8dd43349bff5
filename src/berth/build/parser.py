"""Dockerfile text to a list of instruction nodes with line numbers, as BuildKit's parser does it.

The rules, in the order they apply (BuildKit's ``frontend/dockerfile/parser`` is the
reference; berth follows the current ``docker/dockerfile:1`` syntax):

- A UTF-8 byte-order mark at the start is dropped. Lines end at ``\\n``; a ``\\r`` before it is
  dropped too (CRLF files parse like LF files, except inside heredoc bodies, which are kept
  byte for byte).
- Parser directives (``# syntax=``, ``# escape=``, ``# check=``; keys case-insensitive) are
  recognised only in the comment lines at the very top: the first line that is not a directive
  (an instruction, an empty line, any other comment) ends them. A directive may appear once.
  ``escape`` sets the escape character to ``\\`` (default) or ```` ` ````.
- Leading whitespace of a line is ignored. A line whose first non-blank character is ``#`` is a
  comment, also inside a continued instruction; ``#`` elsewhere is ordinary text.
- A line ending in the escape character (trailing blanks allowed) continues on the next line;
  the escape character and what follows it are removed and the lines are joined without a
  separator. Inside a continuation, comment lines and blank lines are skipped (blank lines give
  a warning, as in BuildKit). An escaped escape character (``\\\\``) at the end does not
  continue the line.
- The first word is the instruction (any case). Words starting with ``--`` right after it are
  flags (quotes and escapes removed), up to the first other word or a lone ``--``.
- The rest is split per instruction: a JSON array of strings (RUN, CMD, ENTRYPOINT, SHELL and,
  as a list of paths, ADD, COPY, VOLUME) if it parses as one, else the shell form; ``KEY=VALUE``
  pairs or the legacy ``KEY VALUE`` form (ENV, LABEL); words (ARG); whitespace-separated words
  (FROM, EXPOSE); the whole rest (USER, WORKDIR, STOPSIGNAL, MAINTAINER); a type and a command
  (HEALTHCHECK); a nested instruction (ONBUILD). Unknown instructions are kept here and
  rejected by :mod:`berth.build.instructions`, which knows their names.
- ADD, COPY and RUN in shell form (also under ONBUILD) may carry heredocs: each ``<<WORD``,
  ``<<-WORD`` or ``<<"WORD"`` in the line (optionally preceded by a file-descriptor number)
  reads the following lines up to a line equal to ``WORD`` (``<<-``: after removing leading
  tabs). Quoting any part of ``WORD`` turns variable expansion of the body off.

Known divergences from BuildKit: lines longer than 64 KiB are accepted (BuildKit refuses
them), and flags containing non-ASCII characters are read as text (BuildKit's flag splitter
reads bytes, so it mangles them).
"""

from __future__ import annotations

import _json

from berth import jsonio
from berth.build.lazy_re import compiled
from berth.build.shellwords import ShellLex, is_go_space
from berth.errors import DockerfileSyntaxError
from berth.values import FrozenValue, Value, init_fields, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DockerfileAST",
    "Heredoc",
    "Node",
    "ParseWarning",
    "chomp_heredoc",
    "heredocs_in_line",
    "parse",
    "parse_heredoc_word",
]

_GO_SPACE_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BLANKS = "\t\v\f\r "  # what separates words (BuildKit's regular expression [\t\v\f\r ]+)
_BLANKS_TO_SPACE = str.maketrans("\t\v\f\r", "    ")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})

# regular expressions, compiled on first use (berth.build.lazy_re)
_DIRECTIVE = r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z"
_HEREDOC = r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z"
_LEADING_TABS = r"(?m)^\t+"
_LONE_SURROGATE = "[\ud800-\udfff]"


def split_blanks(text: str, maxsplit: int = 0) -> list[str]:
    """The words of ``text`` between runs of blanks (tab, vertical tab, form feed, carriage
    return, space), exactly as ``re.split`` with BuildKit's ``[\\t\\v\\f\\r ]+`` splits it (an
    empty word at an end that is blank), without importing :mod:`re`."""
    if maxsplit == 1:
        first = min((i for i in map(text.find, _BLANKS) if i >= 0), default=-1)
        if first < 0:
            return [text]
        end = first + 1
        while end < len(text) and text[end] in _BLANKS:
            end += 1
        return [text[:first], text[end:]]
    assert maxsplit == 0
    if not text:
        return [text]
    words = [w for w in text.translate(_BLANKS_TO_SPACE).split(" ") if w]
    if text[0] in _BLANKS:
        words.insert(0, "")
    if text[-1] in _BLANKS:
        words.append("")
    return words


class Heredoc(FrozenValue):
    """One here-document: ``<<[-]NAME`` and the lines up to ``NAME``."""

    __slots__ = ("chomp", "content", "expand", "file_descriptor", "name")
    name: str
    file_descriptor: int
    expand: bool  # False when any part of the marker word was quoted
    chomp: bool  # ``<<-``: leading tabs are removed from the body (see chomp_heredoc)
    content: str  # the body as written, line endings included, tabs not yet removed

    def __init__(
        self,
        name: str,
        file_descriptor: int = 0,
        expand: bool = True,
        chomp: bool = False,
        content: str = "",
    ) -> None:
        init_fields(
            self,
            name=name,
            file_descriptor=file_descriptor,
            expand=expand,
            chomp=chomp,
            content=content,
        )


class ParseWarning(FrozenValue):
    __slots__ = ("line", "message")
    line: int
    message: str

    def __init__(self, line: int, message: str) -> None:
        init_fields(self, line=line, message=message)


class Node(Value):
    """One instruction as the parser sees it, before it is typed.

    ``args`` are BuildKit's node values: for ENV and LABEL they come in triples
    ``(key, value, separator)`` where the separator is ``"="`` or ``""`` for the legacy
    ``KEY VALUE`` form; for HEALTHCHECK the first is the type (``CMD``/``NONE``); for ONBUILD
    they are empty and ``inner`` holds the triggered instruction.
    """

    __slots__ = (
        "args",
        "comments",
        "end_line",
        "flags",
        "heredocs",
        "inner",
        "json",
        "keyword",
        "original",
        "start_line",
    )

    def __init__(
        self,
        keyword: str,
        args: list[str],
        flags: list[str],
        json: bool,
        original: str,
        start_line: int = 0,
        end_line: int = 0,
        heredocs: list[Heredoc] | None = None,
        comments: list[str] | None = None,
        inner: Node | None = None,
    ) -> None:
        self.keyword = keyword
        self.args = args
        self.flags = flags
        self.json = json
        self.original = original
        self.start_line = start_line
        self.end_line = end_line
        self.heredocs: list[Heredoc] = [] if heredocs is None else heredocs
        self.comments: list[str] = [] if comments is None else comments
        self.inner = inner

    @property
    def instruction(self) -> str:
        """The instruction name in lower case (``run``, ``copy``, ...)."""
        return self.keyword.lower()

    def can_contain_heredoc(self) -> bool:
        node = self.inner if self.instruction == "onbuild" and self.inner is not None else self
        return node.instruction in _HEREDOC_INSTRUCTIONS and not node.json


class DockerfileAST(Value):
    """The parsed file: instruction nodes, the escape character and the parser directives."""

    __slots__ = ("directives", "escape", "filename", "nodes", "warnings")

    def __init__(
        self,
        nodes: list[Node],
        escape: str = "\\",
        directives: dict[str, str] | None = None,
        warnings: list[ParseWarning] | None = None,
        filename: str = "Dockerfile",
    ) -> None:
        self.nodes = nodes
        self.escape = escape
        self.directives: dict[str, str] = {} if directives is None else directives
        self.warnings: list[ParseWarning] = [] if warnings is None else warnings
        self.filename = filename

    @property
    def syntax(self) -> str | None:
        """The frontend image a ``# syntax=`` directive names (without its options), if any."""
        value = self.directives.get("syntax")
        return value.split(" ", 1)[0] if value is not None else None


def parse(text: str, filename: str = "Dockerfile") -> DockerfileAST:
    """Parse Dockerfile ``text``; raises :class:`DockerfileSyntaxError` naming file and line."""
    return _Parser(text, filename).run()


def trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return text.strip(_GO_SPACE_CHARS)


def chomp_heredoc(content: str) -> str:
    """Remove the leading tabs of every line, as ``<<-`` asks."""
    if "\t" not in content:
        return content
    return compiled(_LEADING_TABS).sub("", content)


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word such as ``<<EOF``, ``<<-"EOF"`` or ``3<<EOF`` starts, else None."""
    if "<<" not in word:
        return None
    match = compiled(_HEREDOC).match(word)
    if match is None:
        return None
    digits, dash, rest = match.groups()
    if not rest:
        return None
    words = ShellLex("\\", skip_unset_env=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = ShellLex("\\", raw_quotes=True, skip_unset_env=True).process_words(rest, {})
    if len(raw) != 1:
        raise DockerfileSyntaxError(
            f"internal lexing of heredoc produced inconsistent results: {rest}"
        )
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(
        name=words[0],
        file_descriptor=min(int(digits), 2**64 - 1) if digits else 0,
        expand=quotes == raw_quotes,
        chomp=dash == "-",
    )


def heredocs_in_line(line: str) -> list[Heredoc]:
    """The heredoc markers of a logical line, in order (bodies not yet read)."""
    lexer = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lexer.process_words(line, {})
    except DockerfileSyntaxError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


class _Directives:
    """Parser directives and the escape character they set."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.values: dict[str, str] = {}
        self.done = False

    def feed(self, line: str, number: int, filename: str) -> bool:
        """Look at one (left-trimmed) line; True if it was a directive."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = compiled(_DIRECTIVE).match(line[1:].lstrip(_GO_SPACE_CHARS))
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.values:
            raise DockerfileSyntaxError(
                f"{filename}:{number}: only one {key} parser directive can be used",
                hint="remove the repeated directive",
            )
        self.values[key] = value
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileSyntaxError(
                    f"{filename}:{number}: invalid escape token '{value}' does not match ` or \\",
                    hint="use '# escape=\\' or '# escape=`'",
                )
            self.escape = value
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Remove a trailing continuation; returns the line and whether the instruction ends.

        A continuation is the escape character, then only blanks and tabs to the end, where the
        escape character is not itself escaped (BuildKit's ``([^\\])\\[ \t]*$|^\\[ \t]*$``)."""
        body = line.rstrip(" \t")
        if not body.endswith(self.escape) or body[-2:-1] == self.escape:
            return line, True
        return body[:-1], False


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return line.lstrip(_GO_SPACE_CHARS).startswith("#")


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = _split_lines(text)
        self.index = 0
        self.line_number = 0
        self.directives = _Directives()

    def error(self, message: str, line: int, hint: str | None = None) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(f"{self.filename}:{line}: {message}", hint=hint)

    def next_line(self) -> str | None:
        if self.index >= len(self.lines):
            return None
        line = self.lines[self.index]
        self.index += 1
        return line

    def run(self) -> DockerfileAST:
        nodes: list[Node] = []
        warnings: list[ParseWarning] = []
        comments: list[str] = []
        while (raw := self.next_line()) is not None:
            if self.line_number == 0 and raw.startswith("\ufeff"):
                raw = raw[1:]
            if _is_comment(raw):
                comment = trim_space(raw[1:])
                comments = [*comments, comment] if comment else []
            token = _trim_newline(raw).lstrip(_GO_SPACE_CHARS)
            if self.directives.feed(token, self.line_number + 1, self.filename):
                comments = comments[:-1]
            if _is_comment(token):
                token = ""
            self.line_number += 1
            start = self.line_number
            token, ended = self.directives.trim_continuation(token)
            if ended and not token:
                continue
            line, empty_continuation = self.continued(token, ended)
            if empty_continuation:
                warnings.append(
                    ParseWarning(self.line_number, f"Empty continuation line found in: {line}")
                )
            node = self.node(line, start, comments)
            nodes.append(node)
            comments = []
        if not nodes:
            raise self.error(
                "file with no instructions",
                max(self.line_number, 1),
                hint="a Dockerfile needs at least a FROM instruction",
            )
        return DockerfileAST(
            nodes=nodes,
            escape=self.directives.escape,
            directives=dict(self.directives.values),
            warnings=warnings,
            filename=self.filename,
        )

    def continued(self, first: str, ended: bool) -> tuple[str, bool]:
        """Join continuation lines onto ``first``; also says if blank lines were skipped."""
        parts = [first]
        empty = False
        while not ended and (raw := self.next_line()) is not None:
            token = _trim_newline(raw)
            self.directives.feed(token, self.line_number + 1, self.filename)
            self.line_number += 1
            if _is_comment(raw):
                continue
            if not token.lstrip(_GO_SPACE_CHARS):
                empty = True
                continue
            token, ended = self.directives.trim_continuation(token)
            parts.append(token)
        return "".join(parts), empty

    def node(self, line: str, start: int, comments: list[str]) -> Node:
        try:
            node = node_from_line(line, self.directives.escape)
        except DockerfileSyntaxError as exc:
            raise self.error(exc.message, start, exc.hint) from None
        node.comments = list(comments)
        if node.can_contain_heredoc() and "<<" in line:
            try:
                markers = heredocs_in_line(line)
            except DockerfileSyntaxError as exc:
                raise self.error(exc.message, start, exc.hint) from None
            target = node.inner if node.inner is not None else node
            for marker in markers:
                target.heredocs.append(self.heredoc_body(marker, start))
            if target is not node:
                node.heredocs = list(target.heredocs)
        node.start_line = start
        node.end_line = self.line_number
        if node.inner is not None:
            node.inner.start_line, node.inner.end_line = start, self.line_number
        return node

    def heredoc_body(self, marker: Heredoc, start: int) -> Heredoc:
        body: list[str] = []
        while (raw := self.next_line()) is not None:
            self.line_number += 1
            candidate = _trim_newline(raw)
            if marker.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == marker.name:
                return replace(marker, content="".join(body))
            body.append(raw)
        raise self.error(
            f"unterminated heredoc {marker.name}",
            start,
            hint=f"end the here-document with a line containing only {marker.name}",
        )


# -- one logical line -------------------------------------------------------------------------


def node_from_line(line: str, escape: str = "\\") -> Node:
    """Split one logical line (continuations joined) into a node; no heredoc bodies."""
    keyword, flags, rest = split_command(line, escape)
    splitter = _SPLITTERS.get(keyword.lower())
    if keyword.lower() == "onbuild":
        inner = node_from_line(rest, escape) if rest else None
        return Node(keyword, [], flags, False, line, inner=inner)
    if splitter is None:
        return Node(keyword, [""], flags, False, line)  # BuildKit keeps one empty argument
    args, is_json = splitter(rest, escape)
    return Node(keyword, args, flags, is_json, line)


def split_command(line: str, escape: str = "\\") -> tuple[str, list[str], str]:
    """The instruction word, its ``--flags`` and the rest of the line."""
    parts = split_blanks(trim_space(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = extract_flags(parts[1], escape)
    return parts[0], flags, trim_space(rest)


def extract_flags(line: str, escape: str = "\\") -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words (quotes and escapes removed) and what follows them."""
    words: list[str] = []
    n = len(line)
    pos = 0
    while True:
        while pos < n and is_go_space(line[pos]):
            pos += 1
        if pos == n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word: list[str] = []
        quote: str | None = None
        blank_ok = False
        while pos < n:
            ch = line[pos]
            if quote is None and is_go_space(ch):
                break
            pos += 1
            if quote is None and ch in "'\"":
                quote, blank_ok = ch, True
                continue
            if quote is not None and ch == quote:
                quote = None
                continue
            if ch == escape:
                if pos == n:
                    quote = None
                    continue
                ch = line[pos]
                pos += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":
            return ("", words) if pos == n else (line[pos:], words)
        if blank_ok or text:
            words.append(text)


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace keeping quotes and escapes (ENV, LABEL and ARG)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote: str | None = None
    blank_ok = False
    n = len(rest)
    pos = 0
    while pos < n:
        ch = rest[pos]
        pos += 1
        if quote is None:
            if is_go_space(ch):
                if in_word and (blank_ok or word):
                    words.append("".join(word))
                word, in_word, blank_ok = [], False, False
                continue
            in_word = True
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if pos == n:
                    continue
                word.append(ch)
                ch = rest[pos]
                pos += 1
            word.append(ch)
            continue
        if ch == quote:
            quote = None
        elif ch == escape and quote != "'":
            if pos == n:
                quote = None
                continue
            word.append(ch)
            ch = rest[pos]
            pos += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


# -- per-instruction argument splitting ---------------------------------------------------------

_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


class _NotJSON(Exception):
    pass


def parse_json_array(rest: str) -> list[str]:
    """A JSON array of strings; raises _NotJSON when ``rest`` is not JSON at all."""
    rest = rest.lstrip(_GO_SPACE_CHARS)
    if not rest.startswith("["):
        raise _NotJSON
    try:
        value = jsonio.loads(rest, constants=False)
    except (ValueError, RecursionError):
        raise _NotJSON from None
    if not isinstance(value, list):
        raise _NotJSON
    if not all(isinstance(item, str) for item in value):
        raise DockerfileSyntaxError(_NOT_STRINGS, hint='write the exec form as ["prog", "arg"]')
    return [_without_lone_surrogates(item) for item in value]


def _without_lone_surrogates(text: str) -> str:
    """Each lone surrogate (``"\\ud800"`` in the JSON) replaced by U+FFFD, as Go decodes it."""
    if text.isascii():
        return text
    return compiled(_LONE_SURROGATE).sub("\ufffd", text)


def _maybe_json(rest: str, escape: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    try:
        return parse_json_array(rest), True
    except _NotJSON:
        return [rest], False


def _maybe_json_list(rest: str, escape: str) -> tuple[list[str], bool]:
    try:
        return parse_json_array(rest), True
    except _NotJSON:
        return _whitespace_words(rest, escape)


def _whitespace_words(rest: str, escape: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    return split_blanks(rest), False


def _whole_rest(rest: str, escape: str) -> tuple[list[str], bool]:
    return ([rest] if rest else []), False


def _name_or_name_value(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_words(rest, escape), False


def _key_values(instruction: str) -> Callable[[str, str], tuple[list[str], bool]]:
    def split(rest: str, escape: str) -> tuple[list[str], bool]:
        words = parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            parts = split_blanks(rest, maxsplit=1)
            if len(parts) < 2:
                raise DockerfileSyntaxError(
                    f"{instruction} must have two arguments",
                    hint=f"write {instruction} key=value",
                )
            return [parts[0], parts[1], ""], False
        out: list[str] = []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                raise DockerfileSyntaxError(
                    f"Syntax error - can't find = in {_json.encode_basestring_ascii(word)}. "
                    "Must be of the form: name=value",
                    hint="quote values that contain spaces",
                )
            out += [key, value, "="]
        return out, False

    return split


def _healthcheck(rest: str, escape: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not is_go_space(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False
    following = sep
    while following < len(rest) and is_go_space(rest[following]):
        following += 1
    command, is_json = _maybe_json(rest[following:], escape)
    return [rest[:sep], *command], is_json


_SPLITTERS: dict[str, Callable[[str, str], tuple[list[str], bool]]] = {
    "add": _maybe_json_list,
    "arg": _name_or_name_value,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _key_values("ENV"),
    "expose": _whitespace_words,
    "from": _whitespace_words,
    "healthcheck": _healthcheck,
    "label": _key_values("LABEL"),
    "maintainer": _whole_rest,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _whole_rest,
    "user": _whole_rest,
    "volume": _maybe_json_list,
    "workdir": _whole_rest,
}
