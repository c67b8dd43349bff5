"""Go's text/template, as docker's ``--format`` and ``inspect -f`` use it.

Scripts pass docker templates such as ``{{.Repository}}:{{.Tag}}``,
``{{range .Mounts}}{{.Source}} {{end}}`` or ``{{json .Config.Labels}}``; berth must print the
same bytes. This is a reimplementation of the template language from its specification (no
code shared with Go), with the standard library only and without ``re`` or ``json``.

What is supported: text and actions with ``{{-`` / ``-}}`` trimming and ``{{/* comments */}}``;
``.`` and fields ``.A.B``, ``$`` and variables (``{{$x := .Name}}``, ``{{$x = 1}}``),
pipelines ``|``, parenthesised pipelines and fields on them (``(index .Ports 0).Port``);
``if``/``else if``/``else``, ``range`` (lists, maps in key order, ints; ``$i, $v :=``;
``else``; ``break``, ``continue``), ``with``/``else with``; the builtins ``and or not len
index slice eq ne lt le gt ge print printf println html``; docker's functions ``json join
split title lower upper pad truncate``.

Data: dicts stand for Go maps (and docker inspect's JSON objects): a missing key prints
``<no value>``, as docker inspect does. Other objects stand for Go structs: ``{{.Name}}``
reads the attribute ``Name`` (a method is called, with the template's arguments), and a
missing field is an error, as with docker's typed ``--format`` contexts. ``None`` is Go's nil.

Values print as Go prints them: ``true``, ``<nil>``, ``[a b c]``, ``map[a:1 b:2]``, floats
in Go's shortest form (``1e+06``). ``{{json .}}`` writes compact JSON as Go's encoder does:
dicts keep their order (they stand for structs in inspect output: build map-like ones sorted),
objects give their capitalised attributes sorted by name, with ``<>&`` escaped, as docker's
formatter contexts marshal.

    render("{{.Name}} {{if .Running}}up{{else}}down{{end}}", {"Name": "web", "Running": True})
    format_table("table {{.Repository}}\\t{{.Tag}}", rows, {"Repository": "REPOSITORY",
                                                          "Tag": "TAG"})

Errors raise :class:`~berth.errors.UsageError` worded as docker words them:
``template parsing error: template: :1: unexpected "}" in operand``.
"""

from __future__ import annotations

from math import isinf, isnan

from berth.cli.flags import go_quote
from berth.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

__all__ = [
    "MISSING",
    "Template",
    "format_go_float",
    "format_table",
    "go_json",
    "go_sprint",
    "go_sprintf",
    "parse",
    "render",
]


class _Missing:
    """Go's invalid value: what a missing map key yields; prints as ``<no value>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
_NO_FINAL: Any = object()  # "no piped value": distinct from every template value


class _TemplateError(Exception):
    """A Go template error; str() is Go's message (``template: :1: ...``)."""


# ---------------------------------------------------------------------------------------------
# Lexer

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue")
)


def _is_alnum(char: str) -> bool:
    return char == "_" or char.isalnum()


def _describe_char(char: str) -> str:
    """Go's %#U of a rune: U+0021 '!'."""
    return f"U+{ord(char):04X} '{char}'"


class _Token:
    __slots__ = ("kind", "line", "pos", "value")

    def __init__(self, kind: str, value: str, pos: int, line: int) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos
        self.line = line

    def __str__(self) -> str:
        """Go's item String(), used in "unexpected %s in %s"."""
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.value
        if self.kind == "keyword":
            return f"<{self.value}>"
        if len(self.value) > 10:
            return go_quote(self.value[:10]) + "..."
        return go_quote(self.value)


