"""Executing the instructions that make layers: RUN, COPY, ADD and WORKDIR.

Each step first computes its cache key (:func:`berth.build.cache.step_key` of the stage's
state key and the step's inputs) and looks it up; a hit costs one SQLite query and no I/O on
the image. A miss mounts the current layers with a fresh upper dir
(:class:`~berth.build.snapshot.StepSpace`), does the work through the mount, unmounts and
stores the upper dir as the new layer (:func:`~berth.build.snapshot.commit_upper`), then
records it in the cache. A failing step leaves nothing behind: its scratch space is removed,
the cache is untouched, and no image is written.
"""

from __future__ import annotations

import os
import threading

from berth.basics import suppress
from berth.build.cache import step_key
from berth.build.context import BuildContext, DigestCache, checksum, resolve_sources
from berth.build.expansion import proxy_env
from berth.build.instructions import Add, Copy, Run, Workdir
from berth.errors import BerthError, BuildError, BuildStepFailed
from berth.values import FrozenValue, Value, init_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from berth.build.cache import BuildCache, StepLayer
    from berth.build.context import SourceMatch
    from berth.build.expansion import Applied
    from berth.build.instructions import RunMount
    from berth.build.progress import Progress, Vertex
    from berth.build.sandbox import PreparedMount
    from berth.build.snapshot import StepSpace
    from berth.oci.digest import Digest
    from berth.store.leases import Lease
    from berth.store.store import Store

__all__ = [
    "ActiveContainers",
    "BuildEnv",
    "SecretSource",
    "SourceRoot",
    "StageState",
    "run_layer_step",
]

_URL_PREFIXES = ("http://", "https://")
_GIT_PREFIXES = ("git://", "git@", "ssh://")


class ActiveContainers:
    """The build containers running now, so a Ctrl-C can kill every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Any] = {}
        self.cancelled = False

    def add(self, container_id: str, runtime: Any) -> None:
        with self._lock:
            if self.cancelled:
                raise KeyboardInterrupt
            self._running[container_id] = runtime

    def discard(self, container_id: str) -> None:
        with self._lock:
            self._running.pop(container_id, None)

    def cancel(self) -> None:
        """Kill every running build container (their steps then fail)."""
        with self._lock:
            self.cancelled = True
            running = list(self._running.items())
        for container_id, runtime in running:
            with suppress(BerthError, OSError):
                runtime.kill(container_id, 9, all=True)


class SecretSource(FrozenValue):
    """A ``--secret``: its id and where its value comes from (a file or a variable)."""

    __slots__ = ("env", "id", "path")
    id: str
    path: str | None
    env: str | None

    def __init__(self, id: str, path: str | None = None, env: str | None = None) -> None:
        init_fields(self, id=id, path=path, env=env)

    def read(self) -> bytes:
        if self.path is not None:
            try:
                with open(self.path, "rb") as f:
                    return f.read()
            except OSError as exc:
                raise BuildError(
                    f"cannot read secret {self.id!r} from {self.path}: {exc.strerror}",
                    hint="check the src= path of --secret",
                ) from None
        value = os.environ.get(self.env or "")
        if value is None:
            raise BuildError(
                f"secret {self.id!r}: environment variable {self.env} is not set",
                hint="export it, or give the secret with src=FILE",
            )
        return value.encode("utf-8", "surrogateescape")


class StageState(Value):
    """A stage's filesystem while it is built: its state key and its layers (bottom first)."""

    __slots__ = ("key", "layers")

    def __init__(self, key: str, layers: list[StepLayer]) -> None:
        self.key = key
        self.layers = layers

    @property
    def top_chain(self) -> Digest | None:
        return self.layers[-1].chain_id if self.layers else None


class SourceRoot(Value):
    """Another stage or an image, as a COPY ``--from`` or ``RUN --mount from=`` source."""

    __slots__ = ("key", "label", "top_chain")

    def __init__(self, key: str, top_chain: Digest | None, label: str) -> None:
        self.key = key  # its state key: what the cache key uses in place of its content
        self.top_chain = top_chain
        self.label = label


