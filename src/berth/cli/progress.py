"""Drawing pull and push progress: one bar per layer on a terminal, plain lines otherwise.

``ProgressRenderer`` is a :data:`berth.registry.client.progress.ProgressSink`. On a terminal it
draws with rich (imported only then): a line per layer with its status and, while bytes move, a
bar with the byte count. Not on a terminal it prints each status change once
(``3f4d90098f5b: Pull complete``) and no byte counts, as docker does in a log. ``quiet`` prints
nothing at all.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from berth.registry.client.progress import BYTE_STATUSES, ProgressEvent

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class ProgressRenderer:
    def __init__(
        self, *, stream: TextIO | None = None, quiet: bool = False, tty: bool | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        if self.tty:
            self._draw(event)
        else:
            self._print(event)

    # ------------------------------------------------------------------ plain

    def _print(self, event: ProgressEvent) -> None:
        if event.current is not None:
            return  # byte counts are for terminals; a log gets the status changes
        self.stream.write(event.plain() + "\n")
        self.stream.flush()

    # ------------------------------------------------------------------ terminal

    def _start(self) -> Progress:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
        from rich.text import Text

        class WhileMoving(BarColumn):
            """A bar only while bytes move (Downloading, Extracting, Pushing)."""

            def render(self, task: Any) -> Any:
                return super().render(task) if task.fields.get("moving") else Text("")

        class BytesWhileMoving(DownloadColumn):
            def render(self, task: Any) -> Any:
                return super().render(task) if task.fields.get("moving") else Text("")

        console = Console(file=self.stream, force_terminal=True)
        progress = Progress(
            TextColumn("{task.fields[ident]}"),
            TextColumn("{task.description}"),
            WhileMoving(bar_width=40),
            BytesWhileMoving(binary_units=False),
            console=console,
            transient=False,
            auto_refresh=True,
            refresh_per_second=8,
        )
        progress.start()
        self._progress = progress
        return progress

    def _draw(self, event: ProgressEvent) -> None:
        progress = self._progress or self._start()
        if not event.id:
            progress.console.print(event.status, highlight=False)
            return
        moving = event.status in BYTE_STATUSES and event.current is not None
        task = self._tasks.get(event.id)
        if task is None:
            task = progress.add_task(
                event.status, total=None, ident=f"{event.id}:", moving=moving
            )
            self._tasks[event.id] = task
        if moving:
            progress.update(
                task,
                description=event.status,
                completed=event.current,
                total=event.total,
                moving=True,
            )
        else:
            progress.update(task, description=event.status, moving=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
