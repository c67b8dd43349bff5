"""Layers, unpacked once per chain id and shared read-only by every image and container.

``layers/<chain-hex>/diff`` holds one layer's files with overlayfs-style whiteouts, so a stack of
layers is mounted as overlay lower dirs without copying. ``l/<link>`` is a short symlink to each
``diff`` dir: it keeps overlay's mount options short enough for deep images.
"""

from __future__ import annotations

import os
import time

from berth.basics import suppress
from berth.errors import StoreError
from berth.oci.digest import Digest
from berth.store.blobs import temp_prefix
from berth.store.db import Database
from berth.store.paths import StorePaths
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3


class LayerRecord(FrozenValue):
    __slots__ = ("chain_id", "diff_id", "link", "parent_chain", "size")
    chain_id: Digest
    parent_chain: Digest | None
    diff_id: Digest
    size: int
    link: str

    def __init__(
        self, chain_id: Digest, parent_chain: Digest | None, diff_id: Digest, size: int, link: str
    ) -> None:
        init_fields(
            self,
            chain_id=chain_id,
            parent_chain=parent_chain,
            diff_id=diff_id,
            size=size,
            link=link,
        )


class LayerStore:
    def __init__(self, paths: StorePaths, db: Database) -> None:
        self.paths = paths
        self.db = db

    def get(self, chain_id: Digest) -> LayerRecord | None:
        row = self.db.execute(
            "SELECT chain_id, parent_chain, diff_id, size, link FROM layers WHERE chain_id = ?",
            (str(chain_id),),
        ).fetchone()
        return _record(row) if row else None

    def diff_dir(self, chain_id: Digest) -> str:
        return self.paths.layer_diff(chain_id.hex)

    def link_path(self, record: LayerRecord) -> str:
        return os.path.join(self.paths.links, record.link)

    def stack(self, top_chain: Digest | None) -> list[LayerRecord]:
        """The layers under ``top_chain``, lowest first."""
        if top_chain is None:
            return []
        rows = self.db.execute(
            """WITH RECURSIVE chain(c) AS (SELECT ?
                   UNION ALL SELECT l.parent_chain FROM layers l JOIN chain ON l.chain_id = chain.c
                   WHERE l.parent_chain IS NOT NULL)
               SELECT l.chain_id, l.parent_chain, l.diff_id, l.size, l.link
               FROM layers l JOIN chain ON l.chain_id = chain.c""",
            (str(top_chain),),
        ).fetchall()
        by_chain = {row["chain_id"]: _record(row) for row in rows}
        out: list[LayerRecord] = []
        current: Digest | None = top_chain
        while current is not None:
            record = by_chain.get(str(current))
            if record is None:
                raise StoreError(
                    f"layer {current} is missing from the store",
                    hint="run `berth system check`; pull or load the image again",
                )
            out.append(record)
            current = record.parent_chain
        out.reverse()
        return out

    def new_unpack_dir(self) -> str:
        """A fresh empty dir on the store's filesystem to unpack a layer into."""
        import tempfile

        os.makedirs(self.paths.tmp, exist_ok=True)
        return tempfile.mkdtemp(prefix=temp_prefix("layer"), dir=self.paths.tmp)

    def commit_unpacked(
        self,
        conn: sqlite3.Connection,
        unpacked: str,
        chain_id: Digest,
        parent_chain: Digest | None,
        diff_id: Digest,
        size: int,
    ) -> LayerRecord:
        """Move an unpacked dir into place and record it; call inside a write transaction.

        If another process committed the same layer first, ours is discarded.
        """
        existing = conn.execute(
            "SELECT chain_id, parent_chain, diff_id, size, link FROM layers WHERE chain_id = ?",
            (str(chain_id),),
        ).fetchone()
        if existing is not None:
            import shutil

            shutil.rmtree(unpacked, ignore_errors=True)
            return _record(existing)
        layer_dir = self.paths.layer_dir(chain_id.hex)
        if os.path.lexists(layer_dir):  # left by a crash between rename and commit
            self.move_to_trash(layer_dir)
        os.makedirs(layer_dir)
        os.rename(unpacked, os.path.join(layer_dir, "diff"))
        link = _new_link()
        os.makedirs(self.paths.links, exist_ok=True)
        os.symlink(
            os.path.join("..", "layers", chain_id.hex, "diff"), os.path.join(self.paths.links, link)
        )
        conn.execute(
            "INSERT INTO layers (chain_id, parent_chain, diff_id, size, link, added) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(chain_id),
                str(parent_chain) if parent_chain else None,
                str(diff_id),
                size,
                link,
                time.time(),
            ),
        )
        return LayerRecord(chain_id, parent_chain, diff_id, size, link)

    def remove_in(self, conn: sqlite3.Connection, chain_id: Digest) -> None:
        """Forget a layer and move its files to the trash; call inside a write transaction."""
        row = conn.execute(
            "SELECT link FROM layers WHERE chain_id = ?", (str(chain_id),)
        ).fetchone()
        conn.execute("DELETE FROM layers WHERE chain_id = ?", (str(chain_id),))
        if row is not None:
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(self.paths.links, row["link"]))
        layer_dir = self.paths.layer_dir(chain_id.hex)
        if os.path.lexists(layer_dir):
            self.move_to_trash(layer_dir)

    def move_to_trash(self, path: str) -> None:
        os.makedirs(self.paths.trash, exist_ok=True)
        os.rename(
            path, os.path.join(self.paths.trash, f"{os.path.basename(path)}-{os.urandom(4).hex()}")
        )

    def empty_trash(self) -> None:
        try:
            names = os.listdir(self.paths.trash)
        except FileNotFoundError:
            return
        for name in names:
            remove_tree(os.path.join(self.paths.trash, name))


def remove_tree(path: str) -> None:
    """Remove a tree that may hold read-only dirs and immutable-looking modes."""
    import shutil

    def _retry(func: object, failed: str, _exc: object) -> None:
        with suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=_retry)
    else:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _new_link() -> str:
    import secrets

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _record(row: sqlite3.Row) -> LayerRecord:
    parent = row["parent_chain"]
    return LayerRecord(
        chain_id=Digest.parse(row["chain_id"]),
        parent_chain=Digest.parse(parent) if parent else None,
        diff_id=Digest.parse(row["diff_id"]),
        size=row["size"],
        link=row["link"],
    )