class BuildEnv(Value):
    """What every step of one build shares."""

    __slots__ = (
        "_local",
        "active",
        "build_args",
        "cache",
        "cache_keys",
        "context",
        "digest_cache_path",
        "lease",
        "network",
        "new_layers",
        "no_cache",
        "progress",
        "recordable",
        "secrets",
        "source_root",
        "store",
    )

    def __init__(
        self,
        store: Store,
        cache: BuildCache,
        lease: Lease,
        progress: Progress,
        context: BuildContext | None,
        active: ActiveContainers,
        no_cache: bool,
        network: str,
        build_args: dict[str, str],
        secrets: dict[str, SecretSource],
        source_root: Callable[[str, str], SourceRoot],
        digest_cache_path: str | None = None,
        new_layers: int = 0,
        recordable: bool = True,
    ) -> None:
        self.store = store
        self.cache = cache
        self.lease = lease
        self.progress = progress
        self.context = context
        self.active = active
        self.no_cache = no_cache
        self.network = network  # the build's --network: "bridge" (the default), "host" or "none"
        self.build_args = build_args
        self.secrets = secrets
        self.source_root = source_root  # (reference, where) -> stage or image
        self.digest_cache_path = digest_cache_path
        self.new_layers = new_layers
        self.recordable = recordable  # False once the result depends on something outside
        self.cache_keys: list[str] = []
        self._local: Any = None  # per thread: a DigestCache

    def digests(self) -> DigestCache | None:
        """This thread's digest cache of context files (SQLite connections are per thread)."""
        if self.digest_cache_path is None:
            return None
        if self._local is None:
            self._local = threading.local()
        cache = getattr(self._local, "cache", None)
        if cache is None:
            os.makedirs(os.path.dirname(self.digest_cache_path), exist_ok=True)
            cache = DigestCache(self.digest_cache_path)
            self._local.cache = cache
        return cache

    def require_context(self, where: str) -> BuildContext:
        if self.context is None:
            raise BuildError(
                f"{where}: this build has no context to copy from",
                hint="pass a context directory (or a tar on stdin) instead of a bare Dockerfile",
            )
        return self.context

    def lease_layer(self, layer: StepLayer) -> None:
        with self.store.db.write() as conn:
            self.lease.add_in(conn, "layer", str(layer.chain_id))
            self.lease.add_in(conn, "blob", str(layer.blob_digest))


def run_layer_step(
    env: BuildEnv, state: StageState, applied: Applied, label: str, where: str
) -> StepLayer:
    """Run (or find in the cache) one RUN, COPY, ADD or WORKDIR; the layer it makes."""
    instruction = applied.instruction
    if isinstance(instruction, Run):
        step: _Step = _RunStep(env, state, applied, where)
    elif isinstance(instruction, Copy | Add):
        step = _CopyStep(env, state, applied, where)
    elif isinstance(instruction, Workdir):
        step = _WorkdirStep(env, state, applied, where)
    else:  # pragma: no cover - the builder only sends these four
        raise TypeError(type(instruction).__name__)
    vertex = env.progress.vertex(label)
    try:
        key = step_key(state.key, step.kind, step.inputs())
        env.cache_keys.append(key)
        if not env.no_cache:
            hit = env.cache.get(key)
            if hit is not None:
                env.lease_layer(hit)
                vertex.cached()
                return hit
        layer = step.execute(vertex)
        env.cache.put(key, layer, instruction.original)
        env.new_layers += 1
        vertex.done()
        return layer
    except BuildStepFailed as exc:
        vertex.error(exc.message.split(": ", 1)[-1])
        raise
    except BuildError as exc:
        vertex.error(exc.message)
        if exc.message.startswith(where):
            raise
        raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None
    finally:
        step.cleanup()


class _Step:
    kind = ""

    def __init__(self, env: BuildEnv, state: StageState, applied: Applied, where: str) -> None:
        self.env = env
        self.state = state
        self.applied = applied
        self.where = where
        self._cleanups: list[Callable[[], None]] = []

    def inputs(self) -> object:
        raise NotImplementedError

    def execute(self, vertex: Vertex) -> StepLayer:
        raise NotImplementedError

    def cleanup(self) -> None:
        while self._cleanups:
            with suppress(Exception):
                self._cleanups.pop()()

    def _space(self) -> StepSpace:
        from berth.build.snapshot import StepSpace

        space = StepSpace.create(self.env.store)
        self._cleanups.append(space.remove)
        return space

    def _commit(self, space: StepSpace) -> StepLayer:
        from berth.build.snapshot import commit_upper, rfc3339_now

        space.unmount()
        return commit_upper(
            self.env.store, self.env.lease, space.dirs.upper, self.state.top_chain, rfc3339_now()
        )

    def _root_fd(self, path: str) -> _DirFd:
        return _DirFd(path)

    def _mount_source(self, source: SourceRoot) -> str:
        """A read-only mount of another stage or image; unmounted in cleanup."""
        from berth.build.snapshot import StepSpace

        space = StepSpace.create(self.env.store)
        self._cleanups.append(space.remove)
        return space.mount(self.env.store, source.top_chain, readonly=True)


