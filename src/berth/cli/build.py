"""Handlers of ``berth build`` and ``berth builder prune``."""

from __future__ import annotations

import os
import sys

from berth.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.cli.flags import Invocation


def build(inv: Invocation) -> int:
    # The cyclic garbage collector is off for the build, as for the container commands
    # (cli/main.py): importing the Dockerfile frontend, the store and the image writer
    # allocates enough objects for ~30 collections (5 ms of a rebuild) that free nothing, and
    # the build itself makes no reference cycles worth collecting (steps, layers and output
    # are freed by reference counting; a several-GB context is streamed in chunks).
    import gc

    gc.disable()
    progress_mode = inv.get_str("progress") or "auto"
    if progress_mode not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise inv.usage_error(
            f'invalid argument "{progress_mode}" for "--progress" flag: use auto, plain or quiet'
        )
    quiet = inv.get_bool("quiet") or progress_mode == "quiet"
    network = inv.get_str("network") or "default"
    context = inv.args[0]
    dockerfile = inv.get_str("file") or None
    build_args = _build_args(inv.get_list("build_arg"))
    labels = _labels(inv.get_list("label"))
    tags = inv.get_list("tag")
    target = inv.get_str("target") or None
    platform = inv.get_str("platform") or None
    image_id = None
    if not inv.get_bool("no_cache") and not inv.get_bool("pull"):
        # a fully cached rebuild is proven without importing the builder (berth.build.fastpath)
        from berth.build.fastpath import attempt
        from berth.store.paths import default_root

        replayed = attempt(
            default_root(),
            context=context,
            dockerfile=dockerfile,
            build_args=build_args,
            target=target,
            labels=labels,
            network=network,
            platform=platform,
            tags=tags,
        )
        if replayed is not None:
            image_id, lines = replayed
            if not quiet:
                _show("".join(line + "\n" for line in lines))
    if image_id is None:
        from berth.engine import Engine
        from berth.engine.build import build_image

        needs_stdin = context == "-" or dockerfile == "-"
        image, _ = build_image(
            Engine(),
            path=context,
            fileobj=sys.stdin.buffer if needs_stdin else None,
            tag=tags,
            dockerfile=dockerfile,
            buildargs=build_args,
            target=target,
            nocache=inv.get_bool("no_cache"),
            pull=inv.get_bool("pull"),
            labels=labels,
            network_mode=network,
            secrets=inv.get_list("secret"),
            quiet=quiet,
            platform=platform,
            progress=None if quiet else _show,
            replay=False,  # tried above
        )
        image_id = image.id
    iidfile = inv.get_str("iidfile")
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)
    if quiet:
        sys.stdout.write(image_id + "\n")
    return 0


def _show(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _build_args(values: list[str]) -> dict[str, str]:
    """``--build-arg K=V``; a bare ``K`` takes the value of the variable K, if it is set."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not key:
            raise UsageError(f"invalid argument {value!r} for --build-arg: no name")
        if sep:
            out[key] = rest
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


def _labels(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, _, rest = value.partition("=")
        out[key] = rest
    return out


def builder_prune(inv: Invocation) -> int:
    from berth.engine.build import prune_build_cache
    from berth.filters import parse_filters
    from berth.units import from_human_size, human_size

    filters = parse_filters(inv.get_list("filter"))
    filters.validate(("until", "unused-for"))
    keep = inv.get_str("keep_storage")
    all_entries = inv.get_bool("all")
    if not inv.get_bool("force"):
        what = "all build cache" if all_entries else "all dangling build cache"
        sys.stdout.write(
            f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    from berth.engine import Engine

    result = prune_build_cache(
        Engine(),
        all=all_entries,
        filters=filters.to_dict(),
        keep_storage=from_human_size(keep) if keep else None,
    )
    deleted = result["CachesDeleted"] or []
    if deleted:
        sys.stdout.write("Deleted build cache objects:\n")
        sys.stdout.write("".join(f"{key.split(':', 1)[-1][:25]}\n" for key in deleted))
        sys.stdout.write("\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}\n")
    return 0
