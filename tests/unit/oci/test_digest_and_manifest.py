from __future__ import annotations

import hashlib
import json

import pytest

from berth.errors import InvalidArgument, InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.config import ImageConfig
from berth.oci.digest import Digest, chain_ids, sha256_of
from berth.oci.manifest import ImageIndex, ImageManifest, parse_manifest_or_index


def test_digest_parse_and_validate() -> None:
    d = Digest.parse("sha256:" + "0" * 64)
    assert d.short == "0" * 12
    with pytest.raises(InvalidArgument):
        Digest.parse("sha256:" + "0" * 63)
    with pytest.raises(InvalidArgument):
        Digest.parse("sha256:" + "A" * 64)
    with pytest.raises(InvalidArgument, match="unsupported"):
        Digest.parse("md5:" + "0" * 32)


def test_chain_ids_follow_the_image_spec() -> None:
    a, b, c = (sha256_of(x) for x in (b"a", b"b", b"c"))
    chains = chain_ids([a, b, c])
    assert chains[0] == a
    assert chains[1].hex == hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chains[2].hex == hashlib.sha256(f"{chains[1]} {c}".encode()).hexdigest()


def _manifest(**extra: object) -> bytes:
    data = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 20}],
    }
    data.update(extra)
    return json.dumps(data).encode()


def test_manifest_round_trip() -> None:
    parsed = parse_manifest_or_index(_manifest())
    assert isinstance(parsed, ImageManifest)
    again = parse_manifest_or_index(parsed.to_bytes())
    assert again == parsed


def test_docker_schema2_is_read() -> None:
    raw = _manifest(mediaType=mt.DOCKER_MANIFEST)
    parsed = parse_manifest_or_index(raw)
    assert isinstance(parsed, ImageManifest)
    assert parsed.media_type == mt.DOCKER_MANIFEST


def test_index_without_media_type_is_recognised() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_manifest_or_index(raw), ImageIndex)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (_manifest(schemaVersion=1), "schemaVersion"),
        (_manifest(mediaType="application/x-bogus"), "unsupported manifest media type"),
        (_manifest(layers="x"), "not a list"),
        (_manifest(config={"digest": "sha256:zz", "size": 1, "mediaType": "x"}), "invalid digest"),
        (_manifest(mediaType=mt.DOCKER_MANIFEST_V1_SIGNED), "schema 1"),
    ],
)
def test_bad_manifests(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest_or_index(raw)


def test_image_config_keeps_unknown_keys_and_docker_extensions() -> None:
    raw = json.dumps({
        "architecture": "amd64", "os": "linux", "moby.buildkit.buildinfo.v1": "x",
        "config": {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "true"], "Retries": 3},
                   "Shell": ["/bin/bash", "-c"], "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "3" * 64]},
        "history": [{"created_by": "x", "empty_layer": True}],
    }).encode()
    config = ImageConfig.from_bytes(raw)
    out = json.loads(config.to_bytes())
    assert out["moby.buildkit.buildinfo.v1"] == "x"
    assert out["config"]["Healthcheck"] == {"Test": ["CMD", "true"], "Retries": 3}
    assert out["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert out["history"] == [{"created_by": "x", "empty_layer": True}]
    with pytest.raises(InvalidManifest, match="diff_ids"):
        ImageConfig.from_bytes(b'{"architecture": "amd64"}')
