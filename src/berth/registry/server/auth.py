"""Who may do what: htpasswd basic auth, Docker's bearer-token flow, per-repository rights.

Three pieces, each usable alone:

- :class:`Htpasswd`: an Apache htpasswd file of bcrypt entries (``htpasswd -Bbn user pass``).
  The file is re-read when it changes; successful checks are cached in memory (keyed by a
  SHA-256 of the password) because clients send their credentials with every request and a
  bcrypt check costs milliseconds.
- :class:`Acl`: rights per account and repository from a JSON or YAML file::

      rules:
        - account: alice          # a user name; "*" any authenticated user; "anonymous" anyone
          repository: "alice/*"   # a glob over repository names ("*" also matches "/")
          actions: [pull, push, delete]   # or ["*"]

  An account's rights on a repository are the union of the actions of every rule matching it
  (authenticated users also get what ``anonymous`` rules grant). Without a file every
  authenticated account may do everything and anonymous requests nothing.
- :class:`TokenSigner`: JWT-shaped bearer tokens signed with HMAC-SHA256, carrying Docker's
  ``access`` claim (``[{"type": "repository", "name": "x", "actions": ["pull"]}]``).

:class:`Authorizer` puts them together for the server: it decides, for the access a request
needs, whether to go ahead, answer 401 with the right ``WWW-Authenticate`` challenge (``Basic
realm=...``, or ``Bearer realm=...,service=...,scope=repository:<name>:pull,push``), or 403
``DENIED`` when the caller is known but not allowed; and it serves the token endpoint
(``GET /token?service=&scope=`` with optional basic credentials, and the OAuth2 password grant
on ``POST /token``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bcrypt
import yaml

from berth.errors import UsageError
from berth.registry.server.config import ServerConfig
from berth.registry.server.errors import DistributionError

ACTIONS = ("pull", "push", "delete")
ANONYMOUS = "anonymous"
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_CLOCK_LEEWAY = 60
_CATALOG = ("registry", "catalog")


@dataclass(frozen=True, slots=True)
class Access:
    """Access to one resource: ``repository:library/busybox:pull,push``."""

    type: str
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse_scope(cls, scope: str) -> Access | None:
        """``repository:a/b:pull,push`` (a name may hold ``:``, e.g. ``registry:catalog:*``)."""
        kind, _, rest = scope.partition(":")
        name, sep, actions = rest.rpartition(":")
        if not kind or not sep or not name:
            return None
        kind = kind.split("(", 1)[0]  # "repository(plugin)" is still a repository
        wanted = tuple(a for a in actions.split(",") if a)
        return cls(kind, name, wanted)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request: an account name, or None for anonymous."""

    account: str | None
    granted: tuple[Access, ...] | None = None  # a token's access claim; None: not a token

    @property
    def anonymous(self) -> bool:
        return self.account is None


ANONYMOUS_IDENTITY = Identity(None)


