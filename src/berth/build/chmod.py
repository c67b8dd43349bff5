"""``--chmod`` of COPY and ADD: octal (``755``) or symbolic (``u=rwX,go=rX``), as chmod(1).

Kept apart from :mod:`berth.build.fsops` so computing a cache key does not import what
copying needs.
"""

from __future__ import annotations

from berth.errors import BuildError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # a --chmod: (current permission bits, is a directory) -> the new bits
    ModeChange = Callable[[int, bool], int]

__all__ = ["ModeChange", "octal_chmod", "parse_chmod"]


def parse_chmod(text: str) -> ModeChange | None:
    """``--chmod``: octal (``755``) or symbolic (``u=rwX,go=rX``, ``+x``), as chmod(1) reads it.

    Returns a function of (current permission bits, is a directory) giving the new bits.
    """
    if not text:
        return None
    if text.isdigit():
        mode = octal_chmod(text)
        return lambda _current, _is_dir: mode
    clauses = [_symbolic_clause(part, text) for part in text.split(",")]

    def apply(current: int, is_dir: bool) -> int:
        mode = current & 0o7777
        for who, op, perms in clauses:
            mode = _apply_clause(mode, who, op, perms, is_dir)
        return mode

    return apply


def octal_chmod(text: str) -> int:
    """The bits of an octal ``--chmod`` (what the cache key digest takes), or BuildError."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise BuildError(
            f"invalid chmod parameter {text!r}", hint="write --chmod with octal digits, e.g. 755"
        ) from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"invalid chmod parameter {text!r}", hint="modes go up to 7777")
    return mode


_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}


def _symbolic_clause(part: str, text: str) -> tuple[str, str, str]:
    i = 0
    while i < len(part) and part[i] in "ugoa":
        i += 1
    who = part[:i] or "a"
    if i >= len(part) or part[i] not in "+-=":
        raise BuildError(
            f"invalid chmod parameter {text!r}",
            hint="write an octal mode (755) or a symbolic one (u=rwX,go=rX)",
        )
    op, perms = part[i], part[i + 1 :]
    if any(c not in "rwxXst" for c in perms):
        raise BuildError(f"invalid chmod parameter {text!r}", hint="permissions are r w x X s t")
    return who, op, perms


def _apply_clause(mode: int, who: str, op: str, perms: str, is_dir: bool) -> int:
    mask = 0
    for w in who:
        mask |= _WHO[w]
    bits = 0
    for p in perms:
        if p == "r":
            bits |= 0o444
        elif p == "w":
            bits |= 0o222
        elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
            bits |= 0o111
        elif p == "s":
            bits |= 0o6000
        elif p == "t":
            bits |= 0o1000
    bits &= mask
    if op == "+":
        return mode | bits
    if op == "-":
        return mode & ~bits
    return (mode & ~(mask & 0o7777)) | bits
