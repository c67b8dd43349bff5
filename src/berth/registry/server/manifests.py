"""What the registry checks in a pushed manifest, before storing it byte for byte.

:func:`inspect_manifest` is pure (bytes and a Content-Type in, facts out) and raises
``MANIFEST_INVALID`` for anything the server will not store: bytes that are not a JSON object, a
``mediaType`` that contradicts the ``Content-Type``, a media type that is not an OCI or Docker
schema 2 manifest or index (schema 1 included), or a shape :mod:`berth.oci.manifest` rejects.
What it returns names the blobs and manifests the repository must already hold and, for a
manifest with a ``subject``, the descriptor the referrers API lists for it (the spec's rules:
``artifactType`` from the manifest, else its config's media type; an index without one has none;
annotations copied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.manifest import Descriptor, ImageIndex, parse_manifest_or_index
from berth.registry.server.errors import DistributionError

MANIFEST_MEDIA_TYPES = mt.IMAGE_MANIFESTS | mt.IMAGE_INDEXES
_SCHEMA1 = frozenset(
    {mt.DOCKER_MANIFEST_V1_SIGNED, "application/vnd.docker.distribution.manifest.v1+json"}
)


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    media_type: str
    blobs: tuple[Descriptor, ...]  # config and layers that must be in the repository
    manifests: tuple[Descriptor, ...]  # an index's children that must be in the repository
    subject: Digest | None
    referrer: dict[str, Any] | None  # the descriptor to list under the subject


def inspect_manifest(raw: bytes, content_type: str | None, digest: Digest) -> ManifestFacts:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid("manifest is not a JSON object")
    media_type = _media_type(data, _bare(content_type))
    try:
        parsed = parse_manifest_or_index(raw, media_type)
    except InvalidManifest as exc:
        raise _invalid(str(exc)) from None
    subject = _descriptor(data.get("subject"), "subject")
    if isinstance(parsed, ImageIndex):
        artifact_type = data.get("artifactType")
        facts_blobs: tuple[Descriptor, ...] = ()
        facts_manifests = parsed.manifests
    else:
        artifact_type = parsed.artifact_type or parsed.config.media_type
        facts_blobs = (parsed.config, *(layer for layer in parsed.layers if not layer.urls))
        facts_manifests = ()
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType is not a string")
    referrer: dict[str, Any] | None = None
    if subject is not None:
        referrer = {"mediaType": media_type, "digest": str(digest), "size": len(raw)}
        if artifact_type:
            referrer["artifactType"] = artifact_type
        annotations = data.get("annotations")
        if isinstance(annotations, dict) and annotations:
            referrer["annotations"] = annotations
    return ManifestFacts(
        media_type=media_type,
        blobs=facts_blobs,
        manifests=facts_manifests,
        subject=subject.digest if subject is not None else None,
        referrer=referrer,
    )


def _media_type(data: dict[str, Any], content_type: str | None) -> str:
    """The manifest's type: its ``mediaType`` field, which the Content-Type must not contradict."""
    declared = data.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType is not a string")
    for candidate in (declared, content_type):
        if candidate in _SCHEMA1:
            raise _invalid(
                "Docker image manifest schema 1 is not supported",
                detail={"mediaType": candidate},
            )
    if declared:
        if content_type in MANIFEST_MEDIA_TYPES and content_type != declared:
            raise _invalid(
                f"Content-Type {content_type} does not match the manifest's mediaType {declared}",
                detail={"contentType": content_type, "mediaType": declared},
            )
        media_type = declared
    elif content_type in MANIFEST_MEDIA_TYPES:
        media_type = content_type
    else:
        raise _invalid(
            "the manifest has no mediaType and the Content-Type does not name a manifest type",
            detail={"contentType": content_type},
        )
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise _invalid(
            f"unsupported manifest media type {media_type}",
            detail={"mediaType": media_type, "supported": sorted(MANIFEST_MEDIA_TYPES)},
        )
    return media_type


def _descriptor(value: Any, what: str) -> Descriptor | None:
    if value is None:
        return None
    try:
        return Descriptor.from_json(value)
    except InvalidManifest as exc:
        raise _invalid(f"invalid {what}: {exc}") from None


def _bare(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _invalid(message: str, *, detail: Any = None) -> DistributionError:
    return DistributionError("MANIFEST_INVALID", message, detail=detail)
