"""Pure parts of top, diff, update and stats: ps parsing, init-layer stubs, docker's update
checks, and docker's CPU / memory arithmetic."""

from __future__ import annotations

import pytest

from berth.engine.container_ops import (
    merged_host_config,
    parse_ps_output,
    update_resources,
    visible_changes,
)
from berth.engine.container_stats import cpu_percent, memory_usage, parse_net_dev, stats_line
from berth.errors import ContainerError, InvalidArgument
from berth.store.changes import Change

PS_EF = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init splash
root         100       1  0 10:01 ?        00:00:00 sh -c while true; do sleep 1; done
root         101     100  0 10:01 ?        00:00:00 sleep 1
"""


def test_ps_output_keeps_the_containers_pids_and_whole_commands() -> None:
    result = parse_ps_output(PS_EF, [100, 101])
    assert result["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert result["Processes"] == [
        ["root", "100", "1", "0", "10:01", "?", "00:00:00", "sh -c while true; do sleep 1; done"],
        ["root", "101", "100", "0", "10:01", "?", "00:00:00", "sleep 1"],
    ]


def test_ps_output_without_a_pid_column_is_an_error() -> None:
    with pytest.raises(ContainerError, match="Couldn't find PID field in ps output"):
        parse_ps_output("USER COMMAND\nroot sh\n", [1])


def test_ps_output_with_a_pid_column_elsewhere() -> None:
    result = parse_ps_output("COMMAND PID\nsh 7\nbash 8\n", [8])
    assert result["Processes"] == [["bash", "8"]]


def _changes(*lines: str) -> list[Change]:
    return [Change(line[0], line[2:]) for line in lines]  # type: ignore[arg-type]


def test_init_layer_stubs_are_not_changes() -> None:
    changes = _changes(
        "C /etc", "A /etc/hostname", "A /etc/hosts", "A /etc/resolv.conf", "C /tmp", "A /tmp/x"
    )
    assert visible_changes(changes) == _changes("C /tmp", "A /tmp/x")


def test_a_directory_with_a_real_change_besides_stubs_stays() -> None:
    changes = _changes("C /etc", "D /etc/group", "A /etc/hosts")
    assert visible_changes(changes) == _changes("C /etc", "D /etc/group")


def test_changing_an_init_path_that_the_image_has_is_a_change() -> None:
    changes = _changes("C /etc", "C /etc/hosts")
    assert visible_changes(changes) == changes


def test_update_checks_as_docker() -> None:
    current = {"Memory": 64 << 20, "MemorySwap": 128 << 20}
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        merged_host_config(current, {"Memory": 1 << 20})
    with pytest.raises(InvalidArgument, match="smaller than already set memoryswap"):
        merged_host_config(current, {"Memory": 256 << 20})
    assert merged_host_config(current, {"Memory": 256 << 20, "MemorySwap": -1})["Memory"] == (
        256 << 20
    )
    with pytest.raises(InvalidArgument, match="CPU Period cannot be updated"):
        merged_host_config({"NanoCpus": 10**9}, {"CpuPeriod": 50000})
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        merged_host_config({"AutoRemove": True}, {"RestartPolicy": {"Name": "always"}})
    with pytest.raises(InvalidArgument, match="maximum retry count"):
        merged_host_config({}, {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}})
    with pytest.raises(InvalidArgument, match="cannot update"):
        merged_host_config({}, {"Privileged": True})


def test_update_resources_only_what_changed() -> None:
    current = {"Memory": 64 << 20, "PidsLimit": 50, "CpuShares": 512}
    new = merged_host_config(current, {"PidsLimit": -1, "NanoCpus": 500_000_000})
    resources = update_resources(current, new)
    assert resources["pids"] == {"limit": -1}
    assert resources["cpu"]["quota"] == 50_000 and resources["cpu"]["period"] == 100_000
    assert "memory" not in resources and "devices" not in resources


def test_cpu_percent_as_docker_computes_it() -> None:
    pre = {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}
    cpu = {"cpu_usage": {"total_usage": 2_000}, "system_cpu_usage": 14_000, "online_cpus": 4}
    assert cpu_percent(cpu, pre) == pytest.approx(100.0)
    legacy = {
        "cpu_usage": {"total_usage": 2_000, "percpu_usage": [1, 2]},
        "system_cpu_usage": 14_000,
    }
    assert cpu_percent(legacy, pre) == pytest.approx(50.0)
    assert cpu_percent(cpu, cpu) == 0.0


def test_memory_usage_leaves_out_inactive_file_cache() -> None:
    assert memory_usage({"usage": 1000, "stats": {"total_inactive_file": 300}}) == 700
    assert memory_usage({"usage": 1000, "stats": {"inactive_file": 200}}) == 800
    assert memory_usage({"usage": 1000, "stats": {"total_inactive_file": 5000}}) == 1000


def test_net_dev_without_loopback() -> None:
    lines = [
        "    lo:  100 1 0 0 0 0 0 0  100 1 0 0 0 0 0 0\n",
        "  eth0: 2048 10 1 2 0 0 0 0 4096 20 3 4 0 0 0 0\n",
    ]
    assert parse_net_dev(lines) == {
        "eth0": {
            "rx_bytes": 2048,
            "rx_packets": 10,
            "rx_errors": 1,
            "rx_dropped": 2,
            "tx_bytes": 4096,
            "tx_packets": 20,
            "tx_errors": 3,
            "tx_dropped": 4,
        }
    }


def test_stats_line_sums_networks_and_block_io() -> None:
    document = {
        "cpu_stats": {"cpu_usage": {"total_usage": 0}},
        "precpu_stats": {},
        "memory_stats": {"usage": 2048, "limit": 4096, "stats": {}},
        "networks": {
            "eth0": {"rx_bytes": 10, "tx_bytes": 20},
            "eth1": {"rx_bytes": 1, "tx_bytes": 2},
        },
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"op": "Read", "value": 5},
                {"op": "Write", "value": 7},
                {"op": "read", "value": 1},
            ]
        },
        "pids_stats": {"current": 3},
    }
    line = stats_line(document)
    assert (line.net_rx, line.net_tx, line.block_read, line.block_write) == (11, 22, 6, 7)
    assert line.memory_percent == 50.0 and line.pids == 3


def test_runc_stats_in_the_engine_apis_shape() -> None:
    from berth.engine.container_stats import from_runc_stats

    converted = from_runc_stats(
        {
            "cpu": {"usage": {"total": 5, "percpu": [2, 3], "kernel": 1, "user": 4}},
            "memory": {
                "usage": {"limit": 64 << 20, "usage": 1000},
                "raw": {"total_inactive_file": 100},
            },
            "pids": {"current": 2},
            "blkio": {"ioServiceBytesRecursive": [{"op": "Read", "value": 9}]},
        }
    )
    assert converted["cpu_stats"]["cpu_usage"]["total_usage"] == 5
    line = stats_line({**converted, "precpu_stats": {}})
    assert (line.memory, line.memory_limit, line.pids, line.block_read) == (900, 64 << 20, 2, 9)
    unlimited = from_runc_stats({"cpu": {}, "memory": {"usage": {"limit": 2**63 - 4096}}})
    assert unlimited["memory_stats"]["limit"] is None


def test_a_real_change_under_an_added_stub_directory_keeps_it() -> None:
    changes = _changes("A /dev", "A /dev/console", "A /dev/foo", "A /dev/pts", "A /dev/shm")
    assert visible_changes(changes) == _changes("A /dev", "A /dev/foo")
    assert visible_changes(_changes("A /dev", "A /dev/pts", "A /dev/shm")) == []
    assert visible_changes(_changes("D /etc", "A /etc/hosts")) == _changes("D /etc")
