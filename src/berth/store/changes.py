"""What a container changed, as ``docker diff`` reports it, from its overlay upper dir.

Given the container's upper dir and the lower dirs of its image, :func:`list_changes` lists

- ``D`` for each whiteout (a 0:0 character device) in the upper dir;
- ``A`` or ``C`` for every other entry of the upper dir: ``C`` when the path exists in one of
  the lower dirs, ``A`` when it does not. Directories that overlayfs copied up to hold a
  change are in the upper dir, so they show as ``C``, as with Docker;
- for an opaque directory (``trusted.overlay.opaque=y``): the directory itself as above, and
  ``D`` for each name the lower dirs have in it that the upper dir does not.

``lowers`` are in overlayfs' ``lowerdir=`` order, uppermost first. "Exists in a lower dir"
walks the path in each lower, uppermost first, without following symlinks (an overlay lookup
does not follow them either); the first lower holding the path decides, and a whiteout there
means it does not exist. Paths are absolute (``/etc/passwd``) and the list is sorted by path,
as ``docker diff`` prints it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import Literal, NamedTuple

from berth.store import safepath

__all__ = ["Change", "list_changes"]

OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Change(NamedTuple):
    kind: Literal["A", "C", "D"]
    path: str


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise


class _Lowers:
    def __init__(self, lowers: Sequence[str]) -> None:
        self.fds: list[int] = []
        try:
            for lower in lowers:
                self.fds.append(os.open(lower, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def _open(self, fd: int, path: bytes, flags: int) -> int | None:
        try:
            return safepath.open_in_root(fd, path, flags, no_symlinks=True, no_xdev=True)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise

    def exists(self, path: bytes) -> bool:
        """Whether ``path`` is in the lowers' merged view (the first one that has it decides)."""
        for fd in self.fds:
            found = self._open(fd, path, os.O_PATH | os.O_NOFOLLOW)
            if found is None:
                continue
            try:
                return not _is_whiteout(os.fstat(found))
            finally:
                os.close(found)
        return False

    def names_in(self, path: bytes) -> set[bytes]:
        """The names the lowers' merged view shows in directory ``path``."""
        names: set[bytes] = set()
        hidden: set[bytes] = set()
        for fd in self.fds:
            found = self._open(fd, path or b".", _DIR_OPEN)
            if found is None:
                continue
            try:
                for entry in os.scandir(found):
                    name = os.fsencode(entry.name)
                    if _is_whiteout(entry.stat(follow_symlinks=False)):
                        hidden.add(name)
                    elif name not in hidden:
                        names.add(name)
                if _is_opaque(found):
                    break
            finally:
                os.close(found)
        return names


def list_changes(upper: str, lowers: Sequence[str] = ()) -> list[Change]:
    """The changes in overlay upper dir ``upper`` over ``lowers``, sorted by path."""
    changes: list[tuple[bytes, Literal["A", "C", "D"]]] = []
    lower = _Lowers(lowers)
    stack: list[tuple[int, bytes]] = []
    try:
        stack.append((os.open(upper, _DIR_OPEN), b""))
        while stack:
            fd, prefix = stack.pop()
            try:
                present = set()
                for entry in os.scandir(fd):
                    name = os.fsencode(entry.name)
                    present.add(name)
                    path = prefix + b"/" + name
                    st = entry.stat(follow_symlinks=False)
                    if _is_whiteout(st):
                        changes.append((path, "D"))
                        continue
                    changes.append((path, "C" if lower.exists(path) else "A"))
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((os.open(name, _DIR_OPEN, dir_fd=fd), path))
                if prefix and _is_opaque(fd):
                    for hidden in sorted(lower.names_in(prefix) - present):
                        changes.append((prefix + b"/" + hidden, "D"))
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
        lower.close()
    changes.sort()
    return [Change(kind, os.fsdecode(path)) for path, kind in changes]
