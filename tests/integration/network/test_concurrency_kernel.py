"""berth processes started at the same time never hand out one address, port or subnet twice."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time

import pytest

from tests.integration.network.conftest import Store, destroy_store, make_store

pytestmark = pytest.mark.root

WORKER = r"""
import json, os, sys, time
from berth.network import EndpointRequest, NetworkManager, parse_publish
from berth.store.db import Database
from berth.store.paths import StorePaths

root, go, job, count, what = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
paths = StorePaths.at(root)
manager = NetworkManager(paths, Database(paths.db),
                         host_resolv_conf=os.path.join(root, "host-resolv.conf"))
while not os.path.exists(go):
    time.sleep(0.001)
out = []
for i in range(count):
    if what == "containers":
        cid = f"{job}{i:02d}".ljust(64, "0")
        info = manager.setup_container(cid, f"c{job}{i}", "h", [EndpointRequest("shared")],
                                       parse_publish("80"))
        out.append([cid, info.ip, info.ports[0].host_port])
    else:
        net = manager.create(f"n{job}{i}")
        out.append([net.name, net.subnet, net.bridge])
print(json.dumps(out))
"""


def _run_workers(root: str, jobs: list[str], count: int, what: str) -> list[list[str]]:
    go = os.path.join(root, "go")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, root, go, job, str(count), what],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for job in jobs]
    time.sleep(0.5)  # let every worker import and open the store
    with open(go, "w"):
        pass
    results: list[list[str]] = []
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(err)
        else:
            results.extend(json.loads(out))
    assert not failures, "\n".join(failures)
    return results


def test_parallel_processes_get_distinct_addresses_and_ports(store: Store) -> None:
    store.manager.create("shared")
    results = _run_workers(store.root, ["a", "b", "c", "d"], 5, "containers")
    assert len(results) == 20
    addresses = [ip for _cid, ip, _port in results]
    host_ports = [port for _cid, _ip, port in results]
    assert len(set(addresses)) == 20
    assert len(set(host_ports)) == 20
    for cid, _ip, _port in results:
        store.manager.teardown_container(cid)


def test_parallel_network_creation_in_one_store(store: Store) -> None:
    results = _run_workers(store.root, ["a", "b", "c"], 2, "networks")
    subnets = [ipaddress.ip_network(subnet) for _name, subnet, _bridge in results]
    for i, one in enumerate(subnets):
        for other in subnets[i + 1:]:
            assert not one.overlaps(other)
    assert len({bridge for _name, _subnet, bridge in results}) == 6


def test_parallel_stores_choose_distinct_subnets() -> None:
    stores = [make_store("berth-net-par-") for _ in range(3)]
    try:
        go = os.path.join(stores[0].root, "go")
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, s.root, go, "x", "2",
                                   "networks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for s in stores]
        time.sleep(0.5)
        with open(go, "w"):
            pass
        subnets = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            subnets += [ipaddress.ip_network(s) for _n, s, _b in json.loads(out)]
        assert len(subnets) == 6
        for i, one in enumerate(subnets):
            for other in subnets[i + 1:]:
                assert not one.overlaps(other), (one, other)
    finally:
        left = []
        for made in stores:
            left += destroy_store(made)
        assert not left
