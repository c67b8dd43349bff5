"""Where a store keeps things, and the host-wide names derived from its root.

Two stores on one host (every test makes its own) must never share runtime state, a cgroup
parent, a bridge or a firewall chain. The default root keeps the plain names (``/run/berth``,
``berth0``); any other root gets a short suffix derived from its absolute path.
"""

from __future__ import annotations

import os

from berth.oci.digest import hex_digest
from berth.values import FrozenValue, init_fields

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_RUN_DIR = "/run/berth"
ROOT_ENV = "BERTH_ROOT"


def default_root() -> str:
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


class StorePaths(FrozenValue):
    """The paths of the store at ``root``; ``suffix`` is ``""`` for the default root, else 6
    hex characters unique to this root. Immutable."""

    __slots__ = ("is_default", "root", "suffix")
    root: str
    is_default: bool
    suffix: str

    def __init__(self, root: str) -> None:
        is_default = root == DEFAULT_ROOT
        suffix = "" if is_default else hex_digest("sha256", root.encode())[:6]
        init_fields(self, root=root, is_default=is_default, suffix=suffix)

    @classmethod
    def at(cls, root: str | None = None) -> StorePaths:
        return cls(os.path.abspath(root or default_root()))

    def host_name(self, base: str) -> str:
        """A host-wide name for this store: ``berth`` -> ``berth`` or ``berth-1a2b3c``."""
        return base if self.is_default else f"{base}-{self.suffix}"

    @property
    def db(self) -> str:
        return os.path.join(self.root, "berth.db")

    @property
    def blobs(self) -> str:
        return os.path.join(self.root, "blobs")

    def blob(self, algorithm: str, hex_digest: str) -> str:
        return os.path.join(self.root, "blobs", algorithm, hex_digest)

    @property
    def layers(self) -> str:
        return os.path.join(self.root, "layers")

    def layer_dir(self, chain_hex: str) -> str:
        return os.path.join(self.root, "layers", chain_hex)

    def layer_diff(self, chain_hex: str) -> str:
        return os.path.join(self.root, "layers", chain_hex, "diff")

    @property
    def links(self) -> str:
        return os.path.join(self.root, "l")

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.root, "containers", container_id)

    @property
    def volumes(self) -> str:
        return os.path.join(self.root, "volumes")

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    @property
    def trash(self) -> str:
        return os.path.join(self.root, "trash")

    @property
    def run_dir(self) -> str:
        """Runtime state (sockets, pid files): tmpfs, gone after a reboot."""
        if self.is_default:
            return DEFAULT_RUN_DIR
        return f"{DEFAULT_RUN_DIR}-{self.suffix}"