# -- WORKDIR ---------------------------------------------------------------------------------


class _WorkdirStep(_Step):
    kind = "workdir"

    def inputs(self) -> object:
        assert isinstance(self.applied.instruction, Workdir)
        return {"path": self.applied.instruction.path, "user": self.applied.user}

    def execute(self, vertex: Vertex) -> StepLayer:
        from berth.build.fsops import lookup_user, make_dirs

        assert isinstance(self.applied.instruction, Workdir)
        space = self._space()
        merged = space.mount(self.env.store, self.state.top_chain)
        with self._root_fd(merged) as root_fd:
            identity = lookup_user(root_fd, self.applied.user)
            try:
                make_dirs(
                    root_fd, self.applied.instruction.path, owner=(identity.uid, identity.gid)
                )
            except OSError as exc:
                raise BuildError(
                    f"{self.where}: cannot create WORKDIR {self.applied.instruction.path}: "
                    f"{exc.strerror}"
                ) from None
        return self._commit(space)


# -- RUN -------------------------------------------------------------------------------------


class _RunStep(_Step):
    kind = "run"

    def __init__(self, env: BuildEnv, state: StageState, applied: Applied, where: str) -> None:
        super().__init__(env, state, applied, where)
        run = applied.instruction
        assert isinstance(run, Run)
        self.run = run
        if run.security == "insecure":
            raise BuildError(
                f"{where}: RUN --security=insecure needs the security.insecure entitlement, "
                "which berth does not grant",
                hint="remove --security=insecure",
            )
        network = run.network if run.network != "default" else env.network
        self.network = "bridge" if network == "default" else network

    def _mount_inputs(self, mount: RunMount) -> dict[str, Any]:
        out: dict[str, Any] = {"type": mount.type, "target": mount.target}
        if mount.type == "bind":
            out["readonly"] = mount.readonly
            out["source"] = mount.source
            if mount.from_:
                out["from"] = self.env.source_root(mount.from_, self.where).key
            else:
                context = self.env.require_context(self.where)
                matches = resolve_sources(context, [mount.source or "."])
                out["content"] = checksum(context, matches, owner=None, cache=self.env.digests())
        elif mount.type == "cache":
            out.update(id=mount.id or mount.target, sharing=mount.sharing, ro=mount.readonly)
        elif mount.type == "tmpfs":
            out["size"] = mount.size_limit
        elif mount.type == "secret":
            out.update(id=mount.id or os.path.basename(mount.target), env=mount.env)
        elif mount.type == "ssh" and mount.required:
            raise BuildError(
                f"{self.where}: RUN --mount=type=ssh needs an SSH agent forwarded with --ssh, "
                "which berth does not support yet",
                hint="fetch what you need over HTTPS, or use a secret",
            )
        return out

    def inputs(self) -> object:
        a = self.applied
        return {
            "argv": list(a.argv),
            "env": [list(pair) for pair in a.env],
            "user": a.user,
            "cwd": a.workdir,
            "network": self.network,
            "mounts": [self._mount_inputs(m) for m in self.run.mounts],
            "inline": [[f.directory, f.name, f.data, f.mode] for f in a.inline_files],
        }

    def execute(self, vertex: Vertex) -> StepLayer:
        from berth.build.fsops import lookup_user, make_dirs
        from berth.build.sandbox import MountStubs, RunSpec, check_exit, run_container

        space = self._space()
        merged = space.mount(self.env.store, self.state.top_chain)
        with self._root_fd(merged) as root_fd:
            identity = lookup_user(root_fd, self.applied.user)
            cwd = self.applied.workdir or "/"
            from berth.build.fsops import kind_at

            if kind_at(root_fd, cwd) is None:
                make_dirs(root_fd, cwd)
            mounts, extra_env = self._prepare_mounts(space)
            stubs = MountStubs(root_fd)
            for mount in mounts:
                stubs.note(mount.destination)
            env_list = [f"{k}={v}" for k, v in self.applied.env]
            env_list += [f"{k}={v}" for k, v in proxy_env(self.env.build_args).items()]
            env_list += [f"{k}={v}" for k, v in extra_env]
            spec = RunSpec(self.applied.argv, env_list, cwd, identity, self.network, mounts)
            try:
                code = run_container(
                    self.env.store,
                    os.path.join(space.path, "bundle"),
                    merged,
                    spec,
                    vertex.log,
                    self.env.active,
                )
            finally:
                vertex.flush()
                stubs.clean()
            tail = "".join(line.split(" ", 2)[-1] for line in vertex.tail()[-5:]).strip()
            check_exit(code, self.applied.argv, self.where, tail)
        space.unmount()
        stubs.prune_upper(space.dirs.upper)
        return self._commit(space)

    def _prepare_mounts(
        self, space: StepSpace
    ) -> tuple[list[PreparedMount], list[tuple[str, str]]]:
        from berth.build.sandbox import PreparedMount, host_resolv_conf, write_hosts_file

        mounts: list[PreparedMount] = []
        env: list[tuple[str, str]] = []
        if self.network != "none":  # on the bridge, the sandbox puts the step network's in
            mounts.append(
                PreparedMount("/etc/resolv.conf", "bind", host_resolv_conf(), ("rbind", "ro"))
            )
        mounts.append(
            PreparedMount("/etc/hosts", "bind", write_hosts_file(space.path), ("rbind", "ro"))
        )
        for mount in self.run.mounts:
            prepared = self._prepare_one(mount, space, env)
            if prepared is not None:
                mounts.append(prepared)
        if self.applied.inline_files:
            pipes = os.path.join(space.path, "pipes")
            os.makedirs(pipes, exist_ok=True)
            for inline in self.applied.inline_files:
                path = os.path.join(pipes, inline.name)
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(inline.data)
                os.chmod(path, inline.mode)
            mounts.append(PreparedMount("/dev/pipes", "bind", pipes, ("rbind", "ro")))
        return mounts, env

    def _target(self, mount: RunMount) -> str:
        from berth.build.expansion import normalize_path

        return normalize_path(self.applied.workdir or "/", mount.target)

    def _prepare_one(
        self, mount: RunMount, space: StepSpace, env: list[tuple[str, str]]
    ) -> PreparedMount | None:
        from berth.build import sandbox

        if mount.type == "tmpfs":
            tmpfs_options = ["nosuid", "nodev"]
            if mount.size_limit:
                tmpfs_options.append(f"size={mount.size_limit}")
            return sandbox.PreparedMount(
                self._target(mount), "tmpfs", "tmpfs", tuple(tmpfs_options)
            )
        if mount.type == "cache":
            if not mount.target:
                raise BuildError(f"{self.where}: a cache mount needs a target")
            directory = sandbox.cache_mount_dir(
                self.env.store,
                mount.id or self._target(mount),
                mode=mount.mode,
                uid=mount.uid,
                gid=mount.gid,
            )
            if mount.sharing in ("locked", "private"):
                lock = sandbox.CacheMountLock(os.path.join(os.path.dirname(directory), "lock"))
                self._cleanups.append(lock.release)
            options = ("rbind", "ro" if mount.readonly else "rw")
            return sandbox.PreparedMount(self._target(mount), "bind", directory, options)
        if mount.type == "secret":
            return self._prepare_secret(mount, env)
        if mount.type == "ssh":
            return None  # not required and not forwarded: BuildKit leaves it out too
        return self._prepare_bind(mount, space)

    def _prepare_secret(self, mount: RunMount, env: list[tuple[str, str]]) -> PreparedMount | None:
        from berth.build import sandbox

        secret_id = mount.id or os.path.basename(mount.target)
        source = self.env.secrets.get(secret_id)
        if source is None:
            if mount.required:
                raise BuildError(
                    f"{self.where}: secret {secret_id} not found",
                    hint=f"pass it with --secret id={secret_id},src=FILE",
                )
            return None
        data = source.read()
        if mount.env:
            env.append((mount.env, data.decode("utf-8", "surrogateescape")))
            if not mount.target:
                return None
        target = mount.target or f"/run/secrets/{secret_id}"
        from berth.build.expansion import normalize_path

        path = sandbox.secret_file(
            self.env.store,
            data,
            mode=0o400 if mount.mode is None else mount.mode,
            uid=mount.uid or 0,
            gid=mount.gid or 0,
        )
        self._cleanups.append(lambda: sandbox.remove_quietly(path))
        return sandbox.PreparedMount(
            normalize_path(self.applied.workdir or "/", target), "bind", path, ("rbind", "ro")
        )

    def _prepare_bind(self, mount: RunMount, space: StepSpace) -> PreparedMount:
        from berth.build import sandbox

        if not mount.target:
            raise BuildError(f"{self.where}: a bind mount needs a target")
        if mount.from_:
            source_root = self.env.source_root(mount.from_, self.where)
            root = self._mount_source(source_root)
            view = BuildContext(root)
        else:
            view = self.env.require_context(self.where)
        resolved = view.resolve(mount.source or ".")
        entry = view.entry(resolved)
        if entry is None:
            raise BuildError(
                f"{self.where}: bind mount source {mount.source or '.'!r} not found",
                hint="paths are relative to the build context (or the from= stage)",
            )
        host = entry.host_path
        if not mount.from_ and view.ignore and entry.kind == "dir":
            host = _filtered_copy(view, entry.path, os.path.join(space.path, "bind-src"))
        if mount.readonly:
            return sandbox.PreparedMount(self._target(mount), "bind", host, ("rbind", "ro"))
        # read-write: writes land in a throw-away overlay upper dir
        from berth.build.snapshot import StepSpace

        rw = StepSpace.create(self.env.store)
        self._cleanups.append(rw.remove)
        _mount_overlay_over(host, rw)
        return sandbox.PreparedMount(self._target(mount), "bind", rw.dirs.merged, ("rbind", "rw"))


