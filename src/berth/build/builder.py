"""Building an image from a Dockerfile: stages, their order, and the image at the end.

:func:`build` parses the Dockerfile (:mod:`berth.build.instructions`), finds the stage to
build (``--target`` or the last one) and the stages it needs (its ``FROM``, ``COPY --from``
and ``RUN --mount from=`` sources, transitively: others are not built), and builds them,
independent stages in parallel threads (RUN steps are processes; COPY is I/O). Each stage
starts from its base (an image in the store, pulled when missing if berth's registry client
is there; ``scratch``; or an earlier stage), runs the base's ONBUILD triggers, then applies
its instructions with BuildKit's expansion and scoping (:class:`StageScope`):

- metadata instructions (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, USER, STOPSIGNAL,
  HEALTHCHECK, SHELL, ARG, MAINTAINER, ONBUILD) only change the image config and add an
  ``empty_layer`` history entry;
- RUN, COPY, ADD and WORKDIR make a layer each (:mod:`berth.build.steps`), found in the
  step cache when their inputs are unchanged.

The image is the target stage's layers and config (``--label`` values added), its history
entries as BuildKit writes them; ``created`` times come from the steps that made the layers
(an ``empty_layer`` entry takes the time of the next layer, or else the last one), so a fully
cached rebuild gives the same image ID and writes nothing but a tag. A failure writes no
image and leaves the cache as it was.
"""

from __future__ import annotations

import copy
import os
import threading
from functools import partial

from berth.build.cache import BuildCache, StepLayer
from berth.build.expansion import StageScope, expand_from, resolve_global_args
from berth.build.history import history_entry
from berth.build.instructions import (
    Add,
    Copy,
    Maintainer,
    Run,
    Workdir,
    parse_dockerfile,
    parse_run_mount,
)
from berth.build.progress import Progress
from berth.build.steps import (
    ActiveContainers,
    BuildEnv,
    SecretSource,
    SourceRoot,
    StageState,
    run_layer_step,
)
from berth.errors import BerthError, BuildError, ImageNotFound, InvalidArgument
from berth.oci.config import ImageConfig
from berth.oci.reference import parse_normalized
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from berth.build.instructions import Dockerfile, Instruction, Stage
    from berth.oci.config import HistoryEntry
    from berth.oci.reference import ImageReference
    from berth.store.images import ImageRecord
    from berth.store.store import Store

__all__ = ["BuildOptions", "BuildResult", "SecretSource", "build"]

_KNOWN_SYNTAX = ("docker/dockerfile", "docker.io/docker/dockerfile")


class BuildOptions(Value):
    """Everything ``berth build`` takes (the context already prepared)."""

    __slots__ = (
        "build_args",
        "context",
        "dockerfile",
        "dockerfile_name",
        "labels",
        "network",
        "no_cache",
        "platform",
        "pull",
        "record_key",
        "secrets",
        "tags",
        "target",
    )

    def __init__(
        self,
        dockerfile: str,
        dockerfile_name: str = "Dockerfile",
        context: object | None = None,
        tags: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        pull: bool = False,
        labels: Mapping[str, str] | None = None,
        network: str = "default",
        secrets: Mapping[str, SecretSource] | None = None,
        platform: str | None = None,
        record_key: str | None = None,
    ) -> None:
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.context = context  # a berth.build.context.BuildContext, or None
        self.tags = tags
        self.build_args: Mapping[str, str] = {} if build_args is None else build_args
        self.target = target
        self.no_cache = no_cache
        self.pull = pull
        self.labels: Mapping[str, str] = {} if labels is None else labels
        self.network = network
        self.secrets: Mapping[str, SecretSource] = {} if secrets is None else secrets
        self.platform = platform
        self.record_key = record_key  # berth.build.fastpath's key: remember the build under it


class BuildResult(Value):
    __slots__ = ("image_id", "record", "tags", "warnings")

    def __init__(
        self,
        image_id: str,
        record: ImageRecord,
        tags: list[ImageReference],
        warnings: list[str],
    ) -> None:
        self.image_id = image_id
        self.record = record
        self.tags = tags
        self.warnings = warnings


