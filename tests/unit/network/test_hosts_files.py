"""/etc/hosts, /etc/hostname and /etc/resolv.conf contents."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.errors import InvalidArgument
from berth.network import hosts
from berth.network.model import ContainerNetwork, DnsSettings


def test_parse_resolv_conf() -> None:
    conf = hosts.parse_resolv_conf(
        "# comment\nnameserver 10.0.0.2\nnameserver 127.0.0.53 # local\n"
        "domain old.example\nsearch a.example b.example\noptions ndots:2\noptions edns0\n"
        "sortlist 10.0.0.0\n")
    assert conf.nameservers == ("10.0.0.2", "127.0.0.53")
    assert conf.search == ("a.example", "b.example")
    assert conf.options == ("ndots:2", "edns0")
    assert conf.other == ("sortlist 10.0.0.0",)


def test_systemd_resolved_stub_is_replaced_by_its_upstreams(tmp_path: Path) -> None:
    upstream = tmp_path / "resolv.conf"
    upstream.write_text("nameserver 10.1.1.1\nnameserver 10.1.1.2\nsearch corp.example\n")
    stub = hosts.parse_resolv_conf("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    conf = hosts.host_upstreams(stub, str(upstream))
    assert conf.nameservers == ("10.1.1.1", "10.1.1.2")
    assert conf.search == ("corp.example",) and conf.options == ("edns0", "trust-ad")
    real = hosts.parse_resolv_conf("nameserver 10.0.0.2\n")
    assert hosts.host_upstreams(real, str(upstream)) == real
    assert hosts.host_upstreams(stub, str(tmp_path / "missing")) == stub


def test_plain_resolv_conf_drops_loopback_and_falls_back() -> None:
    host = hosts.parse_resolv_conf("nameserver 127.0.0.53\nnameserver ::1\nsearch x.example\n")
    text = hosts.resolv_conf_plain(host, DnsSettings())
    assert text == "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch x.example\n"
    mixed = hosts.parse_resolv_conf("nameserver 127.0.0.1\nnameserver 10.0.0.2\n")
    assert hosts.resolv_conf_plain(mixed, DnsSettings()) == "nameserver 10.0.0.2\n"
    assert "nameserver 127.0.0.1" in hosts.resolv_conf_plain(mixed, DnsSettings(),
                                                             keep_loopback=True)
    custom = DnsSettings(("1.1.1.1",), ("my.example",), ("ndots:3",))
    assert hosts.resolv_conf_plain(host, custom) == (
        "nameserver 1.1.1.1\nsearch my.example\noptions ndots:3\n")


def test_embedded_dns_resolv_conf() -> None:
    host = hosts.parse_resolv_conf("nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n")
    text = hosts.resolv_conf_for_embedded_dns("172.18.0.1", host, DnsSettings())
    lines = text.splitlines()
    assert lines[0].startswith("# berth: embedded DNS")
    assert lines[1:] == ["nameserver 172.18.0.1", "search corp.example",
                         "options edns0 ndots:0"]
    own = hosts.resolv_conf_for_embedded_dns("172.18.0.1", host,
                                             DnsSettings(("9.9.9.9",), (), ("ndots:1",)))
    assert "options ndots:1\n" in own and "9.9.9.9" in own.splitlines()[0]


@pytest.mark.parametrize(("spec", "expected"), [
    ("db:10.0.0.5", ("db", "10.0.0.5")),
    ("db=10.0.0.5", ("db", "10.0.0.5")),
    ("v6:::1", ("v6", "::1")),
    ("v6=[fd00::1]", ("v6", "fd00::1")),
    ("host.docker.internal:host-gateway", ("host.docker.internal", "host-gateway")),
])
def test_parse_add_host(spec: str, expected: tuple[str, str]) -> None:
    assert hosts.parse_add_host(spec) == expected


@pytest.mark.parametrize("spec", ["nohost", "db:", ":10.0.0.1", "db:ten"])
def test_parse_add_host_errors(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        hosts.parse_add_host(spec)


def test_render_hosts_like_docker() -> None:
    extra = hosts.resolve_extra_hosts([("db", "10.0.0.5"), ("gw", "host-gateway")],
                                      "172.18.0.1")
    text = hosts.render_hosts("web", "corp.example", ["172.18.0.2"], extra)
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[1] == "::1\tlocalhost ip6-localhost ip6-loopback"
    assert lines[-3:] == ["10.0.0.5\tdb", "172.18.0.1\tgw", "172.18.0.2\tweb.corp.example web"]
    with pytest.raises(InvalidArgument, match="host-gateway"):
        hosts.resolve_extra_hosts([("gw", "host-gateway")], None)
    assert hosts.render_host_mode_hosts("127.0.0.1 localhost", [("db", "10.0.0.5")]) == (
        "127.0.0.1 localhost\n10.0.0.5\tdb\n")


def test_write_files(tmp_path: Path) -> None:
    info = ContainerNetwork("c" * 64, "none", None, "h", hosts="H\n", hostname_file="h\n",
                            resolv_conf="R\n")
    paths = info.write_files(str(tmp_path / "berth-files"))
    assert Path(paths["/etc/hosts"]).read_text() == "H\n"
    assert Path(paths["/etc/hostname"]).read_text() == "h\n"
    assert Path(paths["/etc/resolv.conf"]).read_text() == "R\n"
