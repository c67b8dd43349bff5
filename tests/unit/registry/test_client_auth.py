"""WWW-Authenticate parsing and the token flow, with a transport standing in for the realm."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from berth.errors import RegistryAuthError
from berth.registry.client.auth import (
    Authenticator,
    Challenge,
    basic_header,
    parse_challenges,
    repository_scope,
)
from berth.registry.client.credentials import Credentials


def test_bearer_challenge_as_docker_hub_sends_it() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:library/busybox:pull",)


def test_basic_challenge_and_case_of_scheme() -> None:
    [challenge] = parse_challenges('BASIC realm="basic-realm"')
    assert challenge == Challenge("basic", {"realm": "basic-realm"})


def test_several_challenges_in_one_header() -> None:
    header = 'Basic realm="x", Bearer realm="https://t/token",service="s", Negotiate abc=='
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
    assert challenges[1].params == {"realm": "https://t/token", "service": "s"}
    assert challenges[2].token68 == "abc=="


def test_quoted_strings_with_commas_escapes_and_spaces() -> None:
    header = (
        r'Bearer realm = "https://a/t?x=1,2" , '
        r'scope="repository:a:pull,push repository:b:pull", error="say \"hi\""'
    )
    [challenge] = parse_challenges(header)
    assert challenge.realm == "https://a/t?x=1,2"
    assert challenge.scopes == ("repository:a:pull,push", "repository:b:pull")
    assert challenge.params["error"] == 'say "hi"'


def test_unquoted_values_and_garbage() -> None:
    [challenge] = parse_challenges("Bearer realm=https://a/token,service=reg")
    assert challenge.params == {"realm": "https://a/token", "service": "reg"}
    assert parse_challenges("") == []
    garbled = parse_challenges(' , "junk" Basic realm="r"')  # junk is skipped, not fatal
    assert Challenge("basic", {"realm": "r"}) in garbled


def test_repository_scope() -> None:
    assert repository_scope("library/busybox") == "repository:library/busybox:pull"
    assert repository_scope("a/b", push=True) == "repository:a/b:pull,push"


class Realm:
    """A token endpoint: records requests, hands out numbered tokens."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.refuse = refuse

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.refuse:
            return httpx.Response(401, json={"details": "incorrect username or password"})
        return httpx.Response(
            200, json={"token": f"token-{len(self.requests)}", "expires_in": 300}
        )

    def send(self, request: httpx.Request) -> httpx.Response:
        with httpx.Client(transport=httpx.MockTransport(self)) as client:
            return client.send(request)


def challenge_response(header: str) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": header})


BEARER = 'Bearer realm="https://auth.test/token",service="reg.test"'


def test_anonymous_token_then_cached_per_scope() -> None:
    realm = Realm()
    auth = Authenticator(None, realm.send, registry="reg.test", login_hint="berth login reg.test")
    scopes = frozenset({"repository:a:pull"})
    header = auth.respond(challenge_response(BEARER), scopes, sent=None)
    assert header == "Bearer token-1"
    query = parse_qs(urlsplit(str(realm.requests[0].url)).query)
    assert query == {"service": ["reg.test"], "scope": ["repository:a:pull"]}
    assert "authorization" not in realm.requests[0].headers
    assert auth.header(scopes) == "Bearer token-1"  # cached: no second request
    assert auth.prepare(scopes) == "Bearer token-1"
    assert len(realm.requests) == 1
    other = frozenset({"repository:b:pull,push"})
    assert auth.header(other) is None
    assert auth.prepare(other) == "Bearer token-2"


def test_token_with_basic_credentials_and_account() -> None:
    realm = Realm()
    creds = Credentials("alice", "s3cret")
    auth = Authenticator(creds, realm.send, registry="reg.test", login_hint="berth login reg.test")
    auth.respond(
        challenge_response(BEARER + ',scope="repository:a:pull"'), frozenset(), sent=None
    )
    request = realm.requests[0]
    assert request.headers["authorization"] == basic_header(creds)
    assert base64.b64decode(request.headers["authorization"].split()[1]) == b"alice:s3cret"
    query = parse_qs(urlsplit(str(request.url)).query)
    assert query["account"] == ["alice"]
    assert query["scope"] == ["repository:a:pull"]  # the challenge's own scope is asked for


def test_refused_token_is_replaced_once() -> None:
    realm = Realm()
    auth = Authenticator(None, realm.send, registry="r", login_hint="berth login r")
    scopes = frozenset({"repository:a:pull"})
    first = auth.respond(challenge_response(BEARER), scopes, sent=None)
    second = auth.respond(challenge_response(BEARER), scopes, sent=first)
    assert (first, second) == ("Bearer token-1", "Bearer token-2")


def test_identity_token_uses_the_refresh_token_grant() -> None:
    realm = Realm()
    auth = Authenticator(
        Credentials(identity_token="refresh-me"), realm.send, registry="r", login_hint="x"
    )
    auth.respond(challenge_response(BEARER), frozenset({"repository:a:pull"}), sent=None)
    request = realm.requests[0]
    assert request.method == "POST"
    form = parse_qs(request.content.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-me"]
    assert form["scope"] == ["repository:a:pull"]


def test_token_server_refusing_credentials_is_one_clear_error() -> None:
    realm = Realm(refuse=True)
    auth = Authenticator(
        Credentials("bob", "wrong"), realm.send, registry="reg.test", login_hint="berth login x"
    )
    with pytest.raises(RegistryAuthError) as info:
        auth.respond(challenge_response(BEARER), frozenset(), sent=None)
    assert "reg.test" in str(info.value) and "'bob'" in str(info.value)
    assert "berth login x" in str(info.value)


def test_basic_challenge_without_credentials_says_to_log_in() -> None:
    auth = Authenticator(None, Realm().send, registry="r:5000", login_hint="berth login r:5000")
    with pytest.raises(RegistryAuthError) as info:
        auth.respond(challenge_response('Basic realm="x"'), frozenset(), sent=None)
    assert "requires authentication" in str(info.value)
    assert "berth login r:5000" in str(info.value)


def test_basic_credentials_refused_after_being_sent() -> None:
    creds = Credentials("u", "p")
    auth = Authenticator(creds, Realm().send, registry="r", login_hint="berth login r")
    header = auth.respond(challenge_response('Basic realm="x"'), frozenset(), sent=None)
    assert header == basic_header(creds)
    assert auth.header(frozenset()) == header
    with pytest.raises(RegistryAuthError, match="refused access with the stored credentials"):
        auth.respond(challenge_response('Basic realm="x"'), frozenset(), sent=header)


def test_unsupported_scheme_and_token_answer_without_token() -> None:
    auth = Authenticator(None, Realm().send, registry="r", login_hint="x")
    with pytest.raises(RegistryAuthError, match="does not support"):
        auth.respond(challenge_response("Negotiate"), frozenset(), sent=None)

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"nope": 1}).encode())

    auth = Authenticator(None, httpx.Client(transport=httpx.MockTransport(empty)).send,
                         registry="r", login_hint="x")
    with pytest.raises(RegistryAuthError, match="without a token"):
        auth.respond(challenge_response(BEARER), frozenset(), sent=None)


def test_access_token_key_is_accepted() -> None:
    def oauth(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "at", "expires_in": 10})

    auth = Authenticator(None, httpx.Client(transport=httpx.MockTransport(oauth)).send,
                         registry="r", login_hint="x")
    assert auth.respond(challenge_response(BEARER), frozenset(), sent=None) == "Bearer at"
