"""Docker's syntax for option values: ``-v``, ``--mount``, ``--tmpfs``, ``--device``,
``--ulimit``, ``--restart``, ``--log-opt``, ``--env-file``, ``--sysctl`` — parsed as the docker
CLI parses them, with its error messages."""

from __future__ import annotations

import os

from berth.containers.options import DeviceSpec, MountSpec, RestartPolicy, Ulimit
from berth.errors import InvalidArgument, PathNotFound

PROPAGATIONS = ("shared", "slave", "private", "rshared", "rslave", "rprivate")
_VOLUME_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"  # checked with re only for a -v NAME:/path
RESTART_NAMES = ("no", "always", "unless-stopped", "on-failure")


def parse_volume(spec: str) -> MountSpec:
    """``-v [SOURCE:]TARGET[:OPTIONS]``: a bind when SOURCE is a path, else a named volume;
    no SOURCE: an anonymous volume."""
    parts = spec.split(":")
    if len(parts) > 3 or not spec:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        if parts[1].startswith("/") or (not parts[0].startswith("/") and not parts[1]):
            source, target, mode = parts[0], parts[1], ""
        else:
            source, target, mode = "", parts[0], parts[1]
    else:
        source, target, mode = parts
    if not target.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': invalid mount config for type "
            f"\"volume\": invalid mount path: '{target}' mount path must be absolute"
        )
    read_only, propagation, no_copy = False, "", False
    for option in (o for o in mode.split(",") if o):
        if option in ("ro", "rw"):
            read_only = option == "ro"
        elif option in PROPAGATIONS:
            propagation = option
        elif option == "nocopy":
            no_copy = True
        elif option in ("z", "Z", "consistent", "cached", "delegated"):
            continue
        else:
            raise InvalidArgument(f"invalid mode: {option}")
    if source.startswith(("/", ".")) or source.startswith("~"):
        if propagation and no_copy:
            raise InvalidArgument(f"invalid mode: nocopy (not for bind mounts): '{spec}'")
        return MountSpec(
            "bind",
            target,
            source=os.path.abspath(os.path.expanduser(source)),
            read_only=read_only,
            propagation=propagation,
            create_host_path=True,
        )
    if source and not _is_volume_name(source):
        raise InvalidArgument(
            f'"{source}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )
    if propagation:
        raise InvalidArgument(f"invalid mode: {propagation} (propagation is for bind mounts)")
    return MountSpec("volume", target, source=source, read_only=read_only, no_copy=no_copy)


def parse_mount(spec: str) -> MountSpec:
    """``--mount type=bind,source=/a,target=/b,readonly`` (Docker's CSV syntax)."""
    fields: dict[str, str] = {}
    for item in _csv(spec):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            if key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
                value = "true"
            else:
                raise InvalidArgument(f"invalid field '{item}' must be a key=value pair")
        if key in ("src",):
            key = "source"
        if key in ("destination", "dst"):
            key = "target"
        if key == "ro":
            key = "readonly"
        if key == "volume-label":
            label_key, _, label_value = value.partition("=")
            fields.setdefault("volume-labels", "")
            fields["volume-labels"] += f"{label_key}={label_value}\0"
            continue
        fields[key] = value
    kind = fields.pop("type", "volume")
    target = fields.pop("target", "")
    if not target:
        raise InvalidArgument("target is required")
    source = fields.pop("source", "")
    read_only = _bool(fields.pop("readonly", "false"), "readonly")
    labels = {}
    for entry in fields.pop("volume-labels", "").split("\0"):
        if entry:
            k, _, v = entry.partition("=")
            labels[k] = v
    if kind == "bind":
        if not source:
            raise InvalidArgument("source is required when specifying bind mounts")
        propagation = fields.pop("bind-propagation", "")
        if propagation and propagation not in PROPAGATIONS:
            raise InvalidArgument(f"invalid bind-propagation: {propagation}")
        recursive = not _bool(fields.pop("bind-nonrecursive", "false"), "bind-nonrecursive")
        fields.pop("consistency", None)
        _no_leftovers(fields, kind)
        return MountSpec(
            "bind",
            target,
            source=os.path.abspath(source),
            read_only=read_only,
            propagation=propagation,
            bind_recursive=recursive,
        )
    if kind == "volume":
        no_copy = _bool(fields.pop("volume-nocopy", "false"), "volume-nocopy")
        driver = fields.pop("volume-driver", "local")
        options = {}
        opt = fields.pop("volume-opt", "")
        if opt:
            k, _, v = opt.partition("=")
            options[k] = v
        fields.pop("consistency", None)
        _no_leftovers(fields, kind)
        return MountSpec(
            "volume",
            target,
            source=source,
            read_only=read_only,
            no_copy=no_copy,
            volume_labels=labels,
            volume_driver=driver,
            volume_options=options,
        )
    if kind == "tmpfs":
        if source:
            raise InvalidArgument("source must not be specified for tmpfs mounts")
        size = _size(fields.pop("tmpfs-size", "0"))
        mode = int(fields.pop("tmpfs-mode", "0"), 8)
        _no_leftovers(fields, kind)
        return MountSpec("tmpfs", target, read_only=read_only, tmpfs_size=size, tmpfs_mode=mode)
    raise InvalidArgument(
        f"invalid mount type: {kind!r}", hint="berth supports type=bind, type=volume and type=tmpfs"
    )


def parse_tmpfs(spec: str) -> MountSpec:
    """``--tmpfs /run:rw,size=64m,mode=1770``."""
    target, _, options = spec.partition(":")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid tmpfs path: '{target}' mount path must be absolute")
    extra, size, mode = [], 0, 0
    for option in (o for o in options.split(",") if o):
        key, _, value = option.partition("=")
        if key == "size":
            size = _size(value)
        elif key == "mode":
            mode = int(value, 8)
        else:
            extra.append(option)
    return MountSpec("tmpfs", target, tmpfs_size=size, tmpfs_mode=mode, tmpfs_options=tuple(extra))


def parse_device(spec: str) -> DeviceSpec:
    """``--device /dev/fuse[:/dev/fuse[:rwm]]``."""
    parts = spec.split(":")
    host = parts[0]
    container = host
    permissions = "rwm"
    if len(parts) == 2:
        if _is_permissions(parts[1]):
            permissions = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, permissions = parts[1], parts[2]
    elif len(parts) > 3:
        raise InvalidArgument(f"invalid device specification: {spec}")
    if not _is_permissions(permissions):
        raise InvalidArgument(f"invalid device mode: {permissions}")
    if not os.path.exists(host):
        raise PathNotFound(
            f"error gathering device information while adding custom device "
            f'"{host}": no such file or directory'
        )
    return DeviceSpec(host, container, permissions)


def parse_ulimit(spec: str) -> Ulimit:
    """``--ulimit nofile=1024:2048`` (hard defaults to soft)."""
    name, sep, values = spec.partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {spec}")
    from berth.containers.spec import RLIMIT_NAMES

    if name not in RLIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {spec}") from None
    if soft > hard:
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return Ulimit(name, soft, hard)


def parse_restart(spec: str) -> RestartPolicy:
    """``--restart no|always|unless-stopped|on-failure[:N]``."""
    name, _, count = spec.partition(":")
    if name not in RESTART_NAMES:
        raise InvalidArgument(
            f"invalid restart policy '{name}'",
            hint="use no, always, unless-stopped or on-failure[:max-retries]",
        )
    if count:
        if name != "on-failure":
            raise InvalidArgument(
                f"maximum retry count cannot be used with restart policy '{name}'"
            )
        if not count.isdigit():
            raise InvalidArgument(f"maximum retry count must be an integer: {count}")
    return RestartPolicy(name, int(count) if count else 0)  # type: ignore[arg-type]


def parse_key_values(items: list[str], what: str) -> dict[str, str]:
    """``--log-opt max-size=10m``, ``--sysctl net.ipv4.ip_forward=1``, ``-l key=value``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or (not sep and what != "label"):
            raise InvalidArgument(f"invalid {what} format: '{item}' (expected key=value)")
        out[key] = value
    return out


def read_env_file(path: str) -> list[str]:
    """``--env-file``: KEY=VALUE lines, ``#`` comments, a bare KEY takes the caller's value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise PathNotFound(f"open {path}: no such file or directory") from None
    out = []
    for number, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if " " in key.strip() or not key:
            raise InvalidArgument(f"{path}:{number}: variable '{key}' contains whitespaces")
        if sep:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _csv(text: str) -> list[str]:
    import csv

    return next(csv.reader([text])) if text else []


def _bool(value: str, key: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


def _size(value: str) -> int:
    from berth.units import from_human_size

    return from_human_size(value) if not value.isdigit() else int(value)


def _no_leftovers(fields: dict[str, str], kind: str) -> None:
    if fields:
        raise InvalidArgument(f"unexpected key '{next(iter(fields))}' in mount of type {kind}")


def _is_permissions(text: str) -> bool:
    return bool(text) and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def _is_volume_name(text: str) -> bool:
    import re

    return re.match(_VOLUME_NAME, text) is not None
