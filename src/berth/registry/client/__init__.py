"""berth's registry client for the OCI distribution protocol.

Public API::

    from berth.registry.client import ClientOptions, pull, push, login, logout
    pull(store, "busybox", progress=print)            # -> [PullResult]
    push(store, "localhost:5000/app:1")               # -> PushResult
    login("localhost:5000", "user", "secret")         # -> "Login Succeeded"
    inspect_manifest("busybox")                       # -> raw manifest bytes
    search("busy", limit=10, filters=["stars=3"])     # -> [SearchResult]

Progress comes as :class:`ProgressEvent`s (Docker's status words) through a
:data:`ProgressSink`; :mod:`berth.cli.progress` draws them.
"""

from berth.registry.client.credentials import Credentials, CredentialStore
from berth.registry.client.login import LOGIN_SUCCEEDED, login, logout
from berth.registry.client.manifest import format_manifest, inspect_manifest
from berth.registry.client.options import ClientOptions
from berth.registry.client.progress import ProgressEvent, ProgressSink
from berth.registry.client.pull import PullResult, pull
from berth.registry.client.push import PushedTag, PushResult, push
from berth.registry.client.search import SearchResult, format_table, search

__all__ = [
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
