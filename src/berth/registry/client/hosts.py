"""Where an image reference is fetched from: endpoints, rewrites, mirrors, insecure hosts.

``docker.io/library/busybox`` is served by ``registry-1.docker.io`` under ``library/busybox``.
Two configuration files can change that, and both are read when present:

- ``/etc/containers/registries.conf`` (``BERTH_REGISTRIES_CONF``), version 2, this subset::

      [[registry]]
      prefix = "docker.io"            # a reference prefix, or "*.example.com"
      location = "127.0.0.1:5000"     # replaces the prefix (empty: keep the name)
      insecure = true                 # plain HTTP allowed, TLS not verified
      blocked = false
      [[registry.mirror]]             # tried in order before the location, on pulls only
      location = "mirror.local:5000/hub"
      insecure = true
      pull-from-mirror = "all"        # or "digest-only", "tag-only"

  and the version 1 tables ``[registries.insecure] registries = [...]`` and
  ``[registries.block] registries = [...]``.
- Docker's ``/etc/docker/daemon.json`` (``BERTH_DAEMON_JSON``): ``"registry-mirrors"`` (URLs
  of Docker Hub mirrors) and ``"insecure-registries"`` (``host:port`` or CIDRs).

The longest matching ``prefix`` wins, as in containers-registries.conf(5). Plain HTTP is used
only for insecure hosts; loopback hosts (``localhost``, 127.0.0.0/8, ``::1``) are insecure
without being configured, as in Docker.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from berth.errors import RegistryError
from berth.oci.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, ImageReference
from berth.registry.client.options import (
    DAEMON_JSON_ENV,
    DEFAULT_DAEMON_JSON,
    DEFAULT_REGISTRIES_CONF,
    REGISTRIES_CONF_ENV,
    ClientOptions,
)

DOCKER_HUB_HOST = "registry-1.docker.io"
DOCKER_INDEX_HOST = "index.docker.io"  # Docker Hub's v1 API (search)
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registry host to talk to (``host[:port]``), and how."""

    host: str
    insecure: bool = False  # plain HTTP allowed, TLS certificate not verified
    mirror: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    """A repository at an endpoint: what a pull or push actually contacts."""

    endpoint: Endpoint
    path: str  # the repository's name at that endpoint: "library/busybox"
    registry: str  # the registry of the user's reference: "docker.io"

    @property
    def host(self) -> str:
        return self.endpoint.host

    def __str__(self) -> str:
        return f"{self.endpoint.host}/{self.path}"


@dataclass(frozen=True, slots=True)
class MirrorRule:
    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"


@dataclass(frozen=True, slots=True)
class RegistryRule:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[MirrorRule, ...] = ()

    def matches(self, name: str) -> bool:
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return host.endswith(self.prefix[1:])
        return name == self.prefix or name.startswith(self.prefix + "/")

    def rewrite(self, name: str, location: str) -> str:
        if not location or self.prefix.startswith("*."):
            return name
        return location + name[len(self.prefix) :]


