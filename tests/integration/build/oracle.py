"""Comparing images built by berth and by a peer: flattened filesystems and configs.

:func:`flatten_archive` reads a ``docker save``/``berth save`` archive and applies its layers
in memory (OCI whiteouts and opaque markers), giving each path's type, permission bits,
owner, content digest or link target. :func:`diff_trees` lists the differences in a form
that reads well in an assertion message.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import Any

CONFIG_KEYS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


@dataclass(frozen=True)
class Node:
    kind: str  # file, dir, symlink, hardlink target is resolved to file, other
    mode: int
    uid: int
    gid: int
    content: str  # sha256 of a file, target of a symlink, "" otherwise
    mtime: int = 0


def _layer_members(archive: tarfile.TarFile, name: str) -> tarfile.TarFile:
    member = archive.extractfile(name)
    assert member is not None, name
    return tarfile.open(fileobj=member, mode="r:*")


def flatten_archive(path: str) -> tuple[dict[str, Node], dict[str, Any]]:
    """(filesystem, image config) of the first image in a docker-archive."""
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(archive.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        tree: dict[str, Node] = {}
        for layer_name in manifest["Layers"]:
            with _layer_members(archive, layer_name) as layer:
                _apply(layer, tree)
    return tree, config


def _apply(layer: tarfile.TarFile, tree: dict[str, Node]) -> None:
    members = layer.getmembers()
    for member in members:
        name = os.path.normpath("/" + member.name)
        base = os.path.basename(name)
        parent = os.path.dirname(name)
        if base == ".wh..wh..opq":
            prefix = parent.rstrip("/") + "/"
            for key in [k for k in tree if k.startswith(prefix)]:
                del tree[key]
            continue
        if base.startswith(".wh."):
            target = os.path.join(parent, base[4:])
            for key in [k for k in tree if k == target or k.startswith(target + "/")]:
                del tree[key]
            continue
    for member in members:
        name = os.path.normpath("/" + member.name)
        if os.path.basename(name).startswith(".wh."):
            continue
        if member.isdir():
            kind, content = "dir", ""
        elif member.issym():
            kind, content = "symlink", member.linkname
        elif member.islnk():
            target = tree.get(os.path.normpath("/" + member.linkname))
            kind, content = "file", target.content if target else "?"
        elif member.isfile():
            data = layer.extractfile(member)
            assert data is not None
            kind, content = "file", hashlib.sha256(data.read()).hexdigest()
        else:
            kind, content = "other", f"{member.type!r}:{member.devmajor}:{member.devminor}"
        if kind != "dir" and name in tree and tree[name].kind == "dir":
            prefix = name + "/"
            for key in [k for k in tree if k.startswith(prefix)]:
                del tree[key]
        tree[name] = Node(
            kind, stat.S_IMODE(member.mode), member.uid, member.gid, content, int(member.mtime)
        )


def diff_trees(
    ours: dict[str, Node],
    theirs: dict[str, Node],
    *,
    ignore: tuple[str, ...] = (),
    compare_mtime_of: tuple[str, ...] = (),
) -> list[str]:
    """Differences as text lines; paths under ``ignore`` prefixes are skipped."""

    def skipped(path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in ignore)

    out = []
    for path in sorted(set(ours) | set(theirs)):
        if skipped(path):
            continue
        a, b = ours.get(path), theirs.get(path)
        if a is None:
            out.append(f"only in peer: {path} {b}")
        elif b is None:
            out.append(f"only in berth: {path} {a}")
        else:
            fields = ("kind", "mode", "uid", "gid", "content")
            if any(path == p for p in compare_mtime_of):
                fields += ("mtime",)
            for name in fields:
                if getattr(a, name) != getattr(b, name):
                    out.append(
                        f"{path}: {name} berth={getattr(a, name)!r} peer={getattr(b, name)!r}"
                    )
    return out


def config_subset(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("config") or {}
    return {key: inner.get(key) or None for key in CONFIG_KEYS}
