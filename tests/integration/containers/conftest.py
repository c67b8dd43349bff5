"""Container tests leave nothing behind: no mount, cgroup or runtime state of their store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from berth.store.paths import StorePaths


def _leftovers(root: str) -> list[str]:
    paths = StorePaths.at(root)
    found = []
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if root in line.split()[4]]
    cgroup_name = paths.host_name("berth")
    for base, _dirs, _files in os.walk("/sys/fs/cgroup"):
        if os.path.basename(base) == cgroup_name:
            found += [os.path.join(base, d) for d in os.listdir(base)
                      if os.path.isdir(os.path.join(base, d))]
    return found


@pytest.fixture(autouse=True)
def _nothing_left_behind(store_root: str) -> Iterator[None]:
    yield
    from tests.support.berthcli import BerthCLI

    cli = BerthCLI(store_root)
    for container in cli.run("ps", "-aq", "--no-trunc").stdout.split():
        cli.run("rm", "-f", container)
    assert _leftovers(store_root) == []