class _Lexer:
    """Splits a template into tokens; stops at the first error (an "error" token)."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.line = 1
        self.tokens: list[_Token] = []
        self.paren_depth = 0

    def emit(self, kind: str, start: int, value: str | None = None) -> None:
        text = self.src[start : self.pos] if value is None else value
        line = self.line
        self.tokens.append(_Token(kind, text, start, line))
        self.line += self.src.count("\n", start, self.pos)

    def run(self) -> list[_Token]:
        trim_leading = False
        src = self.src
        while True:
            start = self.pos
            if trim_leading:
                while self.pos < len(src) and src[self.pos] in _SPACE:
                    self.pos += 1
                self.line += src.count("\n", start, self.pos)
                start = self.pos
            delim = src.find("{{", self.pos)
            end = len(src) if delim < 0 else delim
            left_trim = delim >= 0 and src[delim + 2 : delim + 3] == "-" and (
                src[delim + 3 : delim + 4] in tuple(_SPACE)
            )
            text_end = end
            if left_trim:
                while text_end > start and src[text_end - 1] in _SPACE:
                    text_end -= 1
            if text_end > start:
                self.pos = text_end
                self.emit("text", start)
            self.line += src.count("\n", text_end, end)
            self.pos = end
            if delim < 0:
                self.tokens.append(_Token("eof", "", self.pos, self.line))
                return self.tokens
            trim_leading = self.lex_action(left_trim)
            if self.tokens and self.tokens[-1].kind == "error":
                return self.tokens

    def error(self, message: str) -> bool:
        self.tokens.append(_Token("error", message, self.pos, self.line))
        return False

    def lex_action(self, left_trim: bool) -> bool:
        """Lex one ``{{ ... }}``; return whether the text after it is to be trimmed."""
        src = self.src
        start = self.pos
        self.pos += 4 if left_trim else 2
        if src.startswith("/*", self.pos):
            return self.lex_comment(start)
        self.emit("left", start)
        while True:
            right, trim = self.at_right_delim()
            if right:
                if self.paren_depth:
                    return self.error("unclosed left paren")
                begin = self.pos
                self.pos += 4 if trim else 2
                self.emit("right", begin)
                return trim
            if self.pos >= len(src):
                return self.error("unclosed action")
            char = src[self.pos]
            if char in _SPACE:
                self.lex_space()
            elif not self.lex_operator(char):
                return False

    def lex_comment(self, start: int) -> bool:
        src = self.src
        end = src.find("*/", self.pos + 2)
        if end < 0:
            return self.error("unclosed comment")
        self.line += src.count("\n", self.pos, end)
        self.pos = end + 2
        right, trim = self.at_right_delim()
        if not right:
            return self.error("comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        return trim

    def at_right_delim(self) -> tuple[bool, bool]:
        src, pos = self.src, self.pos
        if src[pos : pos + 1] in tuple(_SPACE) and src.startswith("-}}", pos + 1):
            return True, True
        return src.startswith("}}", pos), False

    def lex_space(self) -> None:
        src = self.src
        start = self.pos
        while self.pos < len(src) and src[self.pos] in _SPACE:
            self.pos += 1
        # a space before "-}}" belongs to the trim marker
        if src.startswith("-}}", self.pos):
            self.pos -= 1
            if self.pos == start:
                return
        self.emit("space", start)

    def at_terminator(self) -> bool:
        src, pos = self.src, self.pos
        if pos >= len(src) or src[pos] in _SPACE or src[pos] in ".,|:()":
            return True
        return src.startswith("}}", pos)

    def lex_operator(self, char: str) -> bool:
        src = self.src
        start = self.pos
        following = src[start + 1 : start + 2]
        if char == "=":
            self.pos += 1
            self.emit("assign", start)
        elif char == ":":
            if following != "=":
                return self.error("expected :=")
            self.pos += 2
            self.emit("declare", start)
        elif char == "|":
            self.pos += 1
            self.emit("pipe", start)
        elif char == '"':
            return self.lex_quote(start)
        elif char == "`":
            end = src.find("`", start + 1)
            if end < 0:
                return self.error("unterminated raw quoted string")
            self.pos = end + 1
            self.emit("rawstring", start)
        elif char == "'":
            return self.lex_char(start)
        elif char == "$" or (char == "." and not following.isdigit()):
            return self.lex_field_or_variable(start, char)
        elif char in "+-." or "0" <= char <= "9":
            return self.lex_number(start)
        elif _is_alnum(char):
            return self.lex_identifier(start)
        elif char == "(":
            self.pos += 1
            self.paren_depth += 1
            self.emit("lparen", start)
        elif char == ")":
            self.pos += 1
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.error("unexpected right paren")
            self.emit("rparen", start)
        elif char.isascii() and char.isprintable():
            self.pos += 1
            self.emit("char", start)
        else:
            return self.error(f"unrecognized character in action: {_describe_char(char)}")
        return True

    def lex_quote(self, start: int) -> bool:
        src = self.src
        pos = start + 1
        while True:
            char = src[pos : pos + 1]
            if char == "\\":
                pos += 1
                char = src[pos : pos + 1]
                if char in ("", "\n"):
                    return self.error("unterminated quoted string")
            elif char in ("", "\n"):
                return self.error("unterminated quoted string")
            elif char == '"':
                break
            pos += 1
        self.pos = pos + 1
        self.emit("string", start)
        return True

    def lex_char(self, start: int) -> bool:
        src = self.src
        pos = start + 1
        while True:
            char = src[pos : pos + 1]
            if char == "\\":
                pos += 1
                char = src[pos : pos + 1]
                if char in ("", "\n"):
                    return self.error("unterminated character constant")
            elif char in ("", "\n"):
                return self.error("unterminated character constant")
            elif char == "'":
                break
            pos += 1
        self.pos = pos + 1
        self.emit("charconst", start)
        return True

    def lex_field_or_variable(self, start: int, sigil: str) -> bool:
        src = self.src
        self.pos += 1
        if self.at_terminator():
            self.emit("var" if sigil == "$" else "dot", start)
            return True
        while self.pos < len(src) and _is_alnum(src[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            return self.error(f"bad character {_describe_char(src[self.pos])}")
        self.emit("var" if sigil == "$" else "field", start)
        return True

    def lex_number(self, start: int) -> bool:
        src = self.src
        pos = start
        if src[pos : pos + 1] in ("+", "-"):
            pos += 1
        digits = "0123456789_"
        if src[pos : pos + 1] == "0" and src[pos + 1 : pos + 2] in tuple("xXoObB"):
            digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[
                src[pos + 1].lower()
            ]
            pos += 2

        def run(allowed: str, at: int) -> int:
            while at < len(src) and src[at] in allowed:
                at += 1
            return at

        pos = run(digits, pos)
        if src[pos : pos + 1] == ".":
            pos = run(digits, pos + 1)
        if digits == "0123456789_" and src[pos : pos + 1] in ("e", "E"):
            pos += 1
            pos += src[pos : pos + 1] in ("+", "-")
            pos = run("0123456789_", pos)
        if len(digits) == 23 and src[pos : pos + 1] in ("p", "P"):
            pos += 1
            pos += src[pos : pos + 1] in ("+", "-")
            pos = run("0123456789_", pos)
        if src[pos : pos + 1] == "i":
            pos += 1
        if pos < len(src) and _is_alnum(src[pos]):
            self.pos = pos
            return self.error(f"bad number syntax: {go_quote(src[start : pos + 1])}")
        self.pos = pos
        self.emit("number", start)
        return True

    def lex_identifier(self, start: int) -> bool:
        src = self.src
        while self.pos < len(src) and _is_alnum(src[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            return self.error(f"bad character {_describe_char(src[self.pos])}")
        word = src[start : self.pos]
        if word in _KEYWORDS:
            kind = "keyword"
        elif word in ("true", "false"):
            kind = "bool"
        elif word == "nil":
            kind = "nil"
        else:
            kind = "ident"
        self.emit(kind, start)
        return True


# ---------------------------------------------------------------------------------------------
# Parse tree


class _Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text


class _Field(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: tuple[str, ...]) -> None:
        super().__init__(pos)
        self.names = names

    def __str__(self) -> str:
        return "".join("." + name for name in self.names)


class _Variable(_Node):
    __slots__ = ("names",)

    def __init__(self, pos: int, names: tuple[str, ...]) -> None:
        super().__init__(pos)
        self.names = names

    def __str__(self) -> str:
        return ".".join(self.names)


class _Chain(_Node):
    __slots__ = ("names", "node")

    def __init__(self, pos: int, node: _Node, names: tuple[str, ...]) -> None:
        super().__init__(pos)
        self.node = node
        self.names = names

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + name for name in self.names)


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def __str__(self) -> str:
        return self.name


class _Dot(_Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class _Constant(_Node):
    """A bool, string or number literal; ``text`` is how it was written."""

    __slots__ = ("text", "value")

    def __init__(self, pos: int, value: object, text: str) -> None:
        super().__init__(pos)
        self.value = value
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[_Node]) -> None:
        super().__init__(pos)
        self.args = args

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, _Pipe) else str(arg) for arg in self.args)


class _Pipe(_Node):
    __slots__ = ("cmds", "decls", "field", "is_assign", "line")

    def __init__(self, pos: int, line: int) -> None:
        super().__init__(pos)
        self.line = line
        self.decls: list[str] = []
        self.is_assign = False
        self.cmds: list[_Command] = []
        self.field: _Field | None = None  # set when the pipeline is just {{.A.B}}: a fast path

    def finish(self) -> None:
        if not self.decls and len(self.cmds) == 1 and len(self.cmds[0].args) == 1:
            only = self.cmds[0].args[0]
            if type(only) is _Field:
                self.field = only

    def __str__(self) -> str:
        text = " | ".join(str(cmd) for cmd in self.cmds)
        if self.decls:
            operator = "=" if self.is_assign else ":="
            return f"{', '.join(self.decls)} {operator} {text}"
        return text


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        super().__init__(pos)
        self.pipe = pipe


class _Control(_Node):
    """{{if}}, {{range}} or {{with}}: ``kind`` says which."""

    __slots__ = ("body", "else_body", "kind", "pipe")

    def __init__(
        self, pos: int, kind: str, pipe: _Pipe, body: list[_Node], else_body: list[_Node] | None
    ) -> None:
        super().__init__(pos)
        self.kind = kind
        self.pipe = pipe
        self.body = body
        self.else_body = else_body


class _LoopJump(_Node):
    """{{break}} or {{continue}}."""

    __slots__ = ("kind",)

    def __init__(self, pos: int, kind: str) -> None:
        super().__init__(pos)
        self.kind = kind


class _End(_Node):
    __slots__ = ()


class _TemplateCall(_Node):
    """{{template "name" pipeline}} (and the call a {{block}} stands for)."""

    __slots__ = ("name", "pipe")

    def __init__(self, pos: int, name: str, pipe: _Pipe | None) -> None:
        super().__init__(pos)
        self.name = name
        self.pipe = pipe

    def __str__(self) -> str:
        pipe = f" {self.pipe}" if self.pipe is not None else ""
        return f"{{{{template {go_quote(self.name)}{pipe}}}}}"


class _Else(_Node):
    __slots__ = ("chained",)

    def __init__(self, pos: int, chained: str | None) -> None:
        super().__init__(pos)
        self.chained = chained  # "if" or "with" for {{else if}} / {{else with}}


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, source: str, functions: Mapping[str, object]) -> None:
        self.tokens = _Lexer(source).run()
        self.index = 0
        self.functions = functions
        self.definitions: dict[str, list[_Node]] = {}
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.line = 1

    def fail(self, message: str) -> _TemplateError:
        return _TemplateError(f"template: :{self.line}: {message}")

    def next(self) -> _Token:
        token = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.index += 1
        self.line = token.line
        return token

    def backup(self) -> None:
        self.index -= 1

    def peek(self) -> _Token:
        return self.tokens[min(self.index, len(self.tokens) - 1)]

    def next_non_space(self) -> _Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> _Token:
        token = self.next_non_space()
        self.backup()
        return token

    def expect(self, kind: str, context: str) -> _Token:
        token = self.next_non_space()
        if token.kind != kind:
            raise self.unexpected(token, context)
        return token

    def unexpected(self, token: _Token, context: str) -> _TemplateError:
        self.line = token.line
        if token.kind == "error":
            return self.fail(token.value)
        return self.fail(f"unexpected {token} in {context}")

    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                saved = self.index
                self.next()
                token = self.next_non_space()
                if token.kind == "keyword" and token.value == "define":
                    self.definition()
                    continue
                self.index = saved
            node = self.text_or_action()
            if isinstance(node, _End):
                raise self.fail("unexpected {{end}}")
            if isinstance(node, _Else):
                raise self.fail("unexpected {{else}}")
            nodes.append(node)
        return nodes

    def item_list(self) -> tuple[list[_Node], _Node]:
        nodes: list[_Node] = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return nodes, node
            nodes.append(node)
        raise self.fail("unexpected EOF")

    def text_or_action(self) -> _Node:
        token = self.next_non_space()
        if token.kind == "text":
            return _Text(token.pos, token.value)
        if token.kind == "left":
            return self.action()
        if token.kind == "error":
            raise self.fail(token.value)
        raise self.unexpected(token, "input")

    def action(self) -> _Node:
        token = self.next_non_space()
        if token.kind == "keyword":
            word = token.value
            if word in ("if", "range", "with"):
                return self.control(word, token.pos)
            if word == "end":
                self.expect("right", "end")
                return _End(token.pos)
            if word == "else":
                return self.else_control(token.pos)
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}")
                self.expect("right", word)
                return _LoopJump(token.pos, word)
            if word == "template":
                return self.template_call(token.pos)
            if word == "block":
                return self.block(token.pos)
        self.backup()
        pipe = self.pipeline("command", "right")
        return _Action(token.pos, pipe)

    def template_name(self, context: str) -> str:
        token = self.next_non_space()
        if token.kind == "rawstring":
            return token.value[1:-1]
        if token.kind == "string":
            try:
                return _unquote(token.value[1:-1], '"')
            except ValueError:
                raise self.fail("invalid syntax") from None
        raise self.unexpected(token, context)

    def named_body(self, context: str) -> list[_Node]:
        """The list up to {{end}} of a {{define}} or {{block}}: its own variables."""
        saved_vars, saved_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        try:
            body, end = self.item_list()
        finally:
            self.vars, self.range_depth = saved_vars, saved_depth
        if not isinstance(end, _End):
            raise self.fail(f"unexpected {{{{else}}}} in {context}")
        return body

    def definition(self) -> None:
        context = "define clause"
        name = self.template_name(context)
        self.expect("right", context)
        self.definitions[name] = self.named_body(context)

    def template_call(self, pos: int) -> _TemplateCall:
        context = "template clause"
        name = self.template_name(context)
        pipe = None
        if self.next_non_space().kind != "right":
            self.backup()
            pipe = self.pipeline(context, "right")
        return _TemplateCall(pos, name, pipe)

    def block(self, pos: int) -> _TemplateCall:
        context = "block clause"
        name = self.template_name(context)
        pipe = self.pipeline(context, "right")
        self.definitions[name] = self.named_body(context)
        return _TemplateCall(pos, name, pipe)

    def else_control(self, pos: int) -> _Node:
        following = self.peek_non_space()
        if following.kind == "keyword" and following.value in ("if", "with"):
            return _Else(pos, following.value)
        self.expect("right", "else")
        return _Else(pos, None)

    def control(self, kind: str, pos: int) -> _Control:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, stop = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: list[_Node] | None = None
        if isinstance(stop, _Else):
            if stop.chained is not None and stop.chained == kind and kind != "range":
                self.next_non_space()  # the "if"/"with" of {{else if}}: one {{end}} closes all
                else_body = [self.control(kind, stop.pos)]
            else:
                else_body, stop = self.item_list()
                if not isinstance(stop, _End):
                    raise self.fail("expected end; found {{else}}")
        del self.vars[mark:]
        return _Control(pos, kind, pipe, body, else_body)

    def pipeline(self, context: str, end: str) -> _Pipe:
        start = self.peek_non_space()
        pipe = _Pipe(start.pos, start.line)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context)
                pipe.finish()
                return pipe
            if token.kind in (
                "bool", "charconst", "dot", "field", "ident", "number", "nil",
                "rawstring", "string", "var", "lparen",
            ):  # fmt: skip
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(token, context)

    def declarations(self, pipe: _Pipe, context: str) -> None:
        saved = self.index
        token = self.next_non_space()
        if token.kind != "var":
            self.index = saved
            return
        following = self.peek_non_space()
        if following.kind in ("assign", "declare"):
            pipe.is_assign = following.kind == "assign"
            self.next_non_space()
            pipe.decls.append(token.value)
            self.vars.append(token.value)
        elif following.kind == "char" and following.value == ",":
            self.next_non_space()
            pipe.decls.append(token.value)
            self.vars.append(token.value)
            if context == "range" and len(pipe.decls) < 2:
                if self.peek_non_space().kind in ("var", "right", "rparen"):
                    self.declarations(pipe, context)
                    return
                raise self.fail("range can only initialize variables")
            raise self.fail(f"too many declarations in {context}")
        else:
            self.index = saved

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            raise self.fail(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], _Constant | _Dot | _Nil):
                raise self.fail(f"non executable command in pipeline stage {stage}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.backup()
            elif token.kind != "pipe":
                raise self.unexpected(token, "operand")
            break
        if not cmd.args:
            raise self.fail("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind != "field":
            return node
        names: list[str] = []
        pos = self.peek().pos
        while self.peek().kind == "field":
            names.append(self.next().value[1:])
        if isinstance(node, _Field):
            return _Field(pos, (*node.names, *names))  # Go reports the chain's position
        if isinstance(node, _Variable):
            return _Variable(pos, (*node.names, *names))
        if isinstance(node, _Constant | _Nil | _Dot):
            raise self.fail(f"unexpected . after term {go_quote(str(node))}")
        return _Chain(pos, node, tuple(names))

    def term(self) -> _Node | None:
        token = self.next_non_space()
        kind = token.kind
        if kind == "ident":
            if token.value not in self.functions:
                raise self.fail(f"function {go_quote(token.value)} not defined")
            return _Identifier(token.pos, token.value)
        if kind == "dot":
            return _Dot(token.pos)
        if kind == "nil":
            return _Nil(token.pos)
        if kind == "var":
            if token.value not in self.vars:
                raise self.fail(f"undefined variable {go_quote(token.value)}")
            return _Variable(token.pos, (token.value,))
        if kind == "field":
            return _Field(token.pos, (token.value[1:],))
        if kind == "bool":
            return _Constant(token.pos, token.value == "true", token.value)
        if kind in ("number", "charconst"):
            return _Constant(token.pos, self.number(token), token.value)
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if kind in ("string", "rawstring"):
            text = token.value
            if kind == "rawstring":
                value = text[1:-1].replace("\r", "")
            else:
                try:
                    value = _unquote(text[1:-1], '"')
                except ValueError:
                    raise self.fail("invalid syntax") from None
            return _Constant(token.pos, value, text)
        self.backup()
        return None

    def number(self, token: _Token) -> int | float:
        from berth.cli.flags import parse_go_float, parse_go_int

        text = token.value
        if token.kind == "charconst":
            try:
                char = _unquote(text[1:-1], "'")
            except ValueError:
                raise self.fail(f"malformed character constant: {text}") from None
            if len(char) != 1:
                raise self.fail(f"malformed character constant: {text}")
            return ord(char)
        if text.endswith("i"):
            raise self.fail(f"complex numbers are not supported: {text}")
        is_hex = text.lstrip("+-")[:2].lower() == "0x"
        floating = any(c in text for c in (".", "p", "P")) or (
            not is_hex and any(c in text for c in "eE")
        )
        try:
            if not floating:
                return parse_go_int(text)
            return parse_go_float(text)
        except ValueError:
            if not floating and _parses(parse_go_float, text):
                raise self.fail(f"integer overflow: {go_quote(text)}") from None
            raise self.fail(f"illegal number syntax: {go_quote(text)}") from None


def _parses(function: Callable[[str], object], text: str) -> bool:
    try:
        function(text)
    except ValueError:
        return False
    return True


_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
}  # fmt: skip


def _unquote(body: str, quote: str) -> str:
    """strconv.Unquote of the inside of a "..." or '...' literal; ValueError if invalid."""
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        index += 1
        if char == quote:
            raise ValueError(body)
        if char != "\\":
            out.append(char)
            continue
        escape = body[index : index + 1]
        index += 1
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
        elif escape == quote:
            out.append(quote)
        elif escape in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[index : index + size]
            if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(body)
            index += size
            out.append(chr(int(digits, 16)))
        elif escape in "01234567" and escape:
            digits = body[index - 1 : index + 2]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise ValueError(body)
            index += 2
            out.append(chr(int(digits, 8)))
        else:
            raise ValueError(body)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Go's formatting of values (fmt's %v, %d, %q..., encoding/json)


def _float_digits(value: float) -> tuple[str, int]:
    """Shortest decimal digits of abs(value) and the decimal point position: 0.d1d2 x 10**dp."""
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(stripped))
    return stripped.rstrip("0"), point


def format_go_float(value: float, *, json: bool = False) -> str:
    """Go's %v of a float64 ('g', shortest: "1e+06", "0.5"), or encoding/json's form."""
    if isnan(value):
        return "NaN"
    if isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if value < 0 or (value == 0 and str(value).startswith("-")) else ""
    digits, point = _float_digits(value)
    if not digits:
        return sign + "0"
    exponent = point - 1
    if json:
        scientific = abs(value) < 1e-6 or abs(value) >= 1e21
    else:
        scientific = exponent < -4 or exponent >= 6
    if scientific:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        width = 1 if json else 2
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):0{width}d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_type(value: object) -> str:
    """The Go type name docker would show for a value in error messages."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def _sort_key(value: object) -> tuple[int, object]:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def _public_fields(value: object) -> list[tuple[str, object]]:
    """A struct-like object's exported (capitalised, non-method) attributes, by name."""
    names = set(dir(value))
    fields = []
    for name in sorted(names):
        if not name[:1].isupper():
            continue
        attribute = getattr(value, name)
        if callable(attribute):
            continue
        fields.append((name, attribute))
    return fields


