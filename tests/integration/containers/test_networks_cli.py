"""Networks through the berth command: published ports, names that resolve on user-defined
networks (and only there), isolation between networks, the files Docker writes."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from tests.support.berthcli import BerthCLI

pytestmark = pytest.mark.root

WEB = ("sh", "-c", 'mkdir -p /www && echo "page of $NAME" > /www/index.html && '
       "exec httpd -f -p 80 -h /www")


def _fetch(port: int, host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as response:
        return str(response.read().decode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_containers_of_one_image_on_different_ports(cli: BerthCLI, busybox: str) -> None:
    one, two = _free_port(), _free_port()
    cli("run", "-d", "--name", "one", "-p", f"{one}:80", "-e", "NAME=one", "busybox", *WEB)
    cli("run", "-d", "--name", "two", "-p", f"127.0.0.1:{two}:80", "-e", "NAME=two",
        "busybox", *WEB)
    import time

    time.sleep(0.5)
    assert _fetch(one) == "page of one\n"
    assert _fetch(two) == "page of two\n"
    assert cli("port", "one") == f"80/tcp -> 0.0.0.0:{one}\n"
    assert cli("port", "two", "80") == f"127.0.0.1:{two}\n"
    ports = json.loads(cli("inspect", "one"))[0]["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(one)}]}
    assert f"0.0.0.0:{one}->80/tcp" in cli("ps", "--format", "{{.Ports}}")


def test_a_taken_host_port_is_a_clear_error_and_nothing_is_left(cli: BerthCLI,
                                                                busybox: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli.run("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox",
                         "sleep", "60")
    assert result.returncode == 125
    assert str(port) in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("ps", "-q") == ""


def test_publish_all_exposed_ports(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "exposed", "--expose", "80", "-P", "-e", "NAME=p", "busybox",
        *WEB)
    line = cli("port", "exposed").strip()
    assert line.startswith("80/tcp -> 0.0.0.0:")
    import time

    time.sleep(0.5)
    assert _fetch(int(line.rsplit(":", 1)[1])) == "page of p\n"


def test_names_and_aliases_resolve_on_a_user_network_only(cli: BerthCLI, busybox: str) -> None:
    cli("network", "create", "front")
    cli("network", "create", "back")
    cli("run", "-d", "--name", "api", "--network", "front", "--network-alias", "service",
        "busybox", "sleep", "120")
    cli("run", "-d", "--name", "hidden", "--network", "back", "busybox", "sleep", "120")
    out = cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
              "ping -c1 -W2 api >/dev/null && echo api-ok; "
              "ping -c1 -W2 service >/dev/null && echo alias-ok; "
              "nslookup hidden >/dev/null 2>&1 || echo hidden-unknown")
    assert out.split() == ["api-ok", "alias-ok", "hidden-unknown"]
    hidden_ip = json.loads(cli("inspect", "hidden"))[0]["NetworkSettings"]["IPAddress"]
    isolated = cli.run("run", "--rm", "--network", "front", "busybox", "ping", "-c1", "-W1",
                       hidden_ip)
    assert isolated.returncode != 0  # different networks cannot reach each other
    in_use = cli.run("network", "rm", "front")
    assert in_use.returncode == 1 and "active endpoints" in in_use.stderr


def test_default_bridge_has_no_names_and_files_are_written(cli: BerthCLI,
                                                           busybox: str) -> None:
    out = cli("run", "--rm", "--hostname", "box", "--add-host", "db.local:10.1.2.3",
              "--dns", "10.9.9.9", "busybox", "sh", "-c",
              "cat /etc/hostname; grep db.local /etc/hosts; grep nameserver /etc/resolv.conf;"
              " grep box /etc/hosts | wc -l")
    lines = out.splitlines()
    assert lines[0] == "box"
    assert lines[1].split() == ["10.1.2.3", "db.local"]
    assert lines[2] == "nameserver 10.9.9.9"
    assert lines[3] == "1"


def test_internal_network_reaches_nothing_outside(cli: BerthCLI, busybox: str) -> None:
    cli("network", "create", "--internal", "closed")
    out = cli("run", "--rm", "--network", "closed", "busybox", "sh", "-c",
              "ip route | grep -c default || true")
    assert out.strip() == "0"


def test_joining_another_containers_network(cli: BerthCLI, busybox: str) -> None:
    cli("run", "-d", "--name", "owner", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
    import time

    time.sleep(0.3)
    out = cli("run", "--rm", "--network", "container:owner", "busybox", "wget", "-qO-",
              "http://127.0.0.1:8080/hostname")
    owner_hostname = cli("inspect", "-f", "{{.Config.Hostname}}", "owner").strip()
    assert out.strip() == owner_hostname
