"""Image references, normalised exactly as Docker normalises them.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app`` keeps its registry;
``ghcr.io/Owner/x`` is rejected because repository paths are lowercase. The grammar and the
rules for telling a registry host from a first path component follow the distribution project's
``reference`` package (the one the docker CLI uses), so the same input gives the same result or
the same error.
"""

from __future__ import annotations

from berth.errors import InvalidReference
from berth.oci.digest import Digest
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Patterns, compiled by re on first use (see _match): compiling them takes a few milliseconds,
# and the names people usually type take the exact fast path of _simple_docker_hub_name.
_REFERENCE_RE = rf"^((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$"
_NAME_RE = rf"^(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})$"
_TAG_RE = rf"^{_TAG}$"
_REMOTE_NAME_RE = rf"^{_REMOTE_NAME}$"
_HEX = frozenset("0123456789abcdef")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ASCII_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _match(pattern: str, text: str) -> re.Match[str] | None:
    import re

    return re.match(pattern, text)


class ImageReference(FrozenValue):
    """A fully qualified image reference: ``domain/path[:tag][@digest]``; immutable."""

    __slots__ = ("digest", "domain", "path", "tag")
    domain: str
    path: str
    tag: str | None
    digest: Digest | None

    def __init__(
        self, domain: str, path: str, tag: str | None = None, digest: Digest | None = None
    ) -> None:
        init_fields(self, domain=domain, path=path, tag=tag, digest=digest)

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """``busybox``: the name as the docker CLI shows it."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if (
                path.startswith(OFFICIAL_REPO_PREFIX)
                and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]
            ):
                return path[len(OFFICIAL_REPO_PREFIX) :]
            return path
        return self.repository

    def __str__(self) -> str:
        return self._render(self.repository)

    def familiar(self) -> str:
        """``busybox:latest`` rather than ``docker.io/library/busybox:latest``."""
        return self._render(self.familiar_repository)

    def _render(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> ImageReference:
        if not _match(_TAG_RE, tag):
            raise InvalidReference(f"invalid tag format: {tag!r}")
        return ImageReference(self.domain, self.path, tag, None)

    def with_default_tag(self) -> ImageReference:
        """Docker's ``TagNameOnly``: add ``latest`` when there is neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return ImageReference(self.domain, self.path, DEFAULT_TAG, self.digest)
        return self

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None


def looks_like_image_id(text: str) -> bool:
    text = text.removesuffix("\n")  # as the pattern ^[a-f0-9]{64}$ matched (its $ allows it)
    return len(text) == 64 and _HEX.issuperset(text)


def parse_normalized(text: str) -> ImageReference:
    """Parse what a user typed (``busybox``, ``ghcr.io/a/b:1``) into a qualified reference.

    No default tag is added: call :meth:`ImageReference.with_default_tag` for that.
    """
    if not text:
        raise InvalidReference(
            "invalid reference format: repository name must have at least one component"
        )
    if looks_like_image_id(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    simple = _simple_docker_hub_name(text)
    if simple is not None:
        return simple
    domain, remainder = _split_docker_domain(text)
    remote_name = remainder.split(":", 1)[0] if ":" in remainder else remainder
    if remote_name.lower() != remote_name:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote_name}) must be lowercase"
        )
    return parse(f"{domain}/{remainder}")


def parse(text: str) -> ImageReference:
    """Parse an already qualified reference (no normalisation of the domain)."""
    match = _match(_REFERENCE_RE, text)
    if match is None:
        if not text:
            raise InvalidReference(
                "invalid reference format: repository name must have at least one component"
            )
        if _match(_REFERENCE_RE, text.lower()):
            raise InvalidReference(
                f"invalid reference format: repository name must be lowercase: {text!r}"
            )
        raise InvalidReference(f"invalid reference format: {text!r}")
    name, tag, digest_text = match.groups()
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters: {text!r}"
        )
    name_match = _match(_NAME_RE, name)
    assert name_match is not None  # the reference regexp already matched the same grammar
    domain, path = name_match.groups()
    digest = None
    if digest_text is not None:
        try:
            digest = Digest.parse(digest_text)
        except Exception as exc:
            raise InvalidReference(f"invalid reference format: {exc}") from None
    return ImageReference(domain=domain or "", path=path, tag=tag, digest=digest)


def _simple_docker_hub_name(text: str) -> ImageReference | None:
    """What :func:`parse_normalized` returns for the usual Docker Hub name (``busybox``,
    ``user/app:1.2``), found without regular expressions; ``None`` for anything else, which the
    full grammar then parses.

    Taken only where the outcome is certain: lowercase path components of the grammar, the
    first with no ``.`` or ``:`` and not ``localhost`` (so the domain is docker.io), and an
    ASCII tag; the patterns accept exactly these as ``docker.io/<path>[:<tag>]``."""
    name, colon, tag = text.partition(":")
    if colon and not _is_ascii_tag(tag):
        return None
    components = name.split("/")
    if components[0] == "localhost" or not all(_is_path_component(c) for c in components):
        return None
    if "." in components[0]:
        return None
    path = name if len(components) > 1 else OFFICIAL_REPO_PREFIX + name
    if len(DEFAULT_DOMAIN) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        return None
    return ImageReference(DEFAULT_DOMAIN, path, tag if colon else None, None)


def _is_ascii_tag(tag: str) -> bool:
    """``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`` (the tag grammar, ASCII only), without re."""
    rest = tag[1:].replace(".", "").replace("-", "")
    return 0 < len(tag) <= 128 and tag[0] in _ASCII_WORD and _ASCII_WORD.issuperset(rest)


def _is_path_component(text: str) -> bool:
    """``[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*``, without re."""
    if not text or text[0] not in _LOWER_ALNUM or text[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for char in text:
        if char in _LOWER_ALNUM:
            separator = ""
        elif (char == "-" and separator in ("", "-" * len(separator))) or (
            char in "._" and (not separator or (char == "_" and separator == "_"))
        ):
            separator += char
        else:
            return False
    return True


def _split_docker_domain(name: str) -> tuple[str, str]:
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def is_valid_repository_path(path: str) -> bool:
    """True for a distribution-spec repository name such as ``library/busybox``."""
    return bool(_match(_REMOTE_NAME_RE, path)) and len(path) <= NAME_TOTAL_LENGTH_MAX


def is_valid_tag(tag: str) -> bool:
    return bool(_match(_TAG_RE, tag))
