"""Regular expressions compiled on first use.

Importing :mod:`re` and compiling a pattern when a module is imported costs every ``berth
build`` milliseconds, even when the pattern is never used (most are for rare syntax). Modules
of the build path keep their patterns as strings and call :func:`compiled` where they match;
flags go inside the pattern (``(?m)``, ``(?i)``, ``(?a)``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

__all__ = ["compiled"]

_cache: dict[str, re.Pattern[str]] = {}


def compiled(pattern: str) -> re.Pattern[str]:
    """``re.compile(pattern)``, compiled once per process."""
    found = _cache.get(pattern)
    if found is None:
        import re

        found = _cache[pattern] = re.compile(pattern)
    return found
