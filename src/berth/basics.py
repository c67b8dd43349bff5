"""``suppress`` without :mod:`contextlib`, for the modules on ``berth run``'s path.

``import contextlib`` costs about half a millisecond of every ``berth run`` (the rest of what it
imports, :mod:`functools` and :mod:`collections`, comes with :mod:`sqlite3` anyway), for one
small helper; :class:`suppress` here does what ``contextlib.suppress`` does for berth's uses
(type checkers see the standard one). Everything else keeps using :mod:`contextlib`.
"""

from __future__ import annotations

__all__ = ["suppress"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import suppress
else:

    class suppress:
        """``with suppress(OSError): ...``: the exceptions named are swallowed."""

        __slots__ = ("_exceptions",)

        def __init__(self, *exceptions):
            self._exceptions = exceptions

        def __enter__(self):
            return None

        def __exit__(self, kind, value, traceback):
            return kind is not None and issubclass(kind, self._exceptions)
