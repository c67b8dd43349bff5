"""Go's ``path.Match`` (and ``filepath.Match`` on Unix, the same there): what Docker matches
image references (``images --filter reference=``) and build-context paths (``.dockerignore``,
``COPY`` wildcards) with.

``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[a-z]`` a class
(``[^...]`` negated), ``\\`` escapes the next character; the whole name must match. A malformed
pattern raises :class:`~berth.errors.InvalidArgument` (Go's ``ErrBadPattern``), also when the
name stops matching before the bad part is reached, as Go scans the whole pattern.
"""

from __future__ import annotations

from berth.errors import InvalidArgument

__all__ = ["BAD_PATTERN", "match"]

BAD_PATTERN = "syntax error in pattern"


def match(pattern: str, name: str) -> bool:
    """Whether all of ``name`` matches ``pattern``; InvalidArgument for a malformed one."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            matched = False
            for skip in range(len(name)):
                if name[skip] == "/":
                    break
                rest = _match_chunk(chunk, name[skip + 1 :])
                if rest is not None:
                    if not pattern and rest:
                        continue
                    name = rest
                    matched = True
                    break
            if matched:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Split off leading stars and the chunk up to the next star outside a class."""
    star = False
    while pattern[:1] == "*":
        pattern = pattern[1:]
        star = True
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 < len(pattern):
                index += 1
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "*" and not in_class:
            break
        index += 1
    return star, pattern[:index], pattern[index:]


def _match_chunk(chunk: str, text: str) -> str | None:
    """Match ``chunk`` (no stars) at the start of ``text``: the rest of text, or None.

    The whole chunk is always scanned, so a malformed one raises even after a mismatch.
    """
    failed = False
    while chunk:
        if not failed and not text:
            failed = True
        head = chunk[0]
        if head == "[":
            char = ""
            if not failed:
                char, text = text[0], text[1:]
            chunk = chunk[1:]
            negated = chunk[:1] == "^"
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk[:1] == "]" and ranges > 0:
                    chunk = chunk[1:]
                    break
                low, chunk = _class_char(chunk)
                high = low
                if chunk[:1] == "-":
                    high, chunk = _class_char(chunk[1:])
                if low <= char <= high and char:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if text[0] == "/":
                    failed = True
                text = text[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise InvalidArgument(BAD_PATTERN)
            if not failed:
                if chunk[0] != text[0]:
                    failed = True
                text = text[1:]
            chunk = chunk[1:]
    return None if failed else text


def _class_char(chunk: str) -> tuple[str, str]:
    """One (possibly escaped) character of a [class]; the chunk must go on after it."""
    if not chunk or chunk[0] in "-]":
        raise InvalidArgument(BAD_PATTERN)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise InvalidArgument(BAD_PATTERN)
    char, rest = chunk[0], chunk[1:]
    if not rest:
        raise InvalidArgument(BAD_PATTERN)
    return char, rest
