"""``engine.images``: images in the store, as docker-py's ``client.images`` shows them."""

from __future__ import annotations

import builtins
from functools import cached_property

from berth.errors import ImageNotFound, InvalidArgument
from berth.oci.config import ImageConfig
from berth.oci.reference import ImageReference, parse_normalized
from berth.store.images import ImageRecord
from berth.store.store import Removal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime
    from typing import Any, BinaryIO

    from berth.engine import Engine

ZERO_TIME = "0001-01-01T00:00:00Z"
LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")


class Image:
    """One image: ``id``, ``short_id``, ``tags``, ``labels``, ``attrs`` (docker inspect)."""

    def __init__(self, collection: ImageCollection, record: ImageRecord) -> None:
        self.collection = collection
        self.record = record

    def __repr__(self) -> str:
        return f"<Image: {', '.join(repr(t) for t in self.tags) or self.short_id}>"

    @property
    def id(self) -> str:
        return str(self.record.id)

    @property
    def short_id(self) -> str:
        return f"sha256:{self.record.id.hex[:12]}"

    @property
    def tags(self) -> list[str]:
        return [t.familiar() for t in self.record.tags]

    @property
    def repo_digests(self) -> list[str]:
        out = []
        for text in self.record.repo_digests:
            name, _, digest = text.partition("@")
            out.append(f"{parse_normalized(name).familiar_repository}@{digest}")
        return out

    @cached_property
    def config(self) -> ImageConfig:
        return ImageConfig.from_bytes(self.collection.store.blobs.read(self.record.id))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.config.labels)

    @property
    def created(self) -> datetime:
        return parse_time(self.record.created)

    @property
    def dangling(self) -> bool:
        return not self.record.tags and not self.record.repo_digests

    @cached_property
    def attrs(self) -> dict[str, Any]:
        return self.collection.inspect_record(self.record, self.config)

    def history(self) -> list[dict[str, Any]]:
        return self.collection.history_of(self)

    def tag(self, repository: str, tag: str | None = None) -> bool:
        self.collection.tag(self.id, repository, tag)
        return True

    def reload(self) -> None:
        self.record = self.collection.get(self.id).record
        self.__dict__.pop("attrs", None)
        self.__dict__.pop("config", None)


