"""The wire layer: auth round trips, retries, scheme choice, and errors as one clear line.

A transport (httpx's MockTransport: the boundary berth owns) plays the registry, except where a
real socket on loopback is the point (refused connections, plain HTTP, TLS mismatch).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from berth.errors import ImageNotFound, RegistryAuthError, RegistryError, RegistryUnreachable
from berth.registry.client import transport
from berth.registry.client.credentials import Credentials
from berth.registry.client.hosts import Endpoint, Location, RegistryHosts
from berth.registry.client.session import Context, RegistrySession
from tests.support.registry_client import berth_temp_dir, client_options

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("session") as path:
        yield path


@pytest.fixture(autouse=True)
def _fresh_schemes() -> Iterator[None]:
    transport.forget_schemes()
    yield
    transport.forget_schemes()


def session_for(
    tmp: str,
    handler: Handler | None,
    *,
    host: str = "reg.test",
    insecure: bool = False,
    credentials: Credentials | None = None,
    push: bool = False,
) -> RegistrySession:
    options = client_options(
        tmp, transport=httpx.MockTransport(handler) if handler else None, retries=2
    )
    return RegistrySession(
        Location(Endpoint(host, insecure), "library/busybox", "docker.io"),
        options=options,
        hosts=RegistryHosts.load(options),
        credentials=credentials,
        context=Context("pulling", "busybox:latest"),
        push=push,
    )


class FakeRegistry:
    """A registry behind a token realm, as Docker Hub is."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []
        self.token_requests = 0
        self.fail_next: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.url.path == "/token":
            self.token_requests += 1
            return httpx.Response(200, json={"token": "good", "expires_in": 300})
        if self.fail_next:
            status = self.fail_next.pop(0)
            return httpx.Response(status, headers={"Retry-After": "0"})
        if request.headers.get("authorization") != "Bearer good":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://reg.test/token",service="reg"'
                },
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            )
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if request.url.path.endswith("/manifests/latest"):
            return httpx.Response(
                200,
                content=b'{"schemaVersion":2}',
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
        return httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
        )


def test_token_is_fetched_at_ping_and_sent_up_front(tmp: str) -> None:
    registry = FakeRegistry()
    with session_for(tmp, registry) as session:
        raw, media_type, _ = session.get_manifest("latest")
    assert raw == b'{"schemaVersion":2}'
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert registry.token_requests == 1
    paths = [(c.url.path, c.headers.get("authorization")) for c in registry.calls]
    assert paths == [
        ("/v2/", None),  # the ping: 401 with the challenge
        ("/token", None),
        ("/v2/library/busybox/manifests/latest", "Bearer good"),  # no second 401 round
    ]
    token_query = registry.calls[1].url.params
    assert token_query.get_list("scope") == ["repository:library/busybox:pull"]


def test_transient_failures_are_retried(tmp: str) -> None:
    registry = FakeRegistry()
    with session_for(tmp, registry) as session:
        session.open()
        registry.fail_next = [503, 429]
        raw, _, _ = session.get_manifest("latest")
    assert raw == b'{"schemaVersion":2}'


def test_persistent_server_errors_are_one_line(tmp: str) -> None:
    registry = FakeRegistry()
    with session_for(tmp, registry) as session:
        session.open()
        registry.fail_next = [500, 500, 500, 500]
        with pytest.raises(RegistryError) as info:
            session.get_manifest("latest")
    text = str(info.value)
    assert "registry reg.test failed with 500" in text
    assert "pulling busybox:latest" in text
    assert "\n" not in text


def test_manifest_unknown_names_image_and_registry(tmp: str) -> None:
    with session_for(tmp, FakeRegistry()) as session, pytest.raises(ImageNotFound) as info:
        session.get_manifest("nope")
    assert "manifest for busybox:latest not found at registry reg.test" in str(info.value)


def test_name_unknown(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "x"}]})

    with session_for(tmp, handler) as session, pytest.raises(ImageNotFound) as info:
        session.get_manifest("latest")
    assert "repository library/busybox not found at registry reg.test" in str(info.value)


