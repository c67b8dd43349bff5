"""The HTTP side of the registry: the OCI distribution spec v1.1 on aiohttp.

Routes (``<name>`` is a repository path such as ``library/busybox``)::

    GET|HEAD  /v2/                                   API version check (and auth probe)
    GET       /v2/_catalog?n=&last=                  repositories (Docker's extension)
    GET       /v2/<name>/tags/list?n=&last=          tags, in lexical order, Link rel="next"
    GET|HEAD|PUT|DELETE /v2/<name>/manifests/<tag|digest>
    GET|HEAD|DELETE     /v2/<name>/blobs/<digest>    GET honours Range (206), sent by sendfile
    POST      /v2/<name>/blobs/uploads/              ?digest= monolithic, ?mount=&from= mount
    GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>
    GET       /v2/<name>/referrers/<digest>?artifactType=
    GET|POST  /token                                 the bearer-token issuer (token mode)

Everything under ``/v2/`` goes through one dispatcher that splits the path itself (repository
names contain slashes), so a bad name is ``NAME_INVALID`` rather than a bare 404, and every
failure is answered with the spec's JSON error body (:mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, TypeVarTuple
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from berth.errors import InvalidArgument
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.reference import is_valid_repository_path, is_valid_tag
from berth.registry.server.auth import ANONYMOUS_IDENTITY, Access, Authorizer, Identity
from berth.registry.server.config import ServerConfig
from berth.registry.server.errors import DistributionError
from berth.registry.server.manifests import inspect_manifest
from berth.registry.server.storage import RegistryStorage
from berth.registry.server.uploads import UploadStore, receive

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_USER_KEY = web.RequestKey("berth_user", str)
_EMPTY_DIGEST = Digest("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
_READ_CHUNK = 1 << 18
_PULL = ("pull",)
_PUSH = ("pull", "push")
_DELETE = ("delete",)
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")

Handler = Callable[[web.Request, "Route", Identity], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # tags | manifest | upload_start | upload | blob | referrers
    name: str
    ref: str = ""


_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?P<name>.+)/tags/list$"), "tags"),
    (re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$"), "manifest"),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), "upload_start"),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<ref>[^/]+)$"), "upload"),
    (re.compile(r"^(?P<name>.+)/blobs/(?P<ref>[^/]+)$"), "blob"),
    (re.compile(r"^(?P<name>.+)/referrers/(?P<ref>[^/]+)$"), "referrers"),
)

# (route kind, method) -> the actions it needs on the repository
_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tags", "GET"): _PULL,
    ("manifest", "GET"): _PULL,
    ("manifest", "HEAD"): _PULL,
    ("manifest", "PUT"): _PUSH,
    ("manifest", "DELETE"): _DELETE,
    ("blob", "GET"): _PULL,
    ("blob", "HEAD"): _PULL,
    ("blob", "DELETE"): _DELETE,
    ("upload_start", "POST"): _PUSH,
    ("upload", "GET"): _PUSH,
    ("upload", "PATCH"): _PUSH,
    ("upload", "PUT"): _PUSH,
    ("upload", "DELETE"): _PUSH,
    ("referrers", "GET"): _PULL,
}


def match_route(path: str) -> Route | None:
    """Split ``<name>/manifests/latest`` (the part after ``/v2/``) into a route."""
    for pattern, kind in _ROUTES:
        found = pattern.match(path)
        if found:
            return Route(kind, found.group("name"), found.groupdict().get("ref") or "")
    return None


class Registry:
    """The registry's request handlers, bound to one storage directory and configuration."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.storage = RegistryStorage(config.storage)
        self.storage.initialize()
        self.uploads = UploadStore(self.storage)
        self.auth = Authorizer(config)
        self._in_flight = 0
        self._handlers: dict[str, Handler] = {
            "tags": self.tags_list,
            "manifest": self.manifest,
            "upload_start": self.upload_start,
            "upload": self.upload,
            "blob": self.blob,
            "referrers": self.referrers,
        }

    # -- plumbing ------------------------------------------------------------------------

    async def run_blocking(self, func: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def realm(self, request: web.Request) -> str:
        return self.config.token_realm or f"{self.config.scheme}://{request.host}/token"

    async def identify(self, request: web.Request, needed: Access | None) -> Identity:
        if not self.auth.enabled:
            return ANONYMOUS_IDENTITY
        authorization = request.headers.get("Authorization")
        if not authorization:
            identity = ANONYMOUS_IDENTITY
        else:
            identity = await self.run_blocking(
                self.auth.identify, authorization, self.realm(request), needed
            )
        request[_USER_KEY] = identity.account or ""
        return identity

    @web.middleware
    async def errors_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        limit = self.config.max_concurrent_requests
        if limit and self._in_flight >= limit:
            return error_response(
                DistributionError("TOOMANYREQUESTS", headers={"Retry-After": "1"})
            )
        self._in_flight += 1
        try:
            return await handler(request)
        except DistributionError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            print(
                f"berth registry: internal error on {request.method} {request.path_qs}:\n"
                + traceback.format_exc(),
                file=sys.stderr,
                flush=True,
            )
            body = {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
            return web.json_response(body, status=500)
        finally:
            self._in_flight -= 1

    # -- /v2/, _catalog, /token ------------------------------------------------------------

    async def base(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise _unsupported(request)
        identity = await self.identify(request, None)
        self.auth.authorize(identity, None, self.realm(request))
        return web.json_response({})

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            raise _unsupported(request)
        needed = Access("registry", "catalog", ("*",))
        identity = await self.identify(request, needed)
        self.auth.authorize(identity, needed, self.realm(request))
        names = await self.run_blocking(self.storage.list_repositories)
        visible = [n for n in names if self.auth.may_pull(identity, n)]
        page, link = _paginate(sorted(visible), request, "/v2/_catalog")
        headers = {"Link": link} if link else None
        return web.json_response({"repositories": page}, headers=headers)

    async def token(self, request: web.Request) -> web.StreamResponse:
        if self.auth.signer is None:
            raise web.HTTPNotFound()
        if request.method == "GET":
            identity = await self.run_blocking(
                self.auth.check_basic, request.headers.get("Authorization")
            )
            identity = identity or ANONYMOUS_IDENTITY
            scopes = [s for value in request.query.getall("scope", []) for s in value.split()]
        elif request.method == "POST":
            form = await request.post()
            grant = str(form.get("grant_type", ""))
            if grant != "password":
                return web.json_response(
                    {"error": "unsupported_grant_type",
                     "error_description": "only the password grant is supported"},
                    status=400,
                )
            identity = await self.run_blocking(
                self.auth.password_identity, str(form.get("username", "")),
                str(form.get("password", "")),
            )
            scopes = str(form.get("scope", "")).split()
        else:
            raise _unsupported(request)
        request[_USER_KEY] = identity.account or ""
        return web.json_response(self.auth.issue_token(identity, scopes))

    # -- /v2/<name>/... ----------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        route = match_route(request.match_info["tail"])
        if route is None:
            raise DistributionError("UNSUPPORTED", f"no such endpoint: {request.path}",
                                    status=404)
        if not is_valid_repository_path(route.name):
            raise DistributionError("NAME_INVALID", f"invalid repository name {route.name!r}",
                                    detail={"name": route.name})
        actions = _NEEDS.get((route.kind, request.method))
        if actions is None:
            raise _unsupported(request)
        if self.config.read_only and actions != _PULL:
            raise DistributionError("UNSUPPORTED", "this registry is read-only")
        if actions == _DELETE and not self.config.delete_enabled:
            raise DistributionError("UNSUPPORTED", "deletes are disabled on this registry")
        needed = Access("repository", route.name, actions)
        identity = await self.identify(request, needed)
        self.auth.authorize(identity, needed, self.realm(request))
        return await self._handlers[route.kind](request, route, identity)

    # -- tags ------------------------------------------------------------------------------

    async def tags_list(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        tags = self.storage.list_tags(route.name)
        if tags is None:
            raise DistributionError("NAME_UNKNOWN", detail={"name": route.name})
        ordered = sorted(tags, key=lambda t: (t.lower(), t))
        page, link = _paginate(ordered, request, f"/v2/{route.name}/tags/list",
                               key=lambda t: (t.lower(), t))
        headers = {"Link": link} if link else None
        return web.json_response({"name": route.name, "tags": page}, headers=headers)

    # -- manifests -------------------------------------------------------------------------

    async def manifest(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        if request.method == "PUT":
            return await self.put_manifest(request, route)
        if request.method == "DELETE":
            return await self.delete_manifest(route)
        digest = self._resolve_reference(route)
        stored = self.storage.get_manifest(route.name, digest)
        if stored is None:
            raise _manifest_unknown(route)
        etag = f'"{stored.digest}"'
        headers = {"Docker-Content-Digest": str(stored.digest), "ETag": etag}
        if _etag_matches(request, etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=stored.content, content_type=stored.media_type,
                            headers=headers)

    def _resolve_reference(self, route: Route) -> Digest:
        if ":" in route.ref:
            return _parse_digest(route.ref)
        if not is_valid_tag(route.ref):
            raise _manifest_unknown(route)
        digest = self.storage.resolve_tag(route.name, route.ref)
        if digest is None:
            raise _manifest_unknown(route)
        return digest

    async def put_manifest(self, request: web.Request, route: Route) -> web.StreamResponse:
        tag: str | None = None
        expected: Digest | None = None
        if ":" in route.ref:
            expected = _parse_digest(route.ref)
        elif is_valid_tag(route.ref):
            tag = route.ref
        else:
            raise DistributionError("MANIFEST_INVALID", f"invalid tag {route.ref!r}",
                                    detail={"tag": route.ref})
        raw = await _read_limited(request, self.config.max_manifest_bytes)
        digest = Digest.of(raw, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise DistributionError(
                "DIGEST_INVALID", "the manifest does not match the digest it was pushed by",
                detail={"digest": str(expected), "actual": str(digest)},
            )
        facts = inspect_manifest(raw, request.headers.get("Content-Type"), digest)

        def store() -> None:
            with self.storage.writer_lock():
                _check_references(self.storage, route.name, facts.blobs, facts.manifests)
                self.storage.put_manifest(
                    route.name, digest, facts.media_type, raw,
                    tag=tag, subject=facts.subject, referrer=facts.referrer,
                )

        await self.run_blocking(store)
        headers = {
            "Location": f"/v2/{route.name}/manifests/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        if facts.subject is not None:
            headers["OCI-Subject"] = str(facts.subject)
        return web.Response(status=201, headers=headers)

    async def delete_manifest(self, route: Route) -> web.StreamResponse:
        if ":" in route.ref:
            digest = _parse_digest(route.ref)
            deleted = await self.run_blocking(self.storage.delete_manifest, route.name, digest)
        else:
            deleted = is_valid_tag(route.ref) and self.storage.delete_tag(route.name, route.ref)
        if not deleted:
            raise _manifest_unknown(route)
        return web.Response(status=202)

    # -- blobs -----------------------------------------------------------------------------

    async def blob(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        digest = _parse_digest(route.ref)
        if request.method == "DELETE":
            if not self.storage.unlink_blob(route.name, digest):
                raise DistributionError("BLOB_UNKNOWN", detail={"digest": str(digest)})
            return web.Response(status=202)
        if not self.storage.blob_in_repo(route.name, digest):
            raise DistributionError("BLOB_UNKNOWN", detail={"digest": str(digest)})
        return await self._send_blob(request, digest)

    async def _send_blob(self, request: web.Request, digest: Digest) -> web.StreamResponse:
        try:
            fobj = open(self.storage.blob_path(digest), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise DistributionError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from None
        with fobj:
            size = os.fstat(fobj.fileno()).st_size
            etag = f'"{digest}"'
            headers = {
                "Docker-Content-Digest": str(digest),
                "ETag": etag,
                "Accept-Ranges": "bytes",
                "Cache-Control": "max-age=31536000",
                "Content-Type": "application/octet-stream",
            }
            if _etag_matches(request, etag):
                return web.Response(status=304, headers=headers)
            status, offset, count = 200, 0, size
            if "Range" in request.headers:
                try:
                    rng = request.http_range
                except ValueError:
                    rng = None
                span = _byte_span(rng, size) if rng is not None else None
                if span is None:
                    headers["Content-Range"] = f"bytes */{size}"
                    return web.Response(status=416, headers=headers)
                offset, count = span
                status = 206
                headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{size}"
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = count
            await response.prepare(request)
            if request.method != "HEAD" and count:
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("the client went away")
                await asyncio.get_running_loop().sendfile(transport, fobj, offset, count)
            await response.write_eof()
            return response

    # -- uploads ---------------------------------------------------------------------------

    async def upload_start(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        mounted = await self._try_mount(request, route, identity)
        if mounted is not None:
            return _blob_created(route.name, mounted)
        digest_text = request.query.get("digest")
        if digest_text is not None:
            digest = _parse_digest(digest_text)
            # a monolithic upload; with neither body nor the empty digest, a session as usual
            if request.body_exists or digest == _EMPTY_DIGEST:
                upload_id = await self.run_blocking(self.uploads.create, route.name)
                await self._write_body(request, route.name, upload_id, digest)
                return _blob_created(route.name, digest)
        upload_id = await self.run_blocking(self.uploads.create, route.name)
        return _upload_response(route.name, upload_id, 0, status=202)

    async def _try_mount(
        self, request: web.Request, route: Route, identity: Identity
    ) -> Digest | None:
        mount, source = request.query.get("mount"), request.query.get("from")
        if not mount or not source or not is_valid_repository_path(source):
            return None
        try:
            digest = Digest.parse(mount)
        except InvalidArgument:
            return None
        if "pull" not in self.auth.rights(identity, source) and not self.auth.may_pull(
            identity, source
        ):
            return None

        def link() -> bool:
            with self.storage.writer_lock():
                if not self.storage.blob_in_repo(source, digest):
                    return False
                self.storage.link_blob(route.name, digest)
                return True

        return digest if await self.run_blocking(link) else None

    async def upload(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        upload_id = route.ref
        if request.method == "GET":
            status = await self.run_blocking(self.uploads.status, route.name, upload_id)
            return _upload_response(route.name, upload_id, status.offset, status=204)
        if request.method == "DELETE":
            await self.run_blocking(self.uploads.cancel, route.name, upload_id)
            return web.Response(status=204, headers={"Docker-Upload-UUID": upload_id})
        if request.method == "PATCH":
            offset = await self._append(request, route.name, upload_id)
            return _upload_response(route.name, upload_id, offset, status=202)
        digest_text = request.query.get("digest")
        if not digest_text:
            raise DistributionError("DIGEST_INVALID", "the digest query parameter is missing")
        digest = _parse_digest(digest_text)
        await self._write_body(request, route.name, upload_id, digest)
        return _blob_created(route.name, digest)

    async def _append(self, request: web.Request, name: str, upload_id: str) -> int:
        """PATCH: one chunk, at the offset its Content-Range claims, committed or not at all."""
        upload = await self.run_blocking(self.uploads.open, name, upload_id)
        try:
            expected = _check_content_range(request, name, upload_id, upload.committed)
            received = await receive(upload, request.content.iter_any(), limit=expected)
            if expected is not None and received != expected:
                upload.rollback()
                raise DistributionError(
                    "SIZE_INVALID", detail={"expected": expected, "received": received}
                )
            await self.run_blocking(upload.commit)
            return upload.size
        finally:
            upload.close()

    async def _write_body(
        self, request: web.Request, name: str, upload_id: str, digest: Digest
    ) -> None:
        """PUT (or a monolithic POST): the last chunk if any, then verify and store the blob."""
        upload = await self.run_blocking(self.uploads.open, name, upload_id)
        try:
            if request.body_exists:
                expected = _check_content_range(request, name, upload_id, upload.committed)
                received = await receive(upload, request.content.iter_any(), limit=expected)
                if expected is not None and received != expected:
                    upload.rollback()
                    raise DistributionError(
                        "SIZE_INVALID", detail={"expected": expected, "received": received}
                    )
            await self.run_blocking(upload.finish, digest)
        finally:
            upload.close()

    # -- referrers -------------------------------------------------------------------------

    async def referrers(
        self, request: web.Request, route: Route, identity: Identity
    ) -> web.StreamResponse:
        subject = _parse_digest(route.ref)
        descriptors = await self.run_blocking(self.storage.referrers, route.name, subject)
        headers: dict[str, str] = {}
        wanted = request.query.getall("artifactType", [])
        if wanted:
            descriptors = [d for d in descriptors if d.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
        body = json.dumps(index, separators=(",", ":")).encode()
        return web.Response(body=body, content_type=mt.OCI_INDEX, headers=headers)


# -- helpers ---------------------------------------------------------------------------------


def error_response(error: DistributionError) -> web.Response:
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=error.headers,
    )


def _unsupported(request: web.Request) -> DistributionError:
    return DistributionError(
        "UNSUPPORTED", f"{request.method} is not supported on {request.path}"
    )


def _manifest_unknown(route: Route) -> DistributionError:
    key = "digest" if ":" in route.ref else "tag"
    return DistributionError("MANIFEST_UNKNOWN", detail={key: route.ref})


def _parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidArgument as exc:
        raise DistributionError("DIGEST_INVALID", str(exc), detail={"digest": text}) from None


def _check_references(
    storage: RegistryStorage, name: str, blobs: Any, manifests: Any
) -> None:
    missing: list[str] = []
    wrong_size: list[dict[str, Any]] = []
    for descriptor in blobs:
        if not storage.blob_in_repo(name, descriptor.digest):
            missing.append(str(descriptor.digest))
            continue
        size = storage.blob_size(descriptor.digest)
        if size is not None and size != descriptor.size:
            wrong_size.append({"digest": str(descriptor.digest), "size": descriptor.size,
                               "actual": size})
    for descriptor in manifests:
        if not storage.has_manifest(name, descriptor.digest):
            missing.append(str(descriptor.digest))
    if missing:
        raise DistributionError(
            "MANIFEST_BLOB_UNKNOWN",
            f"the manifest references content that {name} does not have: {', '.join(missing)}",
            detail={"digests": missing},
        )
    if wrong_size:
        raise DistributionError(
            "MANIFEST_INVALID", "a descriptor's size does not match its content",
            detail=wrong_size,
        )


def _check_content_range(
    request: web.Request, name: str, upload_id: str, committed: int
) -> int | None:
    """The chunk length a Content-Range announces (None without one); 416 when out of order."""
    text = request.headers.get("Content-Range")
    if text is None:
        return None
    found = _CONTENT_RANGE_RE.match(text.strip())
    if found is None:
        raise DistributionError(
            "BLOB_UPLOAD_INVALID", f"malformed Content-Range {text!r}",
            detail={"expected": "<start>-<end>"},
        )
    start, end = int(found.group(1)), int(found.group(2))
    if start != committed or end < start:
        raise DistributionError(
            "BLOB_UPLOAD_INVALID",
            f"chunk {start}-{end} does not continue the upload at offset {committed}",
            status=416,
            headers=_upload_headers(name, upload_id, committed),
        )
    length = end - start + 1
    declared = request.content_length
    if declared is not None and declared != length:
        raise DistributionError(
            "SIZE_INVALID",
            f"Content-Range {text} is {length} bytes but Content-Length is {declared}",
        )
    return length


def _upload_headers(name: str, upload_id: str, offset: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(offset - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _upload_response(name: str, upload_id: str, offset: int, *, status: int) -> web.Response:
    headers = _upload_headers(name, upload_id, offset)
    headers["Content-Length"] = "0"
    return web.Response(status=status, headers=headers)


def _blob_created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


def _etag_matches(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match")
    if not wanted:
        return False
    return any(t.strip() in (etag, "*", f"W/{etag}") for t in wanted.split(","))


def _byte_span(rng: slice, size: int) -> tuple[int, int] | None:
    """(offset, count) of a single Range against ``size`` bytes; None if unsatisfiable."""
    start, stop = rng.start, rng.stop
    if start is None:
        return (0, size) if size else None
    if start < 0:  # suffix: the last -start bytes
        count = min(-start, size)
        return (size - count, count) if count > 0 else None
    if start >= size:
        return None
    end = size if stop is None else min(stop, size)
    if end <= start:
        return None
    return start, end - start


def _paginate(
    items: list[str],
    request: web.Request,
    path: str,
    key: Callable[[str], Any] = lambda s: s,
) -> tuple[list[str], str | None]:
    """Apply ``last`` and ``n``; the ``Link`` header when more remain."""
    last = request.query.get("last")
    if last is not None:
        items = [i for i in items if key(i) > key(last)]
    n_text = request.query.get("n")
    if n_text is None:
        return items, None
    if not n_text.isdigit():
        raise DistributionError(
            "UNSUPPORTED", f"n must be a non-negative integer, not {n_text!r}", status=400
        )
    n = int(n_text)
    if n == 0:
        return [], None
    page = items[:n]
    if len(items) > n:
        return page, f'<{path}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
    return page, None


async def _read_limited(request: web.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise DistributionError(
            "SIZE_INVALID", f"the manifest is {declared} bytes; the limit is {limit}",
            status=413,
        )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise DistributionError(
                "SIZE_INVALID", f"the manifest is over the limit of {limit} bytes", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


class AccessLogger(AbstractAccessLogger):
    """One line per request on stderr, in (an extension of) the common log format."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        user = request.get(_USER_KEY) or "-"
        remote = request.remote or "-"
        when = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        size = response.content_length
        sent = "-" if request.method == "HEAD" or size is None else str(size)
        line = (
            f'{remote} - {user} [{when}] "{request.method} {request.path_qs} '
            f'HTTP/{request.version.major}.{request.version.minor}" {response.status} '
            f"{sent} {time:.6f}\n"
        )
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(line)
            sys.stderr.flush()

    @property
    def enabled(self) -> bool:
        return True


REGISTRY_KEY = web.AppKey("berth_registry", Registry)


def make_app(config: ServerConfig) -> web.Application:
    """The aiohttp application of a registry serving ``config.storage``."""
    config.validate()
    registry = Registry(config)
    app = web.Application(middlewares=[registry.errors_middleware], client_max_size=1 << 20)
    app[REGISTRY_KEY] = registry
    app.router.add_route("*", "/v2", registry.base)
    app.router.add_route("*", "/v2/", registry.base)
    app.router.add_route("*", "/v2/_catalog", registry.catalog)
    app.router.add_route("*", "/v2/{tail:.+}", registry.dispatch)
    app.router.add_route("*", "/token", registry.token)
    app.on_response_prepare.append(_common_headers)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


_EXECUTOR_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey(
    "berth_registry_executor", ThreadPoolExecutor
)


async def _startup(app: web.Application) -> None:
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="berth-registry")
    app[_EXECUTOR_KEY] = executor
    asyncio.get_running_loop().set_default_executor(executor)


async def _cleanup(app: web.Application) -> None:
    executor = app.get(_EXECUTOR_KEY)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)

