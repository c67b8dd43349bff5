"""Registry credentials, kept where and as the docker CLI keeps them.

``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json`` by default)::

    {
        "auths": {"https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
                  "localhost:5000": {}},
        "credsStore": "pass",
        "credHelpers": {"ghcr.io": "gh"}
    }

A server's credentials come from its ``credHelpers`` entry, else from ``credsStore``, else from
``auths`` (``auth``, or ``username``/``password``, and ``identitytoken``). A helper is the
program ``docker-credential-<name>``, run as ``get``/``store``/``erase`` with the server URL or
a JSON object on stdin and JSON on stdout, as docker-credential-helpers defines it. Docker Hub's
key is ``https://index.docker.io/v1/``; other servers are keyed by ``host[:port]``. Writing keeps
every other key of the file, and the file stays mode 0600, replaced atomically.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from berth.errors import RegistryAuthError, RegistryError
from berth.oci.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
CONFIG_FILE = "config.json"
TOKEN_USERNAME = "<token>"  # a helper's username when the secret is an identity token
_HUB_ALIASES = frozenset({DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io"})
_HELPER_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token instead of a password

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r})"


def server_key(registry: str) -> str:
    """The key docker uses for a registry: Docker Hub's v1 URL, else ``host[:port]``."""
    host = hostname_of(registry)
    return DOCKER_HUB_KEY if host in _HUB_ALIASES else host


def hostname_of(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io``: docker's ConvertToHostname."""
    text = key
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
            break
    return text.split("/", 1)[0]


def default_config_dir() -> str:
    configured = os.environ.get(DOCKER_CONFIG_ENV)
    if configured:
        return configured
    return os.path.join(os.path.expanduser("~"), ".docker")


class CredentialStore:
    """Reads and writes credentials in one docker config directory."""

    def __init__(self, config_dir: str | None = None) -> None:
        self.config_dir = config_dir or default_config_dir()
        self.path = os.path.join(self.config_dir, CONFIG_FILE)

    # ---------------------------------------------------------------- reading

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegistryAuthError(
                f"cannot read the docker configuration {self.path}: {exc.strerror}"
            ) from None
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RegistryAuthError(
                f"the docker configuration {self.path} is not valid JSON: {exc}",
                hint="fix or remove the file",
            ) from None
        if not isinstance(data, dict):
            raise RegistryAuthError(f"the docker configuration {self.path} is not a JSON object")
        return data

    def get(self, registry: str) -> Credentials | None:
        """The credentials for ``registry`` (``docker.io``, ``localhost:5000``), if any."""
        key = server_key(registry)
        config = self.load()
        helper = self._helper_for(config, key)
        if helper:
            return _helper_get(helper, key)
        entry = _find_entry(config.get("auths") or {}, key)
        return _decode_entry(entry, key, self.path) if entry is not None else None

    # ---------------------------------------------------------------- writing

    def store(self, registry: str, credentials: Credentials) -> None:
        key = server_key(registry)
        config = self.load()
        auths = config.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise RegistryAuthError(f"{self.path}: \"auths\" is not an object")
        helper = self._helper_for(config, key)
        if helper:
            _helper_store(helper, key, credentials)
            _remove_entry(auths, key)
            auths[key] = {}
        else:
            _remove_entry(auths, key)
            entry: dict[str, str] = {}
            if credentials.username or credentials.password:
                entry["auth"] = base64.b64encode(
                    f"{credentials.username}:{credentials.password}".encode()
                ).decode()
            if credentials.identity_token:
                entry["identitytoken"] = credentials.identity_token
            auths[key] = entry
        self._write(config)

    def erase(self, registry: str) -> bool:
        """Forget ``registry``'s credentials; False when there were none."""
        key = server_key(registry)
        config = self.load()
        auths = config.get("auths") or {}
        found = _remove_entry(auths, key) if isinstance(auths, dict) else False
        helper = self._helper_for(config, key)
        if helper:
            found = _helper_erase(helper, key) or found
        if found:
            self._write(config)
        return found

    def _write(self, config: dict[str, Any]) -> None:
        try:
            os.makedirs(self.config_dir, mode=0o700, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".config.json-", dir=self.config_dir)
        except OSError as exc:
            raise RegistryAuthError(
                f"cannot write the docker configuration in {self.config_dir}: {exc.strerror}"
            ) from None
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(config, f, indent="\t")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, os.path.realpath(self.path))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise RegistryAuthError(
                f"cannot write the docker configuration {self.path}: {exc.strerror}"
            ) from None

    @staticmethod
    def _helper_for(config: dict[str, Any], key: str) -> str:
        helpers = config.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for name, helper in helpers.items():
                if name == key or server_key(name) == key:
                    return str(helper)
        return str(config.get("credsStore") or "")


