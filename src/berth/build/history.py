"""Image history entries exactly as BuildKit's Dockerfile frontend writes them.

Every instruction that changes the image adds one entry with ``comment``
``buildkit.dockerfile.v0``. ``created_by`` is the instruction after expansion, in the form
BuildKit prints it (Go formatting included):

=============  ===============================================================  ===========
instruction    ``created_by``                                                   layer
=============  ===============================================================  ===========
RUN            ``RUN [|N K=V ...] /bin/sh -c apk add x # buildkit``              yes
COPY / ADD     ``COPY [--parents] [--chown=u] [--chmod=m] src... dest # buildkit``  yes
WORKDIR        ``WORKDIR /app`` (the cleaned absolute path)                      unless ``/``
ENV / LABEL    ``ENV A=b C=d`` / ``LABEL k=v``                                   no
ARG            ``ARG X=1 Y`` (the value in effect; a name alone if it has none)  no
CMD            ``CMD ["python" "app.py"]`` (Go ``%q`` of the final argv)        no
ENTRYPOINT     ``ENTRYPOINT ["/bin/sh" "-c" "exec x"]``                          no
EXPOSE         ``EXPOSE [5000/tcp 53/udp]``                                      no
VOLUME, SHELL  ``VOLUME [/data]``, ``SHELL [/bin/bash -c]``                      no
USER, STOPSIGNAL, MAINTAINER  ``USER app`` ...                                   no
HEALTHCHECK    ``HEALTHCHECK {Test:[CMD-SHELL curl x] Interval:30s ...}``        no
ONBUILD, FROM  no entry of their own                                             --
=============  ===============================================================  ===========

The ``|N K=V`` prefix of RUN lists the ARGs declared in the stage so far (N of them) with
their values, so a changed ``--build-arg`` shows in the history and the cache key. The
``--from``, ``--link``, ``--checksum`` and ``--exclude`` flags of COPY/ADD are not recorded,
and heredoc sources appear as ``<<NAME``.

dockerd 20.10's builder wrote ``EXPOSE map[5000/tcp:{}]``; current BuildKit writes the list
form above, which berth follows.
"""

from __future__ import annotations

from berth.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from berth.oci.config import HistoryEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from berth.build.expansion import Applied
    from berth.build.instructions import ArgDefinition

__all__ = [
    "HISTORY_COMMENT",
    "created_by",
    "go_duration",
    "go_quote",
    "go_quote_list",
    "history_entry",
    "run_command_string",
]

HISTORY_COMMENT = "buildkit.dockerfile.v0"


def history_entry(applied: Applied, created: str = "") -> HistoryEntry | None:
    """The history entry for an applied instruction; None for FROM and ONBUILD."""
    text = created_by(applied)
    if text is None:
        return None
    return HistoryEntry(
        created=created,
        created_by=text,
        comment=HISTORY_COMMENT,
        empty_layer=not adds_layer(applied),
    )


def adds_layer(applied: Applied) -> bool:
    """RUN, COPY and ADD make a layer; so does WORKDIR unless it is ``/``."""
    instruction = applied.instruction
    if isinstance(instruction, Run | Copy | Add):
        return True
    return isinstance(instruction, Workdir) and instruction.path != "/"