class _StageResult(Value):
    __slots__ = ("config", "scope", "state")

    def __init__(self, state: StageState, config: ImageConfig, scope: StageScope) -> None:
        self.state = state
        self.config = config
        self.scope = scope


class _Future:
    """A stage's result, set by the thread that builds it (or its error)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: _StageResult | None = None
        self._error: BaseException | None = None

    def run(self, fn: Callable[[], _StageResult]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to whoever waits for this stage
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> _StageResult:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def build(store: Store, options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Build the image ``options`` describe in ``store``; raises BuildError and friends."""
    return _Builder(store, options, progress or Progress(None)).run()


class _Builder:
    def __init__(self, store: Store, options: BuildOptions, progress: Progress) -> None:
        self.store = store
        self.options = options
        self.progress = progress
        self.active = ActiveContainers()
        self.results: dict[int, _Future] = {}
        self._lock = threading.Lock()
        self.used_args: set[str] = set()
        self.image_configs: dict[str, tuple[ImageRecord, ImageConfig]] = {}
        self.pulled: set[str] = set()

    # -- the whole build ------------------------------------------------------------------

    def run(self) -> BuildResult:
        from berth.oci.platform import host_platform

        o = self.options
        if o.network not in ("default", "host", "none"):
            raise InvalidArgument(
                f"network mode {o.network!r} not supported in a build",
                hint="use --network host, none or default",
            )
        self.platform = host_platform()
        if o.platform:
            from berth.oci.manifest import Platform

            wanted = Platform.parse(o.platform.split(",")[0])
            if (wanted.os, wanted.architecture) != (self.platform.os, self.platform.architecture):
                raise InvalidArgument(
                    f"berth builds for this host's platform ({self.platform}), not {wanted}",
                    hint="drop --platform or build on a machine of that platform",
                )
        tags = [parse_normalized(t).with_default_tag() for t in o.tags]
        self.lines = o.dockerfile.splitlines(keepends=True)
        self.dockerfile = parse_dockerfile(o.dockerfile, o.dockerfile_name)
        self._check_syntax(self.dockerfile)
        self.global_args = resolve_global_args(
            self.dockerfile,
            dict(o.build_args),
            target_platform=self.platform,
            target=o.target,
        )
        target = self.dockerfile.target(o.target)
        needed = self._needed(target)
        cache = BuildCache(self.store)
        lease = self.store.lease()
        self.env = BuildEnv(
            store=self.store,
            cache=cache,
            lease=lease,
            progress=self.progress,
            context=o.context,  # type: ignore[arg-type]
            active=self.active,
            no_cache=o.no_cache,
            network={"none": "none", "host": "host"}.get(o.network, "bridge"),
            build_args=dict(o.build_args),
            secrets=dict(o.secrets),
            source_root=self._source_root,
            digest_cache_path=os.path.join(self.store.paths.root, "build", "context-digests.db"),
        )
        try:
            result = self._build_stages(needed, target)
            record = self._export(result, tags)
        except KeyboardInterrupt:
            self.active.cancel()
            raise
        finally:
            try:
                cache.flush_usage()
                if self.env.new_layers:
                    cache.enforce_limit()
            finally:
                lease.release()
        self._warn_unused_args()
        self._record(record, tags)
        return BuildResult(str(record.id), record, tags, list(self.progress.warnings))

    def _record(self, record: ImageRecord, tags: list[ImageReference]) -> None:
        """Let the next identical build be proven by berth.build.fastpath."""
        from berth.build.context_source import RecordingContext
        from berth.build.fastpath import record_build

        o = self.options
        context = o.context
        if o.record_key is None or o.no_cache or o.pull or not self.env.recordable:
            return
        if context is not None and not isinstance(context, RecordingContext):
            return
        bases = []
        for name, (image, _) in self.image_configs.items():
            check = _base_check(name, str(image.id))
            if check is None:
                return
            bases.append((name, check, str(image.id)))
        names = {raw: str(ref) for raw, ref in zip(o.tags, tags, strict=True)}
        vertices = [n for n in self.progress.names if n.startswith("[") and "] " in n]
        record_build(
            self.store.paths.db,
            o.record_key,
            image_id=str(record.id),
            bases=bases,
            stats=dict(context.seen) if context is not None else {},
            tags=names,
            vertices=vertices,
            cache_keys=self.env.cache_keys,
            warnings=self.progress.warnings,
        )

    def _check_syntax(self, dockerfile: Dockerfile) -> None:
        syntax = dockerfile.syntax
        if syntax and not syntax.split(":")[0].split("@")[0].endswith(_KNOWN_SYNTAX):
            self.progress.warn(
                f"# syntax={syntax} names another frontend; berth builds with its own "
                "(docker/dockerfile:1)"
            )

    def _warn_unused_args(self) -> None:
        from berth.build.expansion import PROXY_ARGS

        declared = {a.key for m in self.dockerfile.meta_args for a in m.args}
        declared |= self.used_args
        unused = sorted(
            k for k in self.options.build_args if k not in declared and k not in PROXY_ARGS
        )
        if unused:
            self.progress.warn(
                "One or more build-args [" + " ".join(unused) + "] were not consumed"
            )

    # -- stages and their dependencies ------------------------------------------------------

    def _base_name(self, stage: Stage) -> str:
        image, _ = expand_from(
            stage, self.global_args, self.dockerfile.escape, self.dockerfile.filename
        )
        return image

    def _stage_named(self, name: str, before: int) -> Stage | None:
        """An earlier stage called ``name`` (or numbered so), else None (then it is an image)."""
        found = self.dockerfile.find_stage(name)
        if found is None:
            return None
        if found.index >= before:
            if name.isdigit():
                raise BuildError(
                    f"stage {name} refers to itself or a later stage",
                    hint="only earlier stages can be copied from",
                )
            return None
        return found

    def _dependencies(self, stage: Stage) -> list[Stage]:
        deps: list[Stage] = []
        base = self._stage_named(self._base_name(stage), stage.index)
        if base is not None:
            deps.append(base)
        for instruction in stage.instructions:
            for ref in _source_refs(instruction):
                where = f"{self.dockerfile.filename}:{instruction.start_line}"
                try:
                    found = self._stage_named(ref, stage.index)
                except BuildError as exc:
                    raise BuildError(f"{where}: {exc.message}", hint=exc.hint) from None
                if found is not None:
                    deps.append(found)
        return deps

    def _needed(self, target: Stage) -> list[Stage]:
        order: list[Stage] = []
        seen: set[int] = set()

        def visit(stage: Stage) -> None:
            if stage.index in seen:
                return
            seen.add(stage.index)
            for dep in self._dependencies(stage):
                visit(dep)
            order.append(stage)

        visit(target)
        self.deps = {s.index: [d.index for d in self._dependencies(s)] for s in order}
        return order

    def _build_stages(self, needed: list[Stage], target: Stage) -> _StageResult:
        for stage in needed:
            self.results[stage.index] = _Future()
        if len(needed) == 1 or not self._has_parallelism(needed):
            for stage in needed:
                self.results[stage.index].run(partial(self._build_stage, stage))
                self.results[stage.index].result()
            return self.results[target.index].result()
        threads = []
        for stage in needed:  # every stage waits for its dependencies in its own thread
            future = self.results[stage.index]
            thread = threading.Thread(
                target=future.run,
                args=(partial(self._build_stage_after_deps, stage),),
                name=f"berth-build-stage-{stage.index}",
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
            first_error = None
            for stage in needed:
                try:
                    self.results[stage.index].result()
                except BaseException as exc:
                    first_error = first_error or exc
            if first_error is not None:
                raise first_error
            return self.results[target.index].result()
        except KeyboardInterrupt:
            self.active.cancel()
            for thread in threads:
                thread.join()
            raise

    def _has_parallelism(self, needed: list[Stage]) -> bool:
        """Whether two needed stages could run at once (else build them in this thread)."""
        chain = all(self.deps[s.index] == [needed[i - 1].index] for i, s in enumerate(needed) if i)
        return not chain

    def _build_stage_after_deps(self, stage: Stage) -> _StageResult:
        for dep in self.deps[stage.index]:
            self.results[dep].result()
        if self.active.cancelled:
            raise KeyboardInterrupt
        return self._build_stage(stage)

    def _result_of(self, stage: Stage) -> _StageResult:
        future = self.results.get(stage.index)
        if future is None:
            raise BuildError(f"stage {stage.name or stage.index} was not built")
        return future.result()

    def _source_root(self, ref: str, where: str) -> SourceRoot:
        """A COPY --from / RUN --mount from= source: an earlier stage, else an image."""
        stage = self.dockerfile.find_stage(ref)
        if stage is not None and stage.index in self.results:
            result = self._result_of(stage)
            return SourceRoot(result.state.key, result.state.top_chain, stage.name or ref)
        record, _ = self._image(ref, where, pull_allowed=False)
        return SourceRoot(f"image:{record.id}", record.top_chain, ref)

    # -- base images ----------------------------------------------------------------------

    def _image(
        self, name: str, where: str, *, pull_allowed: bool
    ) -> tuple[ImageRecord, ImageConfig]:
        with self._lock:
            known = self.image_configs.get(name)
        if known is not None:
            return known
        record = self._resolve_image(name, where, pull_allowed)
        config = ImageConfig.from_bytes(self.store.blobs.read(record.id))
        with self._lock:
            self.image_configs[name] = (record, config)
        return record, config

    def _resolve_image(self, name: str, where: str, pull_allowed: bool) -> ImageRecord:
        if self.options.pull and pull_allowed:
            self._pull(name, where)
        try:
            return self.store.images.resolve(name)
        except ImageNotFound:
            pass
        except BerthError as exc:
            raise BuildError(f"{where}: invalid image name {name!r}: {exc.message}") from None
        pull_error = self._pull(name, where) if pull_allowed else None
        if pull_error is None and pull_allowed:
            return self.store.images.resolve(name)
        raise ImageNotFound(
            f"{where}: {name}: pull access denied or not found: the image is not in the store"
            + (f" and pulling it failed ({pull_error})" if pull_error else ""),
            hint=f"run `berth image bootstrap {name}` (busybox, debian) or `berth pull {name}`,"
            " or load it with `berth load`",
        )

    def _pull(self, name: str, where: str) -> str | None:
        """Pull ``name``; the error text when it fails (None on success)."""
        try:
            from berth.registry.client import pull
        except ImportError:
            return "berth has no registry client"
        vertex = self.progress.vertex(f"[internal] pull {name}")
        try:
            pull(self.store, name)
        except BerthError as exc:
            vertex.error(str(exc))
            if self.options.pull:
                raise BuildError(f"{where}: cannot pull {name}: {exc}", hint=exc.hint) from None
            return str(exc.message)
        vertex.done()
        self.pulled.add(name)
        return None

    # -- one stage ------------------------------------------------------------------------

    def _stage_label(self, stage: Stage) -> str:
        if len(self.dockerfile.stages) == 1:
            return ""
        return (stage.name or f"stage-{stage.index}") + " "

    def _check_base_platform(self, stage: Stage, base_name: str, config: ImageConfig) -> None:
        """BuildKit's InvalidBaseImagePlatform warning: ``FROM --platform=X`` found a local
        image of another platform (berth builds with it, as BuildKit does with a local one)."""
        _, wanted_text = expand_from(
            stage, self.global_args, self.dockerfile.escape, self.dockerfile.filename
        )
        if not wanted_text:
            return
        from berth.oci.manifest import Platform

        try:
            wanted = Platform.parse(wanted_text)
        except BerthError as exc:
            raise BuildError(
                f"{self.dockerfile.filename}:{stage.from_.start_line}: {exc.message}"
            ) from None
        found = f"{config.os}/{config.architecture}"
        if (wanted.os, wanted.architecture) != (config.os, config.architecture):
            self.progress.warn(
                f"InvalidBaseImagePlatform: Base image {base_name} was pulled with platform "
                f'"{found}", expected "{wanted.os}/{wanted.architecture}" for current build '
                f"(line {stage.from_.start_line})"
            )

    def _build_stage(self, stage: Stage) -> _StageResult:
        d = self.dockerfile
        where = f"{d.filename}:{stage.from_.start_line}"
        base_name = self._base_name(stage)
        parent = self._stage_named(base_name, stage.index)
        triggers: list[str]
        if parent is not None:
            parent_result = self._result_of(parent)
            scope = parent_result.scope.inherit()
            config = copy.deepcopy(parent_result.config)
            triggers = list(parent_result.config.config.on_build)
            state = StageState(parent_result.state.key, list(parent_result.state.layers))
            shown = parent.name or str(parent.index)
        elif base_name == "scratch":
            scope = StageScope.for_stage(d, self.global_args, self.options.build_args)
            config = ImageConfig(
                architecture=self.platform.architecture,
                os=self.platform.os,
                variant=self.platform.variant or "",
                diff_ids=[],
            )
            triggers = []
            state = StageState("scratch", [])
            shown = "scratch"
        else:
            record, config = self._image(base_name, where, pull_allowed=True)
            self._check_base_platform(stage, base_name, config)
            config = copy.deepcopy(config)
            scope = StageScope.for_stage(
                d, self.global_args, self.options.build_args, base_config=config.config
            )
            triggers = list(config.config.on_build)
            state = StageState(f"image:{record.id}", _base_layers(self.store, record))
            shown = _display_ref(base_name)
        instructions: list[Instruction] = []
        if triggers:
            from berth.build.expansion import triggered_instructions

            try:
                instructions += triggered_instructions(triggers, stage.from_)
            except BuildError as exc:
                raise BuildError(
                    f"{where}: ONBUILD trigger: {exc.message}", hint=exc.hint
                ) from None
        instructions += stage.instructions
        total = 1 + sum(isinstance(i, Run | Copy | Add | Workdir) for i in instructions)
        label = self._stage_label(stage)
        vertex = self.progress.vertex(f"[{label}1/{total}] FROM {shown}")
        if base_name in self.pulled:
            vertex.done()
        else:
            vertex.cached()
        history = list(config.history)
        new_entries: list[HistoryEntry] = []
        step = 1
        for instruction in instructions:
            if self.active.cancelled:
                raise KeyboardInterrupt
            applied = scope.apply(instruction)
            self._note_args(applied.env, scope)
            entry = history_entry(applied)
            if isinstance(applied.instruction, Maintainer):
                config.author = applied.instruction.maintainer
            if isinstance(instruction, Run | Copy | Add | Workdir):
                if isinstance(applied.instruction, Workdir) and applied.instruction.path == "/":
                    if entry is not None:
                        new_entries.append(entry)
                    continue
                step += 1
                try:
                    layer = run_layer_step(
                        self.env,
                        state,
                        applied,
                        f"[{label}{step}/{total}] {instruction.original}",
                        f"{d.filename}:{instruction.start_line}",
                    )
                except BerthError:
                    self.progress.failure(
                        self.progress.failed,
                        self.lines,
                        d.filename,
                        instruction.start_line,
                        instruction.end_line,
                    )
                    raise
                state.key = _next_key(state, layer)
                state.layers.append(layer)
                if entry is not None:
                    entry.created = layer.created
                    entry.empty_layer = False
                    new_entries.append(entry)
            elif entry is not None:
                new_entries.append(entry)
        _fill_created(new_entries, config.created)
        config.history = history + new_entries
        config.config = scope.config
        config.diff_ids = [layer.diff_id for layer in state.layers]
        if new_entries:
            config.created = new_entries[-1].created
        return _StageResult(state, config, scope)

    def _note_args(self, env: Sequence[tuple[str, str]], scope: StageScope) -> None:
        names = {a.key for a in scope.declared_args}
        if names:
            with self._lock:
                self.used_args |= names

    # -- the image ------------------------------------------------------------------------

    def _export(self, result: _StageResult, tags: list[ImageReference]) -> ImageRecord:
        from berth.store.image_writer import BaseLayer, write_new_image
        from berth.store.images import NewLayer

        vertex = self.progress.vertex("exporting to image")
        config = copy.deepcopy(result.config)
        if self.options.labels:
            config.config.labels.update(self.options.labels)
        config.config.on_build = list(result.scope.config.on_build)
        config_bytes = config.to_bytes()
        from berth.oci.digest import Digest

        image_id = Digest.of(config_bytes)
        record = self.store.images.get(image_id)
        if record is None:
            vertex.detail("exporting layers")
            base = [
                BaseLayer(
                    NewLayer(x.chain_id, x.blob_digest, x.media_type, x.blob_size),
                    x.diff_id,
                    x.size,
                )
                for x in result.state.layers
            ]
            record = write_new_image(
                self.store, base=base, new_layers=[], make_config=lambda _: config, tags=tags
            )
            vertex.detail("exporting layers done")
        else:
            vertex.detail("exporting layers done")
            for ref in tags:
                self.store.tag(record, ref)
            record = self.store.images.get(image_id) or record
        vertex.detail(f"writing image {record.id} done")
        for ref in tags:
            vertex.detail(f"naming to {ref} done")
        vertex.done()
        return record


def _source_refs(instruction: Instruction) -> list[str]:
    if isinstance(instruction, Copy) and instruction.from_:
        return [instruction.from_]
    if isinstance(instruction, Run):
        refs = []
        for spec in instruction.mount_specs:
            try:
                mount = parse_run_mount(spec, lambda word: word)
            except BuildError:
                continue
            if mount.from_:
                refs.append(mount.from_)
        return refs
    return []


def _next_key(state: StageState, layer: StepLayer) -> str:
    """The state after a step: keyed by the cache key chain, so the layer's chain id suffices."""
    return f"layer:{layer.chain_id}"


def _fill_created(entries: list[HistoryEntry], base_created: str) -> None:
    """Empty-layer entries take the time of the next layer entry, else the last one."""
    following = ""
    for entry in reversed(entries):
        if not entry.empty_layer and entry.created:
            following = entry.created
        elif not entry.created and following:
            entry.created = following
    last = base_created
    for entry in entries:
        if entry.created:
            last = entry.created
        else:
            entry.created = last


def _base_layers(store: Store, record: ImageRecord) -> list[StepLayer]:
    from berth.store.image_writer import base_layers

    out = []
    for base in base_layers(store, record):
        layer = store.layers.get(base.new_layer.chain_id)
        out.append(
            StepLayer(
                chain_id=base.new_layer.chain_id,
                parent_chain=layer.parent_chain if layer else None,
                diff_id=base.diff_id,
                blob_digest=base.new_layer.blob_digest,
                media_type=base.new_layer.media_type,
                blob_size=base.new_layer.blob_size,
                size=base.size,
            )
        )
    return out


def _base_check(name: str, image_id: str) -> str | None:
    """How berth.build.fastpath re-checks a base: ``tag:<name>``, ``id:`` or None (cannot)."""
    from berth.oci.reference import looks_like_image_id

    if name.startswith("sha256:") or looks_like_image_id(name):
        return "id:" + image_id
    try:
        ref = parse_normalized(name)
    except BerthError:
        return None
    if ref.digest is not None:
        return None
    return "tag:" + str(ref.with_default_tag())


def _display_ref(name: str) -> str:
    try:
        ref = parse_normalized(name)
    except BerthError:
        return name
    return str(ref)
