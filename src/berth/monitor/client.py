"""How berth commands talk to their store's supervisor.

    client = SupervisorClient.ensure(paths)   # starts the supervisor when none runs
    client.start(container_id)
    code = client.wait(container_id)

Every call is one connection and one request (see :mod:`.protocol`); a failure comes back as
the :mod:`berth.errors` class the supervisor raised, with its message. When the supervisor
goes away under a call (it was killed, or exited idle at that moment), the call starts a new
one and asks again: every operation is safe to repeat.

Importing this module is cheap (no asyncio, no store): ``berth run -d`` pays for it.
"""

from __future__ import annotations

import socket
from typing import Any

from berth.errors import HostError
from berth.monitor import protocol
from berth.monitor.paths import MonitorPaths
from berth.monitor.spawn import anchor_alive, can_connect, start_supervisor
from berth.store.paths import StorePaths

RETRIES = 5


class SupervisorClient:
    def __init__(self, paths: StorePaths) -> None:
        self.store = paths
        self.paths = MonitorPaths(paths.run_dir)

    @classmethod
    def ensure(cls, paths: StorePaths) -> SupervisorClient:
        """A client of the store's supervisor, which is started if it does not run."""
        client = cls(paths)
        if not can_connect(client.paths.socket):
            start_supervisor(paths)
        return client

    @staticmethod
    def running(paths: StorePaths) -> bool:
        """Whether a supervisor looks after the store's containers now, without starting
        one. True too while its anchor restarts it: the exits of its containers are kept
        and will be recorded."""
        monitor_paths = MonitorPaths(paths.run_dir)
        return can_connect(monitor_paths.socket) or anchor_alive(monitor_paths)

    # ------------------------------------------------------------------ operations

    def ping(self) -> dict[str, Any]:
        return self._call({"op": "ping"})

    def start(self, container_id: str) -> None:
        """Start a created or exited container detached; returns once it runs."""
        self._call({"op": "start", "id": container_id})

    def stop(
        self, container_id: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        """Stop it (the stop signal, then SIGKILL after ``timeout`` s); returns once it has
        exited. No restart policy restarts it after this."""
        self._call({"op": "stop", "id": container_id, "timeout": timeout, "signal": signal})

    def kill(self, container_id: str, signal: str) -> None:
        self._call({"op": "kill", "id": container_id, "signal": signal})

    def restart(self, container_id: str, timeout: int | None = None) -> None:
        self._call({"op": "restart", "id": container_id, "timeout": timeout})

    def wait(self, container_id: str, condition: str = "not-running") -> int:
        """``docker wait``: the exit code once ``condition`` (not-running, next-exit,
        removed) is met."""
        reply = self._call({"op": "wait", "id": container_id, "condition": condition})
        return int(reply.get("exit_code") or 0)

    def forget(self, container_id: str) -> None:
        """The container is being removed: stop supervising it (killing it if it runs)."""
        self._call({"op": "forget", "id": container_id})

    def boot(self) -> dict[str, Any]:
        """Start what restart policies say should run after a reboot."""
        return self._call({"op": "boot"})

    def shutdown(self, *, force: bool = False) -> None:
        """Stop the supervisor and its anchor. Refused while containers run, unless
        ``force``: they keep running, unsupervised, until a new supervisor adopts them."""
        if can_connect(self.paths.socket):
            self._call({"op": "shutdown", "force": force}, retry=False)

    def attach(
        self,
        container_id: str,
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
        detach_keys: str = "ctrl-p,ctrl-q",
        logs: bool = False,
        sig_proxy: bool = True,
        start: bool = False,
    ) -> int:
        """Connect this process's stdio to the container's until it exits (its exit code)
        or the user types the detach keys (0). ``start``: start it too (``start -a``), in
        one step with the attachment, so that none of its output is missed."""
        from berth.monitor.attach import parse_detach_keys, proxy

        keys = parse_detach_keys(detach_keys)
        sock, reply, rest = self._open(
            {
                "op": "attach",
                "id": container_id,
                "stdin": stdin,
                "stdout": stdout,
                "stderr": stderr,
                "logs": logs,
                "start": start,
            }
        )
        with sock:
            if not reply.get("ok"):
                protocol.raise_error(reply)
            return proxy(
                sock,
                rest,
                stdin=stdin,
                tty=tty,
                container_tty=bool(reply.get("tty")),
                detach_keys=keys,
                sig_proxy=sig_proxy,
            )

    # ------------------------------------------------------------------ plumbing

    def _call(self, request: dict[str, Any], *, retry: bool = True) -> dict[str, Any]:
        sock, reply, _ = self._open(request, retry=retry)
        sock.close()
        if not reply.get("ok"):
            protocol.raise_error(reply)
        return reply

    def _open(
        self, request: dict[str, Any], *, retry: bool = True
    ) -> tuple[socket.socket, dict[str, Any], bytes]:
        """Send ``request``; the socket, the reply and whatever came after the reply."""
        data = protocol.encode(request)
        for attempt in range(RETRIES if retry else 1):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.paths.socket)
                sock.sendall(data)
                line, rest = _read_line(sock)
            except OSError:
                sock.close()
                if attempt + 1 >= (RETRIES if retry else 1):
                    break
                start_supervisor(self.store)
                continue
            return sock, protocol.decode(line), rest
        raise HostError(
            f"lost the supervisor of {self.store.root} while it handled {request['op']}",
            hint=f"see {self.paths.log}",
        )


def _read_line(sock: socket.socket) -> tuple[bytes, bytes]:
    buffer = b""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the supervisor closed the connection")
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line, rest
