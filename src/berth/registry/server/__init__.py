"""berth's OCI registry server (distribution spec v1.1) and its garbage collector.

Public API::

    from berth.registry.server import ServerConfig, make_app, serve
    from berth.registry.server.gc import collect

    serve(ServerConfig(addr="127.0.0.1:5000", storage="/srv/registry"), ready=print)

:func:`serve` blocks until SIGTERM or SIGINT. With ``workers > 1`` it forks that many processes,
each with its own listening socket on the same port (``SO_REUSEPORT``, so the kernel spreads
connections), all sharing the storage directory, which is safe by construction (see
:mod:`.storage` and :mod:`.uploads`); the parent restarts a worker that dies and stops them all
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

from aiohttp import web

from berth.errors import HostError
from berth.registry.server.app import AccessLogger, make_app
from berth.registry.server.auth import load_or_create_key
from berth.registry.server.config import ServerConfig
from berth.registry.server.storage import RegistryStorage
from berth.registry.server.uploads import UploadStore

__all__ = ["ServerConfig", "make_app", "prepare_storage", "serve", "ssl_context"]

_SHUTDOWN_SECONDS = 5.0
_WORKER_START_SECONDS = 30.0


def prepare_storage(config: ServerConfig) -> None:
    """Create the storage layout and repair what a killed server left behind.

    Cuts uncommitted bytes off unfinished uploads, purges expired ones and removes old temp
    files; creates the token key when bearer tokens are on (before any worker starts).
    """
    storage = RegistryStorage(config.storage)
    storage.initialize()
    storage.clean_tmp(older_than=time.time() - 60)
    UploadStore(storage).recover(config.upload_expiry_seconds)
    if config.token:
        load_or_create_key(config.token_key_path)


def serve(config: ServerConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; ``ready`` gets the base URL (``http://127.0.0.1:5000``)."""
    config.validate()
    prepare_storage(config)
    if config.workers <= 1:
        sock = _listening_socket(config, reuse_port=False)
        asyncio.run(_serve_socket(config, sock, ready))
    else:
        _serve_workers(config, ready)


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def _bind(config: ServerConfig, *, reuse_port: bool, port: int | None = None) -> socket.socket:
    host, configured_port = config.host_port
    infos = socket.getaddrinfo(
        host, port if port is not None else configured_port,
        type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE,
    )
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise HostError(f"cannot listen on {config.addr}: {exc.strerror}",
                        hint="pick another --addr, or stop what listens there") from None
    return sock


def _listening_socket(
    config: ServerConfig, *, reuse_port: bool, port: int | None = None
) -> socket.socket:
    sock = _bind(config, reuse_port=reuse_port, port=port)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _base_url(config: ServerConfig, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{config.scheme}://{host}:{port}"


async def _serve_socket(
    config: ServerConfig, sock: socket.socket, ready: Callable[[str], None] | None
) -> None:
    app = make_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLogger,
        access_log=_access_logger() if config.access_log else None,
        shutdown_timeout=_SHUTDOWN_SECONDS,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    try:
        site = web.SockSite(runner, sock, ssl_context=ssl_context(config))
        await site.start()
        if ready is not None:
            ready(_base_url(config, sock))
        await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()


def _access_logger() -> logging.Logger:
    return logging.getLogger("berth.registry.access")


def _serve_workers(config: ServerConfig, ready: Callable[[str], None] | None) -> None:
    """Fork ``config.workers`` processes sharing one port through SO_REUSEPORT."""
    reservation = _bind(config, reuse_port=True)  # holds the port (and learns it, for :0)
    port = reservation.getsockname()[1]
    url = _base_url(config, reservation)
    ready_read, ready_write = os.pipe()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        # SIGTERM and SIGINT stay blocked across the fork: a signal that reached the child
        # before it reset its handlers would run the parent's ``stop`` there and be lost.
        signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            pid = os.fork()
            if pid == 0:
                _run_worker(config, port, ready_write, signals)
            children[pid] = number
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for number in range(config.workers):
            spawn(number)
        _await_workers(ready_read, config.workers)
        reservation.close()
        if ready is not None:
            ready(url)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            worker = children.pop(pid) if pid in children else None
            if worker is not None and not stopping:
                print(f"berth registry: worker {pid} exited ({status:#x}); starting another",
                      file=sys.stderr, flush=True)
                time.sleep(0.5)
                if not stopping:  # a SIGTERM during the pause: start nothing new
                    spawn(worker)
    finally:
        stop(signal.SIGTERM, None)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for fd in (ready_read, ready_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        reservation.close()


def _run_worker(
    config: ServerConfig, port: int, ready_write: int, blocked: set[signal.Signals]
) -> None:
    """The body of a forked worker process; never returns."""
    code = 0
    try:
        for signum in blocked:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)  # a pending SIGTERM ends it here
        sock = _listening_socket(config, reuse_port=True, port=port)

        def announce(_url: str) -> None:
            os.write(ready_write, b".")

        asyncio.run(_serve_socket(config, sock, announce))
    except BaseException as exc:  # a worker reports and exits, whatever happened
        print(f"berth registry: worker {os.getpid()} failed: {exc!r}", file=sys.stderr,
              flush=True)
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _await_workers(ready_read: int, count: int) -> None:
    deadline = time.monotonic() + _WORKER_START_SECONDS
    seen = 0
    os.set_blocking(ready_read, False)
    while seen < count:
        if time.monotonic() > deadline:
            raise HostError(f"only {seen} of {count} registry workers started")
        try:
            seen += len(os.read(ready_read, count - seen))
        except BlockingIOError:
            time.sleep(0.01)
