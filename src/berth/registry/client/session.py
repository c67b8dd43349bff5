"""One repository at one registry endpoint: the distribution API's requests, with auth,
retries, and every failure turned into one clear :mod:`berth.errors` line.

This is the thin wire layer: pull, push and inspect are written on top of it and never see
HTTP status codes, challenges or transport exceptions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, urljoin, urlsplit

import httpx

from berth.errors import (
    BerthError,
    DigestMismatch,
    ImageNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
)
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.reference import DEFAULT_DOMAIN
from berth.registry.client import transport
from berth.registry.client.auth import Authenticator, repository_scope
from berth.registry.client.credentials import Credentials, CredentialStore
from berth.registry.client.hosts import DOCKER_HUB_HOST, Endpoint, Location, RegistryHosts
from berth.registry.client.options import ClientOptions

MANIFEST_ACCEPT = ", ".join(
    (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 64 * 1024 * 1024

Body = bytes | Callable[[], Iterator[bytes]] | None


@dataclass(frozen=True, slots=True)
class Context:
    """What the user asked for, for messages: "while pulling busybox:latest"."""

    action: str  # "pulling", "pushing", "inspecting", "logging in to", "searching"
    image: str  # "busybox:latest" or a registry name

    def __str__(self) -> str:
        return f"{self.action} {self.image}" if self.image else self.action


@dataclass(frozen=True, slots=True)
class RegistryProblem:
    """The first error of a distribution-spec error body."""

    code: str
    message: str

    @classmethod
    def of(cls, response: httpx.Response) -> RegistryProblem:
        try:
            data = json.loads(response.content)
        except (ValueError, httpx.ResponseNotRead):
            return cls("", "")
        if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
            first = data["errors"][0]
            if isinstance(first, dict):
                return cls(str(first.get("code") or ""), str(first.get("message") or ""))
        return cls("", "")

    def __str__(self) -> str:
        if self.code and self.message:
            return f"{self.code.lower()}: {self.message}"
        return self.message or self.code.lower()


def login_hint(registry: str) -> str:
    name = "" if registry in (DEFAULT_DOMAIN, DOCKER_HUB_HOST) else f" {registry}"
    return f"berth login{name}"


class RegistrySession:
    """Requests to one repository at one endpoint; safe to share between threads."""

    def __init__(
        self,
        location: Location,
        *,
        options: ClientOptions,
        hosts: RegistryHosts,
        credentials: Credentials | None,
        context: Context,
        push: bool = False,
        connections: int = 4,
    ) -> None:
        self.location = location
        self.endpoint: Endpoint = location.endpoint
        self.options = options
        self.hosts = hosts
        self.context = context
        self.scopes = (
            frozenset({repository_scope(location.path, push=push)})
            if location.path
            else frozenset()
        )
        self.client = transport.make_client(
            self.endpoint.host,
            options,
            verify=not self.endpoint.insecure,
            connections=max(connections, 1) + 1,
        )
        self._token_clients: dict[tuple[str, str], httpx.Client] = {}
        self.auth = Authenticator(
            credentials,
            self._send_token_request,
            registry=self.endpoint.host,
            login_hint=login_hint(location.registry),
            context=str(context),
        )
        self.scheme = transport.known_scheme(self.endpoint.host) or "https"
        self._opened = False
        self._open_lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.endpoint.host

    @property
    def path(self) -> str:
        return self.location.path

    def close(self) -> None:
        self.client.close()
        for client in self._token_clients.values():
            client.close()

    def __enter__(self) -> RegistrySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ connecting

    def open(self) -> None:
        """Ping ``/v2/``: pick HTTPS or (insecure registries only) HTTP, learn the challenge,
        and get a token for this repository up front, so later requests need no 401 round."""
        if self._opened:
            return
        with self._open_lock:
            if not self._opened:
                self._connect()

    def _connect(self) -> None:
        schemes = ["https", "http"] if self.endpoint.insecure else ["https"]
        known = transport.known_scheme(self.host)
        if known in schemes:
            schemes.remove(known)
            schemes.insert(0, known)
        failures: list[httpx.TransportError] = []
        response: httpx.Response | None = None
        for scheme in schemes:
            try:
                response = self._ping(scheme)
            except httpx.TransportError as exc:
                failures.append(exc)
                continue
            self.scheme = scheme
            transport.remember_scheme(self.host, scheme)
            break
        if response is None:
            # The most telling failure: HTTPS's, unless it only showed the server speaks HTTP.
            telling = failures[0]
            if len(failures) > 1 and transport.is_tls_mismatch(telling):
                telling = failures[1]
            error = self.unreachable(telling)
            # the caught exceptions' tracebacks hold this frame, and it holds them: break the
            # cycle now, or whatever the caller's frames reference (a Store and its database
            # fds) lives until the cyclic garbage collector happens to run
            failures.clear()
            del telling
            raise error from None
        if response.status_code == 401:
            self.auth.respond(response, self.scopes, sent=None)
            self.auth.prepare(self.scopes)
        elif response.status_code >= 500:
            raise self.status_error(response, "")
        self._opened = True

    def _ping(self, scheme: str) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.client.get(f"{scheme}://{self.host}/v2/")
            except httpx.TransportError as exc:
                if _retryable_transport(exc) and attempt < self.options.retries:
                    time.sleep(transport.retry_delay(attempt, self.options, None))
                    attempt += 1
                    continue
                raise
            if response.status_code in (429, 502, 503, 504) and attempt < self.options.retries:
                time.sleep(transport.retry_delay(attempt, self.options, response))
                attempt += 1
                continue
            return response

    def url(self, path: str) -> str:
        """``<scheme>://<host>/v2/<repository>/<path>`` (connecting first: the scheme)."""
        self.open()
        return f"{self.scheme}://{self.host}/v2/{self.path}/{path}"

    def absolute(self, location: str) -> str:
        """A ``Location`` header (often relative) as an absolute URL."""
        self.open()
        return urljoin(f"{self.scheme}://{self.host}/", location)

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        expect: tuple[int, ...] = (200,),
        scopes: frozenset[str] | None = None,
        what: str = "",
        not_found: Callable[[RegistryProblem], BerthError] | None = None,
        retry: bool = True,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, answering one 401 and retrying transient failures.

        ``body`` is bytes or a function returning a fresh iterator of bytes (so it can be sent
        again). A status outside ``expect`` raises: ``not_found`` makes the error for 404.
        """
        self.open()
        scopes = scopes or self.scopes
        header = self.auth.header(scopes) or self.auth.prepare(scopes)
        attempt = 0
        answered_challenge = False
        while True:
            content = body() if callable(body) else body
            request = self.client.build_request(
                method, url, headers=headers, content=content, params=params
            )
            if header:
                request.headers["Authorization"] = header
            try:
                response = self.client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if retry and _retryable_transport(exc) and attempt < self.options.retries:
                    time.sleep(transport.retry_delay(attempt, self.options, None))
                    attempt += 1
                    continue
                raise self.unreachable(exc, what) from None
            status = response.status_code
            if status == 401 and not answered_challenge:
                _discard(response)
                header = self.auth.respond(response, scopes, sent=header)
                answered_challenge = True
                continue
            if status in transport.RETRY_STATUSES and retry and attempt < self.options.retries:
                _discard(response)
                time.sleep(transport.retry_delay(attempt, self.options, response))
                attempt += 1
                continue
            if status in expect:
                return response
            if stream:
                _read_some(response)
            if status == 404 and not_found is not None:
                raise not_found(RegistryProblem.of(response))
            raise self.status_error(response, what)

    def _send_token_request(self, request: httpx.Request) -> httpx.Response:
        """Fetch a token from a realm, which may be another host (and scheme) entirely."""
        url = urlsplit(str(request.url))
        host = url.netloc
        if url.scheme == "http" and not (self.hosts.is_insecure(host) or self.endpoint.insecure):
            raise RegistryAuthError(
                f"registry {self.host} sends credentials to a plain HTTP token server ({host})",
                hint="berth only does that for insecure registries; fix the registry's realm",
            )
        key = (url.scheme, host)
        client = self._token_clients.get(key)
        if client is None:
            client = transport.make_client(
                host, self.options, verify=not self.hosts.is_insecure(host), connections=2
            )
            self._token_clients[key] = client
        attempt = 0
        while True:
            try:
                response = client.send(request)
            except httpx.TransportError as exc:
                if _retryable_transport(exc) and attempt < self.options.retries:
                    time.sleep(transport.retry_delay(attempt, self.options, None))
                    attempt += 1
                    continue
                raise RegistryUnreachable(
                    f"cannot reach the token server {host} of registry {self.host} while "
                    f"{self.context}: {transport.describe(exc)}",
                    hint="check the network and the registry's auth configuration",
                ) from None
            if response.status_code in (429, 502, 503, 504) and attempt < self.options.retries:
                time.sleep(transport.retry_delay(attempt, self.options, response))
                attempt += 1
                continue
            return response

    # ------------------------------------------------------------------ errors

    def unreachable(self, exc: BaseException, what: str = "") -> RegistryUnreachable:
        reason = transport.describe(exc)
        where = f" ({what})" if what else ""
        message = f"cannot reach registry {self.host} while {self.context}{where}: {reason}"
        if reason == "connection refused":
            hint = "is the registry running? for plain HTTP add it to the insecure registries"
        elif reason.startswith("TLS certificate not trusted"):
            hint = (
                f"put its CA certificate in /etc/docker/certs.d/{self.host}/ca.crt, "
                "or add it to the insecure registries"
            )
        elif reason == "the registry does not speak HTTPS":
            hint = (
                "if it serves plain HTTP, add it to the insecure registries "
                "(registries.conf or daemon.json)"
            )
        elif reason == "host name not found":
            hint = "check the registry name and the DNS configuration"
        else:
            hint = "check the network and that the registry is up, then try again"
        return RegistryUnreachable(message, hint=hint)

    def status_error(self, response: httpx.Response, what: str) -> BerthError:
        problem = RegistryProblem.of(response)
        status = response.status_code
        where = f" ({what})" if what else ""
        detail = str(problem) or f"{status} {response.reason_phrase}"
        if status == 401:
            return self.auth.not_authorized(
                anonymous=self.auth.credentials is None or not _has_creds(self.auth.credentials)
            )
        if status == 403 or problem.code == "DENIED":
            return RegistryAuthError(
                f"denied: registry {self.host} refused access while {self.context}{where}: "
                f"{detail}",
                hint=f"check the repository name and your access rights ({self.auth.login_hint})",
            )
        if status == 429 or problem.code == "TOOMANYREQUESTS":
            return RegistryError(
                f"registry {self.host} is rate limiting requests while {self.context}: {detail}",
                hint="wait a while and try again, or log in for a higher limit",
            )
        if status == 404:
            return ImageNotFound(
                f"{detail} at registry {self.host} while {self.context}{where}",
                hint="check the image name and tag",
            )
        if status >= 500:
            return RegistryError(
                f"registry {self.host} failed with {status} {response.reason_phrase} "
                f"while {self.context}{where}" + (f": {problem}" if str(problem) else ""),
                hint="the registry has a problem; try again later",
            )
        return RegistryError(
            f"registry {self.host} answered {status} while {self.context}{where}: {detail}"
        )

    # ------------------------------------------------------------------ the API

    def get_manifest(self, reference: str, *, what: str = "") -> tuple[bytes, str, str]:
        """Raw manifest bytes, their media type and the Docker-Content-Digest header ("")."""
        response = self.request(
            "GET",
            self.url(f"manifests/{quote(reference, safe=':@')}"),
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
            what=what or "manifest",
            not_found=self._manifest_unknown(reference),
        )
        try:
            content = _read_limited(response, MAX_MANIFEST_BYTES, "manifest", self)
        finally:
            response.close()
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return content, media_type, response.headers.get("docker-content-digest", "")

    def _manifest_unknown(self, reference: str) -> Callable[[RegistryProblem], BerthError]:
        def make(problem: RegistryProblem) -> BerthError:
            name = self.context.image
            if problem.code == "NAME_UNKNOWN":
                return ImageNotFound(
                    f"repository {self.path} not found at registry {self.host}: name unknown "
                    f"(while {self.context})",
                    hint="check the image name",
                )
            return ImageNotFound(
                f"manifest for {name} not found at registry {self.host}: manifest unknown",
                hint="check the image name and tag",
            )

        return make

    def head_blob(self, digest: str, *, scopes: frozenset[str] | None = None) -> int | None:
        """The blob's size if the repository has it, else None."""
        response = self.request(
            "HEAD", self.url(f"blobs/{digest}"), expect=(200, 404), scopes=scopes, what="blob"
        )
        if response.status_code != 200:
            return None
        try:
            return int(response.headers.get("content-length", "-1"))
        except ValueError:
            return -1

    def get_blob_bytes(self, digest: Digest, size: int | None, *, what: str) -> bytes:
        """A small blob (a config), verified against its digest and size."""
        response = self.request(
            "GET",
            self.url(f"blobs/{digest}"),
            stream=True,
            what=what,
            not_found=lambda p: self.blob_unknown(digest, what),
        )
        try:
            content = _read_limited(response, MAX_CONFIG_BYTES, what, self)
        finally:
            response.close()
        actual = Digest(digest.algorithm, hashlib.new(digest.algorithm, content).hexdigest())
        if actual != digest or (size is not None and size != len(content)):
            raise DigestMismatch(
                f"registry {self.host} sent a {what} with digest {actual} ({len(content)} bytes) "
                f"for {digest} while {self.context}",
                hint="the registry's copy is corrupt; nothing was stored",
            )
        return content

    def blob_unknown(self, digest: Digest | str, what: str) -> ImageNotFound:
        return ImageNotFound(
            f"blob unknown: registry {self.host} does not have the {what} {digest} of "
            f"{self.path} while {self.context}",
            hint="the image in the registry is incomplete; push it again",
        )

    def tags(self) -> list[str]:
        """Every tag of the repository, following ``Link`` pagination."""
        out: list[str] = []
        url: str | None = self.url("tags/list")
        while url:
            response = self.request(
                "GET",
                url,
                what="tags",
                not_found=lambda p: ImageNotFound(
                    f"repository {self.path} not found at registry {self.host} "
                    f"while {self.context}",
                    hint="check the image name",
                ),
            )
            try:
                data = json.loads(response.content)
                out += [str(t) for t in data.get("tags") or []]
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"registry {self.host} sent a tag list that is not JSON while {self.context}"
                ) from None
            url = _next_link(response, self)
        return out