def go_sprint(value: object) -> str:
    """fmt.Sprint of one value (%v): how ``{{.Field}}`` prints."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_sprint(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: _sort_key(item[0]))
        return "map[" + " ".join(f"{go_sprint(k)}:{go_sprint(v)}" for k, v in items) + "]"
    if type(value).__str__ is not object.__str__:
        return str(value)
    return "{" + " ".join(go_sprint(v) for _, v in _public_fields(value)) + "}"


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _json_string(text: str, escape_html: bool) -> str:
    out = ['"']
    for char in text:
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif escape_html and char in _HTML_ESCAPES:
            out.append(_HTML_ESCAPES[char])
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_json(value: object, *, escape_html: bool = False) -> str:
    """Compact JSON as Go's encoding/json writes it (docker's ``{{json .}}``).

    Dicts keep their order; struct-like objects are marshalled as docker's formatter
    contexts are: capitalised attributes sorted by name, ``<>&`` escaped.
    """
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, str):
        return _json_string(value, escape_html)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if isnan(value) or isinf(value):
            raise _FunctionError(f"json: unsupported value: {format_go_float(value)}")
        return format_go_float(value, json=True)
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(item, escape_html=escape_html) for item in value) + "]"
    if isinstance(value, dict):
        members = (
            f"{_json_string(str(k), escape_html)}:{go_json(v, escape_html=escape_html)}"
            for k, v in value.items()
        )
        return "{" + ",".join(members) + "}"
    fields = _public_fields(value)
    members = (f"{_json_string(k, True)}:{go_json(v, escape_html=True)}" for k, v in fields)
    return "{" + ",".join(members) + "}"


# ---------------------------------------------------------------------------------------------
# printf


def _pad(text: str, width: int | None, minus: bool, zero: bool = False) -> str:
    if width is None or len(text) >= width:
        return text
    if minus:
        return text + " " * (width - len(text))
    if zero:
        sign = text[:1] if text[:1] in ("+", "-", " ") else ""
        body = text[len(sign) :]
        return sign + "0" * (width - len(text)) + body
    return " " * (width - len(text)) + text


def _bad_verb(verb: str, value: object) -> str:
    if value is None or value is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(value)}={go_sprint(value)})"


class _Spec:
    __slots__ = ("minus", "plus", "precision", "sharp", "space", "verb", "width", "zero")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.precision: int | None = None
        self.verb = "v"


def _format_int(spec: _Spec, value: int) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(chr(value), spec.width, spec.minus)
    if verb == "q":
        return _pad(go_quote(chr(value), "'"), spec.width, spec.minus)
    if verb == "U":
        return _pad(f"U+{value:04X}", spec.width, spec.minus)
    bases = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "O": "o", "b": "b"}
    if verb not in bases:
        return _bad_verb(verb, value)
    digits = format(abs(value), bases[verb])
    if spec.precision is not None:
        digits = digits.zfill(spec.precision) if spec.precision or value else ""
    prefix = ""
    if verb == "O" or (verb == "o" and spec.sharp and not digits.startswith("0")):
        prefix = "0o" if verb == "O" else "0"
    elif verb in ("x", "X") and spec.sharp:
        prefix = "0" + verb
    sign = "-" if value < 0 else "+" if spec.plus else " " if spec.space else ""
    zero = spec.zero and spec.precision is None and not spec.minus
    if zero and spec.width is not None:
        digits = digits.zfill(spec.width - len(sign) - len(prefix))
    return _pad(sign + prefix + digits, spec.width, spec.minus)


def _format_float(spec: _Spec, value: float) -> str:
    verb = spec.verb
    if verb not in ("v", "e", "E", "f", "F", "g", "G"):
        return _bad_verb(verb, value)
    if isnan(value) or isinf(value):
        body = format_go_float(value)
    elif verb in ("v", "g", "G") and spec.precision is None:
        body = format_go_float(value)
        body = body.upper() if verb == "G" else body
    else:
        precision = 6 if spec.precision is None else spec.precision
        body = f"{value:.{precision}{verb}}"
    if spec.plus and body[:1] not in ("-", "+"):
        body = "+" + body
    elif spec.space and body[:1] not in ("-", "+"):
        body = " " + body
    return _pad(body, spec.width, spec.minus, spec.zero)


def _format_string(spec: _Spec, value: str) -> str:
    verb = spec.verb
    if spec.precision is not None:
        value = value[: spec.precision]
    if verb == "v" and spec.sharp:
        body = go_quote(value)
    elif verb in ("s", "v"):
        body = value
    elif verb == "q":
        if spec.sharp and "`" not in value and value.replace("\t", " ").isprintable():
            body = f"`{value}`"
        else:
            body = go_quote(value)
            if spec.plus:  # %+q: ASCII only
                body = "".join(c if c.isascii() else _ascii_escape(c) for c in body)
    elif verb in ("x", "X"):
        body = _hex_bytes(value.encode(), spec)
    else:
        return _bad_verb(verb, value)
    return _pad(body, spec.width, spec.minus, spec.zero)


def _hex_bytes(data: bytes, spec: _Spec) -> str:
    """%x of a string: "6869", "0x6869" with #, "68 69" (or "0x68 0x69") with a space."""
    prefix = ("0" + spec.verb) if spec.sharp else ""
    digits = [f"{byte:02x}" if spec.verb == "x" else f"{byte:02X}" for byte in data]
    if spec.space:
        return " ".join(prefix + pair for pair in digits)
    return prefix + "".join(digits) if digits else ""


