"""docker-py's ``Container`` methods beyond the lifecycle, in docker-py's shapes: ``top``,
``stats``, ``commit``, ``export``, ``diff``, ``update``, ``get_archive``, ``put_archive``.

:class:`berth.engine.containers.Container` calls these; the work is done in
:mod:`~berth.engine.container_ops`, :mod:`~berth.engine.container_stats` and
:mod:`~berth.engine.container_archive`.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidArgument

if TYPE_CHECKING:
    from berth.engine.containers import Container
    from berth.engine.images import Image

CHUNK_SIZE = 2 * 1024 * 1024  # docker-py's DEFAULT_DATA_CHUNK_SIZE


def top(container: Container, ps_args: str | None = None) -> dict[str, Any]:
    from berth.engine.container_ops import top as run_top

    return run_top(container.collection.engine, container, ps_args or "")


def stats(
    container: Container, *, stream: bool = True, decode: bool = False
) -> dict[str, Any] | Iterator[dict[str, Any]] | Iterator[bytes]:
    """One document (``stream=False``), or one each second: dicts with ``decode``, JSON
    bytes without (as docker-py)."""
    from berth.engine import container_stats

    engine = container.collection.engine
    if not stream:
        return container_stats.stats_once(engine, container)
    documents = container_stats.stream(engine, container)
    if decode:
        return documents
    return (json.dumps(d).encode() for d in documents)


def commit(
    container: Container,
    repository: str | None = None,
    tag: str | None = None,
    *,
    message: str | None = None,
    author: str | None = None,
    changes: str | list[str] | None = None,
    pause: bool = True,
    conf: dict[str, Any] | None = None,
) -> Image:
    from berth.engine.container_ops import commit as run_commit

    if conf:
        raise InvalidArgument("commit's conf is not supported by berth: use changes")
    if isinstance(changes, str):
        changes = [changes]
    return run_commit(
        container.collection.engine,
        container,
        repository,
        tag,
        message=message or "",
        author=author or "",
        changes=changes or [],
        pause=pause,
    )


def export(container: Container, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The container's filesystem as a tar, in chunks (spooled to a temp file first)."""
    from berth.engine.container_archive import export as run_export

    spool = tempfile.TemporaryFile(prefix="berth-export-")  # noqa: SIM115 (closed by _chunks)
    try:
        run_export(container.collection.engine, container, spool)
    except BaseException:
        spool.close()
        raise
    return _chunks(spool, chunk_size)


def diff(container: Container) -> list[dict[str, Any]]:
    from berth.engine.container_ops import diff as run_diff

    return run_diff(container.collection.engine, container)


def update(container: Container, **kwargs: Any) -> dict[str, Any]:
    from berth.engine.container_ops import UPDATE_KWARGS
    from berth.engine.container_ops import update as run_update

    changes: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in UPDATE_KWARGS:
            raise InvalidArgument(f"update() got an unexpected keyword argument '{key}'")
        if key in ("mem_limit", "mem_reservation", "memswap_limit") and isinstance(value, str):
            from berth.units import parse_ram_size

            value = -1 if value == "-1" else parse_ram_size(value)
        changes[UPDATE_KWARGS[key]] = value
    result = run_update(container.collection.engine, container, changes)
    container.reload()
    return result


def get_archive(
    container: Container, path: str, chunk_size: int = CHUNK_SIZE, encode_stream: bool = False
) -> tuple[Iterator[bytes], dict[str, Any]]:
    """(the tar of ``path`` in chunks, its stat), as docker-py returns them."""
    from berth.engine.container_archive import archive_from_container

    spool = tempfile.TemporaryFile(prefix="berth-archive-")  # noqa: SIM115 (closed by _chunks)
    try:
        info = archive_from_container(
            container.collection.engine,
            container,
            path,
            spool,
        )
    except BaseException:
        spool.close()
        raise
    return _chunks(spool, chunk_size), info


def put_archive(container: Container, path: str, data: bytes | Any) -> bool:
    """Extract a tar (bytes or a readable binary stream) into directory ``path``."""
    from berth.engine.container_archive import extract_into_container

    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    extract_into_container(container.collection.engine, container, path, stream)
    return True


def _chunks(spool: Any, chunk_size: int) -> Iterator[bytes]:
    with spool:
        spool.seek(0)
        while chunk := spool.read(chunk_size):
            yield chunk
