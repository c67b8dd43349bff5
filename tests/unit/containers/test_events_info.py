"""Events: the Docker engine's filters and the CLI's line; info's text layout."""

from __future__ import annotations

import os
import time

import pytest

from berth.cli.system_extra import format_event, prune_warning, render_info, rfc3339_nano_fixed
from berth.engine.events import event_message, matches
from berth.engine.hostinfo import HostFeatures, host_warnings
from berth.filters import Filters
from berth.store.events import StoredEvent

START = StoredEvent(
    7,
    1_704_164_645_123_456_789,
    "container",
    "start",
    "abc123" * 10,
    {"image": "busybox", "name": "web", "tier": "front"},
)
EXEC = StoredEvent(
    8,
    1_704_164_646_000_000_000,
    "container",
    "exec_start: sh -c ls",
    "abc" * 20,
    {"image": "busybox:1", "name": "web", "execID": "x"},
)
TAG = StoredEvent(
    9, 1_704_164_647_000_000_000, "image", "tag", "sha256:" + "e" * 64, {"name": "busybox:latest"}
)


@pytest.fixture(autouse=True)
def _utc() -> object:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield None
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_the_event_line_as_docker_prints_it() -> None:
    line = format_event(event_message(START), "")
    assert line == (
        f"2024-01-02T03:04:05.123456789Z container start {'abc123' * 10} "
        "(image=busybox, name=web, tier=front)\n"
    )
    assert rfc3339_nano_fixed(1_704_164_645_000_000_001) == "2024-01-02T03:04:05.000000001Z"


def test_event_message_shape_and_templates() -> None:
    message = event_message(START)
    assert message["status"] == "start" and message["from"] == "busybox"
    assert message["time"] == 1_704_164_645 and message["scope"] == "local"
    assert format_event(message, "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}") == (
        "container start web\n"
    )
    assert format_event(message, "json").startswith('{"status":"start","id":"abc123')
    assert "status" not in event_message(StoredEvent(1, 1, "network", "create", "n", {}))


@pytest.mark.parametrize(
    ("filters", "start", "exec_", "tag"),
    [
        ({}, True, True, True),
        ({"type": ["container"]}, True, True, False),
        ({"event": ["start"]}, True, False, False),
        ({"event": ["exec_start"]}, False, True, False),
        ({"container": ["web"]}, True, True, False),
        ({"container": ["abc123"]}, True, False, False),
        ({"image": ["busybox"]}, True, False, True),
        ({"image": ["busybox:1"]}, False, True, False),
        ({"label": ["tier=front"]}, True, False, False),
        ({"type": ["image"], "event": ["tag"]}, False, False, True),
        ({"daemon": ["x"]}, False, False, False),
    ],
)
def test_event_filters(filters: dict[str, list[str]], start: bool, exec_: bool, tag: bool) -> None:
    wanted = Filters(filters)
    assert (matches(wanted, START), matches(wanted, EXEC), matches(wanted, TAG)) == (
        start,
        exec_,
        tag,
    )


def _features(**changes: object) -> HostFeatures:
    base: dict[str, object] = dict(
        cgroup_version=2,
        cgroup_hybrid=False,
        memory_limit=True,
        swap_limit=True,
        cpu_cfs=True,
        cpu_shares=True,
        cpuset=True,
        pids_limit=True,
        oom_kill_disable=False,
        overlay=True,
        seccomp=True,
        user_namespaces=True,
        ipv4_forwarding=True,
        bridge_nf_iptables=None,
    )
    base.update(changes)
    return HostFeatures(**base)  # type: ignore[arg-type]


def test_warnings_say_what_is_missing() -> None:
    assert host_warnings(_features()) == []
    warnings = host_warnings(
        _features(
            seccomp=False,
            user_namespaces=False,
            swap_limit=False,
            cgroup_version=1,
            cgroup_hybrid=True,
            overlay=False,
        )
    )
    text = "\n".join(warnings)
    assert all(w.startswith("WARNING: ") for w in warnings)
    for part in (
        "No seccomp support",
        "No user namespaces support",
        "No swap limit support",
        "cgroup v1 (hybrid",
        "overlayfs is not available",
    ):
        assert part in text


def test_info_text_layout() -> None:
    data = {
        "Containers": 3,
        "ContainersRunning": 1,
        "ContainersPaused": 0,
        "ContainersStopped": 2,
        "Images": 4,
        "ServerVersion": "0.1.0",
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Log": ["json-file"],
        },
        "Runtimes": {"berth": {}, "runc": {}},
        "DefaultRuntime": "berth",
        "InitBinary": "berth-init",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
        "KernelVersion": "6.1.0",
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": 2,
        "MemTotal": 8 << 30,
        "Name": "box",
        "ID": "id",
        "DockerRootDir": "/var/lib/berth",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        "LiveRestoreEnabled": True,
    }
    text = render_info(data, "0.1.0")
    assert text.startswith("Client:\n Version:    0.1.0\n")
    for line in (
        " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 4\n",
        " Storage Driver: overlay\n  Backing Filesystem: extfs\n",
        " Plugins:\n  Volume: local\n  Network: bridge host none\n",
        " Runtimes: berth runc\n",
        " Security Options:\n  seccomp\n   Profile: builtin\n  no-new-privileges\n",
        " Total Memory: 8GiB\n",
        " Berth Root Dir: /var/lib/berth\n",
        " Cgroup Version: 2\n",
    ):
        assert line in text


def test_prune_warning_lists_what_goes() -> None:
    text = prune_warning(True, True, ["label=a=b"])
    assert "  - all images without at least one container associated to them\n" in text
    assert "  - all anonymous volumes not used by at least one container\n" in text
    assert "  - label=a=b\n" in text
    assert "all dangling images" in prune_warning(False, False, [])
