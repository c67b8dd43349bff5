"""``--user name|uid[:group|gid]`` resolved through the container's own /etc/passwd and
/etc/group, read inside the container root (never the host's files, never through a symlink
that leads out of the root)."""

from __future__ import annotations

import os

from berth.errors import ContainerError
from berth.store.safepath import open_in_root
from berth.values import FrozenValue, init_fields

MAX_ID = 2**31 - 1


class ExecUser(FrozenValue):
    __slots__ = ("additional_gids", "gid", "home", "uid")
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str

    def __init__(self, uid: int, gid: int, additional_gids: tuple[int, ...], home: str) -> None:
        init_fields(self, uid=uid, gid=gid, additional_gids=additional_gids, home=home)


class _Passwd(FrozenValue):
    __slots__ = ("gid", "home", "name", "uid")
    name: str
    uid: int
    gid: int
    home: str

    def __init__(self, name: str, uid: int, gid: int, home: str) -> None:
        init_fields(self, name=name, uid=uid, gid=gid, home=home)


class _Group(FrozenValue):
    __slots__ = ("gid", "members", "name")
    name: str
    gid: int
    members: tuple[str, ...]

    def __init__(self, name: str, gid: int, members: tuple[str, ...]) -> None:
        init_fields(self, name=name, gid=gid, members=members)


def resolve_user(rootfs: str, spec: str, group_add: list[str] | None = None) -> ExecUser:
    """Docker's rules (moby/sys/user): numeric ids need no passwd entry; names must exist."""
    user_part, _, group_part = (spec or "").partition(":")
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        passwd = _read_passwd(root_fd)
        groups = _read_group(root_fd)
    finally:
        os.close(root_fd)
    entry: _Passwd | None
    if not user_part:
        entry = next((p for p in passwd if p.uid == 0), None)
        uid = 0
    elif user_part.isdigit():
        uid = _id(user_part, "user")
        entry = next((p for p in passwd if p.uid == uid), None)
    else:
        entry = next((p for p in passwd if p.name == user_part), None)
        if entry is None:
            raise ContainerError(
                f"unable to find user {user_part}: no matching entries in passwd file",
                hint="use a numeric uid, or add the user to the image",
            )
        uid = entry.uid
    gid = entry.gid if entry else 0
    if group_part:
        if group_part.isdigit():
            gid = _id(group_part, "group")
        else:
            found = next((g for g in groups if g.name == group_part), None)
            if found is None:
                raise ContainerError(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            gid = found.gid
    additional: list[int] = []
    if entry is not None and not group_part:
        additional = [g.gid for g in groups if entry.name in g.members and g.gid != gid]
    for extra in group_add or []:
        if extra.isdigit():
            additional.append(_id(extra, "group"))
        else:
            found = next((g for g in groups if g.name == extra), None)
            if found is None:
                raise ContainerError(
                    f"unable to find group {extra}: no matching entries in group file"
                )
            additional.append(found.gid)
    home = entry.home if entry and entry.home else "/"
    # As containerd does for Docker: the primary group leads the supplementary groups.
    return ExecUser(uid, gid, tuple(dict.fromkeys([gid, *additional])), home)


def _id(text: str, what: str) -> int:
    value = int(text)
    if value > MAX_ID:
        raise ContainerError(f"{what} id {value} is out of range (max {MAX_ID})")
    return value


def _read_lines(root_fd: int, path: str) -> list[list[str]]:
    try:
        fd = open_in_root(root_fd, path, os.O_RDONLY)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read(4 << 20)
    out = []
    for line in data.decode(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line.split(":"))
    return out


def _read_passwd(root_fd: int) -> list[_Passwd]:
    entries = []
    for fields in _read_lines(root_fd, "etc/passwd"):
        if len(fields) >= 6 and fields[2].isdigit() and fields[3].isdigit():
            entries.append(_Passwd(fields[0], int(fields[2]), int(fields[3]), fields[5]))
    return entries


def _read_group(root_fd: int) -> list[_Group]:
    entries = []
    for fields in _read_lines(root_fd, "etc/group"):
        if len(fields) >= 3 and fields[2].isdigit():
            members = tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m)
            entries.append(_Group(fields[0], int(fields[2]), members))
    return entries