def _mount_overlay_over(lower: str, space: StepSpace) -> None:
    from berth.store.rootfs import mount_overlay

    space.mounted = True  # first, as StepSpace.mount does
    mount_overlay([lower], space.dirs, volatile=True)


def _filtered_copy(context: BuildContext, path: str, dest: str) -> str:
    """The visible part of a context directory (.dockerignore applied), hard-linked or copied."""
    import stat as stat_module

    for entry in context.walk(path):
        rel = entry.path[len(path) :].lstrip("/") if path else entry.path
        target = os.path.join(dest, rel) if rel else dest
        if entry.kind == "dir":
            os.makedirs(target, exist_ok=True)
            os.chmod(target, stat_module.S_IMODE(entry.mode))
        elif entry.kind == "symlink":
            os.symlink(entry.link_target, target)
        elif entry.kind == "file":
            try:
                os.link(entry.host_path, target, follow_symlinks=False)
            except OSError:
                import shutil

                shutil.copy2(entry.host_path, target, follow_symlinks=False)
    return dest


# -- COPY and ADD ----------------------------------------------------------------------------


class _CopyStep(_Step):
    def __init__(self, env: BuildEnv, state: StageState, applied: Applied, where: str) -> None:
        super().__init__(env, state, applied, where)
        instruction = applied.instruction
        assert isinstance(instruction, Copy | Add)
        self.instruction = instruction
        self.is_add = isinstance(instruction, Add)
        self.kind = "add" if self.is_add else "copy"
        self.from_ = instruction.from_ if isinstance(instruction, Copy) else ""
        self.parents = isinstance(instruction, Copy) and instruction.parents
        self._downloads: dict[str, str] = {}  # url -> local file
        self._heredocs: BuildContext | None = None

    # -- inputs ----------------------------------------------------------------------------

    def inputs(self) -> object:
        i = self.instruction
        from berth.build.chmod import octal_chmod, parse_chmod

        parse_chmod(i.chmod)  # reject a bad value before anything runs
        mode = octal_chmod(i.chmod) if i.chmod.isdigit() else None
        sources: list[object] = []
        if self.from_:
            sources.append(
                {"from": self.env.source_root(self.from_, self.where).key, "paths": list(i.sources)}
            )
        else:
            for source in i.sources:
                sources.append(self._source_input(source, mode))
        return {
            "sources": sources,
            "contents": [[c.name, c.data] for c in i.contents],
            "dest": self.applied.dest,
            "chown": i.chown,
            "chmod": i.chmod,
            "parents": self.parents,
            "excludes": list(i.excludes),
            "link": i.link,
            "unpack": getattr(i, "unpack", None),
            "checksum": getattr(i, "checksum", ""),
        }

    def _source_input(self, source: str, mode: int | None) -> object:
        if self.is_add and source.startswith(_GIT_PREFIXES):
            raise BuildError(
                f"{self.where}: ADD from a git repository is not supported by berth",
                hint="clone it in a RUN step, or copy a checkout from the context",
            )
        if self.is_add and source.startswith(_URL_PREFIXES):
            wanted = getattr(self.instruction, "checksum", "")
            if wanted:
                return {"url": source, "checksum": wanted}
            path = self._download(source)
            self.env.recordable = False
            return {"url": source, "content": _file_sha256(path)}
        context = self.env.require_context(self.where)
        excludes = tuple(self.instruction.excludes)
        if self.parents:
            from berth.build.copy_semantics import split_parents

            parent, pattern, _ = split_parents(source)
            matches = resolve_sources(context, [parent])
            return checksum(
                context,
                matches,
                mode=mode,
                include=(pattern,),
                exclude=excludes,
                cache=self.env.digests(),
            )
        matches = resolve_sources(context, [source])
        return checksum(context, matches, mode=mode, exclude=excludes, cache=self.env.digests())

    # -- work ------------------------------------------------------------------------------

    def execute(self, vertex: Vertex) -> StepLayer:
        from berth.build.chmod import parse_chmod
        from berth.build.fsops import Copier, lookup_chown

        i = self.instruction
        space = self._space()
        merged = space.mount(self.env.store, self.state.top_chain)
        with self._root_fd(merged) as root_fd:
            owner: tuple[int, int] | None = (0, 0)
            if i.chown:
                owner = lookup_chown(root_fd, i.chown)
            elif self.from_:
                owner = None
            copier = Copier(root_fd, owner, parse_chmod(i.chmod))
            try:
                for view, matches, include in self._source_groups():
                    self._copy(copier, view, matches, include)
            except OSError as exc:
                raise BuildError(
                    f"{self.where}: {i.name} failed: {exc.strerror or exc}"
                    + (f": {exc.filename}" if exc.filename else "")
                ) from None
            except BuildError as exc:
                if exc.message.startswith(self.where):
                    raise
                raise type(exc)(f"{self.where}: {exc.message}", hint=exc.hint) from None
        return self._commit(space)

    def _source_groups(self) -> Iterator[tuple[BuildContext, list[SourceMatch], tuple[str, ...]]]:
        i = self.instruction
        if self.from_:
            root = self._mount_source(self.env.source_root(self.from_, self.where))
            view = BuildContext(root)
            for source in i.sources:
                yield view, resolve_sources(view, [source]), ()
        else:
            for source in i.sources:
                if self.is_add and source.startswith(_URL_PREFIXES):
                    yield self._url_group(source)
                    continue
                context = self.env.require_context(self.where)
                if self.parents:
                    from berth.build.copy_semantics import split_parents

                    parent, pattern, required = split_parents(source)
                    if required is not None and context.entry(required) is None:
                        resolve_sources(context, [required])  # raises "not found"
                    yield context, resolve_sources(context, [parent]), (pattern,)
                else:
                    yield context, resolve_sources(context, [source]), ()
        if i.contents:
            view = self._heredoc_context()
            yield view, resolve_sources(view, [c.name for c in i.contents]), ()

    def _copy(
        self,
        copier: Any,
        view: BuildContext,
        matches: Sequence[SourceMatch],
        include: tuple[str, ...],
    ) -> None:
        from berth.build.copy_semantics import (
            CopyContents,
            CopyFile,
            MakeDirs,
            UnpackArchive,
            plan_copy,
        )
        from berth.build.fsops import kind_at

        dest = self.applied.dest
        unpack = self._unpacker(view) if self.is_add else None
        steps = plan_copy(
            matches,
            dest,
            lambda p: kind_at(copier.root_fd, p),
            unpack=unpack,
            include=include,
            exclude=tuple(self.instruction.excludes),
            instruction=self.instruction.name,
        )
        slash = dest.endswith(("/", "/."))
        for step in steps:
            if isinstance(step, MakeDirs):
                copier.make_dirs(step.path)
            elif isinstance(step, CopyFile):
                copier.copy_file(view, step.source.entry, step.dest)
            elif isinstance(step, CopyContents):
                copier.copy_tree(
                    view,
                    step.source,
                    step.dest,
                    include=step.include,
                    exclude=step.exclude,
                    take_root_metadata=step.dest in copier.created_dirs and not slash,
                )
            elif isinstance(step, UnpackArchive):
                if self.instruction.chown or self.instruction.chmod:
                    self._unpack_then_copy(copier, view, step.source, step.dest)
                else:
                    _unpack_archive(view, step.source, copier.root_fd, step.dest)

    def _unpack_then_copy(
        self, copier: Any, view: BuildContext, source: SourceMatch, dest: str
    ) -> None:
        """ADD --chown/--chmod of an archive: unpacked aside, then copied with the options."""
        import shutil
        import tempfile

        scratch = tempfile.mkdtemp(prefix="berth-tmp-unpack-", dir=self.env.store.paths.tmp)
        self._cleanups.append(lambda: shutil.rmtree(scratch, ignore_errors=True))
        tree = os.path.join(scratch, "tree")
        os.mkdir(tree)
        fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _unpack_archive(view, source, fd, "/")
        finally:
            os.close(fd)
        unpacked = BuildContext(tree)
        for match in resolve_sources(unpacked, ["."]):
            copier.copy_tree(unpacked, match, dest)

    def _unpacker(self, view: BuildContext) -> Callable[[SourceMatch], bool] | None:
        unpack = getattr(self.instruction, "unpack", None)
        if unpack is False:
            return None

        def is_archive_source(match: SourceMatch) -> bool:
            if view is self._heredocs or match.entry.host_path in self._downloads.values():
                return False
            from berth.build.copy_semantics import is_archive

            with view.open(match.entry) as f:
                return is_archive(f)

        return is_archive_source

    def _url_group(self, url: str) -> tuple[BuildContext, list[SourceMatch], tuple[str, ...]]:
        path = self._download(url)
        view = BuildContext(os.path.dirname(path))
        return view, resolve_sources(view, [os.path.basename(path)]), ()

    def _download(self, url: str) -> str:
        known = self._downloads.get(url)
        if known is not None:
            return known
        if self.env.network == "none":
            raise BuildError(
                f"{self.where}: ADD {url}: the build has no network (--network none)",
                hint="build with --network host, or put the file in the context",
            )
        import shutil
        import tempfile

        from berth.build.copy_semantics import url_filename

        directory = tempfile.mkdtemp(prefix="berth-tmp-add-", dir=self.env.store.paths.tmp)
        self._cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        path = os.path.join(directory, url_filename(url))
        _fetch(url, path, getattr(self.instruction, "checksum", ""), self.where)
        self._downloads[url] = path
        return path

    def _heredoc_context(self) -> BuildContext:
        if self._heredocs is None:
            import shutil
            import tempfile

            directory = tempfile.mkdtemp(prefix="berth-tmp-heredoc-", dir=self.env.store.paths.tmp)
            self._cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
            for content in self.instruction.contents:
                path = os.path.join(directory, content.name)
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(content.data)
                os.chmod(path, 0o644)
            self._heredocs = BuildContext(directory)
        return self._heredocs