class Htpasswd:
    """bcrypt entries of an htpasswd file, re-read when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict[str, bytes] = {}
        self._mtime_ns = -1
        self._verified: dict[tuple[str, bytes], int] = {}
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise UsageError(f"htpasswd file {self.path} does not exist") from None
        if st.st_mtime_ns == self._mtime_ns:
            return
        entries: dict[str, bytes] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                user, sep, hashed = line.partition(":")
                if sep and hashed.startswith(_BCRYPT_PREFIXES):
                    entries[user] = hashed.encode()
        with self._lock:
            self._entries = entries
            self._mtime_ns = st.st_mtime_ns
            self._verified.clear()

    def verify(self, user: str, password: str) -> bool:
        """Check a password (blocking: bcrypt takes milliseconds; call it in a thread)."""
        self._reload()
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if self._verified.get(key) == self._mtime_ns:
                return True
            hashed = self._entries.get(user)
        if hashed is None:
            return False
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            with self._lock:
                self._verified[key] = self._mtime_ns
        return ok


@dataclass(frozen=True, slots=True)
class AclRule:
    accounts: tuple[str, ...]
    repositories: tuple[str, ...]
    actions: frozenset[str]


@dataclass(frozen=True)
class Acl:
    """Per-repository rights; ``rules=None`` is the default policy (see the module doc)."""

    rules: tuple[AclRule, ...] | None = None
    _cache: dict[tuple[str | None, str], frozenset[str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, path: str | None) -> Acl:
        if path is None:
            return cls()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            data: Any = json.loads(text)
        except ValueError:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise UsageError(f"ACL file {path} is neither JSON nor YAML: {exc}") from None
        return cls(_parse_rules(data, path))

    def allowed(self, account: str | None, repository: str) -> frozenset[str]:
        """The actions ``account`` (None: anonymous) may take on ``repository``."""
        if self.rules is None:
            return frozenset(ACTIONS) if account is not None else frozenset()
        key = (account, repository)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        granted: set[str] = set()
        for rule in self.rules:
            if _rule_matches_account(rule, account) and any(
                fnmatch.fnmatchcase(repository, pattern) for pattern in rule.repositories
            ):
                granted |= rule.actions
        result = frozenset(granted)
        if len(self._cache) < 65536:
            self._cache[key] = result
        return result


def _rule_matches_account(rule: AclRule, account: str | None) -> bool:
    for wanted in rule.accounts:
        if wanted == ANONYMOUS:
            return True
        if account is not None and (wanted == "*" or wanted == account):
            return True
    return False


def _parse_rules(data: Any, path: str) -> tuple[AclRule, ...]:
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        raise UsageError(f"ACL file {path}: expected a list of rules (or {{rules: [...]}})")
    rules: list[AclRule] = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise UsageError(f"ACL file {path}: rule {number} is not a mapping")
        accounts = _str_list(item.get("account", item.get("accounts")), path, number, "account")
        repos = _str_list(
            item.get("repository", item.get("repositories")), path, number, "repository"
        )
        actions = set(_str_list(item.get("actions"), path, number, "actions"))
        if "*" in actions:
            actions = set(ACTIONS)
        unknown = actions - set(ACTIONS)
        if unknown:
            raise UsageError(
                f"ACL file {path}: rule {number} has unknown actions {sorted(unknown)}",
                hint="actions are pull, push, delete or *",
            )
        rules.append(AclRule(tuple(accounts), tuple(repos), frozenset(actions)))
    return tuple(rules)


def _str_list(value: Any, path: str, number: int, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"ACL file {path}: rule {number} needs {key!r} (a string or a list)")


class TokenSigner:
    """Issues and verifies HS256 JWTs with a key shared by the issuer and the registry."""

    def __init__(self, key: bytes, *, issuer: str, service: str) -> None:
        self._key = key
        self.issuer = issuer
        self.service = service
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def from_key_file(cls, path: str, *, issuer: str, service: str) -> TokenSigner:
        return cls(load_or_create_key(path), issuer=issuer, service=service)

    def issue(self, account: str | None, access: list[Access], ttl: int) -> tuple[str, int]:
        """A signed token and its issue time (Unix seconds)."""
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key_id}
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + ttl,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": [
                {"type": a.type, "name": a.name, "actions": list(a.actions)} for a in access
            ],
        }
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}", now

    def verify(self, token: str) -> Identity:
        """The identity and access a valid token carries; ValueError when it is not valid."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("malformed token")
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            raise ValueError("bad token signature")
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise ValueError("unsupported token algorithm")
        if not isinstance(claims, dict):
            raise ValueError("malformed token claims")
        now = time.time()
        if claims.get("iss") != self.issuer:
            raise ValueError("token from another issuer")
        audience = claims.get("aud")
        if audience != self.service and not (
            isinstance(audience, list) and self.service in audience
        ):
            raise ValueError("token for another service")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now - _CLOCK_LEEWAY:
            raise ValueError("token expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + _CLOCK_LEEWAY:
            raise ValueError("token not valid yet")
        granted: list[Access] = []
        for item in claims.get("access") or []:
            if isinstance(item, dict):
                actions = tuple(str(a) for a in item.get("actions") or [])
                granted.append(Access(str(item.get("type")), str(item.get("name")), actions))
        subject = claims.get("sub")
        return Identity(subject if isinstance(subject, str) and subject else None, tuple(granted))


def load_or_create_key(path: str) -> bytes:
    """The HMAC key in ``path`` (hex), created with 32 random bytes and mode 0600 if missing.

    A new key is written to a temp file and hard-linked into place, so two processes starting
    at once agree on one key and neither reads a half-written file.
    """
    try:
        with open(path, encoding="ascii") as f:
            return bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, f".token-key-{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process published one first
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    with open(path, encoding="ascii") as f:
        return bytes.fromhex(f.read().strip())


class Authorizer:
    """The server's auth decisions, from its configuration."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.enabled = config.auth_enabled
        self.htpasswd = Htpasswd(config.htpasswd) if config.htpasswd else None
        self.acl = Acl.load(config.acl)
        self.signer = (
            TokenSigner.from_key_file(
                config.token_key_path, issuer=config.token_issuer, service=config.token_service
            )
            if config.token
            else None
        )
        self.basic_realm = "berth-registry"

    # -- credentials ---------------------------------------------------------------------

    def check_basic(self, authorization: str | None) -> Identity | None:
        """The identity of basic credentials; None when there are none; 401 when wrong.

        Blocking (bcrypt): call in a thread.
        """
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise self._basic_challenge("malformed basic credentials") from None
        user, sep, password = decoded.partition(":")
        if not sep or self.htpasswd is None or not self.htpasswd.verify(user, password):
            raise self._basic_challenge("invalid username or password")
        return Identity(user)

    def identify(self, authorization: str | None, realm: str, needed: Access | None) -> Identity:
        """Who is asking; 401 for bad credentials. Blocking (bcrypt)."""
        if not self.enabled:
            return ANONYMOUS_IDENTITY
        if self.signer is not None:
            scheme, _, value = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return ANONYMOUS_IDENTITY
            try:
                return self.signer.verify(value.strip())
            except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
                raise self._bearer_challenge(realm, needed, error="invalid_token",
                                             message=f"invalid token: {exc}") from None
        identity = self.check_basic(authorization)
        return identity or ANONYMOUS_IDENTITY

    # -- decisions -----------------------------------------------------------------------

    def rights(self, identity: Identity, repository: str) -> frozenset[str]:
        """What ``identity`` may do on ``repository`` (token grants for tokens)."""
        if not self.enabled:
            return frozenset(ACTIONS)
        if identity.granted is not None:
            granted: set[str] = set()
            for access in identity.granted:
                if access.type == "repository" and access.name == repository:
                    granted |= set(ACTIONS) if "*" in access.actions else set(access.actions)
            return frozenset(granted)
        return self.acl.allowed(identity.account, repository)

    def authorize(self, identity: Identity, needed: Access | None, realm: str) -> None:
        """Allow the request, or raise 401 (who are you?) or 403 (known, not allowed)."""
        if not self.enabled:
            return
        if needed is None:  # the /v2/ base: any authenticated caller (or any token)
            if identity.anonymous and identity.granted is None:
                raise self._challenge(realm, None)
            return
        if needed.type == _CATALOG[0] and needed.name == _CATALOG[1]:
            if identity.granted is not None:
                if any(a.type == "registry" and a.name == "catalog" for a in identity.granted):
                    return
                raise self._challenge(realm, needed, insufficient=True)
            if identity.anonymous:
                raise self._challenge(realm, needed)
            return
        missing = set(needed.actions) - self.rights(identity, needed.name)
        if not missing:
            return
        if identity.granted is not None:  # a token: maybe just too narrow
            if not identity.anonymous and set(needed.actions) - self.acl.allowed(
                identity.account, needed.name
            ):
                raise self._denied(needed)
            raise self._challenge(realm, needed, insufficient=True)
        if identity.anonymous:
            raise self._challenge(realm, needed)
        raise self._denied(needed)

    def may_pull(self, identity: Identity, repository: str) -> bool:
        """For listing: may ``identity`` read ``repository``? (the ACL of a token's subject)"""
        if not self.enabled:
            return True
        return "pull" in self.acl.allowed(identity.account, repository)

    # -- token endpoint --------------------------------------------------------------------

    def grant(self, identity: Identity, scopes: list[str]) -> list[Access]:
        """The part of the requested scopes the account is allowed."""
        granted: list[Access] = []
        for scope in scopes:
            access = Access.parse_scope(scope)
            if access is None:
                continue
            if access.type == _CATALOG[0] and access.name == _CATALOG[1]:
                if not identity.anonymous:
                    granted.append(Access("registry", "catalog", ("*",)))
                continue
            if access.type != "repository":
                continue
            allowed = self.acl.allowed(identity.account, access.name)
            wanted = set(ACTIONS) if "*" in access.actions else set(access.actions)
            actions = tuple(a for a in ACTIONS if a in wanted and a in allowed)
            if actions:
                granted.append(Access("repository", access.name, actions))
        return granted

    def issue_token(self, identity: Identity, scopes: list[str]) -> dict[str, Any]:
        if self.signer is None:
            raise DistributionError("UNSUPPORTED", "this registry does not issue tokens",
                                    status=404)
        access = self.grant(identity, scopes)
        token, issued = self.signer.issue(identity.account, access, self.config.token_ttl)
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.config.token_ttl,
            "issued_at": datetime.fromtimestamp(issued, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scope": " ".join(a.scope for a in access),
        }

    def password_identity(self, user: str, password: str) -> Identity:
        """For the OAuth2 password grant. Blocking (bcrypt)."""
        if self.htpasswd is None or not self.htpasswd.verify(user, password):
            raise self._basic_challenge("invalid username or password")
        return Identity(user)

    # -- answers ---------------------------------------------------------------------------

    def _challenge(
        self, realm: str, needed: Access | None, *, insufficient: bool = False
    ) -> DistributionError:
        if self.signer is not None:
            return self._bearer_challenge(
                realm, needed, error="insufficient_scope" if insufficient else None
            )
        return self._basic_challenge("authentication required")

    def _basic_challenge(self, message: str) -> DistributionError:
        return DistributionError(
            "UNAUTHORIZED",
            message,
            headers={"WWW-Authenticate": f'Basic realm="{self.basic_realm}",charset="UTF-8"'},
        )

    def _bearer_challenge(
        self,
        realm: str,
        needed: Access | None,
        *,
        error: str | None = None,
        message: str | None = None,
    ) -> DistributionError:
        parts = [f'realm="{realm}"', f'service="{self.config.token_service}"']
        detail: list[dict[str, str]] | None = None
        if needed is not None:
            parts.append(f'scope="{needed.scope}"')
            detail = [{"Type": needed.type, "Name": needed.name, "Action": a}
                      for a in needed.actions]
        if error:
            parts.append(f'error="{error}"')
        return DistributionError(
            "UNAUTHORIZED",
            message or "authentication required",
            detail=detail,
            headers={"WWW-Authenticate": "Bearer " + ",".join(parts)},
        )

    def _denied(self, needed: Access) -> DistributionError:
        return DistributionError(
            "DENIED",
            f"requested access to {needed.name} is denied",
            detail=[{"Type": needed.type, "Name": needed.name, "Action": a}
                    for a in needed.actions],
        )


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
