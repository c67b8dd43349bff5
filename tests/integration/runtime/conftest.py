"""Fixtures for the runtime's integration tests (root, real kernel).

``runtime`` is a :class:`Runtime` on a state root of its own; whatever container a test
leaves behind is deleted with force afterwards, and the test fails if it had to. ``host_sanity``
(used by the runtime core's modules) checks that nothing was mounted in the host's mount
namespace under the test's directory and that the host's /dev/null is still a device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from berth.runtime.container import Runtime
from tests.integration.runtime import helpers


@pytest.fixture(scope="session")
def rootfs_template() -> Iterator[str]:
    """A busybox rootfs shared read-only by the tests (bundles point at it)."""
    parent = helpers.make_workdir("berth-rt-rootfs-")
    try:
        yield helpers.make_rootfs(parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[str]:
    path = helpers.make_workdir()
    try:
        yield path
    finally:
        for point in reversed(helpers.mounts_under(path)):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host_sanity(workdir: str) -> Iterator[None]:
    assert helpers.dev_null_is_sane(), "the host's /dev/null was broken before this test"
    yield
    leaked = helpers.mounts_under(workdir)
    assert not leaked, f"mounts leaked into the host's mount namespace: {leaked}"
    assert helpers.dev_null_is_sane(), "the host's /dev/null is no longer the null device"


@pytest.fixture
def runtime(workdir: str) -> Iterator[Runtime]:
    rt = Runtime(os.path.join(workdir, "state"))
    failed = True
    try:
        yield rt
        failed = False
    finally:
        left = helpers.cleanup_runtime(rt)
        if left and not failed:
            pytest.fail(f"the test left containers behind: {left}")


@pytest.fixture
def bundle(workdir: str, rootfs_template: str) -> helpers.BundleFactory:
    return helpers.BundleFactory(workdir, rootfs_template)