def _ascii_escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _go_syntax(value: object) -> str:
    """%#v: a Go-syntax representation."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list | tuple):
        kind = "[]string" if all(isinstance(v, str) for v in value) else "[]interface {}"
        return kind + "{" + ", ".join(_go_syntax(v) for v in value) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: _sort_key(item[0]))
        body = ", ".join(f"{_go_syntax(k)}:{_go_syntax(v)}" for k, v in items)
        return f"map[string]interface {{}}{{{body}}}"
    return go_sprint(value)


def _format_value(spec: _Spec, value: object) -> str:
    verb = spec.verb
    if verb == "v" and spec.sharp:
        return _pad(_go_syntax(value), spec.width, spec.minus)
    if value is MISSING or value is None:
        return _pad("<nil>", spec.width, spec.minus) if verb == "v" else _bad_verb(verb, value)
    if isinstance(value, bool):
        if verb in ("t", "v"):
            return _pad("true" if value else "false", spec.width, spec.minus)
        return _bad_verb(verb, value)
    if isinstance(value, int):
        return _format_int(spec, value)
    if isinstance(value, float):
        return _format_float(spec, value)
    if isinstance(value, str):
        return _format_string(spec, value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format_value(spec, item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: _sort_key(item[0]))
        return "map[" + " ".join(
            f"{_format_value(spec, k)}:{_format_value(spec, v)}" for k, v in items
        ) + "]"
    if verb in ("v", "s"):
        return _pad(go_sprint(value), spec.width, spec.minus)
    return _bad_verb(verb, value)


def go_sprintf(fmt: str, *args: object) -> str:
    """fmt.Sprintf: the verbs %v %T %s %q %d %t %x %X %o %O %b %c %U %e %f %g %%, flags,
    widths, precisions, ``*`` and explicit argument indexes (``%[2]d``), and Go's
    ``%!d(string=x)`` / ``%!d(MISSING)`` / ``%!(EXTRA ...)`` for mismatches."""
    out: list[str] = []
    state = _PrintfState(fmt, args)
    index = 0
    while index < len(fmt):
        percent = fmt.find("%", index)
        if percent < 0:
            out.append(fmt[index:])
            break
        out.append(fmt[index:percent])
        index = state.directive(percent + 1, out)
    if not state.reordered and state.argnum < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{_go_type(a)}={go_sprint(a)}" for a in args[state.argnum :]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


class _PrintfState:
    """Go's doPrintf bookkeeping: the next argument, and whether indexes were used."""

    def __init__(self, fmt: str, args: Sequence[object]) -> None:
        self.fmt = fmt
        self.args = args
        self.argnum = 0
        self.reordered = False
        self.good = True

    def arg_number(self, index: int) -> tuple[int, bool]:
        """An explicit ``[n]`` at ``index``: move to argument n; return the new index."""
        fmt = self.fmt
        if index >= len(fmt) or fmt[index] != "[":
            return index, False
        self.reordered = True
        close = fmt.find("]", index + 1) if len(fmt) - index >= 3 else -1
        if close < 0:
            self.good = False
            return index + 1, False
        digits = fmt[index + 1 : close]
        if digits.isdigit() and digits.isascii() and 0 < int(digits) <= len(self.args):
            self.argnum = int(digits) - 1
            return close + 1, True
        self.good = False
        return close + 1, digits.isdigit()

    def int_argument(self) -> int | None:
        if self.argnum >= len(self.args):
            return None
        value = self.args[self.argnum]
        self.argnum += 1
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 1_000_000:
            return value
        return None

    def directive(self, index: int, out: list[str]) -> int:
        """Format the directive whose flags start at ``index``; return where text resumes."""
        fmt, end = self.fmt, len(self.fmt)
        spec = _Spec()
        self.good = True
        while index < end and fmt[index] in "+-# 0":
            flag = fmt[index]
            spec.plus |= flag == "+"
            spec.sharp |= flag == "#"
            spec.space |= flag == " "
            if flag == "-":
                spec.minus, spec.zero = True, False
            elif flag == "0":
                spec.zero = not spec.minus
            index += 1
        index, after_index = self.arg_number(index)
        if index < end and fmt[index] == "*":
            index += 1
            spec.width = self.int_argument()
            if spec.width is None:
                out.append("%!(BADWIDTH)")
            elif spec.width < 0:
                spec.width, spec.minus, spec.zero = -spec.width, True, False
            after_index = False
        else:
            index, spec.width = _number(fmt, index)
            if after_index and spec.width is not None:
                self.good = False
        if index + 1 < end and fmt[index] == ".":
            index += 1
            if after_index:
                self.good = False
            index, after_index = self.arg_number(index)
            if index < end and fmt[index] == "*":
                index += 1
                spec.precision = self.int_argument()
                if spec.precision is not None and spec.precision < 0:
                    spec.precision = None
                elif spec.precision is None:
                    out.append("%!(BADPREC)")
                after_index = False
            else:
                index, spec.precision = _number(fmt, index)
                spec.precision = spec.precision or 0
        if not after_index:
            index, after_index = self.arg_number(index)
        if index >= end:
            out.append("%!(NOVERB)")
            return index
        spec.verb = verb = fmt[index]
        index += 1
        if verb == "%":
            out.append("%")
        elif not self.good:
            out.append(f"%!{verb}(BADINDEX)")
        elif self.argnum >= len(self.args):
            out.append(f"%!{verb}(MISSING)")
        else:
            value = self.args[self.argnum]
            self.argnum += 1
            if verb == "T":
                out.append(_pad(_go_type(value), spec.width, spec.minus))
            else:
                out.append(_format_value(spec, value))
        return index


