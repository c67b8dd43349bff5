"""BuildKit's shell-word lexer: quotes, escapes and ``$VAR`` expansion as Dockerfiles see them.

This is not a shell. It is the small lexer BuildKit's Dockerfile frontend applies to the
arguments of ``ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR`` (and to ``ARG``
defaults and ``RUN --mount`` options); ``RUN``, ``CMD`` and ``ENTRYPOINT`` are left to the
container's shell. What it does:

- single quotes keep everything literally (no escape inside them);
- double quotes keep everything but ``$`` expansions, and the escape character escapes only
  ``"``, ``$`` and itself there (``"\\t"`` stays ``\\t``);
- outside quotes the escape character (``\\`` or `````, see the ``escape`` directive) makes the
  next character literal, and is dropped at the very end of the input;
- ``$NAME``, ``${NAME}``, and the modifiers ``${NAME:-word}`` ``${NAME-word}``
  ``${NAME:+word}`` ``${NAME+word}`` ``${NAME:?message}`` ``${NAME?message}`` plus the
  pattern forms supported since docker/dockerfile 1.7: ``${NAME#pat}`` ``${NAME##pat}``
  ``${NAME%pat}`` ``${NAME%%pat}`` ``${NAME/pat/repl}`` ``${NAME//pat/repl}`` (``?`` and ``*``
  wildcards, ``\\`` escapes them). A name is letters, digits and ``_``; ``$1``-style digit runs
  and the special parameters ``@ * # ? - $ ! 0`` are names too (they are never set, so they
  expand to nothing). An unset variable expands to the empty string.
- word splitting (:meth:`ShellLex.process_words`) happens after expansion, on unquoted
  whitespace, so ``ENV P="80 443"`` then ``EXPOSE $P`` exposes two ports.

The options mirror BuildKit's lexer switches, which its parser uses to find heredoc markers:
``raw_quotes`` keeps the quote characters, ``raw_escapes`` keeps escape characters,
``skip_process_quotes`` treats quotes as ordinary characters, and ``skip_unset_env`` leaves a
reference to an unset variable as it was written.

Known divergence: BuildKit's word splitter shares one buffer between a word and the nested
``${NAME:-word}`` it contains, so ``process_words("a${X:-b}c")`` loses the ``a`` there; berth
returns ``["abc"]``. Only EXPOSE splits words, so this matters only for EXPOSE arguments that
glue text to a modifier expansion.
"""

from __future__ import annotations

from berth.build.lazy_re import compiled
from berth.errors import BuildError, DockerfileSyntaxError
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Mapping

__all__ = ["Expansion", "ShellLex", "is_go_space"]

# unicode.IsSpace: the Latin-1 spaces plus the White_Space code points above U+00FF.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


