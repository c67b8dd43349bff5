"""``berth search`` against Docker Hub's v1 search API shape (a transport plays the index)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from berth.errors import InvalidArgument, RegistryError
from berth.registry.client.search import SearchResult, format_table, search, split_term
from tests.support.registry_client import berth_temp_dir, client_options

RESULTS = [
    {"name": "busybox", "description": "Busybox base image.", "star_count": 3200,
     "is_official": True, "is_automated": False},
    {"name": "someone/busybox-tools", "description": "x" * 80, "star_count": 2,
     "is_official": False, "is_automated": True},
    {"name": "other/busy", "description": "", "star_count": 0,
     "is_official": False, "is_automated": False},
]


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("search") as path:
        yield path


def index(requests: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path != "/v1/search":
            return httpx.Response(404)
        n = int(request.url.params.get("n", "25"))
        return httpx.Response(
            200,
            json={"num_results": len(RESULTS), "query": request.url.params["q"],
                  "results": RESULTS[:n]},
        )

    return httpx.MockTransport(handler)


def test_search_docker_hub(tmp: str) -> None:
    requests: list[httpx.Request] = []
    found = search("busy", options=client_options(tmp, transport=index(requests)))
    assert [r.name for r in found] == ["busybox", "someone/busybox-tools", "other/busy"]
    assert found[0] == SearchResult("busybox", "Busybox base image.", 3200, True, False)
    assert requests[0].url.host == "index.docker.io"
    assert requests[0].url.params["q"] == "busy" and requests[0].url.params["n"] == "25"


def test_search_another_registry_and_limit(tmp: str) -> None:
    requests: list[httpx.Request] = []
    found = search(
        "localhost:5000/busy", limit=1, options=client_options(tmp, transport=index(requests))
    )
    assert [r.name for r in found] == ["busybox"]
    assert requests[0].url.host == "localhost" and requests[0].url.port == 5000
    assert requests[0].url.params["q"] == "busy" and requests[0].url.params["n"] == "1"


def test_filters(tmp: str) -> None:
    options = client_options(tmp, transport=index([]))
    assert [r.name for r in search("busy", filters=["stars=2"], options=options)] == [
        "busybox",
        "someone/busybox-tools",
    ]
    assert [r.name for r in search("busy", filters=["is-official=true"], options=options)] == [
        "busybox"
    ]
    assert [r.name for r in search("busy", filters=["is-automated=false"], options=options)] == [
        "busybox",
        "other/busy",
    ]


@pytest.mark.parametrize("bad", ["stars=many", "is-official=perhaps", "colour=red", "stars"])
def test_bad_filters(tmp: str, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        search("busy", filters=[bad], options=client_options(tmp, transport=index([])))


def test_limit_range(tmp: str) -> None:
    with pytest.raises(InvalidArgument, match=r"outside the range of \[1, 100\]"):
        search("busy", limit=0, options=client_options(tmp, transport=index([])))


def test_registry_without_search(tmp: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(RegistryError, match="does not implement the search API"):
        search("localhost:5000/x", options=client_options(tmp, transport=transport))


def test_split_term() -> None:
    assert split_term("busybox") == ("docker.io", "busybox")
    assert split_term("library/busybox") == ("docker.io", "library/busybox")
    assert split_term("r.test:5000/busy") == ("r.test:5000", "busy")


def test_table_is_docker_shaped() -> None:
    table = format_table([SearchResult.from_json(r) for r in RESULTS])
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert lines[1].split()[:1] == ["busybox"] and lines[1].endswith("[OK]")
    assert "3200" in lines[1]
    assert ("x" * 44 + "…") in lines[2]  # docker truncates descriptions to 45 characters
    assert lines[0].index("DESCRIPTION") == lines[1].index("Busybox")
    full = format_table([SearchResult.from_json(RESULTS[1])], no_trunc=True)
    assert "x" * 80 in full
