"""A runc-compatible OCI runtime binary (runc, crun, a path) driven by its command line:
``--runtime runc|crun|PATH``. berth's own runtime runs in-process (:mod:`.runtimes`)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from berth.errors import CommandNotFound, CommandNotInvokable, ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class ExternalRuntime:
    """A runc-compatible binary driven by its command line."""

    reads_bundle = True

    def __init__(self, binary: str, state_root: str) -> None:
        self.binary = binary
        self.name = os.path.basename(binary)
        self.root = state_root

    def _run(
        self, *args: str, stdio: tuple[int, int, int] | None = None, what: str = ""
    ) -> subprocess.CompletedProcess[bytes]:
        fd, log = tempfile.mkstemp(prefix="berth-runtime-log-")
        os.close(fd)
        try:
            command = [
                self.binary,
                "--root",
                self.root,
                "--log",
                log,
                "--log-format",
                "json",
                *args,
            ]
            if stdio is not None:
                result = subprocess.run(
                    command, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], check=False
                )
            else:
                result = subprocess.run(command, capture_output=True, check=False)
            if result.returncode != 0:
                raise _runtime_error(self.name, what or args[0], _last_error(log))
            return result
        finally:
            os.unlink(log)

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
        """``create``, then ``start`` (the runtime reads the bundle's config.json, not
        ``spec``)."""
        del spec
        pid_file = os.path.join(bundle, "init.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        self._run(*args, container_id, stdio=stdio, what="create")
        with open(pid_file) as f:
            pid = int(f.read().strip())
        if while_setting_up is not None:  # the runtime's command has finished by now
            while_setting_up(pid)
        self._run("start", container_id)
        return pid

    def kill(self, container_id: str, signum: int) -> None:
        self._run("kill", container_id, str(signum))

    def delete(self, container_id: str) -> bool:
        try:
            self._run("delete", "--force", container_id)
        except ContainerError as exc:
            if "does not exist" not in str(exc) and "not found" not in str(exc):
                raise
        return False  # (runc and crun do not say)

    def pause(self, container_id: str) -> None:
        self._run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def ps(self, container_id: str) -> list[int]:
        out = self._run("ps", "--format", "json", container_id).stdout
        return [int(p) for p in json.loads(out or b"[]") or []]

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", prefix="berth-resources-", suffix=".json") as f:
            json.dump(resources, f)
            f.flush()
            self._run("update", "--resources", f.name, container_id)

    def stats(self, container_id: str) -> dict[str, Any]:
        out = self._run("events", "--stats", container_id).stdout
        data = json.loads(out or b"{}")
        return dict(data.get("data") or {})

    def exec(
        self,
        container_id: str,
        process: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        console_socket: str | None,
        detached: bool,
    ) -> int:
        with tempfile.NamedTemporaryFile(
            "w", prefix="berth-process-", suffix=".json", delete=False
        ) as f:
            json.dump(process, f)
        try:
            args = ["exec", "--process", f.name]
            if console_socket:
                args += ["--console-socket", console_socket]
            if detached:
                pid_file = f.name + ".pid"
                self._run(
                    *args,
                    "--detach",
                    "--pid-file",
                    pid_file,
                    container_id,
                    stdio=stdio,
                    what="exec",
                )
                with open(pid_file) as p:
                    pid = int(p.read().strip())
                os.unlink(pid_file)
                return pid
            command = [self.binary, "--root", self.root, *args, container_id]
            result = subprocess.run(
                command, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], check=False
            )
            return result.returncode
        finally:
            os.unlink(f.name)


def _last_error(log: str) -> str:
    message = ""
    try:
        with open(log) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    except OSError:
        pass
    return message


def _runtime_error(name: str, what: str, message: str) -> ContainerError:
    text = f"{name} {what} failed: {message or 'unknown error'}"
    if "executable file not found" in message or "no such file or directory" in message:
        return CommandNotFound(text)
    if "permission denied" in message:
        return CommandNotInvokable(text)
    return ContainerError(text)
