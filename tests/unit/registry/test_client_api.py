"""The registry client's public surface, pinned: the engine and CLI are wired to these names."""

from __future__ import annotations

import inspect

from berth.registry import client
from berth.registry.client import ClientOptions


def test_public_names() -> None:
    assert sorted(client.__all__) == sorted(
        [
            "LOGIN_SUCCEEDED",
            "ClientOptions",
            "CredentialStore",
            "Credentials",
            "ProgressEvent",
            "ProgressSink",
            "PullResult",
            "PushResult",
            "PushedTag",
            "SearchResult",
            "format_manifest",
            "format_table",
            "inspect_manifest",
            "login",
            "logout",
            "pull",
            "push",
            "search",
        ]
    )
    for name in client.__all__:
        assert hasattr(client, name)


def test_signatures() -> None:
    def params(fn: object) -> list[str]:
        return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]

    assert params(client.pull) == ["store", "name", "platform", "all_tags", "progress", "options"]
    assert params(client.push) == ["store", "name", "all_tags", "progress", "options"]
    assert params(client.login) == ["server", "username", "password", "options"]
    assert params(client.logout) == ["server", "options"]
    assert params(client.inspect_manifest) == ["name", "options"]
    assert params(client.search) == ["term", "limit", "filters", "options"]


def test_docker_defaults() -> None:
    options = ClientOptions()
    assert options.max_concurrent_downloads == 3
    assert options.max_concurrent_uploads == 5