def _number(fmt: str, index: int) -> tuple[int, int | None]:
    start = index
    while index < len(fmt) and "0" <= fmt[index] <= "9":
        index += 1
    return index, (int(fmt[start:index]) if index > start else None)


def _sprint(args: Sequence[object]) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out: list[str] = []
    for position, arg in enumerate(args):
        if position and not isinstance(arg, str) and not isinstance(args[position - 1], str):
            out.append(" ")
        out.append(go_sprint(arg))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Functions


class _FunctionError(Exception):
    """An error a template function returns: reported as "error calling NAME: ..."."""


class _TypeMismatch(Exception):
    """An argument of the wrong type: reported without the "error calling" prefix."""


def _want_str(value: object) -> str:
    if value is MISSING:
        raise _TypeMismatch("invalid value; expected string")
    if not isinstance(value, str):
        raise _TypeMismatch(f"wrong type for value; expected string; got {_go_type(value)}")
    return value


def _want_int(value: object) -> int:
    if value is MISSING:
        raise _TypeMismatch("invalid value; expected int")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _TypeMismatch(f"wrong type for value; expected int; got {_go_type(value)}")
    return value


def _truth(value: object) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, lists and maps are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _basic_kind(value: object) -> str:
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: object, *others: object) -> bool:
    if not others:
        raise _FunctionError("missing argument for comparison")
    kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if kind != other_kind:
            if kind != "invalid" and other_kind != "invalid":
                raise _FunctionError("incompatible types for comparison")
            continue
        if kind == "other":
            if isinstance(first, list | tuple | dict) or isinstance(other, list | tuple | dict):
                raise _FunctionError(f"non-comparable type {go_sprint(first)}: {_go_type(first)}")
            if first is other or first == other:
                return True
        elif kind == "invalid" or first == other:
            return True
    return False


