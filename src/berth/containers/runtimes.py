"""The OCI runtime a container runs with: berth's own, in-process (the default, and the fast
one), or runc, crun or any runc-compatible binary (``--runtime runc|crun|PATH``) driven by its
command line. Each store keeps each runtime's state in its own dir under the store's run dir.
"""

from __future__ import annotations

import os

from berth.errors import BerthError, HostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from berth.store.paths import StorePaths

    class ContainerRuntime(Protocol):
        name: str
        # whether ``run`` reads the bundle's config.json (else the caller may write it in
        # ``while_setting_up``, off the critical path)
        reads_bundle: bool

        def run(
            self,
            container_id: str,
            bundle: str,
            spec: dict[str, Any],
            *,
            stdio: tuple[int, int, int],
            console_socket: str | None,
            while_setting_up: Callable[[int], None] | None = None,
        ) -> int:
            """Create and start the container (``spec``: the bundle's config.json, written
            already if ``reads_bundle``); its init's pid. ``while_setting_up(pid)`` is called
            once the init runs, while it sets the container up if the runtime can (else once
            it is created), and before any hook runs."""

        def kill(self, container_id: str, signum: int) -> None: ...

        def delete(self, container_id: str) -> bool:
            """Delete the container (killing what is left of it); whether the kernel's OOM
            killer killed a process of it, if the runtime can tell (else False)."""

        def pause(self, container_id: str) -> None: ...

        def resume(self, container_id: str) -> None: ...

        def ps(self, container_id: str) -> list[int]: ...

        def update(self, container_id: str, resources: dict[str, Any]) -> None: ...

        def stats(self, container_id: str) -> dict[str, Any]: ...

        def exec(
            self,
            container_id: str,
            process: dict[str, Any],
            *,
            stdio: tuple[int, int, int],
            console_socket: str | None,
            detached: bool,
        ) -> int: ...


def runtime_for(paths: StorePaths, name: str) -> ContainerRuntime:
    if name in ("", "berth"):
        return BerthRuntime(os.path.join(paths.run_dir, "runtime-berth"))
    import shutil

    from berth.containers.external_runtime import ExternalRuntime

    binary = shutil.which(name) if "/" not in name else name
    if binary is None or not os.access(binary, os.X_OK):
        raise HostError(
            f"unknown or invalid runtime name: {name}",
            hint="use berth (the default), runc, crun, or the path of a runtime",
        )
    label = os.path.basename(binary)
    return ExternalRuntime(binary, os.path.join(paths.run_dir, f"runtime-{label}"))


class BerthRuntime:
    """berth's own runtime, called in this process (no interpreter is started)."""

    name = "berth"
    reads_bundle = False  # it is handed the spec

    def __init__(self, state_root: str) -> None:
        from berth.runtime.container import Runtime

        # the store's parent cgroup stays between containers (`berth system reset` takes
        # it away): not made and removed again for each one
        self.runtime = Runtime(state_root, keep_cgroup_parents=True)

    def run(
        self,
        container_id: str,
        bundle: str,
        spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        console_socket: str | None,
        while_setting_up: Callable[[int], None] | None = None,
    ) -> int:
        record = self.runtime.create(
            container_id, bundle, stdio=stdio, console_socket=console_socket,
            while_setting_up=while_setting_up, start=True, spec=spec,
        )
        return int(record.pid)

    def kill(self, container_id: str, signum: int) -> None:
        self.runtime.kill(container_id, signum)

    def delete(self, container_id: str) -> bool:
        try:
            return self.runtime.delete(container_id, force=True)
        except BerthError as exc:
            if "does not exist" not in str(exc) and "No such" not in str(exc):
                raise
        return False

    def pause(self, container_id: str) -> None:
        self.runtime.pause(container_id)

    def resume(self, container_id: str) -> None:
        self.runtime.resume(container_id)

    def ps(self, container_id: str) -> list[int]:
        return list(self.runtime.ps(container_id))

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self.runtime.update(container_id, resources)

    def stats(self, container_id: str) -> dict[str, Any]:
        return dict(self.runtime.stats(container_id))

    def exec(
        self,
        container_id: str,
        process: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        console_socket: str | None,
        detached: bool,
    ) -> int:
        if detached:
            return int(
                self.runtime.exec_detached(
                    container_id, process, stdio=stdio, console_socket=console_socket
                )
            )
        return int(
            self.runtime.exec(container_id, process, stdio=stdio, console_socket=console_socket)
        )


def signal_number(name: str | int | None, default: int = 15) -> int:
    """``SIGTERM``, ``TERM``, ``15`` -> 15 (Docker's --stop-signal / kill -s forms); the
    default is SIGTERM."""
    import signal

    if name is None or name == "":
        return default
    if isinstance(name, int):
        return name
    text = str(name).upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        if text.startswith("SIGRTMIN"):
            offset = text[len("SIGRTMIN") :]
            return int(signal.SIGRTMIN) + (int(offset) if offset else 0)
        from berth.errors import InvalidArgument

        raise InvalidArgument(f"invalid signal: {name}") from None
