"""Where blobs came from: which repositories of which registries are known to hold a digest.

A push uses it to mount a blob from another repository of the same registry instead of
uploading it again (``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>``). The table
is a small JSON file at the store's root, ``registry-blobs.json``, changed under an exclusive
``flock`` and replaced atomically; losing it only costs uploads a mount would have saved.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

ORIGINS_FILE = "registry-blobs.json"
MAX_PER_BLOB = 8  # most recent repositories kept per digest


class BlobOrigins:
    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, ORIGINS_FILE)

    def sources(self, digest: str, host: str) -> list[str]:
        """Repositories at ``host`` known to hold ``digest``, most recent first."""
        entries = self._load().get(digest) or []
        return [repo for h, repo in reversed(entries) if h == host]

    def record(self, host: str, repository: str, digests: Iterable[str]) -> None:
        """Remember that ``host``/``repository`` holds every digest of ``digests``."""
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return
        try:
            with self._locked():
                table = self._load()
                for digest in wanted:
                    entries = [e for e in table.get(digest) or [] if e != [host, repository]]
                    entries.append([host, repository])
                    table[digest] = entries[-MAX_PER_BLOB:]
                self._save(table)
        except OSError:
            pass  # an optimisation only: a push without mounts still works

    def _load(self) -> dict[str, list[list[str]]]:
        try:
            with open(self.path, "rb") as f:
                data: Any = json.load(f)
        except (OSError, ValueError):
            return {}
        blobs = data.get("blobs") if isinstance(data, dict) else None
        if not isinstance(blobs, dict):
            return {}
        return {
            str(k): [[str(x) for x in e] for e in v if isinstance(e, list) and len(e) == 2]
            for k, v in blobs.items()
            if isinstance(v, list)
        }

    def _save(self, table: dict[str, list[list[str]]]) -> None:
        fd, temp = tempfile.mkstemp(prefix=".registry-blobs-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "blobs": table}, f, separators=(",", ":"))
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
