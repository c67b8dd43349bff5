"""Volumes: named ones that outlive containers, anonymous ones for an image's VOLUMEs.

A volume is a directory ``volumes/<name>/_data`` in the store. The first time a container
mounts an empty volume over a path that has content in the image, that content is copied in
(owners, modes, times, symlinks, hard links), as Docker does, unless ``nocopy`` is asked.
"""

from __future__ import annotations

import os
import stat
import time

from berth import jsonio
from berth.errors import InvalidArgument, VolumeInUse, VolumeNotFound
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.store.store import Store

VALID_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"


class VolumeRecord(FrozenValue):
    __slots__ = ("anonymous", "created", "driver", "labels", "mountpoint", "name", "options")
    name: str
    driver: str
    created: float
    mountpoint: str
    labels: dict[str, str]
    options: dict[str, str]
    anonymous: bool

    def __init__(
        self,
        name: str,
        driver: str,
        created: float,
        mountpoint: str,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> None:
        init_fields(
            self,
            name=name,
            driver=driver,
            created=created,
            mountpoint=mountpoint,
            labels={} if labels is None else labels,
            options={} if options is None else options,
            anonymous=anonymous,
        )

    def to_docker(self) -> dict[str, Any]:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        labels = dict(self.labels)
        if self.anonymous:
            labels.setdefault("com.docker.volume.anonymous", "")
        return {
            "CreatedAt": created,
            "Driver": self.driver,
            "Labels": labels or None,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": self.options or None,
            "Scope": "local",
        }


class VolumeStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def path(self, name: str) -> str:
        return os.path.join(self.store.paths.volumes, name, "_data")

    def create(
        self,
        name: str | None = None,
        *,
        driver: str = "local",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> VolumeRecord:
        """Create a volume; creating an existing named volume returns it (as Docker does)."""
        if driver != "local":
            raise InvalidArgument(
                f"volume driver {driver!r} is not supported", hint="berth has the local driver only"
            )
        if options:
            raise InvalidArgument(
                f"volume options {sorted(options)} are not supported by berth's local driver"
            )
        if name is None:
            name, anonymous = os.urandom(32).hex(), True  # what secrets.token_hex(32) is
        elif not _valid_name(name):
            raise InvalidArgument(
                f'"{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path"
            )
        existing = self.find(name)
        if existing is not None:
            return existing
        os.makedirs(self.path(name), exist_ok=True)
        record = VolumeRecord(
            name,
            driver,
            time.time(),
            self.path(name),
            dict(labels or {}),
            dict(options or {}),
            anonymous,
        )
        import json  # here: only a new volume is written with it

        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO volumes (name, driver, created, labels, options, "
                "anonymous) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    name,
                    driver,
                    record.created,
                    json.dumps(record.labels),
                    json.dumps(record.options),
                    int(anonymous),
                ),
            )
        from berth.store.events import record_event

        record_event(self.store, "volume", "create", name, {"driver": driver})
        return self.find(name) or record

    def find(self, name: str) -> VolumeRecord | None:
        row = self.db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        return self._record(row) if row else None

    def get(self, name: str) -> VolumeRecord:
        record = self.find(name)
        if record is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return record

    def all(self) -> list[VolumeRecord]:
        rows = self.db.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [self._record(row) for row in rows]

    def users(self, name: str) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT container_id FROM container_volumes WHERE volume = ?", (name,)
            )
        ]

    def remove(self, name: str, *, force: bool = False) -> None:
        with self.db.write() as conn:
            row = conn.execute("SELECT name FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is None:
                if force:
                    return
                raise VolumeNotFound(f"get {name}: no such volume")
            users = [
                r[0]
                for r in conn.execute(
                    "SELECT container_id FROM container_volumes WHERE volume = ?", (name,)
                )
            ]
            if users:
                raise VolumeInUse(
                    f"remove {name}: volume is in use - [{', '.join(users)}]",
                    hint="remove the containers that use it first",
                )
            conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
            trash = os.path.join(self.store.paths.trash, f"volume-{name}-{os.urandom(4).hex()}")
            os.makedirs(self.store.paths.trash, exist_ok=True)
            if os.path.exists(os.path.join(self.store.paths.volumes, name)):
                os.rename(os.path.join(self.store.paths.volumes, name), trash)
        from berth.store.events import record_event

        record_event(self.store, "volume", "destroy", name, {"driver": "local"})
        self.store.layers.empty_trash()

    def prune(
        self, *, all_volumes: bool = False, keep: set[str] | None = None
    ) -> tuple[list[str], int]:
        """Remove unused anonymous volumes (all unused ones with ``all_volumes``)."""
        removed: list[str] = []
        reclaimed = 0
        for volume in self.all():
            if volume.name in (keep or set()) or self.users(volume.name):
                continue
            if not all_volumes and not volume.anonymous:
                continue
            reclaimed += _du(volume.mountpoint)
            try:
                self.remove(volume.name)
            except VolumeInUse:
                continue
            removed.append(volume.name)
        return removed, reclaimed

    def _record(self, row: Any) -> VolumeRecord:
        return VolumeRecord(
            name=row["name"],
            driver=row["driver"],
            created=row["created"],
            mountpoint=self.path(row["name"]),
            labels=jsonio.loads(row["labels"]),
            options=jsonio.loads(row["options"]),
            anonymous=bool(row["anonymous"]),
        )


def _valid_name(name: str) -> bool:
    import re

    return re.match(VALID_NAME, name) is not None


def seed_volume(volume_dir: str, image_dir: str) -> bool:
    """Copy what the image has at a mount point into an empty volume; True if it copied."""
    try:
        if os.listdir(volume_dir):
            return False
        source = os.stat(image_dir)  # resolved by the caller (may be /proc/self/fd/N)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(source.st_mode):
        return False
    copy_tree(image_dir, volume_dir)
    os.chown(volume_dir, source.st_uid, source.st_gid)
    os.chmod(volume_dir, stat.S_IMODE(source.st_mode))
    return True


def copy_tree(src: str, dst: str) -> None:
    """Copy ``src``'s contents into the existing dir ``dst`` keeping owners, modes, times,
    symlinks and hard links (within the tree). Symlinks are copied, never followed."""
    import shutil

    links: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target_dir = dst if rel == "." else os.path.join(dst, rel)
        for name in dirnames + filenames:
            source = os.path.join(dirpath, name)
            target = os.path.join(target_dir, name)
            st = os.lstat(source)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), target)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], target)
                    continue
                shutil.copyfile(source, target, follow_symlinks=False)
                links[key] = target
            else:
                os.mknod(target, st.st_mode, st.st_rdev)
            os.lchown(target, st.st_uid, st.st_gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        # dirnames with symlinks to dirs were copied as links; os.walk does not descend them


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total
