"""The host's platform and picking an image for it from an index."""

from __future__ import annotations

import os

from berth.oci import mediatypes as mt
from berth.oci.manifest import Descriptor, Platform


def host_platform() -> Platform:
    machine = os.uname().machine
    arch = {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    return Platform("linux", arch, "v8" if arch == "arm64" else None)


def select_platform(
    manifests: tuple[Descriptor, ...], wanted: Platform | None = None
) -> Descriptor | None:
    """The index entry for ``wanted`` (the host by default), as containerd's matcher picks it."""
    wanted = wanted or host_platform()
    candidates = [
        m
        for m in manifests
        if m.platform is not None
        and m.platform.os == wanted.os
        and m.platform.architecture == wanted.architecture
        and m.media_type in mt.IMAGE_MANIFESTS
    ]
    if wanted.variant:
        exact = [m for m in candidates if m.platform and m.platform.variant == wanted.variant]
        if exact:
            return exact[0]
        loose = [m for m in candidates if m.platform and not m.platform.variant]
        if loose:
            return loose[0]
    return candidates[0] if candidates else None