def _ne(first: object, second: object) -> bool:
    return not _eq(first, second)


def _less(first: object, second: object) -> bool:
    kind, other_kind = _basic_kind(first), _basic_kind(second)
    if kind not in ("int", "float", "string") or other_kind not in ("int", "float", "string"):
        raise _FunctionError("invalid type for comparison")
    if kind != other_kind:
        raise _FunctionError("incompatible types for comparison")
    return bool(first < second)  # type: ignore[operator]


def _le(first: object, second: object) -> bool:
    return _less(first, second) or _eq(first, second)


def _gt(first: object, second: object) -> bool:
    return not _le(first, second)


def _ge(first: object, second: object) -> bool:
    return not _less(first, second)


def _not(value: object) -> bool:
    return not _truth(value)


def _len(value: object) -> int:
    if value is None:
        raise _FunctionError("len of nil pointer")
    if value is MISSING:
        raise _FunctionError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | dict):
        return len(value)
    raise _FunctionError(f"len of type {_go_type(value)}")


def _index_position(index: object, length: int, kind: str = "slice") -> int:
    if index is None or index is MISSING:
        raise _FunctionError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _FunctionError(f"cannot index slice/array with type {_go_type(index)}")
    if index < 0 or index > length:
        raise _FunctionError(f"index out of range: {index}")
    if index == length:  # Go's bounds check lets this through to reflect, which panics
        raise _FunctionError(f"reflect: {kind} index out of range")
    return index


def _index(item: object, *indexes: object) -> object:
    if item is MISSING:
        raise _FunctionError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise _FunctionError("index of nil pointer")
        if isinstance(item, str):
            item = item.encode()[_index_position(index, len(item.encode()), "string")]
        elif isinstance(item, list | tuple):
            item = item[_index_position(index, len(item))]
        elif isinstance(item, dict):
            if index is MISSING:
                raise _FunctionError("value is nil; should be of type string")
            item = item.get(index, MISSING)
        else:
            raise _FunctionError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: object, *indexes: object) -> object:
    if not isinstance(item, str | list | tuple):
        raise _FunctionError(f"can't slice item of type {_go_type(item)}")
    if len(indexes) > 3 or (isinstance(item, str) and len(indexes) > 2):
        raise _FunctionError(f"too many slice indexes: {len(indexes)}")
    length = len(item)
    bounds = []
    for index in indexes:
        if not isinstance(index, int) or isinstance(index, bool):
            raise _FunctionError(f"cannot index slice/array with type {_go_type(index)}")
        if index < 0 or index > length:
            raise _FunctionError(f"index out of range: {index}")
        bounds.append(index)
    low = bounds[0] if bounds else 0
    high = bounds[1] if len(bounds) > 1 else length
    if low > high:
        raise _FunctionError(f"invalid slice index: {low} > {high}")
    return item[low:high]


def _as_any(args: Sequence[object]) -> list[object]:
    """Arguments to a Go ``...any`` parameter: a missing value arrives as nil."""
    return [None if arg is MISSING else arg for arg in args]


def _printf(fmt: object, *args: object) -> str:
    return go_sprintf(_want_str(fmt), *_as_any(args))


def _print(*args: object) -> str:
    return _sprint(_as_any(args))


def _println(*args: object) -> str:
    return " ".join(go_sprint(arg) for arg in _as_any(args)) + "\n"


def _html(*args: object) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(_as_any(args))
    replacements = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;",
                    "\0": "\ufffd"}
    return "".join(replacements.get(char, char) for char in text)


def _json(value: object) -> str:
    return go_json(value)


def _join(elements: object, separator: object) -> str:
    sep = _want_str(separator)
    if elements is None or elements is MISSING:
        return ""
    if isinstance(elements, list | tuple):
        return sep.join(go_sprint(item) for item in elements)
    if isinstance(elements, dict):
        return sep.join(sorted(go_sprint(item) for item in elements.values()))
    raise _FunctionError(f"expected slice, got {_go_type(elements)}")


def _split(text: object, separator: object) -> list[str]:
    value, sep = _want_str(text), _want_str(separator)
    return list(value) if sep == "" else value.split(sep)


