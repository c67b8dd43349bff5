"""Resolving references to endpoints: Docker Hub, registries.conf, daemon.json, insecure hosts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from berth.errors import RegistryError
from berth.oci.reference import ImageReference, parse_normalized
from berth.registry.client.hosts import (
    DOCKER_HUB_HOST,
    Endpoint,
    Location,
    RegistryHosts,
    is_loopback,
    read_registries_conf,
)
from berth.registry.client.options import ClientOptions
from tests.support.registry_client import berth_temp_dir


@pytest.fixture
def tmp() -> Iterator[str]:
    with berth_temp_dir("hosts") as path:
        yield path


def hosts_from(tmp: str, conf: str = "", daemon: object = None) -> RegistryHosts:
    conf_path = os.path.join(tmp, "registries.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    daemon_path = os.path.join(tmp, "daemon.json")
    if daemon is not None:
        with open(daemon_path, "w") as f:
            json.dump(daemon, f)
    return RegistryHosts.load(ClientOptions(registries_conf=conf_path, daemon_json=daemon_path))


def ref(text: str) -> ImageReference:
    return parse_normalized(text).with_default_tag()


def test_docker_hub_names_map_to_registry_1(tmp: str) -> None:
    hosts = hosts_from(tmp)
    [location] = hosts.pull_locations(ref("busybox"))
    assert location == Location(Endpoint(DOCKER_HUB_HOST, False), "library/busybox", "docker.io")
    assert hosts.push_location(ref("index.docker.io/me/app")).path == "me/app"
    assert hosts.registry_endpoint("docker.io").host == DOCKER_HUB_HOST
    assert hosts.search_endpoint("docker.io").host == "index.docker.io"


def test_other_registries_keep_their_host(tmp: str) -> None:
    hosts = hosts_from(tmp)
    location = hosts.push_location(ref("ghcr.io/owner/tool:1"))
    assert (location.host, location.path, location.endpoint.insecure) == (
        "ghcr.io",
        "owner/tool",
        False,
    )


@pytest.mark.parametrize(
    ("host", "insecure"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("registry.local:5000", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_loopback_hosts_are_insecure_without_configuration(
    tmp: str, host: str, insecure: bool
) -> None:
    assert hosts_from(tmp).is_insecure(host) is insecure


def test_is_loopback() -> None:
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.9")
    assert not is_loopback("example.com") and not is_loopback("192.168.1.1")


def test_registries_conf_rewrites_docker_io_to_a_local_registry(
    tmp: str,
) -> None:
    hosts = hosts_from(
        tmp,
        '[[registry]]\nprefix = "docker.io"\nlocation = "registry.test:5000"\ninsecure = true\n',
    )
    [location] = hosts.pull_locations(ref("busybox"))
    assert location.host == "registry.test:5000"
    assert location.path == "library/busybox"
    assert location.registry == "docker.io"
    assert location.endpoint.insecure
    assert hosts.registry_endpoint("docker.io") == Endpoint("registry.test:5000", True)
    assert hosts.search_endpoint("docker.io").host == "registry.test:5000"


def test_longest_prefix_wins_and_location_replaces_the_prefix(
    tmp: str,
) -> None:
    conf = """
[[registry]]
prefix = "example.com"
location = "a.test"

[[registry]]
prefix = "example.com/team"
location = "b.test/mirror/team"
"""
    hosts = hosts_from(tmp, conf)
    assert str(hosts.push_location(ref("example.com/team/app"))) == "b.test/mirror/team/app"
    assert str(hosts.push_location(ref("example.com/other"))) == "a.test/other"
    assert str(hosts.push_location(ref("example.com.evil/x"))) == "example.com.evil/x"


def test_mirrors_come_first_on_pulls_only(tmp: str) -> None:
    conf = """
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror-a.test:5000/hub"
insecure = true

[[registry.mirror]]
location = "mirror-b.test"
pull-from-mirror = "digest-only"
"""
    hosts = hosts_from(tmp, conf)
    by_tag = hosts.pull_locations(ref("busybox:1"))
    assert [str(x) for x in by_tag] == [
        "mirror-a.test:5000/hub/library/busybox",
        f"{DOCKER_HUB_HOST}/library/busybox",
    ]
    assert by_tag[0].endpoint == Endpoint("mirror-a.test:5000", True, mirror=True)
    digest = "busybox@sha256:" + "a" * 64
    assert [x.host for x in hosts.pull_locations(ref(digest))] == [
        "mirror-a.test:5000",
        "mirror-b.test",
        DOCKER_HUB_HOST,
    ]
    assert hosts.push_location(ref("busybox")).host == DOCKER_HUB_HOST
    assert hosts.is_insecure("mirror-a.test:5000")


def test_wildcard_prefix_and_blocked_registries(tmp: str) -> None:
    conf = """
