"""Authentication and authorisation: htpasswd basic auth, bearer tokens, per-repository rights."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from berth.errors import UsageError
from berth.registry.server.auth import (
    Access,
    Acl,
    Authorizer,
    Htpasswd,
    Identity,
    TokenSigner,
    load_or_create_key,
)
from berth.registry.server.config import ServerConfig
from berth.registry.server.errors import DistributionError
from tests.support.registry_server import ThreadServer, sha256

USERS = {"alice": "alice-pass", "bob": "bob-pass", "carol": "carol-pass"}
ACL_RULES = {
    "rules": [
        {"account": "alice", "repository": "*", "actions": ["*"]},
        {"account": "bob", "repository": ["bob/*", "shared/*"], "actions": ["pull", "push"]},
        {"account": "*", "repository": "shared/*", "actions": ["pull"]},
        {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
    ]
}


def write_htpasswd(path: Path, users: dict[str, str]) -> str:
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()}"
             for u, p in users.items()]
    lines.append("legacy:$apr1$abc$defghijklmnopqrstuvwx")  # not bcrypt: never accepted
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def auth_files(tmp_path: Path) -> dict[str, str]:
    acl = tmp_path / "acl.json"
    acl.write_text(json.dumps(ACL_RULES))
    return {
        "htpasswd": write_htpasswd(tmp_path / "htpasswd", USERS),
        "acl": str(acl),
        "storage": str(tmp_path / "berth-registry"),
    }


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def push_blob(client: httpx.Client, repo: str, data: bytes, headers: dict[str, str]) -> int:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)},
                    content=data, headers=headers)
    return r.status_code


# -- pieces ------------------------------------------------------------------------------------


def test_scope_parsing() -> None:
    assert Access.parse_scope("repository:a/b:pull,push") == Access(
        "repository", "a/b", ("pull", "push"))
    assert Access.parse_scope("registry:catalog:*") == Access("registry", "catalog", ("*",))
    assert Access.parse_scope("repository(plugin):x:pull") == Access("repository", "x", ("pull",))
    assert Access.parse_scope("nonsense") is None
    assert Access("repository", "a", ("pull", "push")).scope == "repository:a:pull,push"


def test_htpasswd_accepts_bcrypt_only_and_rereads_changes(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    htpasswd = Htpasswd(write_htpasswd(path, {"alice": "one"}))
    assert htpasswd.verify("alice", "one")
    assert htpasswd.verify("alice", "one")  # cached
    assert not htpasswd.verify("alice", "two")
    assert not htpasswd.verify("nobody", "one")
    assert not htpasswd.verify("legacy", "anything")
    time.sleep(0.01)
    write_htpasswd(path, {"alice": "two"})
    assert htpasswd.verify("alice", "two")
    assert not htpasswd.verify("alice", "one")


def test_acl_union_of_matching_rules(auth_files: dict[str, str]) -> None:
    acl = Acl.load(auth_files["acl"])
    assert acl.allowed("alice", "any/thing") == {"pull", "push", "delete"}
    assert acl.allowed("bob", "bob/app") == {"pull", "push"}
    assert acl.allowed("bob", "shared/x") == {"pull", "push"}
    assert acl.allowed("carol", "shared/x") == {"pull"}
    assert acl.allowed("carol", "bob/app") == set()
    assert acl.allowed(None, "public/x") == {"pull"}
    assert acl.allowed("carol", "public/x") == {"pull"}  # what anonymous may, users may
    assert acl.allowed(None, "shared/x") == set()


def test_acl_yaml_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "acl.yaml"
    good.write_text("- account: dev\n  repository: 'dev/*'\n  actions: [pull]\n")
    assert Acl.load(str(good)).allowed("dev", "dev/x") == {"pull"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- account: dev\n  repository: x\n  actions: [fly]\n")
    with pytest.raises(UsageError, match="unknown actions"):
        Acl.load(str(bad))
    with pytest.raises(UsageError):
        Acl.load(str(tmp_path / "acl.yaml").replace("acl.yaml", "bad.yaml"))


def test_default_policy_without_acl() -> None:
    acl = Acl()
    assert acl.allowed("anyone", "x") == {"pull", "push", "delete"}
    assert acl.allowed(None, "x") == set()


def test_tokens_round_trip_and_reject_tampering() -> None:
    signer = TokenSigner(b"k" * 32, issuer="iss", service="svc")
    token, _ = signer.issue("alice", [Access("repository", "a", ("pull",))], ttl=60)
    identity = signer.verify(token)
    assert identity == Identity("alice", (Access("repository", "a", ("pull",)),))
    header, claims, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["access"][0]["actions"] = ["pull", "push"]
    forged_claims = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="signature"):
        signer.verify(f"{header}.{forged_claims}.{signature}")
    with pytest.raises(ValueError):
        TokenSigner(b"x" * 32, issuer="iss", service="svc").verify(token)
    with pytest.raises(ValueError, match="another service"):
        TokenSigner(b"k" * 32, issuer="iss", service="other").verify(token)
    expired, _ = signer.issue("alice", [], ttl=-3600)
    with pytest.raises(ValueError, match="expired"):
        signer.verify(expired)


def test_token_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "token.key"
    key = load_or_create_key(str(path))
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(str(path)) == key


def test_authorizer_decisions_basic_mode(auth_files: dict[str, str]) -> None:
    auth = Authorizer(ServerConfig(storage=auth_files["storage"], htpasswd=auth_files["htpasswd"],
                                   acl=auth_files["acl"]))
    pull = Access("repository", "bob/app", ("pull",))
    auth.authorize(Identity("bob"), pull, "realm")
    with pytest.raises(DistributionError) as denied:
        auth.authorize(Identity("carol"), pull, "realm")
    assert denied.value.code == "DENIED"
    assert denied.value.status == 403
    with pytest.raises(DistributionError) as challenge:
        auth.authorize(Identity(None), pull, "realm")
    assert challenge.value.status == 401
    assert challenge.value.headers["WWW-Authenticate"].startswith('Basic realm="')


# -- over HTTP: basic ----------------------------------------------------------------------------


@pytest.fixture
def basic_server(auth_files: dict[str, str]) -> Iterator[ThreadServer]:
    config = ServerConfig(storage=auth_files["storage"], htpasswd=auth_files["htpasswd"],
                          acl=auth_files["acl"])
    with ThreadServer(config) as server:
        yield server


def test_basic_auth_challenge_and_login(basic_server: ThreadServer) -> None:
    with httpx.Client(base_url=basic_server.url) as client:
        r = client.get("/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="berth-registry",charset="UTF-8"'
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert client.get("/v2/", headers=basic("alice", "alice-pass")).status_code == 200
        r = client.get("/v2/", headers=basic("alice", "wrong"))
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert client.get("/v2/", headers={"Authorization": "Basic !!!"}).status_code == 401


def test_basic_auth_rights_per_repository(basic_server: ThreadServer) -> None:
    with httpx.Client(base_url=basic_server.url) as client:
        assert push_blob(client, "bob/app", b"b", basic("bob", "bob-pass")) == 201
        r = client.post("/v2/alice/app/blobs/uploads/", headers=basic("bob", "bob-pass"))
        assert r.status_code == 403
        assert r.json()["errors"][0]["code"] == "DENIED"
        r = client.post("/v2/bob/app/blobs/uploads/")
        assert r.status_code == 401
        assert "WWW-Authenticate" in r.headers
        r = client.get(f"/v2/bob/app/blobs/{sha256(b'b')}", headers=basic("carol", "carol-pass"))
        assert r.status_code == 403
        assert push_blob(client, "public/x", b"p", basic("alice", "alice-pass")) == 201
        assert client.get(f"/v2/public/x/blobs/{sha256(b'p')}").status_code == 200
        r = client.delete(f"/v2/bob/app/blobs/{sha256(b'b')}", headers=basic("bob", "bob-pass"))
        assert r.status_code == 403  # bob may push, not delete


def test_mount_needs_pull_on_the_source(basic_server: ThreadServer) -> None:
    with httpx.Client(base_url=basic_server.url) as client:
        assert push_blob(client, "alice/secret", b"s", basic("alice", "alice-pass")) == 201
        r = client.post("/v2/bob/app/blobs/uploads/",
                        params={"mount": sha256(b"s"), "from": "alice/secret"},
                        headers=basic("bob", "bob-pass"))
        assert r.status_code == 202  # no mount without read access to the source


def test_catalog_shows_only_readable_repositories(basic_server: ThreadServer) -> None:
    config = b'{}'
    layer = b"l"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": 1}],
    }).encode()
    admin = basic("alice", "alice-pass")
    with httpx.Client(base_url=basic_server.url) as client:
        for repo in ("alice/a", "bob/b", "shared/s"):
            push_blob(client, repo, config, admin)
            push_blob(client, repo, layer, admin)
            r = client.put(f"/v2/{repo}/manifests/v1", content=manifest, headers={
                **admin, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            assert r.status_code == 201
        listed = client.get("/v2/_catalog", headers=basic("carol", "carol-pass")).json()
        assert listed["repositories"] == ["shared/s"]
        listed = client.get("/v2/_catalog", headers=admin).json()
        assert listed["repositories"] == ["alice/a", "bob/b", "shared/s"]
        assert client.get("/v2/_catalog").status_code == 401


# -- over HTTP: bearer tokens --------------------------------------------------------------------


@pytest.fixture
def token_server(auth_files: dict[str, str]) -> Iterator[ThreadServer]:
    config = ServerConfig(storage=auth_files["storage"], htpasswd=auth_files["htpasswd"],
                          acl=auth_files["acl"], token=True, token_service="berth-test")
    with ThreadServer(config) as server:
        yield server


def parse_challenge(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    out: dict[str, str] = {}
    for part in header[len("Bearer "):].split('",'):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip('"')
    return out


def get_token(client: httpx.Client, challenge: dict[str, str], **kwargs: Any) -> str:
    r = client.get(challenge["realm"],
                   params={"service": challenge["service"], "scope": challenge["scope"]},
                   **kwargs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    return str(body["token"])


def test_token_flow_like_docker_hub(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        r = client.post("/v2/bob/app/blobs/uploads/")
        assert r.status_code == 401
        challenge = parse_challenge(r.headers["WWW-Authenticate"])
        assert challenge == {"realm": f"{token_server.url}/token", "service": "berth-test",
                             "scope": "repository:bob/app:pull,push"}
        token = get_token(client, challenge, auth=("bob", "bob-pass"))
        bearer = {"Authorization": f"Bearer {token}"}
        assert push_blob(client, "bob/app", b"t", bearer) == 201
        assert client.get("/v2/", headers=bearer).status_code == 200
        # the token is for bob/app only
        r = client.post("/v2/bob/other/blobs/uploads/", headers=bearer)
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


def test_token_for_a_denied_repository_is_403(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        challenge = {"realm": f"{token_server.url}/token", "service": "berth-test",
                     "scope": "repository:alice/app:pull,push"}
        token = get_token(client, challenge, auth=("bob", "bob-pass"))
        r = client.post("/v2/alice/app/blobs/uploads/",
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert r.json()["errors"][0]["code"] == "DENIED"


def test_anonymous_token_gets_only_what_anonymous_may(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        r = client.get("/token", params={"service": "berth-test",
                                         "scope": "repository:public/x:pull,push"})
        claims = json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))
        assert claims["sub"] == ""
        assert claims["access"] == [{"type": "repository", "name": "public/x",
                                     "actions": ["pull"]}]


def test_token_endpoint_rejects_bad_credentials(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        r = client.get("/token", params={"service": "berth-test"}, auth=("bob", "nope"))
        assert r.status_code == 401


def test_oauth_password_grant(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        r = client.post("/token", data={"grant_type": "password", "username": "bob",
                                        "password": "bob-pass", "service": "berth-test",
                                        "scope": "repository:bob/app:pull"})
        assert r.status_code == 200
        assert r.json()["scope"] == "repository:bob/app:pull"
        r = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
        assert r.status_code == 400


def test_garbage_token_is_401_invalid_token(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url) as client:
        r = client.get("/v2/", headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_external_realm_is_announced(auth_files: dict[str, str]) -> None:
    config = ServerConfig(storage=auth_files["storage"], token=True,
                          token_realm="https://auth.example.test/token")
    with ThreadServer(config) as server, httpx.Client(base_url=server.url) as client:
        r = client.get("/v2/lib/x/tags/list")
        challenge = parse_challenge(r.headers["WWW-Authenticate"])
        assert challenge["realm"] == "https://auth.example.test/token"
        assert challenge["scope"] == "repository:lib/x:pull"
