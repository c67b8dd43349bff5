"""Random container names in Docker's ``adjective_noun`` shape (berth's own words)."""

from __future__ import annotations

import os

from berth.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ADJECTIVES = (
    "able",
    "amber",
    "ancient",
    "bold",
    "brave",
    "bright",
    "brisk",
    "busy",
    "calm",
    "candid",
    "careful",
    "cheerful",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "daring",
    "dazzling",
    "eager",
    "earnest",
    "elegant",
    "epic",
    "fair",
    "fearless",
    "festive",
    "fluent",
    "focused",
    "frosty",
    "gallant",
    "gentle",
    "gifted",
    "golden",
    "graceful",
    "happy",
    "hardy",
    "hearty",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "loyal",
    "lucid",
    "lucky",
    "merry",
    "mighty",
    "modest",
    "nimble",
    "noble",
    "patient",
    "peaceful",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "radiant",
    "rapid",
    "ready",
    "sharp",
    "shiny",
    "silent",
    "sincere",
    "smooth",
    "snowy",
    "solid",
    "sparkling",
    "spry",
    "stable",
    "stoic",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "tranquil",
    "trusty",
    "upbeat",
    "valiant",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
    "zesty",
)
NOUNS = (
    "anchor",
    "atoll",
    "bay",
    "beacon",
    "bollard",
    "bow",
    "breakwater",
    "buoy",
    "cabin",
    "canal",
    "cape",
    "capstan",
    "cargo",
    "channel",
    "compass",
    "coral",
    "cove",
    "crane",
    "current",
    "deck",
    "delta",
    "dinghy",
    "dock",
    "ferry",
    "fjord",
    "galley",
    "gangway",
    "harbor",
    "hatch",
    "haven",
    "helm",
    "hull",
    "inlet",
    "island",
    "jetty",
    "keel",
    "knot",
    "lagoon",
    "lantern",
    "ledger",
    "lighthouse",
    "lock",
    "mast",
    "mooring",
    "narrows",
    "oar",
    "pier",
    "pilot",
    "port",
    "quay",
    "raft",
    "reef",
    "rigging",
    "rudder",
    "sail",
    "schooner",
    "shoal",
    "skiff",
    "slipway",
    "sound",
    "spar",
    "starboard",
    "stern",
    "strait",
    "tide",
    "tiller",
    "tugboat",
    "wake",
    "wharf",
    "winch",
)
VALID_NAME = r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$"


def random_name(taken: Callable[[str], bool]) -> str:
    """A free name such as ``brave_harbor`` (a number is added if the pair is in use)."""
    for attempt in range(100):
        name = f"{_choice(ADJECTIVES)}_{_choice(NOUNS)}"
        if attempt > 10:
            name += str(_randbelow(10))
        if not taken(name):
            return name
    return f"berth_{os.urandom(6).hex()}"


def _choice(words: tuple[str, ...]) -> str:
    return words[_randbelow(len(words))]


def _randbelow(n: int) -> int:
    """A uniform random integer in ``[0, n)`` from ``os.urandom``, as ``secrets.randbelow``
    draws it (without importing :mod:`secrets`, which loads OpenSSL)."""
    bits = n.bit_length()
    while True:
        value = int.from_bytes(os.urandom((bits + 7) // 8)) >> (-bits % 8)
        if value < n:
            return value


def check_name(name: str) -> str:
    """A user-given name, checked as Docker checks it; returns it without a leading ``/``."""
    import re

    if not re.match(VALID_NAME, name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")
