"""Progress events, their throttling, and how the CLI renderer draws them."""

from __future__ import annotations

import io
import threading

from berth.cli.progress import ProgressRenderer
from berth.registry.client import progress as p
from berth.registry.client.progress import ProgressEvent, Reporter, collecting_sink, layer_id


def test_event_json_is_the_engine_api_shape() -> None:
    assert ProgressEvent("", "Digest: sha256:x").to_json() == {"status": "Digest: sha256:x"}
    assert ProgressEvent("abc", p.PULL_COMPLETE).to_json() == {
        "status": "Pull complete",
        "id": "abc",
        "progressDetail": {},
    }
    assert ProgressEvent("abc", p.DOWNLOADING, 10, 100).to_json() == {
        "status": "Downloading",
        "id": "abc",
        "progressDetail": {"current": 10, "total": 100},
    }


def test_plain_lines_and_done_states() -> None:
    assert ProgressEvent("3f4d90098f5b", p.PULL_COMPLETE).plain() == "3f4d90098f5b: Pull complete"
    assert ProgressEvent("", "Status: x").plain() == "Status: x"
    assert ProgressEvent("a", "Mounted from library/busybox").is_done
    assert ProgressEvent("a", p.ALREADY_EXISTS).is_done
    assert not ProgressEvent("a", p.DOWNLOADING, 1, 2).is_done


def test_layer_id_is_docker_short_form() -> None:
    assert layer_id("sha256:3f4d90098f5b5a6f6a76e9d217da85aa39b2081e30fa1f7d287138d6e7bf0ad7") == (
        "3f4d90098f5b"
    )


def test_reporter_thins_byte_counts_but_keeps_status_changes_and_the_last_count() -> None:
    events, sink = collecting_sink()
    reporter = Reporter(sink, interval=3600)
    reporter.status("a", p.PULLING_FS_LAYER)
    for n in range(1, 101):
        reporter.bytes("a", p.DOWNLOADING, n, 100)
    reporter.status("a", p.PULL_COMPLETE)
    assert [(e.status, e.current) for e in events] == [
        (p.PULLING_FS_LAYER, None),
        (p.DOWNLOADING, 1),
        (p.DOWNLOADING, 100),
        (p.PULL_COMPLETE, None),
    ]


def test_reporter_serialises_calls_from_threads() -> None:
    inside = 0
    overlaps = 0
    lock = threading.Lock()

    def sink(event: ProgressEvent) -> None:
        nonlocal inside, overlaps
        with lock:
            inside += 1
            if inside > 1:
                overlaps += 1
        for _ in range(1000):
            pass
        with lock:
            inside -= 1

    reporter = Reporter(sink)
    threads = [
        threading.Thread(target=lambda: [reporter.message("x") for _ in range(200)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == 0


def test_reporter_without_sink_does_nothing() -> None:
    reporter = Reporter(None)
    assert not reporter.enabled
    reporter.bytes("a", p.DOWNLOADING, 1, 2)
    reporter.message("x")


def feed(renderer: ProgressRenderer) -> None:
    with renderer:
        renderer(ProgressEvent("", "latest: Pulling from library/busybox"))
        renderer(ProgressEvent("abc", p.PULLING_FS_LAYER))
        renderer(ProgressEvent("abc", p.DOWNLOADING, 10, 100))
        renderer(ProgressEvent("abc", p.DOWNLOADING, 100, 100))
        renderer(ProgressEvent("abc", p.PULL_COMPLETE))
        renderer(ProgressEvent("", "Status: Downloaded newer image for busybox:latest"))


def test_renderer_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    feed(ProgressRenderer(stream=out, tty=False))
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox",
        "abc: Pulling fs layer",
        "abc: Pull complete",
        "Status: Downloaded newer image for busybox:latest",
    ]


def test_renderer_quiet_prints_nothing() -> None:
    out = io.StringIO()
    feed(ProgressRenderer(stream=out, tty=True, quiet=True))
    assert out.getvalue() == ""


def test_renderer_draws_bars_on_a_terminal() -> None:
    out = io.StringIO()
    feed(ProgressRenderer(stream=out, tty=True))
    text = out.getvalue()
    assert "\x1b[" in text  # terminal control sequences: rich drew it
    assert "latest: Pulling from library/busybox" in text
    assert "abc:" in text and "Pull complete" in text
