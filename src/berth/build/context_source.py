"""Where a build's context and Dockerfile come from, as ``docker build`` takes them.

- ``berth build DIR``: the directory is the context, read in place (never copied or tarred,
  so a context of several GB costs no memory); the Dockerfile is ``DIR/Dockerfile`` (or
  ``DIR/dockerfile``), or ``-f FILE`` (relative to the current directory, as the docker CLI
  resolves it), or ``-f -`` (read from stdin).
- ``berth build - < context.tar[.gz|.bz2|.xz|.zst]``: a tar stream, unpacked as it is read
  (:func:`berth.build.context.extract_context_tar`: names clamped, no writes through links)
  into a temporary directory of the store; ``-f`` names the Dockerfile inside it.
- ``berth build - < Dockerfile``: no context at all (COPY has nothing to copy), as docker.

The ``.dockerignore`` that applies (``<Dockerfile>.dockerignore`` next to the Dockerfile, else
the context's ``.dockerignore``) is read here. :class:`PreparedContext` is a context manager:
leaving it removes a temporary context.
"""

from __future__ import annotations

import os
import sys

from berth.build.context import BuildContext
from berth.build.fastpath import locate_dockerfile, stat_fields
from berth.errors import BuildError, InvalidArgument, PathNotFound
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import BinaryIO

    from berth.build.context import ContextEntry

__all__ = ["PreparedContext", "RecordingContext", "prepare_context", "read_dockerfile"]

_MAX_DOCKERFILE = 16 << 20
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class RecordingContext(BuildContext):
    """A context that remembers the ``lstat`` of every entry the build looked at.

    What :mod:`berth.build.fastpath` checks to prove a later build would see the same thing.
    """

    def __init__(self, root: str, ignore_patterns: Sequence[str] = ()) -> None:
        super().__init__(root, ignore_patterns)
        self.seen: dict[str, list[int] | None] = {}

    def _entry(self, path: str, st: os.stat_result) -> ContextEntry:
        entry = super()._entry(path, st)
        self.seen[entry.host_path] = stat_fields(st)
        return entry

    def note_path(self, path: str) -> None:
        """Remember a file outside the walk (an ignore file), present or absent."""
        try:
            self.seen[path] = stat_fields(os.lstat(path))
        except FileNotFoundError:
            self.seen[path] = None


class PreparedContext(Value):
    __slots__ = ("context", "dockerfile", "dockerfile_name", "dockerfile_path", "temp_dir")

    def __init__(
        self,
        context: BuildContext | None,
        dockerfile: str,  # the text
        dockerfile_name: str,  # as error messages name it ("Dockerfile")
        temp_dir: str | None = None,
        dockerfile_path: str | None = None,  # where it was read from (None: stdin)
    ) -> None:
        self.context = context
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.temp_dir = temp_dir
        self.dockerfile_path = dockerfile_path

    @property
    def recordable(self) -> bool:
        """Whether a fully cached rebuild can be proven from a record (a context dir)."""
        return isinstance(self.context, RecordingContext) and self.temp_dir is None

    def close(self) -> None:
        if self.temp_dir is not None:
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def __enter__(self) -> PreparedContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_dockerfile(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_DOCKERFILE + 1)
    except FileNotFoundError:
        raise PathNotFound(
            f"failed to read dockerfile: open {path}: no such file or directory",
            hint="name it with -f, or put a Dockerfile in the context",
        ) from None
    except IsADirectoryError:
        raise InvalidArgument(f"the Dockerfile {path} is a directory") from None
    except OSError as exc:
        raise BuildError(f"cannot read the Dockerfile {path}: {exc.strerror}") from None
    if len(data) > _MAX_DOCKERFILE:
        raise InvalidArgument(f"the Dockerfile {path} is larger than 16 MiB")
    return data.decode("utf-8", "surrogateescape")


def prepare_context(
    context: str,
    dockerfile: str | None = None,
    *,
    stdin: BinaryIO | None = None,
    temp_root: str | None = None,
) -> PreparedContext:
    """The context and Dockerfile for ``berth build [-f dockerfile] context``."""
    if context.startswith(("http://", "https://", "git://", "git@", "github.com/")):
        raise InvalidArgument(
            f"berth cannot build from a remote context ({context})",
            hint="clone or download it, then build the directory",
        )
    if context == "-":
        return _from_stdin(dockerfile, stdin or sys.stdin.buffer, temp_root)
    if not os.path.exists(context):
        raise PathNotFound(
            f'unable to prepare context: path "{context}" not found',
            hint="pass the build context directory (or - for a tar on stdin)",
        )
    if not os.path.isdir(context):
        raise InvalidArgument(
            f'unable to prepare context: context must be a directory: "{context}"',
            hint="pass a directory, or send a tar with `berth build - < context.tar`",
        )
    if dockerfile == "-":
        data = (stdin or sys.stdin.buffer).read(_MAX_DOCKERFILE + 1)
        return PreparedContext(
            BuildContext.from_directory(context),
            data.decode("utf-8", "surrogateescape"),
            "Dockerfile",
        )
    path = locate_dockerfile(context, dockerfile)
    text = read_dockerfile(path)
    recording = RecordingContext.from_directory(context, path)
    assert isinstance(recording, RecordingContext)
    recording.note_path(path + ".dockerignore")
    recording.note_path(os.path.join(recording.root, ".dockerignore"))
    return PreparedContext(
        recording, text, os.path.basename(path) or "Dockerfile", dockerfile_path=path
    )


def _from_stdin(dockerfile: str | None, stdin: BinaryIO, temp_root: str | None) -> PreparedContext:
    if dockerfile == "-":
        raise InvalidArgument(
            "invalid argument: can't use stdin for both build context and dockerfile"
        )
    head = _peek(stdin, 512)
    if not _looks_like_tar(head):
        data = head + stdin.read(_MAX_DOCKERFILE)
        return PreparedContext(None, data.decode("utf-8", "surrogateescape"), "Dockerfile")
    import shutil
    import tempfile

    from berth.build.context import extract_context_tar

    if temp_root is not None:
        os.makedirs(temp_root, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f"berth-tmp-{os.getpid()}-context-", dir=temp_root)
    try:
        root = os.path.join(temp, "context")
        os.mkdir(root)
        extract_context_tar(_Prefixed(head, stdin), root)  # type: ignore[arg-type]
        name = dockerfile or "Dockerfile"
        path = os.path.join(root, name.lstrip("/"))
        if not dockerfile and not os.path.exists(path):
            lower = os.path.join(root, "dockerfile")
            path = lower if os.path.exists(lower) else path
        text = read_dockerfile(path)
        return PreparedContext(
            BuildContext.from_directory(root, path), text, os.path.basename(path), temp
        )
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _peek(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _looks_like_tar(head: bytes) -> bool:
    if head.startswith(_COMPRESSED_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


class _Prefixed:
    """A stream that first returns ``head``, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)

    def readable(self) -> bool:
        return True
