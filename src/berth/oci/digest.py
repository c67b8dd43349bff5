"""Content digests (``algorithm:hex``) as the OCI image spec defines them."""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.values import FrozenValue, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib

_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ENCODED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_-")


class Digest(FrozenValue):
    """A validated content digest such as ``sha256:9f86d0...``; immutable, ordered by
    (algorithm, hex)."""

    __slots__ = ("algorithm", "hex")
    algorithm: str
    hex: str

    def __init__(self, algorithm: str, hex: str) -> None:
        init_fields(self, algorithm=algorithm, hex=hex)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) < (other.algorithm, other.hex)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) <= (other.algorithm, other.hex)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) > (other.algorithm, other.hex)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) >= (other.algorithm, other.hex)

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not _well_formed(text):
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
        return cls(algorithm, hex_digest(algorithm, data))

    def hasher(self) -> hashlib._Hash:
        import hashlib

        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        """The 12-character form that ``docker images`` shows as the ID."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _well_formed(text: str) -> bool:
    """The OCI grammar: ``algorithm ":" encoded``, where ``algorithm`` is lowercase
    alphanumeric components joined by one of ``.+_-`` and ``encoded`` is ``[a-zA-Z0-9=_-]+``
    (one trailing newline allowed, as the regular expression's ``$`` allowed it)."""
    algorithm, colon, encoded = text.removesuffix("\n").partition(":")
    if not colon or not encoded or not set(encoded) <= _ENCODED:
        return False
    component = ""
    for char in algorithm:
        if char in _LOWER_ALNUM:
            component += char
        elif char in ".+_-" and component:
            component = ""
        else:
            return False
    return bool(component)


def hex_digest(algorithm: str, data: bytes) -> str:
    """The hex digest of ``data`` in memory (a config, a manifest, a name).

    SHA-256 goes through the interpreter's built-in module: the same digest as
    :mod:`hashlib`'s, without loading OpenSSL, which costs about 3 ms at every start of
    ``berth``. Streams and other algorithms go through :mod:`hashlib` (see
    :meth:`Digest.hasher`)."""
    if algorithm == "sha256":
        try:
            from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11
        except ImportError:  # pragma: no cover - Python 3.12 renamed it
            from _sha2 import sha256  # type: ignore[import-not-found]
        return str(sha256(data).hexdigest())
    import hashlib

    return hashlib.new(algorithm, data).hexdigest()


def sha256_of(data: bytes) -> Digest:
    return Digest("sha256", hex_digest("sha256", data))


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
