"""The JSON documents of the OCI specs as bytes: canonical bytes out, an object in."""

from __future__ import annotations

from berth import jsonio
from berth.errors import InvalidManifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def canonical_json(data: Any) -> bytes:
    import json

    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


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