def created_by(applied: Applied) -> str | None:
    """``created_by`` for an applied (expanded) instruction, or None if it has no entry."""
    i: Instruction = applied.instruction
    if isinstance(i, From | Onbuild):
        return None
    if isinstance(i, Run):
        return (
            "RUN "
            + run_command_string(applied.argv, applied.build_args, dict(applied.env))
            + (" # buildkit")
        )
    if isinstance(i, Copy | Add):
        return _copy_created_by(i)
    if isinstance(i, Env):
        return "ENV" + "".join(f" {p.key}={p.value}" for p in i.pairs)
    if isinstance(i, Label):
        return "LABEL" + "".join(f" {p.key}={p.value}" for p in i.labels)
    if isinstance(i, Arg):
        return "ARG " + " ".join(a.key if a.value is None else f"{a.key}={a.value}" for a in i.args)
    if isinstance(i, Workdir):
        return f"WORKDIR {i.path}"
    if isinstance(i, Cmd | Entrypoint):
        argv = _config_argv(i, applied)
        return f"{i.name} {go_quote_list(argv)}"
    if isinstance(i, Expose):
        return f"EXPOSE [{' '.join(i.ports)}]"
    if isinstance(i, Volume):
        return f"VOLUME [{' '.join(i.paths)}]"
    if isinstance(i, Shell):
        return f"SHELL [{' '.join(i.shell)}]"
    if isinstance(i, User):
        return f"USER {i.user}"
    if isinstance(i, Stopsignal):
        return f"STOPSIGNAL {i.signal}"
    if isinstance(i, Maintainer):
        return f"MAINTAINER {i.maintainer}"
    if isinstance(i, Healthcheck):
        return "HEALTHCHECK " + _healthcheck_struct(i)
    raise TypeError(f"no history format for {type(i).__name__}")


def run_command_string(
    argv: Sequence[str], build_args: Sequence[ArgDefinition], env: Mapping[str, str]
) -> str:
    """BuildKit's ``runCommandString``: ``|N K=V ...`` for the declared ARGs, then the argv.

    Each declared ARG shows the stage environment's value if it has one (an ENV of the same
    name wins), else the ARG's own; a name declared twice is listed once, where it first was.
    """
    order: list[str] = []
    values: dict[str, str] = {}
    for arg in build_args:
        value = env.get(arg.key)
        if value is None:
            value = arg.value or ""
        if arg.key not in values:
            order.append(arg.key)
        values[arg.key] = value
    prefix = [f"|{len(order)}", *(f"{k}={values[k]}" for k in order)] if order else []
    return " ".join([*prefix, *argv])


def _copy_created_by(i: Copy | Add) -> str:
    parts = [i.name]
    if isinstance(i, Copy) and i.parents:
        parts.append("--parents")
    if i.chown:
        parts.append(f"--chown={i.chown}")
    if i.chmod:
        parts.append(f"--chmod={i.chmod}")
    parts += i.sources
    parts += [f"<<{c.name}" for c in i.contents]
    parts.append(i.dest)
    return " ".join(parts) + " # buildkit"


def _config_argv(i: Cmd | Entrypoint, applied: Applied) -> list[str]:
    args = i.command.args
    if not i.command.shell_form:
        return list(args or ())
    return [*applied.shell, " ".join(args or ())]


def _healthcheck_struct(i: Healthcheck) -> str:
    """Go's ``%+v`` of a ``HealthcheckConfig``."""
    return (
        f"{{Test:[{' '.join(i.test)}] Interval:{go_duration(i.interval_ns)} "
        f"Timeout:{go_duration(i.timeout_ns)} StartPeriod:{go_duration(i.start_period_ns)} "
        f"StartInterval:{go_duration(i.start_interval_ns)} Retries:{i.retries}}}"
    )


# -- Go formatting ------------------------------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable characters kept, others escaped (lower-case hex)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v"}  # fmt: skip


def go_quote_list(items: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(item) for item in items) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``0s``, ``1.5s``, ``1m30s``, ``1h0m0s``, ``500ms``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, scale in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < scale * 1000:
                return sign + _fraction(u, scale) + unit
    seconds_part = _fraction(u % 60_000_000_000, 1_000_000_000) + "s"
    minutes = u // 60_000_000_000
    if minutes == 0:
        return sign + seconds_part
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{sign}{minutes}m{seconds_part}"
    return f"{sign}{hours}h{minutes}m{seconds_part}"


def _fraction(value: int, scale: int) -> str:
    whole, rest = divmod(value, scale)
    if not rest:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")
