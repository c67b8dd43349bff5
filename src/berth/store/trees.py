"""Removing directory trees that berth made (container dirs, runtime state) on the start path.

:mod:`shutil` imports :mod:`re`, :mod:`fnmatch`, :mod:`bz2` and :mod:`lzma`: several
milliseconds of every ``berth run --rm``, for one ``rmtree``. :func:`remove_tree` does what
``shutil.rmtree(path, ignore_errors=True)`` does with the same kind of walk (relative to
directory fds, :func:`os.fwalk`, so a symlink inside the tree, even one swapped in meanwhile,
is never followed) and nothing else.

:func:`remove_tree_soon` is for a tree already out of the way (renamed into the store's trash):
in a fork server's worker (:func:`defer_removals`), its removal waits for the command's end,
where it runs beside the closing of the store's database (:mod:`berth.cli.forkworker`: before
the client is told its status, or after it when the store is on the root filesystem's own
mount); in any other process it is removed at once.
"""

from __future__ import annotations

import os
import stat


def remove_tree(path: str) -> None:
    """Remove the directory ``path`` and everything below it, as far as possible (errors are
    ignored). A symlink or a file at ``path`` itself is left alone, as ``rmtree`` leaves it."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return
    except OSError:
        return
    for _, dirs, files, dir_fd in os.fwalk(path, topdown=False):
        for name in files:
            _unlink(name, dir_fd)
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except NotADirectoryError:  # a symlink to a directory: listed with the dirs
                _unlink(name, dir_fd)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


_deferred: list[str] | None = None  # trees whose removal waits for remove_deferred()


def defer_removals() -> None:
    """From here, :func:`remove_tree_soon` queues its trees for :func:`remove_deferred`."""
    global _deferred
    _deferred = []


def remove_tree_soon(path: str) -> None:
    """:func:`remove_tree` now, or with :func:`remove_deferred` once removals are deferred.
    Only for a tree no one will look for (one moved into the trash, which a crash in between
    leaves for the store's garbage collection)."""
    if _deferred is None:
        remove_tree(path)
    else:
        _deferred.append(path)


def deferred_paths() -> list[str]:
    """The trees queued for :func:`remove_deferred`."""
    return list(_deferred or [])


def remove_deferred() -> None:
    """Remove the queued trees; removals are made at once again from here."""
    global _deferred
    queued, _deferred = _deferred or [], None
    for path in queued:
        remove_tree(path)


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
