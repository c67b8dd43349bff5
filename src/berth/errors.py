"""Every failure berth reports, as one tree rooted in :class:`BerthError`.

The whole tree, written out::

    BerthError
    ├── UsageError                  a bad flag, argument or option value (exit 125)
    │   └── ArgumentError           wrong number of arguments, unknown command (exit 1)
    ├── InvalidArgument             a value berth cannot accept
    │   └── InvalidReference        an image reference that does not parse
    ├── NotFound
    │   ├── ImageNotFound
    │   ├── ContainerNotFound
    │   ├── VolumeNotFound
    │   ├── NetworkNotFound
    │   ├── BlobNotFound
    │   └── PathNotFound            a host or container path that does not exist
    ├── Conflict
    │   ├── NameInUse
    │   ├── ImageInUse
    │   ├── VolumeInUse
    │   ├── NetworkInUse
    │   └── ContainerStateConflict  e.g. removing a running container without -f
    ├── ContentError                bytes coming in are not what they claim to be
    │   ├── DigestMismatch
    │   ├── CorruptArchive
    │   ├── InvalidManifest
    │   └── UnsafeLayer             a layer that tries to write outside its root
    ├── StoreError
    │   ├── StorageFull
    │   └── StoreLocked
    ├── HostError                   the host lacks a tool or kernel feature
    ├── ContainerError              the engine could not run a container
    │   ├── CommandNotFound         (docker's exit code 127)
    │   └── CommandNotInvokable     (docker's exit code 126)
    ├── RegistryError
    │   ├── RegistryAuthError
    │   └── RegistryUnreachable
    ├── BuildError
    │   ├── DockerfileSyntaxError
    │   └── BuildStepFailed
    ├── NetworkError
    └── ComposeError

Messages say what went wrong, with what input, and what to do. How an error becomes an exit
code (CLI) or an HTTP status (API) is decided in one place each: ``berth.cli.exitcodes`` and
``berth.api.status``; nothing else inspects error classes to pick a code.
"""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error berth raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(BerthError):
    """A flag, argument or option value the command does not accept."""


class ArgumentError(UsageError):
    """A wrong number of positional arguments or an unknown command (docker exits 1)."""


class InvalidArgument(BerthError):
    """A value that is well-formed as a flag but not acceptable to berth."""


class InvalidReference(InvalidArgument):
    """An image reference that does not parse."""


class NotFound(BerthError):
    """Something the user named does not exist."""


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class NetworkNotFound(NotFound):
    pass


class BlobNotFound(NotFound):
    pass


class PathNotFound(NotFound):
    pass


class Conflict(BerthError):
    """The request conflicts with the current state."""


class NameInUse(Conflict):
    pass


class ImageInUse(Conflict):
    pass


class VolumeInUse(Conflict):
    pass


class NetworkInUse(Conflict):
    pass


class ContainerStateConflict(Conflict):
    pass


class ContentError(BerthError):
    """Incoming content (a tarball, blob, manifest) is damaged or hostile."""


class DigestMismatch(ContentError):
    pass


class CorruptArchive(ContentError):
    pass


class InvalidManifest(ContentError):
    pass


class UnsafeLayer(ContentError):
    """A layer entry would write outside the layer root."""


class StoreError(BerthError):
    """The store itself cannot do what was asked."""


class StorageFull(StoreError):
    pass


class StoreLocked(StoreError):
    pass


class HostError(BerthError):
    """The host lacks a tool, permission or kernel feature berth needs."""


class ContainerError(BerthError):
    """The engine could not create or start a container."""


class CommandNotFound(ContainerError):
    pass


class CommandNotInvokable(ContainerError):
    pass


class RegistryError(BerthError):
    pass


class RegistryAuthError(RegistryError):
    pass


class RegistryUnreachable(RegistryError):
    pass


class BuildError(BerthError):
    pass


class DockerfileSyntaxError(BuildError):
    pass


class BuildStepFailed(BuildError):
    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class NetworkError(BerthError):
    pass


class ComposeError(BerthError):
    pass
