"""``berth push``: an image from the store to a registry, exactly as stored.

The blobs go up as berth keeps them (compressed or not, OCI or Docker media types) and the
manifest bytes are sent unchanged, so the pushed digest is the stored one. For each blob, in
parallel (``max_concurrent_uploads``):

1. ``HEAD`` in the target repository: present already -> "Layer already exists";
2. else, when the blob is known to be in another repository of the same registry (from a pull
   or an earlier push, see :mod:`.origins`), a cross-repository mount -> "Mounted from x";
3. else an upload: ``POST`` then one ``PUT`` with the whole blob streamed from the store
   (monolithic), or ``PATCH`` chunks then ``PUT`` when ``upload_chunk_size`` is set and the
   blob is bigger. A broken upload starts over in a fresh upload session, a few times.

Then the config (as a blob), then ``PUT`` of the manifest under the tag with its media type.
The repo digest (``localhost:5000/app@sha256:...``) is recorded on the image.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx

from berth.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    UsageError,
)
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.manifest import Descriptor, parse_manifest
from berth.oci.reference import ImageReference, parse_normalized
from berth.registry.client import progress as p
from berth.registry.client.auth import repository_scope
from berth.registry.client.credentials import CredentialStore
from berth.registry.client.hosts import RegistryHosts
from berth.registry.client.options import ClientOptions
from berth.registry.client.origins import BlobOrigins
from berth.registry.client.progress import ProgressSink, Reporter, layer_id
from berth.registry.client.session import Context, RegistrySession, credentials_for
from berth.store.images import ImageRecord
from berth.store.store import Store

UPLOAD_READ = 4 << 20  # bytes read from the blob file per write to the socket
_NON_DISTRIBUTABLE = frozenset(
    {
        mt.DOCKER_LAYER_FOREIGN,
        mt.OCI_LAYER_NONDIST,
        mt.OCI_LAYER_NONDIST_GZIP,
        mt.OCI_LAYER_NONDIST_ZSTD,
    }
)


@dataclass(frozen=True, slots=True)
class PushedTag:
    reference: ImageReference
    digest: Digest
    size: int

    @property
    def line(self) -> str:
        """``latest: digest: sha256:... size: 1234``, as docker prints it."""
        return f"{self.reference.tag}: digest: {self.digest} size: {self.size}"


@dataclass(frozen=True, slots=True)
class PushResult:
    pushed: tuple[PushedTag, ...]

    @property
    def digest(self) -> Digest:
        return self.pushed[-1].digest

    @property
    def size(self) -> int:
        return self.pushed[-1].size

    @property
    def lines(self) -> list[str]:
        return [t.line for t in self.pushed]


def push(
    store: Store,
    name: str,
    *,
    all_tags: bool = False,
    progress: ProgressSink | None = None,
    options: ClientOptions | None = None,
) -> PushResult:
    """Push ``name`` (``localhost:5000/app:1``; ``:latest`` when no tag is given).

    With ``all_tags`` every local tag of the repository is pushed (``name`` must have no tag).
    """
    options = options or ClientOptions()
    ref = parse_normalized(name)
    if ref.digest is not None:
        raise UsageError(f"cannot push a digest reference: {name}")
    if all_tags:
        if ref.tag is not None:
            raise UsageError("tag can't be used with --all-tags/-a")
        refs = _local_tags(store, ref)
        if not refs:
            raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
    else:
        refs = [ref.with_default_tag()]
    pusher = _Pusher(store, options, Reporter(progress))
    return PushResult(tuple(pusher.push(r) for r in refs))


def _local_tags(store: Store, ref: ImageReference) -> list[ImageReference]:
    found = [t for image in store.images.all() for t in image.tags]
    return sorted((t for t in found if t.repository == ref.repository), key=lambda t: t.tag or "")


class _Pusher:
    def __init__(self, store: Store, options: ClientOptions, reporter: Reporter) -> None:
        self.store = store
        self.options = options
        self.reporter = reporter
        self.hosts = RegistryHosts.load(options)
        self.credentials = CredentialStore(options.docker_config)
        self.origins = BlobOrigins(store.paths.root)

    def push(self, ref: ImageReference) -> PushedTag:
        try:
            image = self.store.images.resolve(str(ref))
        except ImageNotFound:
            raise ImageNotFound(
                f"An image does not exist locally with the tag: {ref.familiar()}",
                hint="tag an image with that name first: berth tag IMAGE " + ref.familiar(),
            ) from None
        raw = self.store.blobs.read(image.manifest_digest)
        manifest = parse_manifest(raw, image.manifest_media_type)
        location = self.hosts.push_location(ref)
        self.reporter.message(f"The push refers to repository [{ref.repository}]")
        with RegistrySession(
            location,
            options=self.options,
            hosts=self.hosts,
            credentials=credentials_for(self.credentials, location),
            context=Context("pushing", ref.familiar()),
            push=True,
            connections=max(self.options.max_concurrent_uploads, 1),
        ) as session:
            session.open()
            blobs = _unique(
                [d for d in manifest.layers if not _skipped(d)] + [manifest.config]
            )
            self._push_blobs(session, blobs, config=manifest.config.digest)
            digest = self._put_manifest(session, ref, raw, image)
        self.origins.record(location.host, location.path, [str(d.digest) for d in blobs])
        self._record(image, ref, digest)
        pushed = PushedTag(ref, digest, len(raw))
        from berth.store.events import record_event

        record_event(
            self.store, "image", "push", ref.familiar(), {"name": ref.familiar_repository}
        )
        self.reporter.message(pushed.line)
        return pushed

    # ------------------------------------------------------------------ blobs

    def _push_blobs(
        self, session: RegistrySession, blobs: list[Descriptor], *, config: Digest
    ) -> None:
        layers = [d for d in blobs if d.digest != config]
        workers = max(self.options.max_concurrent_uploads, 1)
        for d in layers:
            self.reporter.status(layer_id(d.digest), p.PREPARING)
        for d in layers[workers:]:
            self.reporter.status(layer_id(d.digest), p.WAITING)
        cancel = threading.Event()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="berth-push") as pool:
            futures: list[Future[None]] = [
                pool.submit(self._push_blob, session, d, d.digest == config, cancel) for d in blobs
            ]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                cancel.set()
                raise
            if any(f.done() and f.exception() is not None for f in futures):
                cancel.set()
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        if real or errors:
            raise (real or errors)[0]  # type: ignore[misc]

    def _push_blob(
        self,
        session: RegistrySession,
        descriptor: Descriptor,
        is_config: bool,
        cancel: threading.Event,
    ) -> None:
        if cancel.is_set():
            raise _Cancelled()
        digest = descriptor.digest
        ident = layer_id(digest)
        report = not is_config
        try:
            size = self.store.blobs.size(digest)
        except BlobNotFound:
            raise BlobNotFound(
                f"blob {digest} of {session.context.image} is missing from the store",
                hint="the store is damaged: run `berth system check`, then pull or build again",
            ) from None
        if session.head_blob(str(digest)) is not None:
            if report:
                self.reporter.status(ident, p.LAYER_ALREADY_EXISTS)
            return
        upload_url = self._try_mount(session, digest, ident, report)
        if upload_url == "":
            return
        attempt = 0
        while True:
            try:
                self._upload(session, digest, size, upload_url, ident, report, cancel)
                break
            except _UploadBroke as exc:
                upload_url = None  # a broken upload session is not reused
                if attempt >= self.options.retries:
                    raise session.unreachable(exc.cause, f"uploading layer {ident}") from None
                time.sleep(min(self.options.backoff * (2**attempt), 8.0))
                attempt += 1
        if report:
            self.reporter.status(ident, p.PUSHED)

    def _try_mount(
        self, session: RegistrySession, digest: Digest, ident: str, report: bool
    ) -> str | None:
        """Mount from a repository known to hold the blob: "" when mounted, else the upload
        URL the registry opened instead (or None)."""
        for source in self.origins.sources(str(digest), session.host):
            if source == session.path:
                continue
            scopes = session.scopes | {repository_scope(source)}
            try:
                response = session.request(
                    "POST",
                    session.url("blobs/uploads/"),
                    headers={"Content-Length": "0"},
                    body=b"",
                    expect=(201, 202),
                    scopes=scopes,
                    what=f"mounting layer {ident}",
                    params={"mount": str(digest), "from": source},
                )
            except (RegistryAuthError, RegistryError):
                continue  # no right to read the source, or no mounts here: upload instead
            if response.status_code == 201:
                if report:
                    self.reporter.status(ident, f"{p.MOUNTED_FROM} {source}")
                return ""
            location = response.headers.get("location")
            return session.absolute(location) if location else None
        return None

    def _upload(
        self,
        session: RegistrySession,
        digest: Digest,
        size: int,
        upload_url: str | None,
        ident: str,
        report: bool,
        cancel: threading.Event,
    ) -> None:
        if upload_url is None:
            response = session.request(
                "POST",
                session.url("blobs/uploads/"),
                headers={"Content-Length": "0"},
                body=b"",
                expect=(202,),
                what=f"starting the upload of layer {ident}",
            )
            upload_url = _location(session, response)
        sent = [0]

        def on_bytes(n: int) -> None:
            if cancel.is_set():
                raise _Cancelled()
            sent[0] += n
            if report:
                self.reporter.bytes(ident, p.PUSHING, sent[0], size)

        chunk = self.options.upload_chunk_size
        if chunk > 0 and size > chunk:
            upload_url = self._patch_chunks(session, digest, size, upload_url, chunk, on_bytes)
            body: bytes | Callable[[], Iterator[bytes]] = b""
            headers = {"Content-Length": "0", "Content-Type": "application/octet-stream"}
        else:
            path = self.store.blobs.path(digest)

            def body_factory() -> Iterator[bytes]:
                return _file_chunks(path, 0, size, on_bytes)

            body = body_factory
            headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        url = str(httpx.URL(upload_url).copy_merge_params({"digest": str(digest)}))
        try:
            response = session.request(
                "PUT",
                url,
                headers=headers,
                body=body,
                expect=(201, 204),
                what=f"uploading layer {ident}",
                retry=False,
            )
        except RegistryUnreachable as exc:
            raise _UploadBroke(exc) from None
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != str(digest):
            raise DigestMismatch(
                f"registry {session.host} stored layer {digest} as {claimed} while "
                f"{session.context}",
                hint="the upload was damaged on the way; push again",
            )

    def _patch_chunks(
        self,
        session: RegistrySession,
        digest: Digest,
        size: int,
        upload_url: str,
        chunk: int,
        on_bytes: Callable[[int], None],
    ) -> str:
        path = self.store.blobs.path(digest)
        offset = 0
        while offset < size:
            n = min(chunk, size - offset)
            start = offset

            def chunk_body(start: int = start, n: int = n) -> Iterator[bytes]:
                return _file_chunks(path, start, n, on_bytes)

            try:
                response = session.request(
                    "PATCH",
                    upload_url,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + n - 1}",
                        "Content-Length": str(n),
                    },
                    body=chunk_body,
                    expect=(202,),
                    what=f"uploading a chunk of layer {layer_id(digest)}",
                    retry=False,
                )
            except RegistryUnreachable as exc:
                raise _UploadBroke(exc) from None
            upload_url = _location(session, response)
            offset += n
        return upload_url

    # ------------------------------------------------------------------ manifest

    def _put_manifest(
        self, session: RegistrySession, ref: ImageReference, raw: bytes, image: ImageRecord
    ) -> Digest:
        digest = image.manifest_digest
        response = session.request(
            "PUT",
            session.url(f"manifests/{ref.tag}"),
            headers={"Content-Type": image.manifest_media_type},
            body=raw,
            expect=(201, 200, 202),
            what="manifest",
        )
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed.startswith(f"{digest.algorithm}:") and claimed != str(digest):
            raise DigestMismatch(
                f"registry {session.host} stored the manifest of {ref.familiar()} as {claimed}, "
                f"not {digest}",
                hint="the registry rewrote the manifest; push to another registry",
            )
        return digest

    def _record(self, image: ImageRecord, ref: ImageReference, digest: Digest) -> None:
        with self.store.db.write() as conn:
            self.store.images.add_repo_digest_in(conn, str(image.id), ref.repository, digest)


class _Cancelled(Exception):
    """Another upload failed: this one stops."""


class _UploadBroke(Exception):
    def __init__(self, cause: RegistryUnreachable) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _location(session: RegistrySession, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise RegistryError(
            f"registry {session.host} started an upload without saying where "
            f"(no Location header) while {session.context}"
        )
    return session.absolute(location)


def _file_chunks(
    path: str, start: int, length: int, on_bytes: Callable[[int], None]
) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset, end = start, start + length
        while offset < end:
            data = os.pread(fd, min(UPLOAD_READ, end - offset), offset)
            if not data:
                raise RegistryError(f"blob file {path} is shorter than the store says")
            offset += len(data)
            yield data
            on_bytes(len(data))
    finally:
        os.close(fd)


def _unique(descriptors: list[Descriptor]) -> list[Descriptor]:
    seen: set[Digest] = set()
    out: list[Descriptor] = []
    for d in descriptors:
        if d.digest not in seen:
            seen.add(d.digest)
            out.append(d)
    return out


def _skipped(descriptor: Descriptor) -> bool:
    """Foreign and non-distributable layers stay where their URLs point, as docker does."""
    return descriptor.media_type in _NON_DISTRIBUTABLE and bool(descriptor.urls)