def is_go_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` for one character (Python's ``isspace`` differs on U+001C-1F)."""
    return ch in _GO_SPACES


class Expansion(FrozenValue):
    """The result of expanding one word, with the variable names it looked up."""

    __slots__ = ("matched", "result", "unmatched", "words")
    result: str
    words: list[str]
    matched: frozenset[str]
    unmatched: frozenset[str]

    def __init__(
        self,
        result: str,
        words: list[str] | None = None,
        matched: frozenset[str] = frozenset(),
        unmatched: frozenset[str] = frozenset(),
    ) -> None:
        init_fields(
            self,
            result=result,
            words=[] if words is None else words,
            matched=matched,
            unmatched=unmatched,
        )


class ShellLex:
    """A reusable lexer configured like BuildKit's ``shell.Lex``; safe to share between calls."""

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"escape character must be \\ or `, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` as one word: quotes removed, spaces kept."""
        return self.process_word_with_matches(word, env).result

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> Expansion:
        """Like :meth:`process_word`, also saying which variables were found and which not."""
        run = _Run(self, word, env)
        result, words = run.process()
        return Expansion(result, words, frozenset(run.matched), frozenset(run.unmatched))

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split the result on unquoted whitespace."""
        return self.process_word_with_matches(word, env).words


class _Words:
    """Collects words the way BuildKit's ``wordsStruct`` does (quirks included)."""

    __slots__ = ("buf", "in_word", "words")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.buf = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACES:
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class _Run:
    """One expansion: the scanner position, the environment and what was looked up."""

    def __init__(self, lex: ShellLex, source: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.source = source
        self.text = source
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- scanner -------------------------------------------------------------------------
    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    # -- errors --------------------------------------------------------------------------
    def syntax_error(self, message: str) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(f"failed to process {_quote(self.source)}: {message}")

    def process(self) -> tuple[str, list[str]]:
        return self.process_until(None, self.raw_escapes)

    def process_until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end; an unseen ``stop`` is an error."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_until(stop)
        finally:
            self.raw_escapes = saved

    def _process_until(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lex.escape
        quotes = not self.lex.skip_process_quotes
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.pos += 1
                return "".join(result), words.finish()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch == "<":
                value = self.possible_heredoc()
                result.append(value)
                words.add_raw(value)
            elif quotes and ch == "'":
                value = self.single_quoted()
                result.append(value)
                words.add_raw(value)
            elif quotes and ch == '"':
                value = self.double_quoted()
                result.append(value)
                words.add_raw(value)
            else:
                self.pos += 1
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    nxt = self.next()
                    if nxt is None:
                        break
                    ch = nxt
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop is not None:
            raise self.syntax_error(
                f"unexpected end of statement while looking for matching {stop}"
            )
        return "".join(result), words.finish()

    def single_quoted(self) -> str:
        quote = self.next()
        out = [quote] if self.lex.raw_quotes and quote else []
        while True:
            ch = self.next()
            if ch is None:
                raise self.syntax_error(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        quote = self.next()
        out = [quote] if self.lex.raw_quotes and quote else []
        escape = self.lex.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise self.syntax_error(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following is None:
                    continue
                if following in ('"', "$", escape):
                    self.pos += 1
                    ch = following
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.pos += 1
        if self.peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self.peek() in ("\t", "\r", " "):
            self.pos += 1
        return "<<" + self.text[start : self.pos]

    def name(self) -> str:
        start = self.pos
        ch = self.peek()
        if ch is None:
            return ""
        if ch.isdecimal():
            while (ch := self.peek()) is not None and ch.isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        while (ch := self.peek()) is not None and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def lookup(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
        else:
            self.matched.add(name)
        return value

    def dollar(self) -> str:
        self.pos += 1  # the "$"
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.lex.skip_unset_env else ""
            return value
        self.pos += 1  # the "{"
        ch = self.peek()
        if ch is None:
            raise self.syntax_error("syntax error: missing '}'")
        if ch in "{}:":
            raise self.syntax_error("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op is None:
            raise self.syntax_error("syntax error: missing '}'")
        if op == "}":
            value = self.lookup(name)
            if value is None:
                return f"${{{name}}}" if self.lex.skip_unset_env else ""
            return value
        if op == "/":
            return self.substitute(name)
        modifier = op
        null_is_unset = False
        if op == ":":
            null_is_unset = True
            nxt = self.next()
            if nxt is None:
                raise self.syntax_error("syntax error: missing '}'")
            op = nxt
            modifier += op
        elif op not in "+-?#%":
            raise self.syntax_error(f"unsupported modifier ({modifier}) in substitution")
        pattern_op = op in "#%"
        if null_is_unset and pattern_op:
            raise self.syntax_error(f"unsupported modifier ({modifier}) in substitution")
        word = self.until_brace("}", pattern_op, "syntax error: missing '}'")
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            return f"${{{name}{modifier}{word}}}"
        return self.apply_modifier(name, op, null_is_unset, modifier, word, value)

    def until_brace(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            word, _ = self.process_until(stop, raw_escapes)
        except DockerfileSyntaxError:
            if self.peek() is None:
                raise self.syntax_error(missing) from None
            raise
        return word

    def apply_modifier(
        self, name: str, op: str, null_is_unset: bool, modifier: str, word: str, value: str | None
    ) -> str:
        empty = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if empty else (value or "")
        if op == "+":
            return "" if empty else word
        if op == "?":
            if value is None:
                raise BuildError(
                    f"failed to process {_quote(self.source)}: {name}: "
                    f"{word or 'is not allowed to be unset'}",
                    hint=f"pass --build-arg {name}=... or set it with ARG/ENV",
                )
            if null_is_unset and value == "":
                raise BuildError(
                    f"failed to process {_quote(self.source)}: {name}: "
                    f"{word or 'is not allowed to be empty'}",
                    hint=f"give {name} a non-empty value",
                )
            return value
        if op in "#%":
            greedy = word[:1] == op
            if greedy:
                word = word[1:]
            pattern = self.compile(word, greedy=greedy, anchored=True, reverse=op == "%")
            subject = value or ""
            if op == "#":
                match = pattern.match(subject)
                return subject[match.end() :] if match else subject
            reversed_subject = subject[::-1]
            match = pattern.match(reversed_subject)
            return reversed_subject[match.end() :][::-1] if match else subject
        raise self.syntax_error(f"unsupported modifier ({modifier}) in substitution")

    def substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self.until_brace("/", True, "syntax error: missing '/' in ${}")
        replacement = self.until_brace("}", True, "syntax error: missing '}'")
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            return f"${{{name}/{pattern}/{replacement}}}"
        regex = self.compile(pattern, greedy=True, anchored=False, reverse=False)
        subject = value or ""
        if replace_all:
            return _go_replace_all(regex, subject, lambda m: _go_expand(replacement, m))
        match = regex.search(subject)
        if match is None:
            return subject
        return subject[: match.start()] + replacement + subject[match.end() :]

    def compile(
        self, pattern: str, *, greedy: bool, anchored: bool, reverse: bool
    ) -> re.Pattern[str]:
        import re

        if reverse:
            pattern = _reverse_pattern(pattern)
        try:
            return re.compile(_shell_pattern_to_regex(pattern, greedy=greedy, anchored=anchored))
        except ValueError as exc:
            raise self.syntax_error(f"invalid pattern ({pattern}) in substitution: {exc}") from None


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def _shell_pattern_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> str:
    """A ``?``/``*`` wildcard pattern as a regular expression (no bracket expressions)."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            following = pattern[i] if i < n else None
            if following in ("}", "/"):
                continue  # escaped for ${...} only; the escape is not part of the pattern
            if following not in ("*", "?", "\\"):
                shown = following if following is not None else "\ufffd"
                raise ValueError(f"invalid escape '\\{shown}'")
            out.append("\\" + following)
            i += 1
        elif tok in _REGEX_SPECIAL:
            out.append("\\" + tok)
        else:
            out.append(tok)
    return "".join(out)


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each ``\\x`` escape pair in order (for suffix matching)."""
    units: list[str] = []
    i = 0
    last = len(pattern) - 1
    while i <= last:
        if pattern[i] == "\\" and i != last:
            units.append(pattern[i : i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _go_replace_all(
    regex: re.Pattern[str], subject: str, replace: Callable[[re.Match[str]], str]
) -> str:
    """Go's ``Regexp.ReplaceAllString`` loop: an empty match right after a match is skipped."""
    out: list[str] = []
    last_end = 0
    search = 0
    n = len(subject)
    while search <= n:
        match = regex.search(subject, search)
        if match is None:
            break
        start, end = match.span()
        out.append(subject[last_end:start])
        if end > last_end or start == 0:
            out.append(replace(match))
        last_end = end
        if search + 1 > end:
            search += 1
        else:
            search = end
    out.append(subject[last_end:])
    return "".join(out)


def _go_expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$$``, ``$0``/``${0}`` (the match); other names are empty."""
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        braced = i < n and template[i] == "{"
        found = compiled(r"[A-Za-z0-9_]+").match(template, i + 1 if braced else i)
        if found is None or (braced and template[found.end() : found.end() + 1] != "}"):
            out.append("$")
            continue
        name = found.group()
        i = found.end() + (1 if braced else 0)
        if name.isdigit() and int(name) == 0:
            out.append(match.group(0))
    return "".join(out)
