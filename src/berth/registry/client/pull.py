"""``berth pull``: an image from a registry into the store, ready to run.

How it goes:

1. The reference resolves to locations (mirrors first, see :mod:`.hosts`); each is tried in
   turn until one serves the image.
2. The manifest is fetched with every Accept type berth reads, and its digest checked (by
   digest: it must match; by tag: the computed digest is recorded, and must agree with
   ``Docker-Content-Digest`` when the registry sends one). An index picks the host platform or
   ``--platform``. If the tag already names this very manifest in the store, nothing more is
   done ("Image is up to date").
3. The config blob is fetched (or read from the store) and verified.
4. The layers, in parallel (``max_concurrent_downloads``), each in ONE streaming pass: bytes
   from the network are appended to a partial file named after the digest, and the same bytes
   go through :func:`berth.store.ingest.ingest_layer`, which hashes them, decompresses, hashes
   the content (the diff id) and unpacks. The chain ids are known from the config before any
   layer arrives, so no layer waits for the one below it: each is unpacked into its own dir and
   committed under its chain id as soon as it is verified. Nothing is read twice or written
   twice; the verified partial file is renamed into the blob store.
5. An interrupted download keeps its partial file (``tmp/berth-tmp-<pid>-pull-<digest>``); the
   next attempt, in this process after a backoff or in a later ``berth pull``, asks for the rest
   with ``Range: bytes=N-``, replays the first N bytes from the file into the unpacker and
   appends what the server sends (only if it answers 206 from offset N; a 200 starts over).
6. The image is recorded with its tag and repo digest in one transaction (:func:`write_image`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import BinaryIO, cast

import httpx

from berth.errors import (
    BerthError,
    ContentError,
    CorruptArchive,
    DigestMismatch,
    ImageNotFound,
    InvalidManifest,
    RegistryError,
    UsageError,
)
from berth.oci import mediatypes as mt
from berth.oci.config import ImageConfig
from berth.oci.digest import Digest, chain_ids
from berth.oci.manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_manifest,
    parse_manifest_or_index,
)
from berth.oci.platform import host_platform, select_platform
from berth.oci.reference import ImageReference, parse_normalized
from berth.registry.client import progress as p
from berth.registry.client.credentials import CredentialStore
from berth.registry.client.download import (
    BlobDownload,
    Cancelled,
    Interrupted,
    PartialBlob,
    range_start,
)
from berth.registry.client.hosts import Location, RegistryHosts
from berth.registry.client.options import ClientOptions
from berth.registry.client.origins import BlobOrigins
from berth.registry.client.progress import ProgressSink, Reporter, layer_id
from berth.registry.client.session import Context, RegistrySession, credentials_for
from berth.store.image_writer import LayerSource, ManifestSource, write_image
from berth.store.images import ImageRecord
from berth.store.ingest import IngestedLayer, ingest_layer
from berth.store.leases import Lease
from berth.store.store import Store

PARTIAL_KIND = "pull"


@dataclass(frozen=True, slots=True)
class PullResult:
    image: ImageRecord
    reference: ImageReference
    digest: Digest  # the repo digest: the index's when the tag named an index
    status: str  # "Downloaded newer image for busybox:latest" / "Image is up to date for ..."

    @property
    def lines(self) -> list[str]:
        """What ``docker pull`` prints at the end."""
        return [f"Digest: {self.digest}", f"Status: {self.status}", str(self.reference)]


def pull(
    store: Store,
    name: str,
    *,
    platform: str | None = None,
    all_tags: bool = False,
    progress: ProgressSink | None = None,
    options: ClientOptions | None = None,
) -> list[PullResult]:
    """Pull ``name`` (``busybox``, ``localhost:5000/app:1``, ``x@sha256:...``) into ``store``.

    With ``all_tags`` every tag of the repository is pulled (``name`` must have no tag).
    ``platform`` (``linux/arm64``) picks from an index instead of the host's platform.
    """
    options = options or ClientOptions()
    ref = parse_normalized(name)
    if all_tags and not ref.is_name_only:
        raise UsageError("tag can't be used with --all-tags/-a")
    wanted = Platform.parse(platform) if platform else None
    puller = _Puller(store, options, Reporter(progress), wanted)
    if not all_tags:
        return [puller.pull(ref.with_default_tag())]
    tags = puller.list_tags(ref)
    if not tags:
        raise ImageNotFound(f"repository {ref.familiar()} has no tags to pull")
    return [puller.pull(ref.with_tag(tag)) for tag in tags]


class _Puller:
    def __init__(
        self, store: Store, options: ClientOptions, reporter: Reporter, wanted: Platform | None
    ) -> None:
        self.store = store
        self.options = options
        self.reporter = reporter
        self.wanted = wanted
        self.hosts = RegistryHosts.load(options)
        self.credentials = CredentialStore(options.docker_config)
        self.origins = BlobOrigins(store.paths.root)

    def _session(self, location: Location, ref: ImageReference) -> RegistrySession:
        return RegistrySession(
            location,
            options=self.options,
            hosts=self.hosts,
            credentials=credentials_for(self.credentials, location),
            context=Context("pulling", ref.familiar()),
            connections=max(self.options.max_concurrent_downloads, 1),
        )

    def list_tags(self, ref: ImageReference) -> list[str]:
        failure: BerthError | None = None
        for location in self.hosts.pull_locations(ref):
            try:
                with self._session(location, ref) as session:
                    return session.tags()
            except (RegistryError, ImageNotFound) as exc:
                failure = failure or exc
        assert failure is not None
        raise failure

    def pull(self, ref: ImageReference) -> PullResult:
        locations = self.hosts.pull_locations(ref)
        for number, location in enumerate(locations):
            last = number == len(locations) - 1
            try:
                with self._session(location, ref) as session:
                    result = self._pull_from(session, ref)
                from berth.store.events import record_event

                record_event(
                    self.store, "image", "pull", ref.familiar(), {"name": ref.familiar_repository}
                )
                return result
            except (RegistryError, ImageNotFound, DigestMismatch) as exc:
                if last:  # a mirror that fails or serves bad bytes: try the next source
                    raise
                self.reporter.message(
                    f"mirror {location.host} failed ({exc.message}); trying the next source"
                )
        raise AssertionError("unreachable: there is always at least one location")

    # ------------------------------------------------------------------ one image

    def _pull_from(self, session: RegistrySession, ref: ImageReference) -> PullResult:
        session.open()
        what = str(ref.digest) if ref.digest is not None else ref.tag
        self.reporter.message(f"{what}: Pulling from {ref.path}")
        raw, media_type, header_digest = session.get_manifest(what or "latest")
        digest = _manifest_digest(raw, ref, header_digest, session)
        display = ref.familiar()
        current = self._up_to_date(ref, digest)
        if current is not None:
            status = f"Image is up to date for {display}"
            self._finish(digest, status)
            return PullResult(current, ref, digest, status)
        parsed = parse_manifest_or_index(raw, media_type or None)
        index: tuple[bytes, Digest] | None = None
        if isinstance(parsed, ImageIndex):
            index = (raw, digest)
            chosen = self._choose(parsed, ref)
            raw, media_type, _ = session.get_manifest(str(chosen.digest), what="platform manifest")
            _check_descriptor(raw, chosen, "platform manifest", session)
            manifest = parse_manifest(raw, chosen.media_type)
        else:
            manifest = parsed
        config_bytes = self._config(session, manifest)
        if self.wanted is not None and index is None:
            _check_platform(config_bytes, self.wanted, ref)
        with self.store.lease() as lease:
            if index is not None:
                self.store.put_blob(lease, index[0], index[1])
            image = write_image(
                self.store,
                config_bytes=config_bytes,
                layers=[_source(d) for d in manifest.layers],
                manifest=ManifestSource(raw, manifest.media_type),
                tags=[ref] if ref.tag is not None else [],
                repo_digests=[(ref.repository, digest)],
                index_digest=index[1] if index else None,
                lease=lease,
                ingest=lambda lease, config, layers: self._ingest(
                    session, lease, config, manifest.layers
                ),
            )
        self.origins.record(
            session.host,
            session.path,
            [str(d.digest) for d in manifest.layers] + [str(manifest.config.digest)],
        )
        status = f"Downloaded newer image for {display}"
        self._finish(digest, status)
        return PullResult(image, ref, digest, status)

    def _finish(self, digest: Digest, status: str) -> None:
        self.reporter.message(f"Digest: {digest}")
        self.reporter.message(f"Status: {status}")

    def _choose(self, index: ImageIndex, ref: ImageReference) -> Descriptor:
        chosen = select_platform(index.manifests, self.wanted)
        if chosen is None:
            wanted = self.wanted or host_platform()
            available = sorted(
                {str(m.platform) for m in index.manifests if m.platform is not None}
            )
            raise ImageNotFound(
                f"no matching manifest for {wanted} in the manifest list entries of "
                f"{ref.familiar()}",
                hint=f"the image has {', '.join(available) or 'no platforms'}; "
                "pick one with --platform",
            )
        return chosen

    def _up_to_date(self, ref: ImageReference, digest: Digest) -> ImageRecord | None:
        try:
            current = self.store.images.resolve(str(ref))
        except BerthError:
            return None
        if f"{ref.repository}@{digest}" not in current.repo_digests:
            return None
        if current.top_chain is not None and self.store.layers.get(current.top_chain) is None:
            return None
        if self.wanted is not None:  # the tag's image must also be of the asked platform
            try:
                config = ImageConfig.from_bytes(self.store.blobs.read(current.id))
            except BerthError:
                return None
            if (config.os, config.architecture) != (self.wanted.os, self.wanted.architecture):
                return None
        return current

    def _config(self, session: RegistrySession, manifest: ImageManifest) -> bytes:
        descriptor = manifest.config
        if descriptor.media_type not in mt.CONFIGS:
            raise InvalidManifest(
                f"{session.context.image} is not a container image: its config has media type "
                f"{descriptor.media_type!r}",
                hint="it may be an artifact (a Helm chart, a signature); use a tool for those",
            )
        if self.store.blobs.has(descriptor.digest):
            with contextlib.suppress(ContentError):
                return self.store.blobs.read(descriptor.digest)
        return session.get_blob_bytes(descriptor.digest, descriptor.size, what="image config")

    # ------------------------------------------------------------------ layers

    def _ingest(
        self,
        session: RegistrySession,
        lease: Lease,
        config: ImageConfig,
        layers: Sequence[Descriptor],
    ) -> list[IngestedLayer]:
        chains = chain_ids(config.diff_ids)
        jobs = [
            _LayerJob(
                index=i,
                descriptor=d,
                diff_id=config.diff_ids[i],
                chain_id=chains[i],
                parent_chain=chains[i - 1] if i else None,
            )
            for i, d in enumerate(layers)
        ]
        results: list[IngestedLayer | None] = [None] * len(jobs)
        pending: list[_LayerJob] = []
        for job in jobs:
            done = self._already_there(lease, job)
            if done is not None:
                results[job.index] = done
                self.reporter.status(job.ident, p.ALREADY_EXISTS)
            else:
                pending.append(job)
                self.reporter.status(job.ident, p.PULLING_FS_LAYER)
        workers = max(self.options.max_concurrent_downloads, 1)
        for job in pending[workers:]:
            self.reporter.status(job.ident, p.WAITING)
        cancel = threading.Event()
        first_of: dict[Digest, Future[IngestedLayer]] = {}
        futures: list[Future[IngestedLayer]] = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="berth-pull") as pool:
            for job in pending:
                earlier = first_of.get(job.descriptor.digest)
                future = pool.submit(self._layer, session, lease, job, cancel, earlier)
                first_of.setdefault(job.descriptor.digest, future)
                futures.append(future)
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # KeyboardInterrupt: stop the others, keep what arrived
                cancel.set()
                raise
            if any(f.done() and f.exception() is not None for f in futures):
                cancel.set()
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if real:
            raise real[0]  # type: ignore[misc]
        if errors:
            raise errors[0]  # type: ignore[misc]
        for job, future in zip(pending, futures, strict=True):
            results[job.index] = future.result()
        return [r for r in results if r is not None]

    def _already_there(self, lease: Lease, job: _LayerJob) -> IngestedLayer | None:
        """The layer and its blob are both in the store: nothing to fetch."""
        record = self.store.layers.get(job.chain_id)
        digest = job.descriptor.digest
        if record is None or not self.store.blobs.has(digest):
            return None
        lease.add("layer", str(job.chain_id))
        lease.add("blob", str(digest))
        if not self.store.blobs.has(digest):  # removed just before the lease took hold
            return None
        return IngestedLayer(
            digest, job.descriptor.size, job.descriptor.media_type, job.diff_id, record
        )

    def _layer(
        self,
        session: RegistrySession,
        lease: Lease,
        job: _LayerJob,
        cancel: threading.Event,
        earlier: Future[IngestedLayer] | None,
    ) -> IngestedLayer:
        if earlier is not None:  # the same blob twice in one image: fetched once
            with contextlib.suppress(Exception):
                earlier.result()
        if cancel.is_set():
            raise Cancelled()
        digest = job.descriptor.digest
        if self.store.blobs.has(digest):
            self.reporter.status(job.ident, p.EXTRACTING)
            with self.store.blobs.open(digest) as stream:
                ingested = self._ingest_stream(lease, job, stream)
            self.reporter.status(job.ident, p.PULL_COMPLETE)
            return ingested
        attempt = 0
        with PartialBlob.claim(self.store.paths.tmp, digest) as partial:
            while True:
                try:
                    ingested = self._download(session, lease, job, partial, cancel)
                    partial.adopt(self.store.blobs.path(digest))
                    self.reporter.status(job.ident, p.PULL_COMPLETE)
                    return ingested
                except Interrupted as exc:
                    if cancel.is_set():
                        raise Cancelled() from None
                    if attempt >= self.options.retries:
                        error = session.unreachable(exc.cause, f"layer {job.ident}")
                        error.hint = (
                            "the download stopped part way; run the pull again and it resumes "
                            "where it stopped"
                        )
                        raise error from None
                    delay = min(self.options.backoff * (2**attempt), 8.0)
                    self.reporter.status(job.ident, f"{p.RETRYING} in {max(delay, 1):.0f} seconds")
                    time.sleep(delay)
                    attempt += 1
                except ContentError:
                    partial.discard()
                    raise

    def _ingest_stream(self, lease: Lease, job: _LayerJob, stream: BinaryIO) -> IngestedLayer:
        return ingest_layer(
            self.store,
            lease,
            stream,
            media_type=job.descriptor.media_type,
            parent_chain=job.parent_chain,
            expected_blob=job.descriptor.digest,
            expected_size=job.descriptor.size,
            expected_diff_id=job.diff_id,
            keep_blob=False,
        )

    def _download(
        self,
        session: RegistrySession,
        lease: Lease,
        job: _LayerJob,
        partial: PartialBlob,
        cancel: threading.Event,
    ) -> IngestedLayer:
        digest, size = job.descriptor.digest, job.descriptor.size
        if partial.size > size:
            partial.truncate()
        # A partial file as long as the blob (its download died just before the end) needs
        # no request at all: it is verified like any download.
        response = self._open_blob(session, job, partial) if partial.size < size else None
        stream = BlobDownload(
            partial,
            response,
            size,
            on_bytes=lambda n: self.reporter.bytes(job.ident, p.DOWNLOADING, n, size),
            cancel=cancel,
        )
        try:
            try:
                ingested = self._ingest_stream(lease, job, cast(BinaryIO, stream))
            except CorruptArchive as exc:
                # Damaged bytes usually break decompression before the digest is compared:
                # tell a wrong download (DigestMismatch) from a layer that is really broken.
                stream.drain()
                actual = partial.digest(digest.algorithm)
                if actual != digest:
                    raise DigestMismatch(
                        f"layer {digest} from registry {session.host} has digest {actual} "
                        f"while {session.context}",
                        hint="the registry's copy is corrupt or was tampered with; "
                        "nothing was stored",
                    ) from None
                raise CorruptArchive(
                    f"layer {digest} of {session.context.image} is corrupt: {exc.message}",
                    hint=exc.hint,
                ) from None
            except DigestMismatch as exc:
                raise DigestMismatch(
                    f"{exc.message} (layer {job.ident} from registry {session.host} while "
                    f"{session.context})",
                    hint="the registry's copy is corrupt or was tampered with; nothing was stored",
                ) from None
        finally:
            if response is not None:
                response.close()
        if stream.count != size:
            partial.discard()
            raise DigestMismatch(
                f"layer {digest} from registry {session.host} has {stream.count} bytes, "
                f"the manifest says {size} (while {session.context})",
                hint="the registry's copy is corrupt; nothing was stored",
            )
        self.reporter.status(job.ident, p.VERIFYING_CHECKSUM)
        self.reporter.status(job.ident, p.DOWNLOAD_COMPLETE)
        return ingested

    def _open_blob(
        self, session: RegistrySession, job: _LayerJob, partial: PartialBlob
    ) -> httpx.Response:
        """GET the blob, from where the partial file ends when there is one."""
        digest, size = job.descriptor.digest, job.descriptor.size
        url = session.url(f"blobs/{digest}")
        offset = partial.size
        headers = {"Range": f"bytes={offset}-"} if 0 < offset < size else None
        try:
            response = session.request(
                "GET",
                url,
                headers=headers,
                stream=True,
                expect=(200, 206, 416) if headers else (200,),
                what=f"layer {job.ident}",
                not_found=lambda _problem: session.blob_unknown(digest, "layer"),
            )
        except BerthError:
            raise
        if response.status_code == 206 and range_start(response) == offset:
            return response
        if response.status_code in (206, 416):
            response.close()  # a range we did not ask for, or one it cannot serve: start over
            partial.truncate()
            return self._open_blob(session, job, partial)
        if offset:
            partial.truncate()  # the server ignored the Range header: it sends everything
        return response


@dataclass(frozen=True, slots=True)
class _LayerJob:
    index: int
    descriptor: Descriptor
    diff_id: Digest
    chain_id: Digest
    parent_chain: Digest | None

    @property
    def ident(self) -> str:
        return layer_id(self.descriptor.digest)


def _source(descriptor: Descriptor) -> LayerSource:
    def unused() -> BinaryIO:
        raise AssertionError("pull ingests layers itself")

    return LayerSource(unused, descriptor.media_type, descriptor.digest, descriptor.size)


def _manifest_digest(
    raw: bytes, ref: ImageReference, header: str, session: RegistrySession
) -> Digest:
    if ref.digest is not None:
        actual = Digest(ref.digest.algorithm, hashlib.new(ref.digest.algorithm, raw).hexdigest())
        if actual != ref.digest:
            raise DigestMismatch(
                f"registry {session.host} sent a manifest with digest {actual} for "
                f"{ref.familiar()}",
                hint="the registry's copy is corrupt or was tampered with; nothing was stored",
            )
        return ref.digest
    computed = Digest.of(raw)
    if header:
        try:
            claimed = Digest.parse(header.strip())
        except BerthError:
            return computed
        actual = Digest(claimed.algorithm, hashlib.new(claimed.algorithm, raw).hexdigest())
        if actual != claimed:
            raise DigestMismatch(
                f"registry {session.host} says the manifest of {ref.familiar()} is {claimed}, "
                f"but its bytes have digest {actual}",
                hint="the registry or a proxy in between changed it; nothing was stored",
            )
    return computed


def _check_descriptor(
    raw: bytes, descriptor: Descriptor, what: str, session: RegistrySession
) -> None:
    digest = descriptor.digest
    actual = Digest(digest.algorithm, hashlib.new(digest.algorithm, raw).hexdigest())
    if actual != digest or len(raw) != descriptor.size:
        raise DigestMismatch(
            f"registry {session.host} sent a {what} with digest {actual} ({len(raw)} bytes) "
            f"for {digest} ({descriptor.size} bytes) while {session.context}",
            hint="the registry's copy is corrupt or was tampered with; nothing was stored",
        )


def _check_platform(config_bytes: bytes, wanted: Platform, ref: ImageReference) -> None:
    config = ImageConfig.from_bytes(config_bytes)
    actual = Platform(config.os, config.architecture, config.variant or None)
    if actual.os != wanted.os or actual.architecture != wanted.architecture or (
        wanted.variant and actual.variant and wanted.variant != actual.variant
    ):
        raise ImageNotFound(
            f"image {ref.familiar()} was found but does not match the specified platform: "
            f"wanted {wanted}, actual: {actual}"
        )
