"""``--change`` for ``import`` and ``commit``: Dockerfile instructions that edit an image config.

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and
WORKDIR here, in exec (JSON) or shell form, with the same meaning as in a Dockerfile.
"""

from __future__ import annotations

import json
import posixpath
import shlex

from berth.errors import InvalidArgument
from berth.oci.config import ContainerConfig

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def apply_changes(config: ContainerConfig, changes: list[str]) -> None:
    for change in changes:
        apply_change(config, change)


def apply_change(config: ContainerConfig, change: str) -> None:
    keyword, _, rest = change.strip().partition(" ")
    keyword = keyword.upper()
    rest = rest.strip()
    if keyword not in ALLOWED:
        raise InvalidArgument(
            f"{keyword.lower() or repr(change)} is not a valid change command",
            hint="use one of " + ", ".join(ALLOWED),
        )
    if keyword in ("CMD", "ENTRYPOINT"):
        command = _command(rest, config)
        if keyword == "CMD":
            config.cmd = command
        else:
            config.entrypoint = command
    elif keyword == "ENV":
        for key, value in _pairs(rest, "ENV"):
            config.set_env(key, value)
    elif keyword == "LABEL":
        for key, value in _pairs(rest, "LABEL"):
            config.labels[key] = value
    elif keyword == "EXPOSE":
        for port in _words(rest):
            spec = port if "/" in port else f"{port}/tcp"
            if spec not in config.exposed_ports:
                config.exposed_ports.append(spec)
    elif keyword == "VOLUME":
        for path in _json_or_words(rest):
            if path not in config.volumes:
                config.volumes.append(path)
    elif keyword == "WORKDIR":
        config.working_dir = posixpath.join(config.working_dir or "/", rest)
    elif keyword == "USER":
        config.user = rest
    elif keyword == "STOPSIGNAL":
        config.stop_signal = rest
    elif keyword == "ONBUILD":
        config.on_build.append(rest)


def _command(text: str, config: ContainerConfig) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    shell = config.shell or ["/bin/sh", "-c"]
    return [*shell, text]


def _json_or_words(text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list):
            return [str(v) for v in value]
    return _words(text)


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidArgument(f"cannot parse {text!r}: {exc}") from None


def _pairs(text: str, keyword: str) -> list[tuple[str, str]]:
    words = _words(text)
    if not words:
        raise InvalidArgument(f"{keyword} needs at least one argument")
    if "=" not in words[0]:  # legacy "ENV KEY value with spaces"
        key, _, value = text.partition(" ")
        return [(key, " ".join(_words(value)) if value.strip() else "")]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{keyword} {text!r}: expected KEY=VALUE, found {word!r}")
        pairs.append((key, value))
    return pairs