def _title(text: object) -> str:
    value = _want_str(text)
    out = []
    previous = " "
    for char in value:
        if _is_separator(previous):
            upper = char.title()
            out.append(upper if len(upper) == 1 else char)
        else:
            out.append(char)
        previous = char
    return "".join(out)


def _is_separator(char: str) -> bool:
    if char.isascii():
        return not (char.isalnum() or char == "_")
    if char.isalpha() or char.isdigit():
        return False
    return char.isspace()


def _lower(text: object) -> str:
    return _want_str(text).lower()


def _upper(text: object) -> str:
    return _want_str(text).upper()


def _pad_func(text: object, prefix: object, suffix: object) -> str:
    value = _want_str(text)
    before, after = _want_int(prefix), _want_int(suffix)
    if not value:
        return value
    return " " * before + value + " " * after


def _truncate(text: object, length: object) -> str:
    value, size = _want_str(text), _want_int(length)
    return value if len(value) < size else value[:size]


def _same_string(text: object, *ignored: object) -> str:
    """A header-row stand-in: docker leaves the column name as it is."""
    return _want_str(text)


# name -> (function, minimum arguments, maximum arguments or None)
_Function = tuple["Callable[..., object]", int, "int | None"]
_BUILTINS: dict[str, _Function] = {
    "and": (_truth, 1, None),  # short-circuit: evaluated by the executor
    "or": (_truth, 1, None),
    "not": (_not, 1, 1),
    "len": (_len, 1, 1),
    "index": (_index, 1, None),
    "slice": (_slice, 1, None),
    "eq": (_eq, 1, None),
    "ne": (_ne, 2, 2),
    "lt": (_less, 2, 2),
    "le": (_le, 2, 2),
    "gt": (_gt, 2, 2),
    "ge": (_ge, 2, 2),
    "print": (_print, 0, None),
    "printf": (_printf, 1, None),
    "println": (_println, 0, None),
    "html": (_html, 0, None),
    "json": (_json, 1, 1),
    "join": (_join, 2, 2),
    "split": (_split, 2, 2),
    "title": (_title, 1, 1),
    "lower": (_lower, 1, 1),
    "upper": (_upper, 1, 1),
    "pad": (_pad_func, 3, 3),
    "truncate": (_truncate, 2, 2),
}
_HEADER_FUNCTIONS: dict[str, _Function] = {
    **_BUILTINS,
    "json": (_same_string, 1, 1),
    "split": (_same_string, 2, 2),
    "join": (_same_string, 2, 2),
    "title": (_same_string, 1, 1),
    "lower": (_same_string, 1, 1),
    "upper": (_same_string, 1, 1),
    "truncate": (_same_string, 2, 2),
}


# ---------------------------------------------------------------------------------------------
# Execution


_NO_ARGS: list[_Node] = []
_SCALARS = (str, int, float, bool, list, tuple)
_MAX_DEPTH = 100  # nested {{template}} calls (Go allows 100000; Python's stack does not)


class _Jump(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _State:
    """One execution: output, variables, functions, and where errors are reported."""

    __slots__ = ("depth", "functions", "missing", "name", "out", "source", "templates", "vars")

    def __init__(
        self,
        template: Template,
        functions: dict[str, _Function],
        missing: object,
        data: object,
    ) -> None:
        self.source = template.source
        self.templates = template.definitions
        self.functions = functions
        self.missing = missing
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", data]]
        self.name = ""
        self.depth = 0

    def fail(self, node: _Node, message: str) -> _TemplateError:
        before = self.source[: node.pos]
        line = before.count("\n") + 1
        column = node.pos - (before.rfind("\n") + 1) if "\n" in before else node.pos
        return _TemplateError(
            f"template: :{line}:{column}: executing {go_quote(self.name)} at <{node}>: {message}"
        )

    def variable(self, node: _Node, name: str) -> object:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.fail(node, f"undefined variable: {name}")

    def set_variable(self, node: _Node, name: str, value: object) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.fail(node, f"undefined variable: {name}")

    def walk(self, dot: object, nodes: list[_Node]) -> None:
        out = self.out
        for node in nodes:
            if type(node) is _Text:
                out.append(node.text)
            elif type(node) is _Action:
                pipe = node.pipe
                value = self.pipeline(dot, pipe)
                if not pipe.decls:
                    out.append(value if type(value) is str else self.printable(node, value))
            elif type(node) is _Control:
                self.control(dot, node)
            elif type(node) is _LoopJump:
                raise _Jump(node.kind)
            elif type(node) is _TemplateCall:
                self.call_template(dot, node)

    def call_template(self, dot: object, node: _TemplateCall) -> None:
        body = self.templates.get(node.name)
        if body is None:
            raise self.fail(node, f"template {go_quote(node.name)} not defined")
        if self.depth >= _MAX_DEPTH:
            raise self.fail(node, f"exceeded maximum template depth ({_MAX_DEPTH})")
        value = MISSING if node.pipe is None else self.pipeline(dot, node.pipe)
        saved = self.vars, self.name
        self.vars, self.name = [["$", value]], node.name
        self.depth += 1
        try:
            self.walk(value, body)
        finally:
            self.vars, self.name = saved
            self.depth -= 1

    def printable(self, node: _Node, value: object) -> str:
        if callable(value) and not isinstance(value, type):
            raise self.fail(node, f"can't print {node} of type func")
        return go_sprint(value)

    def control(self, dot: object, node: _Control) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            value = self.pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range(self, dot: object, node: _Control) -> None:
        value = self.pipeline(dot, node.pipe)
        items: Iterable[tuple[object, object]]
        if isinstance(value, list | tuple):
            items = enumerate(value)
        elif isinstance(value, dict):
            items = ((key, value[key]) for key in sorted(value, key=_sort_key))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = ((i, i) for i in range(value))
        elif value is None or value is MISSING:
            items = ()
        else:
            raise self.fail(node.pipe, f"range can't iterate over {go_sprint(value)}")
        decls = node.pipe.decls
        ran = False
        for key, element in items:
            ran = True
            if decls:
                if node.pipe.is_assign:
                    self.set_variable(node, decls[0], key if len(decls) > 1 else element)
                    if len(decls) > 1:
                        self.set_variable(node, decls[1], element)
                else:
                    self.vars[-1][1] = element
                    if len(decls) > 1:
                        self.vars[-2][1] = key
            mark = len(self.vars)
            try:
                self.walk(element, node.body)
            except _Jump as jump:
                if jump.kind == "break":
                    break
            finally:
                del self.vars[mark:]
        if not ran and node.else_body is not None:
            self.walk(dot, node.else_body)

    def pipeline(self, dot: object, pipe: _Pipe) -> object:
        field = pipe.field
        if field is not None:
            value = dot
            for name in field.names:
                if type(value) is dict:
                    value = value.get(name, self.missing)
                else:
                    value = self.field(dot, name, field, _NO_ARGS, _NO_FINAL, value)
            return value
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, pipe, cmd, value)
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_variable(pipe, name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: object, pipe: _Pipe, cmd: _Command, final: object) -> object:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.field_chain(dot, dot, first, first.names, cmd.args, final)
        if isinstance(first, _Chain):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Variable):
            return self.variable_node(dot, first, cmd.args, final)
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            # Go reports a parenthesised first word at the enclosing pipeline
            where = pipe if isinstance(first, _Pipe) else first
            raise self.fail(where, f"can't give argument to non-function {first}")
        if isinstance(first, _Pipe):
            return self.pipeline(dot, first)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            raise self.fail(first, "nil is not a command")
        assert isinstance(first, _Constant)
        return first.value

    def argument(self, dot: object, node: _Node) -> object:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Constant):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, dot, node, node.names, [node], _NO_FINAL)
        if isinstance(node, _Variable):
            return self.variable_node(dot, node, [node], _NO_FINAL)
        if isinstance(node, _Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, _Identifier):
            return self.function(dot, node, node, [node], _NO_FINAL)
        assert isinstance(node, _Chain)
        return self.chain(dot, node, [node], _NO_FINAL)

    def chain(self, dot: object, node: _Chain, args: list[_Node], final: object) -> object:
        if isinstance(node.node, _Nil):
            raise self.fail(node, f"indirection through explicit nil in {node}")
        receiver = self.argument(dot, node.node)
        return self.field_chain(dot, receiver, node, node.names, args, final)

    def variable_node(
        self, dot: object, node: _Variable, args: list[_Node], final: object
    ) -> object:
        value = self.variable(node, node.names[0])
        if len(node.names) == 1:
            if len(args) > 1 or final is not _NO_FINAL:
                raise self.fail(node, f"can't give argument to non-function {node}")
            return value
        return self.field_chain(dot, value, node, node.names[1:], args, final)

    def field_chain(
        self,
        dot: object,
        receiver: object,
        node: _Node,
        names: Sequence[str],
        args: list[_Node],
        final: object,
    ) -> object:
        for name in names[:-1]:
            receiver = self.field(dot, name, node, [node], _NO_FINAL, receiver)
        return self.field(dot, names[-1], node, args, final, receiver)

    def field(
        self,
        dot: object,
        name: str,
        node: _Node,
        args: list[_Node],
        final: object,
        receiver: object,
    ) -> object:
        if receiver is MISSING:
            return MISSING
        has_args = len(args) > 1 or final is not _NO_FINAL
        if receiver is None:
            raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.fail(node, f"{name} is not a method but has arguments")
            return receiver.get(name, self.missing)
        if isinstance(receiver, _SCALARS) or not name[:1].isupper():
            raise self.fail(node, f"can't evaluate field {name} in type {_go_type(receiver)}")
        try:
            value = getattr(receiver, name)
        except AttributeError:
            raise self.fail(
                node, f"can't evaluate field {name} in type {_go_type(receiver)}"
            ) from None
        if callable(value) and not isinstance(value, type):
            call_args = [self.argument(dot, arg) for arg in args[1:]]
            if final is not _NO_FINAL:
                call_args.append(final)
            try:
                return value(*call_args)
            except _TemplateError:
                raise
            except Exception as error:
                raise self.fail(node, f"error calling {name}: {error}") from None
        if has_args:
            raise self.fail(node, f"{name} has arguments but cannot be invoked as function")
        return value

    def function(
        self, dot: object, ident: _Identifier, cmd: _Node, args: list[_Node], final: object
    ) -> object:
        name = ident.name
        function, minimum, maximum = self.functions[name]
        count = len(args) - 1 + (final is not _NO_FINAL)
        if count < minimum or (maximum is not None and count > maximum):
            want = f"at least {minimum}" if maximum is None else str(minimum)
            raise self.fail(ident, f"wrong number of args for {name}: want {want} got {count}")
        if name in ("and", "or"):
            return self.and_or(dot, name, args[1:], final)
        values = [self.argument(dot, arg) for arg in args[1:]]
        if final is not _NO_FINAL:
            values.append(final)
        try:
            return function(*values)
        except _TypeMismatch as error:
            raise self.fail(cmd, str(error)) from None
        except _FunctionError as error:
            raise self.fail(cmd, f"error calling {name}: {error}") from None

    def and_or(self, dot: object, name: str, args: list[_Node], final: object) -> object:
        value: object = MISSING
        for arg in args:
            value = self.argument(dot, arg)
            if _truth(value) == (name == "or"):
                return value
        if final is not _NO_FINAL:
            value = final
        return value


