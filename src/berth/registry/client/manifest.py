"""``berth manifest inspect``: a manifest or index exactly as the registry serves it."""

from __future__ import annotations

import hashlib
import json

from berth.errors import DigestMismatch, ImageNotFound, InvalidManifest, RegistryError
from berth.oci.digest import Digest
from berth.oci.reference import parse_normalized
from berth.registry.client.credentials import CredentialStore
from berth.registry.client.hosts import RegistryHosts
from berth.registry.client.options import ClientOptions
from berth.registry.client.session import Context, RegistrySession, credentials_for


def inspect_manifest(name: str, *, options: ClientOptions | None = None) -> bytes:
    """The raw bytes of ``name``'s manifest or index (all media types berth reads accepted).

    By digest the bytes are checked against it. Mirrors are tried first, as for a pull.
    """
    options = options or ClientOptions()
    ref = parse_normalized(name).with_default_tag()
    hosts = RegistryHosts.load(options)
    credentials = CredentialStore(options.docker_config)
    locations = hosts.pull_locations(ref)
    reference = str(ref.digest) if ref.digest is not None else str(ref.tag)
    for number, location in enumerate(locations):
        try:
            with RegistrySession(
                location,
                options=options,
                hosts=hosts,
                credentials=credentials_for(credentials, location),
                context=Context("inspecting", ref.familiar()),
                connections=1,
            ) as session:
                raw, _media_type, _header = session.get_manifest(reference)
        except (RegistryError, ImageNotFound):
            if number == len(locations) - 1:
                raise
            continue
        if ref.digest is not None:
            algorithm = ref.digest.algorithm
            actual = Digest(algorithm, hashlib.new(algorithm, raw).hexdigest())
            if actual != ref.digest:
                raise DigestMismatch(
                    f"registry {location.host} sent a manifest with digest {actual} for "
                    f"{ref.familiar()}",
                    hint="the registry's copy is corrupt or was tampered with",
                )
        return raw
    raise AssertionError("unreachable: there is always at least one location")


def format_manifest(raw: bytes) -> str:
    """The manifest as ``docker manifest inspect`` prints it: JSON indented by 3 spaces."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"the manifest is not valid JSON: {exc}") from None
    return json.dumps(data, indent=3, ensure_ascii=False)