def _has_creds(credentials: Credentials) -> bool:
    return bool(credentials.username or credentials.password or credentials.identity_token)


def _retryable_transport(exc: httpx.TransportError) -> bool:
    if isinstance(exc, httpx.ConnectError) and (
        "refused" in transport.describe(exc) or transport.is_tls_error(exc)
    ):
        return False  # nothing listens, or TLS cannot work: retrying will not help
    return not isinstance(exc, httpx.UnsupportedProtocol)


def _discard(response: httpx.Response) -> None:
    try:
        _read_some(response)
    finally:
        response.close()


def _read_some(response: httpx.Response) -> None:
    """Read a streamed error body, so its message can be shown."""
    try:
        response.read()
    except httpx.HTTPError:
        pass


def _read_limited(
    response: httpx.Response, limit: int, what: str, session: RegistrySession
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise RegistryError(
                    f"registry {session.host} sent a {what} larger than {limit} bytes "
                    f"while {session.context}",
                    hint="the registry is misbehaving or the reference is wrong",
                )
            chunks.append(chunk)
    except httpx.TransportError as exc:
        raise session.unreachable(exc, what) from None
    return b"".join(chunks)


def _next_link(response: httpx.Response, session: RegistrySession) -> str | None:
    link = response.headers.get("link", "")
    if 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    return session.absolute(target) if target else None


def credentials_for(store: CredentialStore, location: Location) -> Credentials | None:
    """The endpoint's own credentials, else (not for a mirror) those of the user's registry:
    ``berth login`` with no server stores Docker Hub's, whichever host serves docker.io."""
    found = store.get(location.host)
    if found is None and not location.endpoint.mirror and location.registry != location.host:
        found = store.get(location.registry)
    return found
