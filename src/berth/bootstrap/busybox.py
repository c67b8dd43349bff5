"""``berth image bootstrap busybox``: a busybox image from Debian's busybox-static.

The layout follows the official busybox image: one static binary in /bin with a hard link per
applet, the usual users and groups in /etc, and /tmp, /root, /home, /var/spool/mail, /var/www.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from berth.bootstrap.rootfs_image import DEFAULT_PATH, image_from_directory
from berth.errors import HostError
from berth.oci.config import ContainerConfig
from berth.oci.reference import ImageReference
from berth.store.images import ImageRecord
from berth.store.store import Store

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""


def find_static_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path) and _is_static_elf(path):
            return path
    raise HostError(
        "no statically linked busybox on this host",
        hint="install Debian's busybox-static: apt-get install busybox-static",
    )


def busybox_version(binary: str) -> str:
    out = subprocess.run([binary], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    return first.split()[1].lstrip("v") if first.startswith("BusyBox") else "unknown"


def make_rootfs(rootfs: str, binary: str) -> None:
    for d in (
        "bin",
        "dev",
        "etc",
        "home",
        "root",
        "tmp",
        "usr/sbin",
        "var/spool/mail",
        "var/www",
        "proc",
        "sys",
    ):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    target = os.path.join(rootfs, "bin", "busybox")
    shutil.copyfile(binary, target)
    os.chmod(target, 0o755)
    applets = subprocess.run(
        [binary, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.link(target, link)
    files = {
        "etc/passwd": (PASSWD, 0o644),
        "etc/group": (GROUP, 0o644),
        "etc/shadow": (
            "".join(f"{line.split(':')[0]}:*:::::::\n" for line in PASSWD.splitlines()),
            0o640,
        ),
        "etc/nsswitch.conf": ("hosts: files dns\nnetworks: files\n", 0o644),
    }
    for name, (text, mode) in files.items():
        path = os.path.join(rootfs, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)


def bootstrap_busybox(store: Store, tags: list[ImageReference]) -> ImageRecord:
    binary = find_static_busybox()
    version = busybox_version(binary)
    with tempfile.TemporaryDirectory(prefix="berth-busybox-", dir=store.paths.tmp) as work:
        rootfs = os.path.join(work, "rootfs")
        make_rootfs(rootfs, binary)
        config = ContainerConfig(env=[f"PATH={DEFAULT_PATH}"], cmd=["sh"])
        return image_from_directory(
            store,
            rootfs,
            tags=tags,
            config=config,
            created_by=f"berth image bootstrap busybox (busybox-static {version})",
            comment=f"BusyBox {version} from {binary}",
        )


def _is_static_elf(path: str) -> bool:
    """True for an ELF executable without a PT_INTERP program header (no dynamic loader)."""
    import struct

    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
            return False
        endian = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True