def _unpack_archive(view: BuildContext, source: SourceMatch, root_fd: int, dest: str) -> None:
    from berth.store import safepath
    from berth.store.compression import open_decompressed
    from berth.store.unpack import unpack_layer

    dir_fd = safepath.open_dir_in_root(root_fd, dest)
    try:
        with view.open(source.entry) as f:
            stream = open_decompressed(f)  # type: ignore[arg-type]
            unpack_layer(stream, f"/proc/self/fd/{dir_fd}", mode="apply")
    finally:
        os.close(dir_fd)


def _fetch(url: str, path: str, wanted: str, where: str) -> None:
    """Download ``url`` to ``path`` (mode 0600, mtime from Last-Modified), checking ``wanted``."""
    import email.utils
    import hashlib
    import urllib.error
    import urllib.request

    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            with open(path, "wb") as out:
                while chunk := response.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            modified = response.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BuildError(
            f"{where}: ADD {url}: cannot download: {reason}", hint="check the URL and the network"
        ) from None
    if wanted:
        algorithm, _, hex_digest = wanted.partition(":")
        if algorithm != "sha256" or hex_digest != h.hexdigest():
            raise BuildError(
                f"{where}: ADD {url}: digest mismatch: the file has sha256:{h.hexdigest()}, "
                f"--checksum says {wanted}",
                hint="update --checksum, or check that the URL serves the expected file",
            )
    os.chmod(path, 0o600)
    if modified:
        with suppress(TypeError, ValueError):
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))


def _file_sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class _DirFd:
    """``with _DirFd(path) as fd``: a directory opened for ``*at`` calls, closed at the end."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> int:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