class ImageCollection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def store(self) -> Any:
        return self.engine.store

    # ------------------------------------------------------------- finding

    def get(self, name: str) -> Image:
        return Image(self, self.store.images.resolve(name))

    def list(
        self,
        name: str | None = None,
        *,
        all: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> builtins.list[Image]:
        """Images as ``docker images`` lists them (intermediate ones only with ``all``)."""
        records = self.store.images.all()
        parents = {r.parent for r in records if r.parent}
        images = [Image(self, r) for r in records]
        if not all:
            images = [i for i in images if not (i.dangling and i.id in parents)]
        if name:
            images = [_only_references(i, name) for i in images if _matches_reference(i, name)]
        for key, values in (filters or {}).items():
            images = [i for i in images if self._filter(i, key, values)]
        images.sort(key=lambda i: (i.record.created, i.record.added), reverse=True)
        return images

    def _filter(self, image: Image, key: str, values: builtins.list[str]) -> bool:
        if key == "dangling":
            wanted = _bool_filter(values)
            return image.dangling == wanted
        if key == "label":
            return all(_label_matches(image.labels, v) for v in values)
        if key == "reference":
            return any(_matches_reference(image, v) for v in values)
        if key in ("before", "since"):
            for value in values:
                other = self.get(value)
                if key == "before" and not image.created < other.created:
                    return False
                if key == "since" and not image.created > other.created:
                    return False
            return True
        if key == "until":
            from berth.units import parse_timestamp

            limit = min(parse_timestamp(v) for v in values) / 1e9
            return image.created.timestamp() < limit
        raise InvalidArgument(
            f"invalid filter '{key}'", hint="images filters: " + ", ".join(LIST_FILTERS)
        )

    # ------------------------------------------------------------- details

    def inspect(self, name: str) -> dict[str, Any]:
        return self.get(name).attrs

    def inspect_record(self, record: ImageRecord, config: ImageConfig) -> dict[str, Any]:
        stack = self.store.layers.stack(record.top_chain)
        diff_dirs = [self.store.layers.diff_dir(layer.chain_id) for layer in stack]
        graph: dict[str, Any] = {}
        if diff_dirs:
            graph["UpperDir"] = diff_dirs[-1]
            if len(diff_dirs) > 1:
                graph["LowerDir"] = ":".join(reversed(diff_dirs[:-1]))
        c = config.config
        return {
            "Id": str(record.id),
            "RepoTags": [t.familiar() for t in record.tags],
            "RepoDigests": Image(self, record).repo_digests,
            "Parent": record.parent or "",
            "Comment": config.history[-1].comment if config.history else "",
            "Created": config.created or ZERO_TIME,
            "DockerVersion": str(config.extra.get("docker_version", "")),
            "Author": config.author,
            "Config": {
                "Hostname": "",
                "Domainname": "",
                "User": c.user,
                "AttachStdin": False,
                "AttachStdout": False,
                "AttachStderr": False,
                "ExposedPorts": {p: {} for p in c.exposed_ports} or None,
                "Tty": False,
                "OpenStdin": False,
                "StdinOnce": False,
                "Env": c.env or None,
                "Cmd": c.cmd,
                "Healthcheck": c.healthcheck.to_json() if c.healthcheck else None,
                "ArgsEscaped": c.args_escaped or None,
                "Image": "",
                "Volumes": {v: {} for v in c.volumes} or None,
                "WorkingDir": c.working_dir,
                "Entrypoint": c.entrypoint,
                "OnBuild": c.on_build or None,
                "Labels": c.labels or None,
                "StopSignal": c.stop_signal or None,
                "Shell": c.shell,
            },
            "Architecture": config.architecture,
            **({"Variant": config.variant} if config.variant else {}),
            "Os": config.os,
            "Size": record.size,
            "GraphDriver": {"Data": graph or None, "Name": "overlay"},
            "RootFS": {"Type": "layers", "Layers": [str(d) for d in config.diff_ids]},
            "Metadata": {"LastTagTime": ZERO_TIME},
        }

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        return self.history_of(self.get(name))

    def history_of(self, image: Image) -> builtins.list[dict[str, Any]]:
        """``docker history`` rows, newest first (API shape: Id, Created, CreatedBy, ...)."""
        config = image.config
        stack = self.store.layers.stack(image.record.top_chain)
        sizes = [layer.size for layer in stack]
        entries = list(config.history)
        if not entries:  # images without history: one entry per layer
            entries = []
            from berth.oci.config import HistoryEntry

            entries = [HistoryEntry(created=config.created) for _ in stack]
        rows: builtins.list[dict[str, Any]] = []
        layer_index = 0
        for entry in entries:
            size = 0
            if not entry.empty_layer:
                size = sizes[layer_index] if layer_index < len(sizes) else 0
                layer_index += 1
            rows.append(
                {
                    "Id": "<missing>",
                    "Created": int(parse_time(entry.created).timestamp()) if entry.created else 0,
                    "CreatedBy": entry.created_by,
                    "Tags": None,
                    "Size": size,
                    "Comment": entry.comment,
                }
            )
        rows.reverse()
        if rows:
            rows[0]["Id"] = image.id
            rows[0]["Tags"] = image.tags or None
        return rows

    # ------------------------------------------------------------- changing

    def tag(self, source: str, repository: str, tag: str | None = None) -> None:
        image = self.store.images.resolve(source)
        ref = parse_normalized(repository)
        if tag:
            ref = ref.with_tag(tag)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {repository}")
        self.store.tag(image, ref.with_default_tag())
        _event(self, "tag", str(image.id), ref.with_default_tag().familiar())

    def remove(
        self, image: str, *, force: bool = False, noprune: bool = False
    ) -> builtins.list[dict[str, str]]:
        from berth.containers.events import ImagesBefore, image_removal_events

        before = ImagesBefore(self.store, image)
        removal = self.store.delete_image(image, force=force, prune_parents=not noprune)
        image_removal_events(self.store, removal.records, before)
        return [{kind: what} for kind, what in removal.records]

    def prune(
        self,
        *,
        all: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> dict[str, Any]:
        filters = dict(filters or {})
        if "dangling" in filters:
            all = not _bool_filter(filters.pop("dangling"))
        keep: builtins.list[str] = []
        if filters:
            candidates = self.list(all=True)
            selected = candidates
            for key, values in filters.items():
                if key not in ("label", "label!", "until"):
                    raise InvalidArgument(
                        f"invalid filter '{key}'",
                        hint="image prune filters: dangling, label, until",
                    )
                if key == "label!":
                    selected = [
                        i for i in selected if not any(_label_matches(i.labels, v) for v in values)
                    ]
                else:
                    selected = [i for i in selected if self._filter(i, key, values)]
            chosen = {i.id for i in selected}
            keep = [i.id for i in candidates if i.id not in chosen]
        from berth.containers.events import ImagesBefore, image_removal_events

        before = ImagesBefore(self.store)
        removal: Removal = self.store.prune_images(all_images=all, keep=keep)
        image_removal_events(self.store, removal.records, before)
        deleted = [{kind: what} for kind, what in removal.records]
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": removal.reclaimed}

    # ----------------------------------------------------- moving images in and out

    def import_image(
        self,
        source: str | BinaryIO,
        repository: str | None = None,
        *,
        changes: Sequence[str] = (),
        message: str = "",
    ) -> Image:
        from berth.archive.rootfs_import import import_rootfs

        tags = [parse_normalized(repository).with_default_tag()] if repository else []
        record = import_rootfs(
            self.store,
            source,
            tags=tags,
            changes=changes,
            message=message,
            source_name="-" if not isinstance(source, str) else source,
        )
        _event(self, "import", str(record.id), str(record.id))
        return Image(self, record)

    def load(
        self, source: str | BinaryIO, progress: Callable[[str], None] | None = None
    ) -> builtins.list[tuple[Image, builtins.list[str]]]:
        """Load an archive; returns each image with the tags it was loaded under."""
        from berth.archive.load import load_archive

        loaded = load_archive(self.store, source, progress)
        for item in loaded:
            _event(self, "load", str(item.image.id), str(item.image.id))
        return [(Image(self, x.image), [t.familiar() for t in x.tags]) for x in loaded]

    def save(
        self,
        names: Sequence[str],
        out: BinaryIO,
        *,
        format: str = "docker-archive",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        from berth.archive.save import save_images

        if not names:
            raise InvalidArgument("save needs at least one image name")
        save_images(self.store, list(names), out, fmt=format, progress=progress)
        for name in names:
            _event(self, "save", str(self.store.images.resolve(name).id), name)

    def build(self, **kwargs: Any) -> Any:
        """docker-py's ``images.build(path=..., tag=..., dockerfile=..., buildargs=...)``:
        (Image, build log lines)."""
        from berth.engine.build import build_image

        return build_image(self.engine, **kwargs)

    def pull(
        self,
        repository: str,
        tag: str | None = None,
        *,
        all_tags: bool = False,
        platform: str | None = None,
    ) -> Image | builtins.list[Image]:
        """docker-py's ``images.pull``: the image (a list with ``all_tags``)."""
        from berth.registry.client import pull

        name = f"{repository}:{tag}" if tag else repository
        results = pull(self.store, name, platform=platform, all_tags=all_tags)
        images = [Image(self, r.image) for r in results]
        return images if all_tags else images[0]

    def push(self, repository: str, tag: str | None = None) -> str:
        """docker-py's ``images.push``: the push report lines."""
        from berth.registry.client import push

        name = f"{repository}:{tag}" if tag else repository
        return "\n".join(push(self.store, name).lines)

    def bootstrap(
        self,
        name: str,
        *,
        tag: str | None = None,
        mirror: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Image:
        """Make a base image on this host: ``busybox`` or ``debian[:suite]``."""
        ref = parse_normalized(name)
        base = ref.familiar_repository
        tags = [parse_normalized(tag).with_default_tag() if tag else ref.with_default_tag()]
        if base == "busybox":
            from berth.bootstrap.busybox import bootstrap_busybox

            record = bootstrap_busybox(self.store, tags)
        elif base == "debian":
            from berth.bootstrap.debian import bootstrap_debian, suite_for

            record = bootstrap_debian(
                self.store, tags, suite=suite_for(ref.tag), mirror=mirror, progress=progress
            )
        else:
            raise ImageNotFound(
                f"berth cannot bootstrap {name!r}",
                hint="bootstrap makes busybox and debian[:suite]; build others from these",
            )
        return Image(self, record)


def parse_time(text: str) -> datetime:
    from datetime import UTC, datetime

    if not text:
        return datetime(1, 1, 1, tzinfo=UTC)
    value = text.replace("Z", "+00:00")
    if "." in value:  # Go writes up to nanoseconds; Python takes microseconds
        head, _, rest = value.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        value = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return datetime(1, 1, 1, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool_filter(values: list[str]) -> bool:
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidArgument(
        f"invalid filter 'dangling={values[-1]}'", hint="use dangling=true or dangling=false"
    )


def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    if not sep:
        return key in labels
    return labels.get(key) == value


def _only_references(image: Image, pattern: str) -> Image:
    """The image showing only the tags that match, as the engine lists a reference filter."""
    from berth.values import replace

    tags = tuple(t for t in image.record.tags if _ref_matches(t, pattern))
    repos = {t.repository for t in tags}
    digests = tuple(d for d in image.record.repo_digests if d.partition("@")[0] in repos)
    return Image(image.collection, replace(image.record, tags=tags, repo_digests=digests))


def _ref_matches(ref: ImageReference, pattern: str) -> bool:
    from berth.pathmatch import match as path_match

    if ":" not in pattern.rsplit("/", 1)[-1] and "@" not in pattern:
        try:
            wanted = parse_normalized(pattern)
        except Exception:
            wanted = None
        if wanted is not None and wanted.repository == ref.repository:
            return True
    return path_match(pattern, ref.familiar()) or path_match(pattern, ref.familiar_repository)


def _matches_reference(image: Image, pattern: str) -> bool:
    return any(_ref_matches(ref, pattern) for ref in image.record.tags)


def _event(images: ImageCollection, action: str, image_id: str, name: str) -> None:
    from berth.store.events import record_event

    record_event(images.store, "image", action, image_id, {"name": name})
