"""The registry's filesystem storage: content-addressed blobs shared by every repository.

Layout under the storage directory::

    blobs/<alg>/<hex[:2]>/<hex>              every blob once (layers, configs, manifests)
    repositories/<name>/_layers/<alg>/<hex>   empty: the repository may serve that blob
    repositories/<name>/_manifests/<alg>/<hex>   the manifest's media type
    repositories/<name>/_tags/<tag>           the digest the tag points to
    repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   a referrer's descriptor
    uploads/<uuid>/                           unfinished uploads (see .uploads)
    tmp/                                      files being written, renamed into place
    gc.lock                                   flock: writers take it shared, the gc sweep exclusive

Repository path components never start with ``_`` (the spec's name grammar), so the ``_``
directories cannot collide with a repository called ``a/_tags``.

Every file is written to ``tmp/``, fsynced and renamed into place: a reader sees the old bytes or
the new ones, never a mix, and a blob's path never names bytes of another digest. Writers that
make content reachable (a finished upload, a mount, a manifest) hold ``gc.lock`` shared while they
check and link, and the garbage collector's sweep holds it exclusive (see :mod:`.gc`).

The methods here block (they stat, read, fsync); the server calls the slow ones in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidArgument
from berth.oci.digest import Digest

_TMP_PREFIX = "berth-tmp-"


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    content: bytes


class RegistryStorage:
    """The on-disk state of a registry. Safe for several processes sharing one directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.blobs_dir = os.path.join(self.root, "blobs")
        self.repos_dir = os.path.join(self.root, "repositories")
        self.uploads_dir = os.path.join(self.root, "uploads")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.gc_lock_path = os.path.join(self.root, "gc.lock")

    def initialize(self) -> None:
        for path in (self.blobs_dir, self.repos_dir, self.uploads_dir, self.tmp_dir):
            os.makedirs(path, exist_ok=True)

    def clean_tmp(self, older_than: float | None = None) -> int:
        """Remove temp files (all, or those not modified since ``older_than``)."""
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.tmp_dir) as entries:
            for entry in entries:
                try:
                    if older_than is not None and entry.stat().st_mtime >= older_than:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    # -- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held (shared) while content is checked and made reachable; gc sweeps exclusively."""
        with self._flock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def sweep_lock(self) -> Iterator[None]:
        with self._flock(fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        fd = os.open(self.gc_lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    # -- paths ---------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs_dir, digest.algorithm, digest.hex[:2], digest.hex)

    def repo_dir(self, name: str) -> str:
        return os.path.join(self.repos_dir, name)

    def _layer_link(self, name: str, digest: Digest) -> str:
        return os.path.join(self.repos_dir, name, "_layers", digest.algorithm, digest.hex)

    def _manifest_link(self, name: str, digest: Digest) -> str:
        return os.path.join(self.repos_dir, name, "_manifests", digest.algorithm, digest.hex)

    def _tag_path(self, name: str, tag: str) -> str:
        return os.path.join(self.repos_dir, name, "_tags", tag)

    def _referrers_dir(self, name: str, subject: Digest) -> str:
        return os.path.join(
            self.repos_dir, name, "_referrers", subject.algorithm, subject.hex
        )

    def new_tmp_path(self) -> str:
        return os.path.join(self.tmp_dir, f"{_TMP_PREFIX}{uuid.uuid4().hex}")

    # -- blobs ---------------------------------------------------------------------------

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            return None

    def blob_in_repo(self, name: str, digest: Digest) -> bool:
        """The repository may serve the blob (a layer link or a manifest) and its bytes exist."""
        if not (
            os.path.exists(self._layer_link(name, digest))
            or os.path.exists(self._manifest_link(name, digest))
        ):
            return False
        return os.path.exists(self.blob_path(digest))

    def link_blob(self, name: str, digest: Digest) -> None:
        """Let the repository serve the blob; a fresh mtime protects it from a running gc."""
        link = self._layer_link(name, digest)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        fd = os.open(link, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.close(fd)
        os.utime(link)

    def unlink_blob(self, name: str, digest: Digest) -> bool:
        try:
            os.unlink(self._layer_link(name, digest))
            return True
        except FileNotFoundError:
            return False

    def commit_blob(self, src: str, digest: Digest) -> None:
        """Move a verified, fsynced file into place as the blob ``digest``.

        When the blob already exists (the same bytes pushed twice, or to two repositories) the
        new copy is dropped and the existing file touched, so a running gc keeps it.
        """
        dest = self.blob_path(digest)
        if os.path.exists(dest):
            os.unlink(src)
            os.utime(dest)
            return
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        os.utime(src)
        os.rename(src, dest)
        _fsync_dir(parent)

    def write_blob(self, content: bytes, digest: Digest) -> None:
        """Store small content (a manifest) as a blob, durably and atomically."""
        dest = self.blob_path(digest)
        if os.path.exists(dest):
            os.utime(dest)
            return
        tmp = self.new_tmp_path()
        _write_file(tmp, content)
        self.commit_blob(tmp, digest)

    # -- manifests and tags ----------------------------------------------------------------

    def resolve_tag(self, name: str, tag: str) -> Digest | None:
        try:
            with open(self._tag_path(name, tag), encoding="ascii") as f:
                return Digest.parse(f.read().strip())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def manifest_media_type(self, name: str, digest: Digest) -> str | None:
        try:
            with open(self._manifest_link(name, digest), encoding="utf-8") as f:
                return f.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def get_manifest(self, name: str, digest: Digest) -> StoredManifest | None:
        media_type = self.manifest_media_type(name, digest)
        if media_type is None:
            return None
        try:
            with open(self.blob_path(digest), "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return None
        return StoredManifest(digest, media_type, content)

    def has_manifest(self, name: str, digest: Digest) -> bool:
        return os.path.exists(self._manifest_link(name, digest)) and os.path.exists(
            self.blob_path(digest)
        )

    def put_manifest(
        self,
        name: str,
        digest: Digest,
        media_type: str,
        content: bytes,
        *,
        tag: str | None,
        subject: Digest | None,
        referrer: dict[str, Any] | None,
    ) -> None:
        """Store the manifest's bytes, link it into the repository, then point the tag at it."""
        self.write_blob(content, digest)
        link = self._manifest_link(name, digest)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        self._atomic_write(link, media_type.encode())
        if subject is not None and referrer is not None:
            self.add_referrer(name, subject, digest, referrer)
        if tag is not None:
            path = self._tag_path(name, tag)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._atomic_write(path, str(digest).encode())

    def delete_manifest(self, name: str, digest: Digest) -> bool:
        """Unlink the manifest, every tag that points to it, and its referrer record."""
        stored = self.get_manifest(name, digest)
        try:
            os.unlink(self._manifest_link(name, digest))
        except FileNotFoundError:
            return False
        for tag in self.list_tags(name) or []:
            if self.resolve_tag(name, tag) == digest:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tag_path(name, tag))
        if stored is not None:
            subject = subject_of(stored.content)
            if subject is not None:
                self.remove_referrer(name, subject, digest)
        return True

    def delete_tag(self, name: str, tag: str) -> bool:
        try:
            os.unlink(self._tag_path(name, tag))
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False

    def list_tags(self, name: str) -> list[str] | None:
        """The repository's tags (unsorted), or None when there is no such repository."""
        if not self.repo_exists(name):
            return None
        try:
            return [e for e in os.listdir(os.path.join(self.repos_dir, name, "_tags"))
                    if not e.startswith(".")]
        except FileNotFoundError:
            return []

    def repo_exists(self, name: str) -> bool:
        base = os.path.join(self.repos_dir, name)
        return os.path.isdir(os.path.join(base, "_manifests")) or os.path.isdir(
            os.path.join(base, "_layers")
        )

    def list_repositories(self) -> list[str]:
        """Repositories that hold at least one manifest (as distribution's catalog lists them)."""
        found: list[str] = []
        for dirpath, dirnames, _files in os.walk(self.repos_dir):
            if "_manifests" in dirnames:
                found.append(os.path.relpath(dirpath, self.repos_dir))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return found

    def iter_manifest_links(self) -> Iterator[tuple[str, Digest, float]]:
        """Every (repository, manifest digest, link mtime) in the storage (for gc)."""
        for name in self.list_repositories():
            base = os.path.join(self.repos_dir, name, "_manifests")
            for digest, mtime in _iter_digest_files(base):
                yield name, digest, mtime

    def iter_layer_links(self) -> Iterator[tuple[str, Digest, str, float]]:
        """Every (repository, blob digest, link path, link mtime) in the storage (for gc)."""
        for dirpath, dirnames, _files in os.walk(self.repos_dir):
            if "_layers" in dirnames:
                name = os.path.relpath(dirpath, self.repos_dir)
                base = os.path.join(dirpath, "_layers")
                for digest, mtime in _iter_digest_files(base):
                    yield name, digest, self._layer_link(name, digest), mtime
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]

    def iter_blobs(self) -> Iterator[tuple[Digest, str, os.stat_result]]:
        for alg_entry in _scandir(self.blobs_dir):
            for fan_entry in _scandir(alg_entry.path):
                for entry in _scandir(fan_entry.path):
                    digest = _parse_digest(alg_entry.name, entry.name)
                    if digest is None:  # a stray file that is not a digest: leave it alone
                        continue
                    try:
                        yield digest, entry.path, entry.stat()
                    except FileNotFoundError:
                        continue

    # -- referrers -------------------------------------------------------------------------

    def add_referrer(
        self, name: str, subject: Digest, digest: Digest, descriptor: dict[str, Any]
    ) -> None:
        directory = self._referrers_dir(name, subject)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{digest.algorithm}-{digest.hex}")
        self._atomic_write(path, json.dumps(descriptor, separators=(",", ":")).encode())

    def remove_referrer(self, name: str, subject: Digest, digest: Digest) -> None:
        path = os.path.join(self._referrers_dir(name, subject), f"{digest.algorithm}-{digest.hex}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``, oldest first."""
        found: list[tuple[int, str, dict[str, Any]]] = []
        for entry in _scandir(self._referrers_dir(name, subject)):
            try:
                with open(entry.path, "rb") as f:
                    descriptor = json.loads(f.read())
                mtime = entry.stat().st_mtime_ns
            except (FileNotFoundError, ValueError):
                continue
            alg, _, hex_digest = entry.name.partition("-")
            digest = _parse_digest(alg, hex_digest)
            if digest is not None and self.has_manifest(name, digest):
                found.append((mtime, entry.name, descriptor))
        found.sort(key=lambda item: (item[0], item[1]))
        return [descriptor for _, _, descriptor in found]

    # -- helpers ---------------------------------------------------------------------------

    def _atomic_write(self, path: str, content: bytes) -> None:
        tmp = self.new_tmp_path()
        _write_file(tmp, content)
        os.rename(tmp, path)


def _write_file(path: str, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _iter_digest_files(base: str) -> Iterator[tuple[Digest, float]]:
    """(digest, mtime) of every ``<base>/<alg>/<hex>`` file."""
    for alg_entry in _scandir(base):
        for entry in _scandir(alg_entry.path):
            digest = _parse_digest(alg_entry.name, entry.name)
            if digest is None:
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            yield digest, mtime


def _parse_digest(algorithm: str, hex_digest: str) -> Digest | None:
    try:
        return Digest.parse(f"{algorithm}:{hex_digest}")
    except InvalidArgument:
        return None


def subject_of(content: bytes) -> Digest | None:
    """The ``subject`` digest of a stored manifest or index, if it has one."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    subject = data.get("subject") if isinstance(data, dict) else None
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        alg, _, hex_digest = subject["digest"].partition(":")
        return _parse_digest(alg, hex_digest)
    return None

