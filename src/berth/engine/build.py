"""``engine.images.build(...)``: docker-py's ``client.images.build``, on berth's builder.

    image, logs = engine.images.build(path="app", tag="app:1", buildargs={"V": "2"})
    for chunk in logs:
        print(chunk.get("stream", ""), end="")

Keyword names and the ``(image, logs)`` return are docker-py's; ``logs`` is a list of
``{"stream": text}`` chunks (BuildKit's plain progress) ending with ``{"aux": {"ID": id}}``.
berth adds ``secrets`` (``{"id": "path"}``, or ``--secret`` strings), ``network_mode``
``"host"``, ``"none"`` or ``"default"``, and ``progress`` (a callable that receives each chunk
of output as it comes). ``fileobj`` is a Dockerfile (or, with ``custom_context=True``, a tar of
the whole context).
"""

from __future__ import annotations

import os

from berth.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, BinaryIO

    from berth.build.builder import BuildResult
    from berth.build.steps import SecretSource
    from berth.engine import Engine
    from berth.engine.images import Image

__all__ = ["build_image", "parse_secret", "prune_build_cache"]


def parse_secret(spec: str) -> SecretSource:
    """``id=ID,src=PATH`` (also ``source=``, ``type=file|env``, ``env=VAR``), as ``--secret``."""
    from berth.build.steps import SecretSource

    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(
                f"invalid --secret {spec!r}: {item!r} is not key=value",
                hint="write --secret id=NAME,src=FILE",
            )
        fields[key.strip().lower()] = value
    secret_id = fields.pop("id", "")
    kind = fields.pop("type", "")
    source = fields.pop("src", "") or fields.pop("source", "")
    env = fields.pop("env", "")
    if fields:
        raise InvalidArgument(f"invalid --secret {spec!r}: unknown key {next(iter(fields))!r}")
    if kind not in ("", "file", "env"):
        raise InvalidArgument(f"invalid --secret {spec!r}: type must be file or env")
    if kind == "env" and not env:
        env, source = source or secret_id, ""
    if not secret_id:
        secret_id = env or (os.path.basename(source) if source else "")
    if not secret_id:
        raise InvalidArgument(f"invalid --secret {spec!r}: no id", hint="add id=NAME")
    if source:
        return SecretSource(secret_id, path=os.path.abspath(source))
    return SecretSource(secret_id, env=env or secret_id)


def build_image(
    engine: Engine,
    *,
    path: str | None = None,
    fileobj: BinaryIO | None = None,
    tag: str | Sequence[str] | None = None,
    dockerfile: str | None = None,
    buildargs: Mapping[str, str] | None = None,
    target: str | None = None,
    nocache: bool = False,
    pull: bool = False,
    labels: Mapping[str, str] | None = None,
    network_mode: str | None = None,
    secrets: Mapping[str, str] | Sequence[str] | None = None,
    quiet: bool = False,
    platform: str | None = None,
    custom_context: bool = False,
    progress: Callable[[str], None] | None = None,
    replay: bool = True,
    **ignored: Any,
) -> tuple[Image, list[dict[str, Any]]]:
    """Build an image; returns ``(image, logs)`` as docker-py does.

    ``replay=False`` skips :mod:`berth.build.fastpath`'s proof that nothing changed (for a
    caller that has just tried it)."""
    from berth.build.builder import BuildOptions, build
    from berth.build.context_source import prepare_context
    from berth.build.progress import Progress
    from berth.engine.images import Image

    del ignored  # docker-py's rm, forcerm, container_limits, ...: nothing to do here
    if path is None and fileobj is None:
        raise InvalidArgument("build needs path or fileobj", hint="pass path='dir'")
    logs: list[dict[str, Any]] = []

    def write(text: str) -> None:
        logs.append({"stream": text})
        if progress is not None:
            progress(text)

    tags = [tag] if isinstance(tag, str) else list(tag or [])
    label_map = dict(labels or {})
    args = dict(buildargs or {})
    network = network_mode or "default"
    if replay and path is not None and not nocache and not pull:
        from berth.build.fastpath import attempt

        replayed = attempt(
            engine.paths.root,
            context=path,
            dockerfile=dockerfile,
            build_args=args,
            target=target or None,
            labels=label_map,
            network=network,
            platform=platform,
            tags=tags,
        )
        if replayed is not None:
            image_id, lines = replayed
            if not quiet:
                write("".join(line + "\n" for line in lines))
            logs.append({"aux": {"ID": image_id}})
            return Image(engine.images, engine.store.images.resolve(image_id)), logs
    store = engine.store
    if path is not None:
        prepared = prepare_context(path, dockerfile, stdin=fileobj, temp_root=store.paths.tmp)
    else:
        import io

        assert fileobj is not None
        stream = fileobj if custom_context else io.BytesIO(fileobj.read())
        prepared = prepare_context(
            "-", dockerfile if custom_context else None, stdin=stream, temp_root=store.paths.tmp
        )
    with prepared:
        record_key = None
        if prepared.recordable:
            from berth.build.fastpath import record_key as make_key

            assert prepared.context is not None
            record_key = make_key(
                dockerfile=prepared.dockerfile,
                dockerfile_name=prepared.dockerfile_name,
                context_root=prepared.context.root,
                build_args=args,
                target=target or None,
                labels=label_map,
                network=network,
                platform=platform,
            )
        options = BuildOptions(
            dockerfile=prepared.dockerfile,
            dockerfile_name=prepared.dockerfile_name,
            context=prepared.context,
            tags=tags,
            build_args=args,
            target=target or None,
            no_cache=nocache,
            pull=pull,
            labels=label_map,
            network=network,
            secrets=_secrets(secrets),
            platform=platform,
            record_key=record_key,
        )
        result: BuildResult = build(store, options, Progress(None if quiet else write))
    logs.append({"aux": {"ID": result.image_id}})
    return Image(engine.images, result.record), logs


def _secrets(secrets: Mapping[str, str] | Sequence[str] | None) -> dict[str, SecretSource]:
    from collections.abc import Mapping

    from berth.build.steps import SecretSource

    out: dict[str, SecretSource] = {}
    if secrets is None:
        return out
    if isinstance(secrets, Mapping):
        for secret_id, source in secrets.items():
            out[secret_id] = SecretSource(secret_id, path=os.path.abspath(source))
        return out
    for spec in secrets:
        secret = parse_secret(spec)
        out[secret.id] = secret
    return out


def prune_build_cache(
    engine: Engine,
    *,
    all: bool = False,
    filters: Mapping[str, Sequence[str]] | None = None,
    keep_storage: int | None = None,
) -> dict[str, Any]:
    """``docker builder prune``: ``{"CachesDeleted": [...], "SpaceReclaimed": n}``."""
    from berth.build.cache import BuildCache

    until: float | None = None
    for key, values in (filters or {}).items():
        if key not in ("until", "unused-for"):
            raise InvalidArgument(f"invalid filter '{key}'", hint="builder prune filters: until")
        for value in values:
            until = _until(value)
    result = BuildCache(engine.store).prune(all_entries=all, until=until, keep_bytes=keep_storage)
    return {"CachesDeleted": result.deleted or None, "SpaceReclaimed": result.reclaimed}


def _until(value: str) -> float:
    """``until=24h`` (a duration ago) or a timestamp, as unix seconds."""
    import time

    from berth.units import parse_duration, parse_timestamp

    try:
        return time.time() - parse_duration(value) / 1e9
    except InvalidArgument:
        return parse_timestamp(value) / 1e9
