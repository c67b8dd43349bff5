"""Removing directory trees that berth made (container dirs, runtime state) on the start path.

:mod:`shutil` imports :mod:`re`, :mod:`fnmatch`, :mod:`bz2` and :mod:`lzma`: several
milliseconds of every ``berth run --rm``, for one ``rmtree``. :func:`remove_tree` does what
``shutil.rmtree(path, ignore_errors=True)`` does with the same kind of walk (relative to
directory fds, :func:`os.fwalk`, so a symlink inside the tree, even one swapped in meanwhile,
is never followed) and nothing else.
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


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
