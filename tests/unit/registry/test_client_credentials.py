"""config.json as the docker CLI reads and writes it, and credential helper programs."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Iterator

import pytest

from berth.errors import RegistryAuthError
from berth.registry.client.credentials import (
    DOCKER_HUB_KEY,
    Credentials,
    CredentialStore,
    default_config_dir,
    hostname_of,
    server_key,
)
from tests.support.registry_client import berth_temp_dir


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("creds") as path:
        yield path


def write_config(directory: str, data: object) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(data, f)


def read_config(directory: str) -> dict[str, object]:
    with open(os.path.join(directory, "config.json")) as f:
        data: dict[str, object] = json.load(f)
    return data


def test_keys_as_docker_uses_them() -> None:
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY):
        assert server_key(name) == DOCKER_HUB_KEY
    assert server_key("localhost:5000") == "localhost:5000"
    assert server_key("https://ghcr.io/v2/") == "ghcr.io"
    assert hostname_of("http://r.test:5000/x") == "r.test:5000"


def test_store_writes_docker_format_and_keeps_other_keys(tmp: str) -> None:
    write_config(tmp, {"psFormat": "table {{.ID}}", "auths": {"other.test": {"auth": "eDp5"}}})
    CredentialStore(tmp).store("docker.io", Credentials("alice", "pa:ss"))
    data = read_config(tmp)
    assert data["psFormat"] == "table {{.ID}}"
    auths = data["auths"]
    assert isinstance(auths, dict)
    assert auths["other.test"] == {"auth": "eDp5"}
    assert auths[DOCKER_HUB_KEY] == {"auth": base64.b64encode(b"alice:pa:ss").decode()}
    assert stat.S_IMODE(os.stat(os.path.join(tmp, "config.json")).st_mode) == 0o600
    with open(os.path.join(tmp, "config.json")) as f:
        assert "\n\t" in f.read()  # docker's tab indentation


def test_get_reads_what_docker_wrote(tmp: str) -> None:
    write_config(
        tmp,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                "http://legacy.test:5000/v1/": {"username": "u", "password": "p"},
                "tok.test": {"identitytoken": "refresh"},
                "empty.test": {},
            }
        },
    )
    store = CredentialStore(tmp)
    assert store.get("docker.io") == Credentials("hub", "pw")
    assert store.get("legacy.test:5000") == Credentials("u", "p")
    assert store.get("tok.test") == Credentials(identity_token="refresh")
    assert store.get("empty.test") is None
    assert store.get("unknown.test") is None


def test_missing_or_empty_file_means_no_credentials(tmp: str) -> None:
    assert CredentialStore(os.path.join(tmp, "nowhere")).get("docker.io") is None
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write("")
    assert CredentialStore(tmp).get("docker.io") is None


def test_broken_files_are_clear_errors(tmp: str) -> None:
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write("{broken")
    with pytest.raises(RegistryAuthError, match="not valid JSON"):
        CredentialStore(tmp).get("docker.io")
    write_config(tmp, {"auths": {"r.test": {"auth": base64.b64encode(b"nocolon").decode()}}})
    with pytest.raises(RegistryAuthError, match=r"berth login r\.test"):
        CredentialStore(tmp).get("r.test")


def test_erase(tmp: str) -> None:
    store = CredentialStore(tmp)
    store.store("r.test:5000", Credentials("a", "b"))
    store.store("docker.io", Credentials("c", "d"))
    assert store.erase("r.test:5000") is True
    assert store.erase("r.test:5000") is False
    auths = read_config(tmp)["auths"]
    assert isinstance(auths, dict) and list(auths) == [DOCKER_HUB_KEY]


def test_docker_config_environment_variable(tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", tmp)
    assert default_config_dir() == tmp
    CredentialStore().store("r.test", Credentials("a", "b"))
    assert os.path.exists(os.path.join(tmp, "config.json"))
    monkeypatch.delenv("DOCKER_CONFIG")
    assert default_config_dir() == os.path.join(os.path.expanduser("~"), ".docker")


HELPER = r"""#!{python}
import json, os, sys
db = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper-db.json")
try:
    data = json.load(open(db))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
payload = sys.stdin.read()
if action == "get":
    server = payload.strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = data[server]
    print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
elif action == "store":
    item = json.loads(payload)
    data[item["ServerURL"]] = [item["Username"], item["Secret"]]
    json.dump(data, open(db, "w"))
elif action == "erase":
    if payload.strip() not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[payload.strip()]
    json.dump(data, open(db, "w"))
"""


@pytest.fixture
def helper_path(tmp: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``docker-credential-berthtest`` program on PATH, keeping secrets in a JSON file."""
    bin_dir = os.path.join(tmp, "bin")
    os.makedirs(bin_dir)
    path = os.path.join(bin_dir, "docker-credential-berthtest")
    with open(path, "w") as f:
        f.write(HELPER.format(python=sys.executable))
    os.chmod(path, 0o755)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    return bin_dir


def test_creds_store_helper_round_trip(tmp: str, helper_path: str) -> None:
    config_dir = os.path.join(tmp, "cfg")
    write_config(config_dir, {"credsStore": "berthtest"})
    store = CredentialStore(config_dir)
    store.store("docker.io", Credentials("alice", "secret"))
    with open(os.path.join(helper_path, "helper-db.json")) as f:
        assert json.load(f) == {DOCKER_HUB_KEY: ["alice", "secret"]}
    # docker leaves an empty entry in auths when a helper holds the secret
    assert read_config(config_dir)["auths"] == {DOCKER_HUB_KEY: {}}
    assert store.get("index.docker.io") == Credentials("alice", "secret")
    assert store.get("other.test") is None
    assert store.erase("docker.io") is True
    assert store.get("docker.io") is None


def test_cred_helpers_per_registry_and_identity_tokens(tmp: str, helper_path: str) -> None:
    config_dir = os.path.join(tmp, "cfg")
    write_config(config_dir, {"credHelpers": {"ghcr.io": "berthtest"}})
    store = CredentialStore(config_dir)
    store.store("ghcr.io", Credentials(identity_token="idt"))
    store.store("plain.test", Credentials("p", "q"))
    with open(os.path.join(helper_path, "helper-db.json")) as f:
        assert json.load(f) == {"ghcr.io": ["<token>", "idt"]}
    assert store.get("ghcr.io") == Credentials(identity_token="idt")
    assert store.get("plain.test") == Credentials("p", "q")


def test_missing_helper_is_a_clear_error(tmp: str) -> None:
    write_config(tmp, {"credsStore": "does-not-exist-berth"})
    with pytest.raises(RegistryAuthError) as info:
        CredentialStore(tmp).get("docker.io")
    assert "docker-credential-does-not-exist-berth is not installed" in str(info.value)


def test_credentials_repr_hides_the_secret() -> None:
    assert "pw" not in repr(Credentials("user", "pw"))
