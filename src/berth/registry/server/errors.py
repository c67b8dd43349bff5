"""The distribution spec's error codes, and the HTTP status each is answered with.

A handler raises :class:`DistributionError` (``raise DistributionError("BLOB_UNKNOWN",
detail={"digest": d})``); the application turns it into the spec's body
``{"errors": [{"code", "message", "detail"}]}`` with the status from :data:`ERROR_CODES`, or the
status the raiser chose where the spec asks for another one (a chunk out of order is
``BLOB_UPLOAD_INVALID`` with 416, a manifest over the size limit is ``SIZE_INVALID`` with 413).

The statuses are those of the reference implementation (distribution 2.8), so clients written
against ``registry:2`` see the same answers, with one deliberate exception: distribution answers
``BLOB_UPLOAD_INVALID`` with 404, berth with 400, because the request was wrong, not missing.
"""

from __future__ import annotations

import json
from typing import Any

from berth.errors import RegistryError

# code -> (HTTP status, the spec's description, used as the default message)
ERROR_CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
}


class DistributionError(RegistryError):
    """A request the registry refuses, answered with one of the spec's error codes."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"{code!r} is not an error code of the distribution spec")
        default_status, description = ERROR_CODES[code]
        super().__init__(message or description)
        self.code = code
        self.detail = detail
        self.status = status if status is not None else default_status
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}

    def body(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode() + b"\n"
