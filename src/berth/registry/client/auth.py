"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and Docker's token flow.

A registry that wants credentials answers 401 with a challenge. ``Basic realm="..."`` (ECR,
``registry:2`` with htpasswd) wants the user and password on every request. ``Bearer
realm="https://auth.example/token",service="registry",scope="repository:x:pull"`` (Docker Hub,
GHCR, Quay, ``registry:2`` with token auth) wants a token from the realm::

    GET <realm>?service=<service>&scope=repository:<name>:pull,push[&scope=...]&account=<user>

with basic credentials when there are any (anonymous otherwise), or, with an identity token,
the OAuth2 refresh-token grant as a POST. The answer is JSON with ``token`` (or
``access_token``) and ``expires_in``. Tokens are cached per realm, service and scope set, shared
by every thread of a pull or push, and fetched again when one expires or the registry answers
401 to it.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from berth.errors import RegistryAuthError
from berth.registry.client.credentials import Credentials

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)
_TOKEN68_CHARS = _TOKEN_CHARS | frozenset("/=")
MIN_TOKEN_SECONDS = 60  # docker's minimum when the token server says less or nothing
CLIENT_ID = "berth"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; the scheme is lowercased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str = ""

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value (RFC 7235), forgiving about spacing.

    ``Bearer realm="https://x/token",service="reg",scope="repository:a:pull,push"`` gives one
    challenge; several challenges may share one header, separated by commas.
    """
    parser = _ChallengeParser(header)
    return parser.parse()


class _ChallengeParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> list[Challenge]:
        out: list[Challenge] = []
        while True:
            self._skip(" \t,")
            scheme = self._token()
            if not scheme:
                if self.pos < len(self.text):  # garbage: skip a character and go on
                    self.pos += 1
                    continue
                return out
            params: dict[str, str] = {}
            token68 = ""
            self._skip(" \t")
            if self._at_param():
                self._params(params)
            else:
                token68 = self._token68()
            out.append(Challenge(scheme.lower(), params, token68))

    def _params(self, params: dict[str, str]) -> None:
        while self._at_param():
            name = self._token().lower()
            self._skip(" \t")
            self.pos += 1  # "="
            self._skip(" \t")
            params[name] = self._quoted() if self._peek() == '"' else self._bare()
            self._skip(" \t")
            if self._peek() != ",":
                return
            save = self.pos
            self.pos += 1
            self._skip(" \t,")
            if not self._at_param():  # the next challenge begins here
                self.pos = save
                return

    def _at_param(self) -> bool:
        save = self.pos
        try:
            if not self._token():
                return False
            self._skip(" \t")
            if self._peek() != "=":
                return False
            # token68 ends in "="s; a parameter has a value after its "=".
            rest = self.text[self.pos + 1 :].lstrip(" \t")
            return not rest.startswith("=")
        finally:
            self.pos = save

    def _token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _bare(self) -> str:
        """An unquoted value, read leniently up to the next comma (URLs are not tokens)."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]

    def _token68(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN68_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""


def repository_scope(path: str, *, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """The authentication state of one registry endpoint, shared by the threads using it.

    ``send`` performs a request to a token realm (which may be another host); ``registry`` is
    the name shown in messages and in the hint to log in.
    """

    def __init__(
        self,
        credentials: Credentials | None,
        send: Callable[[httpx.Request], httpx.Response],
        *,
        registry: str,
        login_hint: str,
        context: str = "",
    ) -> None:
        self.credentials = credentials
        self._send = send
        self.registry = registry
        self.login_hint = login_hint
        self.context = context  # "pulling busybox:latest": said in every message
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, frozenset[str]], _Token] = {}

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def header(self, scopes: frozenset[str]) -> str | None:
        """The Authorization header to send now, from what is known (no network)."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials
            return basic_header(creds) if creds is not None and self._has_password() else None
        if challenge.scheme == "bearer":
            token = self._tokens.get(self._key(challenge, scopes))
            if token is not None and token.expires_at > time.time() + 5:
                return f"Bearer {token.value}"
        return None

    def prepare(self, scopes: frozenset[str]) -> str | None:
        """A header for ``scopes``, fetching a token if the registry uses bearer tokens."""
        challenge = self._challenge
        if challenge is None or challenge.scheme != "bearer":
            return self.header(scopes)
        cached = self.header(scopes)
        if cached is not None:
            return cached
        return self._bearer(challenge, scopes, stale=None)

    def respond(self, response: httpx.Response, scopes: frozenset[str], sent: str | None) -> str:
        """A header answering the 401 ``response`` to a request that carried ``sent``.

        Raises :class:`RegistryAuthError` when there is no way to satisfy the registry.
        """
        challenges = parse_challenges(response.headers.get("www-authenticate", ""))
        usable = [c for c in challenges if c.scheme in ("bearer", "basic")]
        if not usable:
            raise RegistryAuthError(
                f"registry {self.registry} wants authentication berth does not support "
                f"({response.headers.get('www-authenticate', 'no challenge given')!r})"
            )
        challenge = next((c for c in usable if c.scheme == "bearer"), usable[0])
        self._challenge = challenge
        wanted = scopes | frozenset(challenge.scopes)
        if challenge.scheme == "basic":
            if not self._has_password():
                raise self.not_authorized(anonymous=True)
            header = basic_header(self.credentials)  # type: ignore[arg-type]
            if header == sent:
                raise self.not_authorized(anonymous=False)
            return header
        if not challenge.realm:
            raise RegistryAuthError(
                f"registry {self.registry} sent a bearer challenge with no realm"
            )
        return self._bearer(challenge, wanted, stale=sent)

    # ------------------------------------------------------------------ tokens

    def _bearer(self, challenge: Challenge, scopes: frozenset[str], stale: str | None) -> str:
        """A cached token for ``scopes`` unless it is the one just refused, else a new one."""
        key = self._key(challenge, scopes)
        with self._lock:
            token = self._tokens.get(key)
            if (
                token is not None
                and f"Bearer {token.value}" != stale
                and token.expires_at > time.time() + 5
            ):
                return f"Bearer {token.value}"
            token = self._fetch_token(challenge, scopes)
            self._tokens[key] = token
            return f"Bearer {token.value}"

    def _fetch_token(self, challenge: Challenge, scopes: Iterable[str]) -> _Token:
        scope_list = sorted(scopes)
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": challenge.service,
                "client_id": CLIENT_ID,
                "scope": " ".join(scope_list),
            }
            request = httpx.Request("POST", challenge.realm, data=form)
        else:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if challenge.service:
                params.append(("service", challenge.service))
            params += [("scope", s) for s in scope_list]
            headers: dict[str, str] = {}
            if self._has_password():
                assert creds is not None
                params.append(("account", creds.username))
                headers["Authorization"] = basic_header(creds)
            request = httpx.Request("GET", challenge.realm, params=params, headers=headers)
        response = self._send(request)
        if response.status_code in (401, 403):
            raise self.not_authorized(anonymous=not self._has_any(), token_server=True)
        if response.status_code != 200:
            raise RegistryAuthError(
                f"the token server {request.url.host} of registry {self.registry} answered "
                f"{response.status_code}: {_error_text(response)}"
            )
        try:
            data = json.loads(response.content)
            value = data.get("token") or data.get("access_token")
            expires_in = int(data.get("expires_in") or MIN_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value, expires_in = None, 0
        if not isinstance(value, str) or not value:
            raise RegistryAuthError(
                f"the token server {request.url.host} of registry {self.registry} "
                "answered without a token"
            )
        return _Token(value, time.time() + max(expires_in, MIN_TOKEN_SECONDS))

    # ------------------------------------------------------------------ helpers

    def not_authorized(self, *, anonymous: bool, token_server: bool = False) -> RegistryAuthError:
        """The error for a registry that will not let us in, naming what was being done."""
        where = f" while {self.context}" if self.context else ""
        if anonymous:
            return RegistryAuthError(
                f"unauthorized: registry {self.registry} requires authentication{where} "
                "(or the repository does not exist)",
                hint=f"log in first: {self.login_hint}",
            )
        if token_server:
            return RegistryAuthError(
                f"unauthorized: registry {self.registry} refused the credentials "
                f"of {self.credentials.username if self.credentials else ''!r}{where}",
                hint=f"check the user name and password: {self.login_hint}",
            )
        return RegistryAuthError(
            f"unauthorized: registry {self.registry} refused access with the stored "
            f"credentials{where}",
            hint=f"check the user name, password and access rights: {self.login_hint}",
        )

    def _has_password(self) -> bool:
        creds = self.credentials
        return creds is not None and bool(creds.username or creds.password)

    def _has_any(self) -> bool:
        return self._has_password() or bool(self.credentials and self.credentials.identity_token)

    @staticmethod
    def _key(challenge: Challenge, scopes: frozenset[str]) -> tuple[str, str, frozenset[str]]:
        return (challenge.realm, challenge.service, scopes)


def _error_text(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content)
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict):
        if isinstance(data.get("errors"), list) and data["errors"]:
            first = data["errors"][0]
            if isinstance(first, dict):
                return str(first.get("message") or first.get("code") or first)
        if data.get("error"):
            return str(data.get("error_description") or data["error"])
        if data.get("details"):
            return str(data["details"])
    return response.text[:200].strip()
