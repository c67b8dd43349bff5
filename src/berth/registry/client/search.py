"""``berth search``: Docker Hub's search API (``GET /v1/search?q=&n=``) on any registry that
implements it.

``busybox`` searches Docker Hub (``index.docker.io``, or wherever registries.conf puts
docker.io); ``localhost:5000/busy`` searches ``localhost:5000`` for ``busy``. Filters are
Docker's: ``stars=N`` (at least N stars), ``is-official=true|false``,
``is-automated=true|false``; they are applied to the results the registry returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from berth.errors import InvalidArgument, RegistryError
from berth.oci.reference import DEFAULT_DOMAIN
from berth.registry.client import transport
from berth.registry.client.auth import Authenticator
from berth.registry.client.credentials import CredentialStore
from berth.registry.client.hosts import Endpoint, RegistryHosts
from berth.registry.client.options import ClientOptions
from berth.registry.client.session import login_hint

DEFAULT_LIMIT = 25
DESCRIPTION_WIDTH = 45
FILTERS = ("stars", "is-official", "is-automated")


@dataclass(frozen=True, slots=True)
class SearchResult:
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False

    @classmethod
    def from_json(cls, data: Any) -> SearchResult:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError("a search result without a name")
        return cls(
            name=data["name"],
            description=str(data.get("description") or ""),
            star_count=int(data.get("star_count") or 0),
            is_official=bool(data.get("is_official")),
            is_automated=bool(data.get("is_automated")),
        )


def search(
    term: str,
    *,
    limit: int = DEFAULT_LIMIT,
    filters: Iterable[str] = (),
    options: ClientOptions | None = None,
) -> list[SearchResult]:
    options = options or ClientOptions()
    if not 1 <= limit <= 100:
        raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
    wanted = _parse_filters(filters)
    registry, query = split_term(term)
    hosts = RegistryHosts.load(options)
    endpoint = hosts.search_endpoint(registry)
    data = _fetch(endpoint, query, limit, registry, hosts, options)
    try:
        results = [SearchResult.from_json(r) for r in data.get("results") or []]
    except (ValueError, TypeError):
        raise RegistryError(
            f"registry {endpoint.host} sent search results berth cannot read"
        ) from None
    return [r for r in results if _keep(r, wanted)][:limit]


def split_term(term: str) -> tuple[str, str]:
    """``localhost:5000/busy`` -> (``localhost:5000``, ``busy``); ``busy`` -> docker.io."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_DOMAIN, term


def format_table(results: list[SearchResult], *, no_trunc: bool = False) -> str:
    """``docker search``'s table: NAME, DESCRIPTION, STARS, OFFICIAL."""
    rows = [["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]]
    for r in results:
        description = " ".join(r.description.split())
        if not no_trunc and len(description) > DESCRIPTION_WIDTH:
            description = description[: DESCRIPTION_WIDTH - 1] + "…"
        rows.append([r.name, description, str(r.star_count), "[OK]" if r.is_official else ""])
    widths = [max(max(len(row[i]) for row in rows) + 3, 20) for i in range(3)]
    lines = []
    for row in rows:
        line = "".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        lines.append((line + row[3]).rstrip())
    return "\n".join(lines)


def _fetch(
    endpoint: Endpoint,
    query: str,
    limit: int,
    registry: str,
    hosts: RegistryHosts,
    options: ClientOptions,
) -> dict[str, Any]:
    schemes = ["https", "http"] if endpoint.insecure else ["https"]
    params = {"q": query, "n": str(limit)}
    credentials = CredentialStore(options.docker_config).get(registry)
    last: httpx.TransportError | None = None
    with transport.make_client(
        endpoint.host, options, verify=not endpoint.insecure, connections=1
    ) as client:
        auth = Authenticator(
            credentials, client.send, registry=endpoint.host, login_hint=login_hint(registry)
        )
        for scheme in schemes:
            url = f"{scheme}://{endpoint.host}/v1/search"
            try:
                response = client.get(url, params=params)
                if response.status_code == 401:
                    header = auth.respond(response, frozenset({"registry:catalog:*"}), sent=None)
                    response = client.get(url, params=params, headers={"Authorization": header})
            except httpx.TransportError as exc:
                last = last or exc
                continue
            return _decode(response, endpoint)
    assert last is not None
    raise RegistryError(
        f"cannot reach registry {endpoint.host} while searching for {query!r}: "
        f"{transport.describe(last)}",
        hint="is the registry running, and does it implement Docker Hub's search API?",
    )


def _decode(response: httpx.Response, endpoint: Endpoint) -> dict[str, Any]:
    if response.status_code == 404:
        raise RegistryError(
            f"registry {endpoint.host} does not implement the search API (GET /v1/search: 404)"
        )
    if response.status_code != 200:
        raise RegistryError(
            f"registry {endpoint.host} answered {response.status_code} "
            f"{response.reason_phrase} to a search",
            hint="try again later",
        )
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RegistryError(f"registry {endpoint.host} sent search results that are not JSON")
    return data


def _parse_filters(filters: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTERS:
            raise InvalidArgument(
                f"invalid filter {item!r}", hint="use stars=N, is-official=BOOL, is-automated=BOOL"
            )
        if key == "stars" and not value.strip().isdigit():
            raise InvalidArgument(f"invalid filter 'stars={value}': expected a number")
        if key != "stars" and value.strip().lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter '{key}={value}': expected true or false")
        out[key] = value.strip().lower()
    return out


def _keep(result: SearchResult, wanted: dict[str, str]) -> bool:
    if "stars" in wanted and result.star_count < int(wanted["stars"]):
        return False
    if "is-official" in wanted and result.is_official != (wanted["is-official"] in ("true", "1")):
        return False
    return not (
        "is-automated" in wanted
        and result.is_automated != (wanted["is-automated"] in ("true", "1"))
    )
