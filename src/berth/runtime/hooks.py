"""OCI hooks: run each hook of a stage with the container's state on its stdin.

Which process runs a stage decides its namespaces (the spec's rule): ``prestart``,
``createRuntime``, ``poststart`` and ``poststop`` are run by the runtime (runtime namespace);
``createContainer`` (before ``pivot_root``) and ``startContainer`` (after it) by the
container's init (container namespaces). A hook that exits non-zero or outlives its
``timeout`` fails its stage; the caller decides whether that fails the container (it does for
every stage but ``poststart`` and ``poststop``, where it is a warning).
"""

from __future__ import annotations

import os
import select
import time

from berth import jsonio
from berth.errors import ContainerError
from berth.runtime import signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_OUTPUT_LIMIT = 4096


def hook_state(
    container_id: str, pid: int, status: str, bundle: str, annotations: dict[str, str],
    oci_version: str,
) -> bytes:
    """The state document a hook reads on stdin."""
    return jsonio.dumps(
        {
            "ociVersion": oci_version,
            "id": container_id,
            "pid": pid,
            "status": status,
            "bundle": bundle,
            "annotations": annotations,
        }
    ).encode()


def run_hooks(stage: str, hooks: list[dict[str, Any]], state: bytes) -> None:
    for hook in hooks:
        run_hook(stage, hook, state)


def _wait_status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_hook(stage: str, hook: dict[str, Any], state: bytes) -> None:
    path = hook["path"]
    args = list(hook.get("args") or [path])
    env = {}
    for item in hook.get("env") or []:
        name, _, value = item.partition("=")
        env[name] = value
    timeout = hook.get("timeout")
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            path,
            args,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, out_w, 2),
            ],
            setsigdef=signals.all_signals() - {signals.SIGKILL, signals.SIGSTOP},
            setsigmask=set(),
        )
    except OSError as exc:
        for fd in (stdin_r, stdin_w, out_r, out_w):
            os.close(fd)
        raise ContainerError(
            f"{stage} hook {path} cannot be run: {exc.strerror}",
            hint="check the hook's path in config.json",
        ) from None
    os.close(stdin_r)
    os.close(out_w)
    output = b""
    try:
        try:
            os.write(stdin_w, state)
        except BrokenPipeError:
            pass  # the hook does not read its stdin
        os.close(stdin_w)
        stdin_w = -1
        output, timed_out = _collect(pid, out_r, timeout)
    finally:
        if stdin_w >= 0:
            os.close(stdin_w)
        os.close(out_r)
    if timed_out:
        os.kill(pid, signals.SIGKILL)
        _wait_status(pid)
        raise ContainerError(f"{stage} hook {path} timed out after {timeout} s")
    code = _wait_status(pid)
    if code != 0:
        text = output.decode(errors="replace").strip()
        detail = f": {text}" if text else ""
        how = f"exit status {code}" if code > 0 else f"killed by signal {-code}"
        raise ContainerError(f"{stage} hook {path} failed ({how}){detail}")


def _collect(pid: int, out_r: int, timeout: int | None) -> tuple[bytes, bool]:
    """Read the hook's output until it closes it and exits, or until the timeout."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(out_r, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        output = bytearray()
        deadline = None if timeout is None else _now() + timeout
        exited = False
        pipe_open = True
        while not exited or pipe_open:
            wait_ms = None if deadline is None else max(0, int((deadline - _now()) * 1000))
            events = poller.poll(wait_ms)
            if not events and deadline is not None and _now() >= deadline:
                return bytes(output), True
            for fd, _ in events:
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                elif fd == out_r:
                    chunk = os.read(out_r, 65536)
                    if not chunk:
                        pipe_open = False
                        poller.unregister(out_r)
                    elif len(output) < _OUTPUT_LIMIT:
                        output += chunk[: _OUTPUT_LIMIT - len(output)]
            if exited and pipe_open:
                # the hook exited but something it started keeps the pipe: stop reading
                ready = poller.poll(0)
                if not ready:
                    break
        return bytes(output), False
    finally:
        os.close(pidfd)


def _now() -> float:
    return time.monotonic()
