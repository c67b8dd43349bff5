"""The JSON documents of the OCI specs as bytes: canonical bytes out, an object in."""

from __future__ import annotations

from berth import jsonio
from berth.errors import InvalidManifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_encoder: Any = None


def canonical_json(data: Any) -> bytes:
    """Compact JSON, non-ASCII kept as is: what ``json.dumps(data, separators=(",", ":"),
    ensure_ascii=False)`` gives, through the C encoder that module wraps (importing ``json``
    costs a few milliseconds of every start; so does its regex-based decoder)."""
    global _encoder
    if _encoder is None:
        _encoder = _make_encoder()
    return "".join(_encoder(data, 0)).encode()


def _make_encoder() -> Any:
    try:
        from _json import encode_basestring, make_encoder
    except ImportError:  # not CPython: the json module it is
        import json

        return lambda data, _level: [json.dumps(data, separators=(",", ":"), ensure_ascii=False)]

    def unserialisable(value: object) -> object:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    # (markers, default, encoder, indent, key separator, item separator, sort_keys,
    #  skipkeys, allow_nan): json.dumps's defaults but the compact separators
    return make_encoder(None, unserialisable, encode_basestring, None, ":", ",", False, False, True)


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse ``raw`` as ``json.loads`` does (UTF-8, or UTF-16/32 told by its first bytes).

    The usual document, UTF-8, is parsed by :mod:`berth.jsonio` without importing
    :mod:`json`; anything it refuses is parsed again by :mod:`json`, which then reads the other
    encodings or reports the error in its own words."""
    try:
        data = jsonio.loads(raw)
    except (ValueError, UnicodeDecodeError):
        import json

        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidManifest(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidManifest(f"{what} is not a JSON object")
    return data
