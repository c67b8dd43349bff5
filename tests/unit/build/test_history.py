"""``created_by`` and ``empty_layer`` exactly as BuildKit writes them into the image history."""

from __future__ import annotations

import pytest

from berth.build.expansion import StageScope, resolve_global_args
from berth.build.history import (
    HISTORY_COMMENT,
    created_by,
    go_duration,
    go_quote,
    go_quote_list,
    history_entry,
    run_command_string,
)
from berth.build.instructions import ArgDefinition, parse_dockerfile
from berth.oci.manifest import Platform


def histories(text: str, build_args: dict[str, str] | None = None) -> list[tuple[str, bool] | None]:
    df = parse_dockerfile(text)
    build_args = build_args or {}
    globals_ = resolve_global_args(df, build_args, target_platform=Platform("linux", "amd64"))
    scope = StageScope.for_stage(df, globals_, build_args)
    out: list[tuple[str, bool] | None] = []
    for instruction in df.stages[-1].instructions:
        entry = history_entry(scope.apply(instruction))
        out.append(None if entry is None else (entry.created_by, entry.empty_layer))
    return out


def test_the_seed_web_app() -> None:
    text = (
        "FROM python:3.9\nRUN pip install flask\nCOPY . /app\nWORKDIR /app\nEXPOSE 5000\n"
        'CMD ["python", "app.py"]\n'
    )
    assert histories(text) == [
        ("RUN /bin/sh -c pip install flask # buildkit", False),
        ("COPY . /app # buildkit", False),
        ("WORKDIR /app", False),
        ("EXPOSE [5000/tcp]", True),
        ('CMD ["python" "app.py"]', True),
    ]


def test_metadata_instructions() -> None:
    text = (
        'FROM a\nENV A=b C="d e"\nLABEL k=v x=y\nARG X=1 Y\nUSER app\nSTOPSIGNAL SIGINT\n'
        'MAINTAINER Me <me@x>\nVOLUME /data /cache\nSHELL ["/bin/bash", "-c"]\n'
        'CMD echo hi\nENTRYPOINT ["/e"]\nHEALTHCHECK NONE\n'
        "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/\n"
        "EXPOSE 53/udp 80\nWORKDIR /\nONBUILD RUN x\n"
    )
    assert histories(text) == [
        ("ENV A=b C=d e", True),
        ("LABEL k=v x=y", True),
        ("ARG X=1 Y", True),
        ("USER app", True),
        ("STOPSIGNAL SIGINT", True),
        ("MAINTAINER Me <me@x>", True),
        ("VOLUME [/data /cache]", True),
        ("SHELL [/bin/bash -c]", True),
        ('CMD ["/bin/bash" "-c" "echo hi"]', True),
        ('ENTRYPOINT ["/e"]', True),
        (
            "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s "
            "Retries:0}",
            True,
        ),
        (
            "HEALTHCHECK {Test:[CMD-SHELL curl -f http://x/] Interval:1m30s Timeout:500ms "
            "StartPeriod:0s StartInterval:0s Retries:3}",
            True,
        ),
        ("EXPOSE [53/udp 80/tcp]", True),
        ("WORKDIR /", True),
        None,
    ]


def test_run_lists_declared_args_with_values() -> None:
    text = "ARG G=meta\nFROM a\nRUN one\nARG A=1\nARG G\nARG NOVAL\nRUN two\nENV A=env\nRUN three\n"
    assert histories(text, {"A": "cli"}) == [
        ("RUN /bin/sh -c one # buildkit", False),
        ("ARG A=cli", True),
        ("ARG G=meta", True),
        ("ARG NOVAL", True),
        ("RUN |3 A=cli G=meta NOVAL= /bin/sh -c two # buildkit", False),
        ("ENV A=env", True),
        ("RUN |3 A=env G=meta NOVAL= /bin/sh -c three # buildkit", False),
    ]


def test_run_exec_form_and_heredocs() -> None:
    text = (
        'FROM a\nRUN ["/bin/echo", "a b"]\nRUN <<EOF\necho hi\nEOF\n'
        "RUN <<EOF\n#!/bin/sh\necho script\nEOF\nRUN python3 <<EOF\nprint(1)\nEOF\n"
    )
    assert histories(text) == [
        ("RUN /bin/echo a b # buildkit", False),
        ("RUN /bin/sh -c echo hi\n # buildkit", False),
        ("RUN /bin/sh -c /dev/pipes/EOF # buildkit", False),
        ("RUN /bin/sh -c python3 <<EOF\nprint(1)\nEOF # buildkit", False),
    ]


def test_copy_and_add_record_some_flags_and_expanded_paths() -> None:
    text = (
        "FROM a\nARG D=/dst\nCOPY --from=b --link --chown=1:2 --chmod=755 x y $D/\n"
        "COPY --parents --exclude=*.md src/./a $D\nADD --checksum=sha256:aa https://e.com/f /f\n"
        "COPY <<EOF <<-TAB $D/\nx\nEOF\n\ty\n\tTAB\n"
    )
    assert histories(text)[1:] == [
        ("COPY --chown=1:2 --chmod=755 x y /dst/ # buildkit", False),
        ("COPY --parents src/./a /dst # buildkit", False),
        ("ADD https://e.com/f /f # buildkit", False),
        ("COPY <<EOF <<TAB /dst/ # buildkit", False),
    ]


def test_history_entry_fields() -> None:
    df = parse_dockerfile("FROM a\nRUN x\n")
    scope = StageScope.for_stage(df, {})
    entry = history_entry(scope.apply(df.stages[0].instructions[0]), created="2024-01-01T00:00:00Z")
    assert entry is not None
    assert entry.to_json() == {
        "created": "2024-01-01T00:00:00Z",
        "created_by": "RUN /bin/sh -c x # buildkit",
        "comment": HISTORY_COMMENT,
    }


def test_onbuild_has_no_entry() -> None:
    df = parse_dockerfile("FROM a\nONBUILD RUN x\n")
    scope = StageScope.for_stage(df, {})
    assert created_by(scope.apply(df.stages[0].instructions[0])) is None


def test_run_command_string_dedups_and_prefers_env() -> None:
    args = [ArgDefinition("A", "1"), ArgDefinition("B"), ArgDefinition("A", "2")]
    assert run_command_string(["sh", "-c", "x"], args, {"B": "envb"}) == "|2 A=2 B=envb sh -c x"
    assert run_command_string(["x"], [], {}) == "x"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("tab\tnl\n\r", '"tab\\tnl\\n\\r"'),
        ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
        ("é中", '"é中"'),
        ("\u00a0\u2028", '"\\u00a0\\u2028"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("\a\b\f\v", '"\\a\\b\\f\\v"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_go_quote_list() -> None:
    assert go_quote_list(["a", "b c"]) == '["a" "b c"]'
    assert go_quote_list([]) == "[]"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (1_000_000, "1ms"),
        (1_500_000, "1.5ms"),
        (999_999_999, "999.999999ms"),
        (10**9, "1s"),
        (1_500_000_000, "1.5s"),
        (60 * 10**9, "1m0s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (3723_500_000_000, "1h2m3.5s"),
        (-(10**9), "-1s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text
