"""The nft script berth renders from its state (the kernel side is in the integration tests)."""

from __future__ import annotations

from berth.network.firewall import USER_CHAIN, FirewallState, delete_table_script, render
from berth.network.model import Network
from berth.network.state import PortRow

NETS = (
    Network("1", "bridge", "bridge", "berth0", "172.17.0.0/16", "172.17.0.1", False, True),
    Network("2", "app", "bridge", "berth1", "172.18.0.0/16", "172.18.0.1", False, False),
    Network("3", "vault", "bridge", "berth2", "172.19.0.0/16", "172.19.0.1", True, False),
    Network("4", "host", "host", None, None, None, False, False),
)
PORTS = (
    PortRow("c", "", 8080, "tcp", 80, "172.18.0.2"),
    PortRow("c", "127.0.0.1", 5353, "udp", 53, "172.18.0.2"),
    PortRow("d", "", 9000, "tcp", 90, None),  # a disconnected container: no rule
)


def test_render_is_one_idempotent_transaction_that_never_flushes_the_user_chain() -> None:
    script = render(FirewallState("berth", NETS, PORTS, 40000))
    lines = script.splitlines()
    assert lines[0] == "add table inet berth"
    assert f"add chain inet berth {USER_CHAIN}" in lines
    assert not any(USER_CHAIN in line and ("flush" in line or "delete" in line)
                   for line in lines)
    assert "flush chain inet berth forward" in lines
    assert "flush map inet berth published-any" in lines
    forward = [line for line in lines if line.startswith("add rule inet berth forward ")]
    assert forward[0].endswith(f"jump {USER_CHAIN}")  # before every berth accept


def test_render_elements() -> None:
    script = render(FirewallState("berth-1a2b3c", NETS, PORTS, None))
    assert 'add element inet berth-1a2b3c bridges { "berth0", "berth1", "berth2" }' in script
    assert 'add element inet berth-1a2b3c internal { "berth2" }' in script
    assert "add element inet berth-1a2b3c nat-sources { 172.17.0.0/16, 172.18.0.0/16 }" \
        in script
    assert "add element inet berth-1a2b3c dns-gateways { 172.18.0.1, 172.19.0.1 }" in script
    assert "add element inet berth-1a2b3c published-any { tcp . 8080 : 172.18.0.2 . 80 }" \
        in script
    assert ("add element inet berth-1a2b3c published-ip { 127.0.0.1 . udp . 5353 : "
            "172.18.0.2 . 53 }") in script
    assert "9000" not in script
    assert "th dport 53 dnat" not in script  # no DNS server yet
    with_dns = render(FirewallState("b", NETS, (), 40000))
    assert "th dport 53 dnat ip to 127.0.0.1:40000" in with_dns
    assert "add element inet b published-any" not in with_dns  # empty: no element line


def test_delete_table_script_is_safe_when_the_table_is_gone() -> None:
    assert delete_table_script("berth-x") == (
        "add table inet berth-x\ndelete table inet berth-x\n")