# -------------------------------------------------------------------- the auths section


def _find_entry(auths: dict[str, Any], key: str) -> dict[str, Any] | None:
    if not isinstance(auths, dict):
        return None
    if isinstance(auths.get(key), dict):
        return dict(auths[key])
    for name, entry in auths.items():
        if isinstance(entry, dict) and server_key(name) == key:
            return dict(entry)
    return None


def _remove_entry(auths: dict[str, Any], key: str) -> bool:
    names = [name for name in auths if name == key or server_key(name) == key]
    for name in names:
        del auths[name]
    return bool(names)


def _decode_entry(entry: dict[str, Any], key: str, path: str) -> Credentials | None:
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(str(encoded), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryAuthError(
                f"{path}: the credentials stored for {key} are not valid base64",
                hint=f"run `berth login {hostname_of(key)}` again",
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryAuthError(
                f"{path}: the credentials stored for {key} are not user:password",
                hint=f"run `berth login {hostname_of(key)}` again",
            )
    token = str(entry.get("identitytoken") or "")
    if not (username or password or token):
        return None
    return Credentials(username, password, token)


# -------------------------------------------------------------------- helpers


def _run_helper(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    try:
        return subprocess.run(
            [program, action],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise RegistryAuthError(
            f"the credential helper {program} is not installed",
            hint="install it, or remove it from credsStore/credHelpers in config.json",
        ) from None
    except subprocess.TimeoutExpired:
        raise RegistryAuthError(f"the credential helper {program} did not answer") from None
    except OSError as exc:
        raise RegistryAuthError(f"cannot run the credential helper {program}: {exc}") from None


def _helper_failure(helper: str, action: str, done: subprocess.CompletedProcess[str]) -> str:
    detail = (done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}")
    return f"the credential helper docker-credential-{helper} {action} failed: {detail}"


def _helper_get(helper: str, key: str) -> Credentials | None:
    done = _run_helper(helper, "get", key)
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise RegistryAuthError(_helper_failure(helper, "get", done))
    try:
        data = json.loads(done.stdout)
        username, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
    except (ValueError, AttributeError):
        raise RegistryError(
            f"the credential helper docker-credential-{helper} answered something not JSON"
        ) from None
    if username == TOKEN_USERNAME:
        return Credentials(identity_token=secret)
    if not (username or secret):
        return None
    return Credentials(username, secret)


def _helper_store(helper: str, key: str, credentials: Credentials) -> None:
    if credentials.identity_token:
        username, secret = TOKEN_USERNAME, credentials.identity_token
    else:
        username, secret = credentials.username, credentials.password
    payload = json.dumps({"ServerURL": key, "Username": username, "Secret": secret})
    done = _run_helper(helper, "store", payload)
    if done.returncode != 0:
        raise RegistryAuthError(_helper_failure(helper, "store", done))


def _helper_erase(helper: str, key: str) -> bool:
    done = _run_helper(helper, "erase", key)
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return False
        raise RegistryAuthError(_helper_failure(helper, "erase", done))
    return True
