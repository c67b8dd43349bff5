"""``berth image bootstrap debian:bookworm``: a Debian image made with debootstrap.

The way the official Debian images are made: a ``minbase`` debootstrap of the suite, then the
container tweaks: apt configured to keep no caches and fetch no translations, no package lists
shipped, ``policy-rc.d`` so package installs never start services, an empty machine-id, and no
host resolv.conf or hostname baked in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from berth.bootstrap.rootfs_image import DEFAULT_PATH, image_from_directory
from berth.errors import HostError, InvalidArgument
from berth.oci.config import ContainerConfig
from berth.oci.reference import ImageReference
from berth.store.images import ImageRecord
from berth.store.store import Store

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITES = {
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "latest": "trixie",
    "stable": "trixie",
    "oldstable": "bookworm",
}
KNOWN = {"bullseye", "bookworm", "trixie", "sid", "unstable", "testing", "forky"}

APT_CONFIG = {
    "docker-clean": (
        "# berth: keep no downloaded .deb files in the image\n"
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "docker-no-languages": '# berth: fetch no translations\nAcquire::Languages "none";\n',
    "docker-gzip-indexes": (
        '# berth: keep package lists compressed\nAcquire::GzipIndexes "true";\n'
    ),
    "docker-autoremove-suggests": (
        "# berth: let autoremove take suggested packages too\n"
        'Apt::AutoRemove::SuggestsImportant "false";\n'
    ),
}
POLICY_RC_D = "#!/bin/sh\n# berth: never start services while installing packages\nexit 101\n"


def suite_for(tag: str | None) -> str:
    tag = tag or "latest"
    suite = SUITES.get(tag, tag)
    base = suite.split("-", 1)[0]
    if base not in KNOWN:
        raise InvalidArgument(
            f"unknown Debian suite {tag!r}",
            hint="use one of " + ", ".join(sorted(KNOWN | set(SUITES))),
        )
    return suite


def bootstrap_debian(
    store: Store,
    tags: list[ImageReference],
    *,
    suite: str,
    mirror: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImageRecord:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise HostError(
            "debootstrap is not installed", hint="install it: apt-get install debootstrap"
        )
    mirror = mirror or DEFAULT_MIRROR
    with tempfile.TemporaryDirectory(prefix="berth-debootstrap-", dir=store.paths.tmp) as work:
        rootfs = os.path.join(work, "rootfs")
        try:
            _run_debootstrap(debootstrap, suite, rootfs, mirror, progress)
            _containerise(rootfs, suite, mirror)
        finally:
            _unmount_below(rootfs)
        config = ContainerConfig(env=[f"PATH={DEFAULT_PATH}"], cmd=["bash"])
        return image_from_directory(
            store,
            rootfs,
            tags=tags,
            config=config,
            created_by=f"berth image bootstrap debian:{suite} (debootstrap --variant=minbase)",
            comment=f"debootstrap --variant=minbase {suite} {mirror}",
        )


def _run_debootstrap(
    debootstrap: str, suite: str, rootfs: str, mirror: str, progress: Callable[[str], None] | None
) -> None:
    command = [debootstrap, "--variant=minbase", "--merged-usr", suite, rootfs, mirror]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        tail = [*tail[-19:], line]
        if progress and line.startswith("I: "):
            progress(line[3:])
    if process.wait() != 0:
        detail = next((t for t in reversed(tail) if t.startswith("E: ")), tail[-1] if tail else "")
        raise HostError(
            f"debootstrap of {suite} from {mirror} failed: {detail}",
            hint="check that the mirror is reachable (or pass --mirror) and there is disk space",
        )


def _containerise(rootfs: str, suite: str, mirror: str) -> None:
    apt_conf = os.path.join(rootfs, "etc/apt/apt.conf.d")
    os.makedirs(apt_conf, exist_ok=True)
    for name, text in APT_CONFIG.items():
        _write(os.path.join(apt_conf, name), text)
    _write(os.path.join(rootfs, "usr/sbin/policy-rc.d"), POLICY_RC_D, 0o755)
    lists = os.path.join(rootfs, "var/lib/apt/lists")
    for name in _listdir(lists):
        path = os.path.join(lists, name)
        if os.path.isfile(path):
            os.unlink(path)
    for name in _listdir(os.path.join(rootfs, "var/cache/apt")):
        if name.endswith(".bin"):
            os.unlink(os.path.join(rootfs, "var/cache/apt", name))
    for name in ("etc/resolv.conf", "etc/hostname"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(rootfs, name))
    _write(os.path.join(rootfs, "etc/machine-id"), "")
    if suite not in ("sid", "unstable"):
        security = mirror.rstrip("/").removesuffix("/debian") + "/debian-security"
        sources = (
            f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        os.makedirs(os.path.join(rootfs, "etc/apt/sources.list.d"), exist_ok=True)
        _write(os.path.join(rootfs, "etc/apt/sources.list.d/debian.sources"), sources)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(rootfs, "etc/apt/sources.list"))


def _unmount_below(rootfs: str) -> None:
    """debootstrap mounts /proc and /sys in the target; never leave them behind."""
    prefix = os.path.realpath(rootfs) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
