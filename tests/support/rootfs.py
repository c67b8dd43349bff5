"""Minimal root filesystems for runtime tests, made from Debian's busybox-static.

Tests that only need "some rootfs with a shell" use these instead of the image store, so the
runtime can be tested on its own (and the same bundle handed to runc or crun).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

BUSYBOX = "/bin/busybox"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
tty:x:5:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""


def require_busybox() -> str:
    """The static busybox binary; fails (never skips) when it is missing."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} is missing: install Debian's busybox-static (.ci/run does)")
    return BUSYBOX


def make_busybox_rootfs(rootfs: str) -> str:
    """Fill ``rootfs`` with busybox, a symlink per applet, /etc/passwd and /etc/group."""
    busybox = require_busybox()
    for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "home"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write(GROUP)
    return rootfs


def write_bundle(bundle: str, config: dict[str, Any]) -> str:
    """Write ``config.json`` into ``bundle`` (which must hold ``rootfs``)."""
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return bundle
