"""Fixtures for the network tests: a store per test, stand-in containers and an outside host.

Every test gets a store of its own (so its own bridge, table and address range); everything
it made on the host is removed when it ends, failed or not. The whole package is checked at the
end: links, addresses, routes (every table), the nft ruleset, iptables-save and ip6tables-save
must be what they were before its first test (package scope, so other packages' tests running
in the same session cannot be blamed on these). berth turns on ``net.ipv4.ip_forward`` as
Docker does; the check puts back the value it found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from berth.network import NetworkManager, netns
from berth.store.db import Database
from berth.store.paths import StorePaths
from tests.integration.network.helpers import OutsideHost, links_named

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
# set when a test store recorded that berth turned forwarding on (only then is it put back:
# another program on the host may have turned it on meanwhile, and needs it)
_forwarding_turned_on: list[str] = []


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the network integration tests need root (run them as root, or deselect "
                    "them with -m 'not root')")


def _run(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return f"({cmd[0]} not installed)"
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr


def host_snapshot() -> dict[str, list[str]]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        links = sorted(f"{link.get('ifname')} {link.get(('linkinfo', 'kind'))}"
                       for link in ipr.link("dump"))
        addresses = sorted(f"{names.get(a['index'])} {a.get('address')}/{a['prefixlen']}"
                           for a in ipr.addr("dump"))
        routes = []
        for family in (2, 10):
            for r in ipr.route("dump", family=family):
                routes.append(f"table={r.get('table')} {r.get('dst')}/{r['dst_len']} "
                              f"via={r.get('gateway')} dev={names.get(r.get('oif'))} "
                              f"type={r['type']}")
    counters = re.compile(r"counter packets \d+ bytes \d+|\[\d+:\d+\]")
    nft = [counters.sub("", line) for line in _run(["nft", "list", "ruleset"]).splitlines()]
    ipt = [counters.sub("", line) for line in _run(["iptables-save"]).splitlines()
           if not line.startswith("#")]
    ip6t = [counters.sub("", line) for line in _run(["ip6tables-save"]).splitlines()
            if not line.startswith("#")]
    return {"links": links, "addresses": addresses, "routes": sorted(routes), "nft": nft,
            "iptables": ipt, "ip6tables": ip6t}


def diff_snapshots(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    problems = []
    for key, old in before.items():
        new = after[key]
        if old != new:
            problems.append(f"{key}: missing {sorted(set(old) - set(new))}, "
                            f"added {sorted(set(new) - set(old))}")
    return problems


@pytest.fixture(scope="package", autouse=True)
def host_network_unchanged() -> Iterator[None]:
    _require_root()
    before = host_snapshot()
    with open(IP_FORWARD) as handle:
        forward = handle.read().strip()
    yield
    if _forwarding_turned_on:
        # berth turned forwarding on, as Docker does: put back what the host had
        with open(IP_FORWARD, "w") as out:
            out.write(forward)
    problems = diff_snapshots(before, host_snapshot())
    assert not problems, "the network tests left the host changed:\n" + "\n".join(problems)


@dataclass
class Store:
    root: str
    paths: StorePaths
    db: Database
    manager: NetworkManager
    resolv_conf: str
    hosts_file: str


def make_store(prefix: str = "berth-net-") -> Store:
    root = tempfile.mkdtemp(prefix=prefix)
    paths = StorePaths.at(root)
    resolv_conf = os.path.join(root, "host-resolv.conf")
    with open(resolv_conf, "w") as handle:
        # a resolver the tests never reach: forwarding is always given a stand-in
        handle.write("nameserver 127.0.0.53\nsearch berth.test\noptions edns0\n")
    hosts_file = os.path.join(root, "host-hosts")
    with open(hosts_file, "w") as handle:
        handle.write("127.0.0.1\tlocalhost\n127.0.1.1\tberth-host\n")
    db = Database(paths.db)
    manager = NetworkManager(paths, db, host_resolv_conf=resolv_conf, host_hosts=hosts_file)
    return Store(root, paths, db, manager, resolv_conf, hosts_file)


def destroy_store(store: Store) -> list[str]:
    """Remove everything the store made; returns what was still left after (should be [])."""
    from berth.network import state

    if state.get_value(store.db, "ip_forward_enabled_by_berth") == "1":
        _forwarding_turned_on.append(store.root)
    try:
        store.manager.reset()
    finally:
        store.manager.close()
        store.db.close()
        netns_dir = os.path.join(store.paths.run_dir, "netns")
        if os.path.isdir(netns_dir):
            for entry in os.listdir(netns_dir):
                netns.remove(os.path.join(netns_dir, entry))
        shutil.rmtree(store.paths.run_dir, ignore_errors=True)
        shutil.rmtree(store.root, ignore_errors=True)
    suffix = store.paths.suffix
    return links_named(lambda name: suffix in name)


@pytest.fixture
def store() -> Iterator[Store]:
    _require_root()
    made = make_store()
    try:
        yield made
    finally:
        left = destroy_store(made)
    assert not left, f"links left behind by the test: {left}"


@pytest.fixture
def outside(store: Store) -> Iterator[OutsideHost]:
    """A stand-in for a host outside: a namespace behind a veth pair, with no route to any
    container subnet (so reaching it proves NAT)."""
    host = OutsideHost.create(store.paths, store.root)
    try:
        yield host
    finally:
        host.destroy()
