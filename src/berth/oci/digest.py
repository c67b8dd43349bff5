"""Content digests (``algorithm:hex``) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from berth.errors import InvalidArgument

# digest ::= algorithm ":" encoded ; algorithm ::= component (separator component)*
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated content digest such as ``sha256:9f86d0...``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not _DIGEST_RE.match(text):
            raise InvalidArgument(f"invalid digest {text!r}: expected algorithm:hex")
        algorithm, _, encoded = text.partition(":")
        length = _HEX_LENGTHS.get(algorithm)
        if length is None:
            raise InvalidArgument(
                f"unsupported digest algorithm {algorithm!r} in {text!r}",
                hint="berth supports sha256 and sha512",
            )
        if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
            raise InvalidArgument(
                f"invalid {algorithm} digest {text!r}: expected {length} lowercase hex digits"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        """The 12-character form that ``docker images`` shows as the ID."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def sha256_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """The OCI ChainIDs of a stack of layers, lowest first.

    ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    """
    chains: list[Digest] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(sha256_of(f"{chains[-1]} {diff_id}".encode()))
    return chains