# ---------------------------------------------------------------------------------------------
# Public API


class Template:
    """A parsed template; :meth:`execute` renders it for one value of ``.``."""

    __slots__ = ("_nodes", "definitions", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            parser = _Parser(source, _BUILTINS)
            self._nodes = parser.parse()
        except _TemplateError as error:
            raise UsageError(f"template parsing error: {error}") from None
        self.definitions = parser.definitions

    def execute(self, data: object) -> str:
        """Render with ``.`` (and ``$``) bound to ``data``."""
        state = _State(self, _BUILTINS, MISSING, data)
        try:
            state.walk(data, self._nodes)
        except _TemplateError as error:
            raise UsageError(f"template parsing error: {error}") from None
        except RecursionError:
            raise UsageError("template parsing error: template: nested too deeply") from None
        return "".join(state.out)

    def execute_header(self, headers: Mapping[str, str]) -> str:
        """The header row of a ``table`` format, as docker renders it.

        Fields are looked up in ``headers`` (a missing one is empty), docker's string
        functions leave their argument alone, and an error ends the row quietly.
        """
        state = _State(self, _HEADER_FUNCTIONS, "", dict(headers))
        try:
            state.walk(state.vars[0][1], self._nodes)
        except (_TemplateError, _Jump):
            pass
        return "".join(state.out)


_CACHE: dict[str, Template] = {}


def parse(source: str) -> Template:
    """Parse (once: templates are cached) or raise UsageError as docker words it."""
    template = _CACHE.get(source)
    if template is None:
        template = Template(source)
        if len(_CACHE) >= 256:
            _CACHE.clear()
        _CACHE[source] = template
    return template


def render(template: str, data: object) -> str:
    """Execute a Go template against ``data`` (what ``inspect -f`` does for each object)."""
    return parse(template).execute(data)


def docker_format_source(format: str) -> str:
    """What docker's formatter executes for a ``--format`` value.

    "json" means ``{{json .}}``; a "table" prefix is removed; spaces around are trimmed;
    the two-character sequences ``\\t`` and ``\\n`` become a tab and a newline.
    """
    if format == "json":
        return "{{json .}}"
    if format.startswith("table"):
        format = format[len("table") :]
    return format.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def format_table(format: str, rows: Iterable[object], headers: Mapping[str, str]) -> str:
    """Render rows for a command's ``--format``, exactly as docker's formatter does.

    With a ``table`` prefix: a header row (each field replaced by its name from
    ``headers``, e.g. ``{"ID": "IMAGE ID"}``), then one line per row, aligned in columns
    by Go's tabwriter as docker configures it (minwidth 10, padding 3). Without it: one
    line per row, no header. ``json`` renders each row as ``{{json .}}``. The bare word
    "table" (docker's default) is for the caller to replace with its default format.
    """
    template = parse(docker_format_source(format))
    lines = [template.execute(row) + "\n" for row in rows]
    if not format.startswith("table"):
        return "".join(lines)
    from berth.cli.tabwriter import align

    header = template.execute_header(headers)
    return align(header + "\n" + "".join(lines), minwidth=10, tabwidth=1, padding=3)
