"""JSON in and out on the start path, without importing :mod:`json`.

Measured on the CI machine kind: ``import json`` costs about 7 ms (it pulls in :mod:`re` and
:mod:`enum`), a fifth of the 39 ms that a whole ``runc run`` takes. The parser and encoder
that :mod:`json` itself uses live in the C module ``_json`` and need neither, so this module
drives them directly. The results are the same as ``json.loads`` and compact ``json.dumps``
(``ensure_ascii``); pretty printing for humans stays with :mod:`json`, imported where needed.
The runtime, container records and image configs on ``berth run``'s path go through here.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


class _DecoderContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str]

    def __init__(self) -> None:
        self.memo = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _StrictDecoderContext(_DecoderContext):
    """The same, refusing ``NaN`` and ``Infinity`` (not JSON; Go's decoder refuses them)."""

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not JSON")


_scan_once = _json.make_scanner(_DecoderContext())  # type: ignore[arg-type]
_scan_strict = _json.make_scanner(_StrictDecoderContext())  # type: ignore[arg-type]


def _unserialisable(obj: object) -> object:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(
    None, _unserialisable, _json.encode_basestring_ascii, None, ":", ",", False, False, True
)
_encode_spaced_sorted = _json.make_encoder(
    None, _unserialisable, _json.encode_basestring_ascii, None, ": ", ", ", True, False, True
)


def loads(text: str | bytes, *, constants: bool = True) -> Any:
    """Parse one JSON document; raises :class:`ValueError` (with the offset) when it is not.

    ``constants=False`` refuses ``NaN`` and ``Infinity``, as Go's decoder does."""
    if isinstance(text, bytes):  # as .decode("utf-8-sig"), without importing that codec
        text = text.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    start = 0
    end = len(text)
    while start < end and text[start] in _WHITESPACE:
        start += 1
    try:
        value, stop = (_scan_once if constants else _scan_strict)(text, start)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at offset {exc.value}") from None
    while stop < end and text[stop] in _WHITESPACE:
        stop += 1
    if stop != end:
        raise ValueError(f"extra data after the JSON value at offset {stop}")
    return value


def dumps(value: Any) -> str:
    """Compact JSON (no spaces), ASCII only."""
    return "".join(_encode(value, 0))


def dumps_sorted(value: Any) -> str:
    """What ``json.dumps(value, sort_keys=True)`` gives (its ", " and ": " separators)."""
    return "".join(_encode_spaced_sorted(value, 0))
