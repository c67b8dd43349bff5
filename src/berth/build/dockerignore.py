"""``.dockerignore``: reading the file and matching paths, with moby/patternmatcher's rules.

Reading (:func:`read_ignore_file`): a UTF-8 BOM is dropped; a line *starting* with ``#`` is a
comment; other lines are stripped of surrounding whitespace, blank ones skipped; a leading
``!`` makes an exception (re-inclusion); each pattern is cleaned like Go's
``filepath.Clean`` (``./a/`` is ``a``, ``a/../b`` is ``b``) and a leading ``/`` is removed.

Matching (:class:`IgnoreMatcher`), on slash-separated paths relative to the context root:
``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[...]`` a
class (``[^...]`` negated), ``\\`` escapes the next character, and ``**`` any number of
directories including none (``**/x``, ``a/**``, ``a/**/b``). A pattern matching a directory
matches everything below it. Patterns apply in order, the last one that matches decides, so
``!`` exceptions re-include what earlier patterns excluded.

Which file: BuildKit reads ``<Dockerfile name>.dockerignore`` next to the Dockerfile if it
exists, else ``.dockerignore`` at the context root (:func:`find_ignore_file`). The
Dockerfile and ``.dockerignore`` are always read by the builder even when the patterns list
them; listed, they are absent from the context that ADD/COPY see.
"""

from __future__ import annotations

import os

from berth import pathmatch
from berth.errors import InvalidArgument
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence

__all__ = [
    "IgnoreMatcher",
    "MatchInfo",
    "Pattern",
    "find_ignore_file",
    "go_clean",
    "read_ignore_file",
]

_PREFIX_ONLY_SPECIALS = frozenset("*[]?^\\")


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on Unix."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else cleaned or "."


def read_ignore_file(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file's text, normalised as Docker does."""
    patterns: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def find_ignore_file(context_dir: str, dockerfile: str | None = None) -> str | None:
    """The ignore file that applies: ``<Dockerfile>.dockerignore``, else ``.dockerignore``."""
    if dockerfile:
        specific = dockerfile + ".dockerignore"
        if os.path.isfile(specific):
            return specific
    general = os.path.join(context_dir, ".dockerignore")
    return general if os.path.isfile(general) else None


# -- patterns ------------------------------------------------------------------------------------

_REGEX_ESCAPE = frozenset(".+()|{}$")


class Pattern(Value):
    """One cleaned pattern; ``exclusion`` is True for ``!`` exceptions."""

    __slots__ = ("dirs", "exclusion", "kind", "regex", "text")

    def __init__(self, text: str, exclusion: bool, dirs: tuple[str, ...]) -> None:
        self.text = text
        self.exclusion = exclusion
        self.dirs = dirs
        self.kind, source = _compile(text)  # exact, prefix, suffix or regexp
        self.regex: re.Pattern[str] | None = None
        if self.kind == "regexp":
            import re
            import warnings

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    self.regex = re.compile(source, re.ASCII)
            except re.error as exc:
                raise InvalidArgument(
                    f"invalid pattern {self.text!r} in .dockerignore: {exc}",
                    hint="escape special characters with \\",
                ) from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None

    def literal_prefix(self) -> str:
        """The pattern without a trailing ``/**`` or ``/*``."""
        text = self.text.removesuffix("/**")
        return text.removesuffix("/*")


def _compile(pattern: str) -> tuple[str, str]:
    """patternmatcher's pattern-to-regexp conversion; returns the kind and the regexp."""
    out = ["^"]
    kind = "exact"
    i = 0
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    out.append("$")
    return kind, "".join(out)


class MatchInfo(FrozenValue):
    """Per-pattern results for a directory, handed to its children (see match_with_parents)."""

    __slots__ = ("parent_matched",)
    parent_matched: tuple[bool, ...]

    def __init__(self, parent_matched: tuple[bool, ...] = ()) -> None:
        init_fields(self, parent_matched=parent_matched)


class IgnoreMatcher:
    """Decides whether a context path is excluded by a list of patterns."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns: list[Pattern] = []
        self.has_exceptions = False
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise InvalidArgument(
                        'illegal exclusion pattern: "!"', hint="write !PATTERN to re-include files"
                    )
                text = text[1:]
                self.has_exceptions = True
            try:
                pathmatch.match(text, ".")
            except InvalidArgument:
                raise InvalidArgument(
                    f"syntax error in pattern {raw!r}", hint="check the [...] classes and escapes"
                ) from None
            self.patterns.append(Pattern(text, exclusion, tuple(text.split("/"))))
        self._prefix_only_exceptions = all(
            not (set(p.literal_prefix()) & _PREFIX_ONLY_SPECIALS)
            for p in self.patterns
            if p.exclusion
        )

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, slash-separated) is excluded, its parents considered."""
        matched = False
        parent = os.path.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parent != ".":
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[: i + 1])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def match_with_parents(
        self, path: str, parent: MatchInfo | None = None
    ) -> tuple[bool, MatchInfo]:
        """Like :meth:`excluded`, reusing the parent directory's results (for tree walks)."""
        previous = parent.parent_matched if parent is not None else ()
        if previous and len(previous) != len(self.patterns):
            raise ValueError("wrong number of values in parent match info")
        matched = False
        results: list[bool] = []
        for i, pattern in enumerate(self.patterns):
            match = previous[i] if previous else False
            if not match:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                match = pattern.match(path)
                if not match and not previous:
                    parent_path = os.path.dirname(path)
                    if parent_path:
                        dirs = parent_path.split("/")
                        match = any(
                            pattern.match("/".join(dirs[: j + 1])) for j in range(len(dirs))
                        )
            results.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, MatchInfo(tuple(results))

    def can_skip_dir(self, path: str) -> bool:
        """For an excluded directory: True if no exception can re-include anything below it."""
        if not self.has_exceptions:
            return True
        if not self._prefix_only_exceptions:
            return False
        below = path + "/"
        return not any(
            (p.literal_prefix() + "/").startswith(below) for p in self.patterns if p.exclusion
        )