def test_denied_and_refused_token(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no way"}]})

    with session_for(tmp, handler) as session, pytest.raises(RegistryAuthError) as info:
        session.get_manifest("latest")
    assert "denied" in str(info.value) and "no way" in str(info.value)


def test_401_after_a_fresh_token_says_to_log_in(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "useless"})
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://reg.test/token"'}
        )

    with session_for(tmp, handler) as session, pytest.raises(RegistryAuthError) as info:
        session.get_manifest("latest")
    assert "requires authentication" in str(info.value)
    assert "berth login" in str(info.value)


def test_plain_http_token_realm_is_refused_for_a_secure_registry(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.test/token"'}
        )

    session = session_for(tmp, handler, credentials=Credentials("u", "p"))
    with session, pytest.raises(RegistryAuthError, match="plain HTTP token server"):
        session.open()


def test_tags_follow_link_pagination(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        if request.url.params.get("last") == "b":
            return httpx.Response(200, json={"name": "library/busybox", "tags": ["c"]})
        return httpx.Response(
            200,
            json={"name": "library/busybox", "tags": ["a", "b"]},
            headers={"Link": '</v2/library/busybox/tags/list?n=2&last=b>; rel="next"'},
        )

    with session_for(tmp, handler) as session:
        assert session.tags() == ["a", "b", "c"]


def test_oversized_manifest_is_refused(tmp: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(200, content=b" " * (5 * 1024 * 1024))

    with session_for(tmp, handler) as session, pytest.raises(RegistryError, match="larger"):
        session.get_manifest("latest")


# -- real sockets on loopback ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_one_line_with_what_to_do(tmp: str) -> None:
    host = f"127.0.0.1:{closed_port()}"
    session = session_for(tmp, None, host=host, insecure=True)
    with session, pytest.raises(RegistryUnreachable) as info:
        session.open()
    text = str(info.value)
    assert text.startswith(f"cannot reach registry {host} while pulling busybox:latest")
    assert "connection refused" in text
    assert "is the registry running?" in text
    assert "\n" not in text


@contextlib.contextmanager
def plain_http_registry() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_insecure_registry_falls_back_to_plain_http(tmp: str) -> None:
    with plain_http_registry() as host, session_for(tmp, None, host=host, insecure=True) as s:
        s.open()
        assert s.scheme == "http"
        assert transport.known_scheme(host) == "http"


def test_secure_registry_never_uses_plain_http(tmp: str) -> None:
    with plain_http_registry() as host:
        session = session_for(tmp, None, host=host)
        with session, pytest.raises(RegistryUnreachable) as info:
            session.open()
    text = str(info.value)
    assert "does not speak HTTPS" in text
    assert "insecure registries" in text


# -- TLS: a registry with its own CA, trusted through certs.d --------------------------------


def make_cert(directory: str) -> tuple[str, str]:
    import subprocess

    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def tls_session(tmp: str, host: str, certs_dirs: tuple[str, ...]) -> RegistrySession:
    options = client_options(tmp, certs_dirs=certs_dirs, retries=0)
    return RegistrySession(
        Location(Endpoint(host, insecure=False), "x/y", host),  # verified, as a remote host
        options=options,
        hosts=RegistryHosts.load(options),
        credentials=None,
        context=Context("pulling", f"{host}/x/y:latest"),
    )


def test_tls_is_verified_against_certs_d(tmp: str) -> None:
    from berth.registry.server import ServerConfig
    from tests.support.registry_server import ThreadServer

    cert, key = make_cert(tmp)
    config = ServerConfig(storage=os.path.join(tmp, "registry"), tls_cert=cert, tls_key=key)
    with ThreadServer(config) as server:
        untrusted = tls_session(tmp, server.host, ())
        with untrusted, pytest.raises(RegistryUnreachable) as info:
            untrusted.open()
        assert "TLS certificate not trusted" in str(info.value)
        assert f"/etc/docker/certs.d/{server.host}/ca.crt" in str(info.value)
        certs_d = os.path.join(tmp, "certs.d")
        os.makedirs(os.path.join(certs_d, server.host))
        shutil.copy(cert, os.path.join(certs_d, server.host, "ca.crt"))
        with tls_session(tmp, server.host, (certs_d,)) as trusted:
            trusted.open()
            assert trusted.scheme == "https"
            with pytest.raises(ImageNotFound):
                trusted.get_manifest("latest")
