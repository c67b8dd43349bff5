"""``berth run -t`` in the foreground: the container gets a pty, this terminal goes raw.

The runtime's init sends the pty master over a console socket (runc's protocol); here it is
proxied to this process's terminal: keystrokes (Ctrl-C included, which the container's
foreground process gets through its tty as SIGINT, as with Docker) go in, output comes out and
into the container's log, and the window size follows SIGWINCH.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.engine.containers import Container, ContainerCollection


def run_foreground_tty(
    collection: ContainerCollection, container: Container, *, stdin_open: bool
) -> int:
    from berth.runtime import console

    record = container.record
    launcher = collection.launcher
    run_dir = collection.records.run_dir(record.id)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "console.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    writer = _log_writer(collection, record)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    proxy = None
    try:
        collection.records.update_extra(record.id, Supervised=False)
        started = launcher.start(record.id, stdio=(devnull, devnull, devnull), console_socket=path)
        connection, _ = listener.accept()
        with connection:
            master, _name = console.receive_fd(connection)
        proxy = console.TtyProxy(master, 0 if stdin_open else devnull, 1)
        proxy.start()
        previous = signal.signal(signal.SIGWINCH, lambda *_: proxy.resize() if proxy else None)
        try:
            code = _pump(started.pid, proxy, stdin_open, writer)
        finally:
            signal.signal(signal.SIGWINCH, previous)
    finally:
        if proxy is not None:
            proxy.stop()
            os.close(proxy.master)
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(devnull)
        if writer is not None:
            writer.close()
    launcher.finish(record.id, code)
    return code


def _pump(pid: int, proxy: Any, stdin_open: bool, writer: Any) -> int:
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(proxy.master, select.POLLIN)
    reading_stdin = stdin_open
    if reading_stdin:
        poller.register(proxy.stdin, select.POLLIN)
    master_open = True
    try:
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            exited = False
            for fd, mask in events:
                if fd == proxy.master:
                    if not _copy_out(proxy, writer):
                        poller.unregister(proxy.master)
                        master_open = False
                elif fd == proxy.stdin and reading_stdin:
                    if mask & (select.POLLHUP | select.POLLERR) or not proxy.from_stdin():
                        poller.unregister(proxy.stdin)
                        reading_stdin = False
                elif fd == pidfd:
                    exited = True
            if exited:
                while master_open and _readable(proxy.master) and _copy_out(proxy, writer):
                    pass
                break
    finally:
        os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _copy_out(proxy: Any, writer: Any) -> bool:
    try:
        data = os.read(proxy.master, 65536)
    except OSError:
        return False
    if not data:
        return False
    view = memoryview(data)
    while view:
        view = view[os.write(proxy.stdout, view) :]
    if writer is not None:
        writer.write("stdout", data)
    return True


def _readable(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _log_writer(collection: ContainerCollection, record: Any) -> Any:
    if record.host_config.get("AutoRemove"):
        return None
    from berth.containers.logs import writer_for

    return writer_for(collection.records.log_path(record.id), record.host_config.get("LogConfig"))