class RegistryHosts:
    """Resolves references to locations, from the configuration files and the options."""

    def __init__(
        self,
        rules: list[RegistryRule],
        *,
        insecure: Sequence[str] = (),
        hub_mirrors: Sequence[MirrorRule] = (),
        extra_mirrors: dict[str, list[MirrorRule]] | None = None,
    ) -> None:
        self.rules = rules
        self.insecure_hosts: set[str] = set()
        self.insecure_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in insecure:
            self._add_insecure(entry)
        self.hub_mirrors = list(hub_mirrors)
        self.extra_mirrors = extra_mirrors or {}

    @classmethod
    def load(cls, options: ClientOptions | None = None) -> RegistryHosts:
        options = options or ClientOptions()
        conf_path = _configured(
            options.registries_conf, REGISTRIES_CONF_ENV, DEFAULT_REGISTRIES_CONF
        )
        daemon_path = _configured(options.daemon_json, DAEMON_JSON_ENV, DEFAULT_DAEMON_JSON)
        rules, insecure, blocked = read_registries_conf(conf_path) if conf_path else ([], [], [])
        rules += [RegistryRule(prefix=b, location="", blocked=True) for b in blocked]
        hub_mirrors: list[MirrorRule] = []
        if daemon_path:
            daemon = read_daemon_json(daemon_path)
            insecure += daemon.insecure
            hub_mirrors = daemon.mirrors
        extra = {
            registry: [_mirror_from_url(m) for m in mirrors]
            for registry, mirrors in options.mirrors.items()
        }
        return cls(
            rules,
            insecure=insecure + list(options.insecure),
            hub_mirrors=hub_mirrors,
            extra_mirrors=extra,
        )

    # ------------------------------------------------------------------ resolving

    def rule_for(self, name: str) -> RegistryRule | None:
        best: RegistryRule | None = None
        for rule in self.rules:
            if rule.matches(name) and (best is None or len(rule.prefix) > len(best.prefix)):
                best = rule
        return best

    def pull_locations(self, ref: ImageReference) -> list[Location]:
        """Mirrors first (those that apply to this kind of reference), then the registry."""
        name = ref.repository
        rule = self.rule_for(name)
        self._check_blocked(rule, ref)
        by_digest = ref.digest is not None
        out: list[Location] = []
        mirrors = list(rule.mirrors) if rule else []
        mirrors += self.extra_mirrors.get(ref.domain, [])
        if ref.domain == DEFAULT_DOMAIN:
            mirrors += self.hub_mirrors
        for mirror in mirrors:
            if mirror.pull_from_mirror == "digest-only" and not by_digest:
                continue
            if mirror.pull_from_mirror == "tag-only" and by_digest:
                continue
            prefix = rule.prefix if rule and not rule.prefix.startswith("*.") else ref.domain
            mirrored = mirror.location + name[len(prefix) :]
            host, path = _split(mirrored)
            endpoint = Endpoint(host, mirror.insecure or self.is_insecure(host), mirror=True)
            out.append(Location(endpoint, path, ref.domain))
        out.append(self.push_location(ref))
        return out

    def push_location(self, ref: ImageReference) -> Location:
        """Where the registry itself is (after any rewrite): pushes never go to mirrors."""
        name = ref.repository
        rule = self.rule_for(name)
        self._check_blocked(rule, ref)
        rewritten = rule.rewrite(name, rule.location) if rule else name
        host, path = _split(rewritten)
        host = _api_host(host)
        insecure = (rule is not None and rule.insecure) or self.is_insecure(host)
        return Location(Endpoint(host, insecure), path, ref.domain)

    def registry_endpoint(self, registry: str) -> Endpoint:
        """The endpoint of a registry named alone (``berth login localhost:5000``)."""
        hub_aliases = (LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_HOST)
        domain = DEFAULT_DOMAIN if registry in hub_aliases else registry
        rule = self.rule_for(domain)
        host = domain
        if rule is not None:
            if rule.blocked:
                raise RegistryError(f"registry {registry} is blocked in registries.conf")
            host = _split(rule.rewrite(domain, rule.location) + "/x")[0]
        host = _api_host(host)
        insecure = (rule is not None and rule.insecure) or self.is_insecure(host)
        return Endpoint(host, insecure)

    def search_endpoint(self, registry: str) -> Endpoint:
        """Docker Hub's search lives on ``index.docker.io`` unless docker.io is relocated."""
        endpoint = self.registry_endpoint(registry)
        if endpoint.host == DOCKER_HUB_HOST:
            return Endpoint(DOCKER_INDEX_HOST, endpoint.insecure)
        return endpoint

    # ------------------------------------------------------------------ insecure hosts

    def is_insecure(self, host: str) -> bool:
        hostname = _hostname(host)
        if is_loopback(hostname):
            return True
        if host in self.insecure_hosts or hostname in self.insecure_hosts:
            return True
        for rule in self.rules:
            if rule.insecure and (host in (rule.location, rule.prefix)):
                return True
            for mirror in rule.mirrors:
                if mirror.insecure and _split(mirror.location + "/x")[0] == host:
                    return True
        if self.insecure_networks:
            for address in _addresses(hostname):
                if any(address in network for network in self.insecure_networks):
                    return True
        return False

    def _add_insecure(self, entry: str) -> None:
        entry = _strip_scheme(entry.strip()).rstrip("/")
        if not entry:
            return
        if "/" in entry:
            try:
                self.insecure_networks.append(ipaddress.ip_network(entry, strict=False))
                return
            except ValueError:
                pass
        self.insecure_hosts.add(entry)

    def _check_blocked(self, rule: RegistryRule | None, ref: ImageReference) -> None:
        if rule is not None and rule.blocked:
            raise RegistryError(
                f"pulling and pushing {ref.familiar()} is blocked: registries.conf blocks "
                f"{rule.prefix}",
                hint="change the [[registry]] entry to allow it",
            )