[[registry]]
prefix = "*.corp.test"
insecure = true

[[registry]]
location = "blocked.test"
blocked = true

[registries.block]
registries = ["evil.test"]
"""
    hosts = hosts_from(tmp, conf)
    assert hosts.push_location(ref("a.corp.test/x")).endpoint.insecure
    assert not hosts.push_location(ref("corp.test.org/x")).endpoint.insecure
    for name in ("blocked.test/x", "evil.test/y"):
        with pytest.raises(RegistryError, match="blocked"):
            hosts.pull_locations(ref(name))


def test_v1_insecure_table_and_daemon_json(tmp: str) -> None:
    conf = '[registries.insecure]\nregistries = ["old.test:5000"]\n'
    daemon = {
        "registry-mirrors": ["https://hub-mirror.test", "http://plain-mirror.test:5001/"],
        "insecure-registries": ["daemon.test:5000", "10.1.0.0/16"],
    }
    hosts = hosts_from(tmp, conf, daemon)
    assert hosts.is_insecure("old.test:5000")
    assert hosts.is_insecure("daemon.test:5000")
    assert hosts.is_insecure("10.1.2.3:443")
    assert not hosts.is_insecure("10.2.0.1")
    locations = hosts.pull_locations(ref("busybox"))
    assert [(x.host, x.endpoint.insecure, x.endpoint.mirror) for x in locations] == [
        ("hub-mirror.test", False, True),
        ("plain-mirror.test:5001", True, True),
        (DOCKER_HUB_HOST, False, False),
    ]
    # Docker's registry-mirrors are for Docker Hub only.
    assert len(hosts.pull_locations(ref("ghcr.io/a/b"))) == 1


def test_options_add_mirrors_and_insecure_hosts() -> None:
    options = ClientOptions(
        registries_conf="",
        daemon_json="",
        insecure=["plain.test:80"],
        mirrors={"ghcr.io": ["127.0.0.1:5001"]},
    )
    hosts = RegistryHosts.load(options)
    assert hosts.is_insecure("plain.test:80")
    assert [x.host for x in hosts.pull_locations(ref("ghcr.io/a/b"))] == [
        "127.0.0.1:5001",
        "ghcr.io",
    ]


def test_environment_variables_name_the_files(
    tmp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = os.path.join(tmp, "r.conf")
    with open(conf, "w") as f:
        f.write('[[registry]]\nprefix="docker.io"\nlocation="env.test"\n')
    monkeypatch.setenv("BERTH_REGISTRIES_CONF", conf)
    monkeypatch.setenv("BERTH_DAEMON_JSON", os.path.join(tmp, "missing.json"))
    assert RegistryHosts.load(ClientOptions()).push_location(ref("busybox")).host == "env.test"


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("[[registry]\n", "TOML"),
        ('[[registry]]\ninsecure = true\n', "neither prefix nor location"),
        ('[[registry]]\nprefix = "*.x.test"\nlocation = "y"\n', "wildcard"),
        ('[[registry]]\nprefix = "a"\n[[registry.mirror]]\ninsecure = true\n', "no location"),
        (
            '[[registry]]\nprefix = "a"\n[[registry.mirror]]\nlocation = "m"\n'
            'pull-from-mirror = "sometimes"\n',
            "pull-from-mirror",
        ),
        ("registry = 3\n", "array of tables"),
    ],
)
def test_bad_registries_conf_is_one_clear_error(
    tmp: str, conf: str, message: str
) -> None:
    path = os.path.join(tmp, "registries.conf")
    with open(path, "w") as f:
        f.write(conf)
    with pytest.raises(RegistryError) as info:
        read_registries_conf(path)
    assert path in str(info.value) or "TOML" in str(info.value)
    assert message.lower() in str(info.value).lower()


def test_missing_files_are_fine(tmp: str) -> None:
    options = ClientOptions(
        registries_conf=os.path.join(tmp, "none.conf"),
        daemon_json=os.path.join(tmp, "none.json"),
    )
    assert RegistryHosts.load(options).push_location(ref("busybox")).host == DOCKER_HUB_HOST


def test_bad_daemon_json(tmp: str) -> None:
    path = os.path.join(tmp, "daemon.json")
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(RegistryError, match=r"daemon\.json"):
        RegistryHosts.load(ClientOptions(registries_conf="", daemon_json=path))
