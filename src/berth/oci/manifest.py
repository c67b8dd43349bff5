"""Descriptors, image manifests and image indexes (OCI v1.1; Docker schema 2 on read).

Parsing validates the shape and raises :class:`~berth.errors.InvalidManifest` with what is
wrong. Serialising produces canonical compact JSON; bytes that came from elsewhere are kept as
they are (a manifest's digest is the digest of its exact bytes), so serialise only what berth
itself creates.
"""

from __future__ import annotations

from berth.errors import InvalidArgument, InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.digest import Digest
from berth.oci.jsondoc import canonical_json, load_json_object
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [  # the JSON helpers moved to berth.oci.jsondoc and are still found here
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "canonical_json",
    "load_json_object",
    "parse_index",
    "parse_manifest",
    "parse_manifest_or_index",
]


class Platform(FrozenValue):
    __slots__ = ("architecture", "os", "os_version", "variant")
    os: str
    architecture: str
    variant: str | None
    os_version: str | None

    def __init__(
        self, os: str, architecture: str, variant: str | None = None, os_version: str | None = None
    ) -> None:
        init_fields(self, os=os, architecture=architecture, variant=variant, os_version=os_version)

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(
                f"invalid platform {text!r}", hint="expected os/arch[/variant], e.g. linux/amd64"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if not isinstance(data, dict):
            raise InvalidManifest("platform is not an object")
        return cls(
            os=_str(data, "os"),
            architecture=_str(data, "architecture"),
            variant=data.get("variant") or None,
            os_version=data.get("os.version") or None,
        )


class Descriptor(FrozenValue):
    __slots__ = ("annotations", "artifact_type", "digest", "media_type", "platform", "size", "urls")
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str]
    platform: Platform | None
    urls: tuple[str, ...]
    artifact_type: str | None

    def __init__(
        self,
        media_type: str,
        digest: Digest,
        size: int,
        annotations: dict[str, str] | None = None,
        platform: Platform | None = None,
        urls: tuple[str, ...] = (),
        artifact_type: str | None = None,
    ) -> None:
        init_fields(
            self,
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={} if annotations is None else annotations,
            platform=platform,
            urls=urls,
            artifact_type=artifact_type,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, data: Any, default_media_type: str = "") -> Descriptor:
        if not isinstance(data, dict):
            raise InvalidManifest("descriptor is not an object")
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"descriptor has an invalid size: {size!r}")
        try:
            digest = Digest.parse(_str(data, "digest"))
        except InvalidArgument as exc:
            raise InvalidManifest(f"descriptor has an invalid digest: {exc}") from None
        media_type = data.get("mediaType", default_media_type)
        if not isinstance(media_type, str) or not media_type:
            raise InvalidManifest("descriptor has no mediaType")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InvalidManifest("descriptor annotations are not an object")
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            platform=Platform.from_json(platform) if platform is not None else None,
            urls=tuple(data.get("urls") or ()),
            artifact_type=data.get("artifactType"),
        )


class ImageManifest(FrozenValue):
    """An OCI image manifest or a Docker schema 2 manifest."""

    __slots__ = ("annotations", "artifact_type", "config", "layers", "media_type", "subject")
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str
    annotations: dict[str, str]
    subject: Descriptor | None
    artifact_type: str | None

    def __init__(
        self,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        media_type: str = mt.OCI_MANIFEST,
        annotations: dict[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
    ) -> None:
        init_fields(
            self,
            config=config,
            layers=layers,
            media_type=media_type,
            annotations={} if annotations is None else annotations,
            subject=subject,
            artifact_type=artifact_type,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [layer.to_json() for layer in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


class ImageIndex(FrozenValue):
    """An OCI image index or a Docker manifest list."""

    __slots__ = ("annotations", "manifests", "media_type")
    manifests: tuple[Descriptor, ...]
    media_type: str
    annotations: dict[str, str]

    def __init__(
        self,
        manifests: tuple[Descriptor, ...],
        media_type: str = mt.OCI_INDEX,
        annotations: dict[str, str] | None = None,
    ) -> None:
        init_fields(
            self,
            manifests=manifests,
            media_type=media_type,
            annotations={} if annotations is None else annotations,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


def parse_manifest_or_index(
    raw: bytes, media_type_hint: str | None = None
) -> ImageManifest | ImageIndex:
    """Parse manifest bytes whose kind is told by ``mediaType`` or by the transport's hint."""
    data = load_json_object(raw, "manifest")
    media_type = data.get("mediaType") or media_type_hint
    if media_type is None:
        media_type = mt.OCI_INDEX if "manifests" in data else mt.OCI_MANIFEST
    if media_type in mt.IMAGE_INDEXES:
        return _parse_index(data, media_type)
    if media_type in mt.IMAGE_MANIFESTS:
        return _parse_manifest(data, media_type)
    if media_type == mt.DOCKER_MANIFEST_V1_SIGNED:
        raise InvalidManifest(
            "Docker image manifest schema 1 is not supported",
            hint="the image was pushed by a very old client; push it again with a current one",
        )
    raise InvalidManifest(f"unsupported manifest media type {media_type!r}")


def parse_manifest(raw: bytes, media_type_hint: str | None = None) -> ImageManifest:
    parsed = parse_manifest_or_index(raw, media_type_hint)
    if not isinstance(parsed, ImageManifest):
        raise InvalidManifest("expected an image manifest, found an index")
    return parsed


def parse_index(raw: bytes, media_type_hint: str | None = None) -> ImageIndex:
    parsed = parse_manifest_or_index(raw, media_type_hint or mt.OCI_INDEX)
    if not isinstance(parsed, ImageIndex):
        raise InvalidManifest("expected an image index, found a manifest")
    return parsed


def _parse_manifest(data: dict[str, Any], media_type: str) -> ImageManifest:
    if data.get("schemaVersion") != 2:
        raise InvalidManifest(f"unsupported schemaVersion {data.get('schemaVersion')!r}")
    if "config" not in data:
        raise InvalidManifest("manifest has no config")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("manifest layers are not a list")
    subject = data.get("subject")
    return ImageManifest(
        config=Descriptor.from_json(data["config"]),
        layers=tuple(Descriptor.from_json(layer) for layer in layers),
        media_type=media_type,
        annotations=dict(data.get("annotations") or {}),
        subject=Descriptor.from_json(subject) if subject is not None else None,
        artifact_type=data.get("artifactType"),
    )


def _parse_index(data: dict[str, Any], media_type: str) -> ImageIndex:
    if data.get("schemaVersion") != 2:
        raise InvalidManifest(f"unsupported schemaVersion {data.get('schemaVersion')!r}")
    manifests = data.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidManifest("index manifests are not a list")
    return ImageIndex(
        manifests=tuple(Descriptor.from_json(m) for m in manifests),
        media_type=media_type,
        annotations=dict(data.get("annotations") or {}),
    )


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidManifest(f"missing or invalid {key!r}")
    return value
