"""The runtime's log: ``--log FILE`` and ``--log-format text|json`` as runc writes them.

A JSON line is ``{"level": "...", "msg": "...", "time": "..."}`` (what containerd's shim reads
back from runc). Without a file, warnings and errors go to stderr and debug lines only with
``--debug``. Cheap on purpose: :mod:`logging` costs several milliseconds to import.
"""

from __future__ import annotations

import os
import time

from berth import jsonio

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class RuntimeLog:
    __slots__ = ("_fd", "_json", "_level")

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self._json = fmt == "json"
        self._level = LEVELS["debug"] if debug else LEVELS["warning"]
        self._fd = -1
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    @classmethod
    def quiet(cls) -> RuntimeLog:
        """A log that drops everything below errors and writes nothing unless asked to."""
        log = cls()
        log._level = LEVELS["error"] + 1
        return log

    def _write(self, level: str, message: str) -> None:
        if LEVELS[level] < self._level:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self._json:
            line = jsonio.dumps({"level": level, "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg="{message}"'
        fd = self._fd if self._fd >= 0 else 2
        try:
            os.write(fd, (line + "\n").encode())
        except OSError:
            pass

    def debug(self, message: str) -> None:
        self._write("debug", message)

    def info(self, message: str) -> None:
        self._write("info", message)

    def warning(self, message: str) -> None:
        self._write("warning", message)

    def error(self, message: str) -> None:
        self._write("error", message)

    @property
    def to_file(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LazyLogger:
    """A :mod:`logging` logger that imports :mod:`logging` when it first logs: for modules on
    the start path that log only when something unusual happens (the records go where the
    application's logging configuration sends them, as with ``logging.getLogger(name)``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, message: str, *args: object) -> None:
        import logging

        logging.getLogger(self.name).debug(message, *args)

    def warning(self, message: str, *args: object) -> None:
        import logging

        logging.getLogger(self.name).warning(message, *args)