def is_loopback(hostname: str) -> bool:
    hostname = hostname.strip("[]")
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------- config files


def read_registries_conf(path: str) -> tuple[list[RegistryRule], list[str], list[str]]:
    """Rules, insecure hosts and blocked prefixes from a registries.conf (v1 or v2)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return [], [], []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(
            f"cannot read the registries configuration {path}: {exc}",
            hint="fix the file's TOML syntax, or point BERTH_REGISTRIES_CONF elsewhere",
        ) from None
    rules = [_rule(entry, path) for entry in _tables(data.get("registry"), path, "[[registry]]")]
    legacy = data.get("registries") or {}
    insecure = list(_strings((legacy.get("insecure") or {}).get("registries"), path))
    blocked = list(_strings((legacy.get("block") or {}).get("registries"), path))
    return rules, insecure, blocked


def _rule(entry: dict[str, Any], path: str) -> RegistryRule:
    location = _strip_scheme(str(entry.get("location") or "")).rstrip("/")
    prefix = str(entry.get("prefix") or location).rstrip("/")
    if not prefix:
        raise RegistryError(f"{path}: a [[registry]] entry has neither prefix nor location")
    if prefix.startswith("*.") and location:
        raise RegistryError(
            f"{path}: [[registry]] prefix {prefix!r} is a wildcard; it cannot have a location"
        )
    mirrors = []
    for mirror in _tables(entry.get("mirror"), path, "[[registry.mirror]]"):
        mirror_location = _strip_scheme(str(mirror.get("location") or "")).rstrip("/")
        if not mirror_location:
            raise RegistryError(f"{path}: a [[registry.mirror]] of {prefix!r} has no location")
        mode = str(mirror.get("pull-from-mirror") or "all")
        if mode not in PULL_FROM_MIRROR:
            raise RegistryError(
                f"{path}: pull-from-mirror {mode!r} is not one of {', '.join(PULL_FROM_MIRROR)}"
            )
        mirrors.append(MirrorRule(mirror_location, bool(mirror.get("insecure")), mode))
    return RegistryRule(
        prefix=_normalise_prefix(prefix),
        location=location,
        insecure=bool(entry.get("insecure")),
        blocked=bool(entry.get("blocked")),
        mirrors=tuple(mirrors),
    )


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    mirrors: list[MirrorRule]
    insecure: list[str]


def read_daemon_json(path: str) -> DaemonConfig:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        return DaemonConfig([], [])
    except (OSError, ValueError) as exc:
        raise RegistryError(
            f"cannot read Docker's daemon configuration {path}: {exc}",
            hint="fix the JSON, or point BERTH_DAEMON_JSON elsewhere",
        ) from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path} is not a JSON object")
    mirrors = [_mirror_from_url(m) for m in _strings(data.get("registry-mirrors"), path)]
    return DaemonConfig(mirrors, list(_strings(data.get("insecure-registries"), path)))


def _mirror_from_url(url: str) -> MirrorRule:
    plain_http = url.startswith("http://")
    return MirrorRule(_strip_scheme(url).rstrip("/"), insecure=plain_http)


def _tables(value: Any, path: str, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RegistryError(f"{path}: {what} must be an array of tables")
    return value


def _strings(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{path}: expected a list of strings, found {value!r}")
    return value


def _configured(explicit: str | None, env: str, default: str) -> str:
    if explicit is not None:
        return explicit
    return os.environ.get(env, default)


# ---------------------------------------------------------------------- names


def _normalise_prefix(prefix: str) -> str:
    if prefix in (LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_HOST):
        return DEFAULT_DOMAIN
    for alias in (LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_HOST):
        if prefix.startswith(alias + "/"):
            return DEFAULT_DOMAIN + prefix[len(alias) :]
    return prefix


def _split(name: str) -> tuple[str, str]:
    host, _, path = name.partition("/")
    return host, path


def _api_host(host: str) -> str:
    """Docker Hub's registry API is not at docker.io itself."""
    return DOCKER_HUB_HOST if host in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN) else host


def _strip_scheme(text: str) -> str:
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            return text[len(scheme) :]
    return text


def _hostname(host: str) -> str:
    """``host:port`` without the port (``[::1]:5000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _addresses(hostname: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out
