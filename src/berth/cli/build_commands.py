"""The ``berth build`` and ``berth builder`` command definitions (imported by commands.py).

Flags are built only when these commands run (``flags=lambda: [...]``).
"""

from __future__ import annotations

from berth.cli.flags import Command, Flag, Group

__all__ = ["BUILD", "BUILDER", "BUILDER_BUILD", "BUILDER_PRUNE"]


def _build_flags() -> list[Flag]:
    return [
        Flag("build-arg", None, list, help="Set build-time variables"),
        Flag("file", "f", str, help='Name of the Dockerfile (default: "PATH/Dockerfile")'),
        Flag("iidfile", None, str, help="Write the image ID to the file"),
        Flag("label", None, list, help="Set metadata for an image"),
        Flag(
            "network",
            None,
            str,
            default="default",
            help="Set the networking mode for the RUN instructions during build "
            '("host", "none" or "default")',
        ),
        Flag("no-cache", None, bool, help="Do not use cache when building the image"),
        Flag("platform", None, str, help="Set platform if server is multi-platform capable"),
        Flag(
            "progress",
            None,
            str,
            default="auto",
            help='Set type of progress output ("auto", "plain", "quiet")',
        ),
        Flag("pull", None, bool, help="Always attempt to pull a newer version of the image"),
        Flag("quiet", "q", bool, help="Suppress the build output and print image ID on success"),
        Flag(
            "secret",
            None,
            list,
            help='Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")',
        ),
        Flag("tag", "t", list, help='Name and optionally a tag in the "name:tag" format'),
        Flag("target", None, str, help="Set the target build stage to build"),
        Flag(
            "rm",
            None,
            bool,
            default=True,
            help="Remove intermediate containers after a successful build",
            hidden=True,
        ),
        Flag("force-rm", None, bool, help="Always remove intermediate containers", hidden=True),
    ]


BUILD = Command(
    "build",
    summary="Build an image from a Dockerfile",
    usage="[OPTIONS] PATH | -",
    flags=_build_flags,
    args=(1, 1),
    handler="berth.cli.build:build",
    top=2,
)
BUILDER_BUILD = Command(
    "build",
    summary="Build an image from a Dockerfile",
    usage="[OPTIONS] PATH | -",
    flags=_build_flags,
    args=(1, 1),
    handler="berth.cli.build:build",
)
BUILDER_PRUNE = Command(
    "prune",
    summary="Remove build cache",
    usage="[OPTIONS]",
    description=(
        "Remove build cache. The cache keeps at most 10 GiB of layers (BERTH_BUILD_CACHE_MAX\n"
        "changes that), dropping the least recently used entries first."
    ),
    flags=lambda: [
        Flag("all", "a", bool, help="Remove all unused build cache, not just dangling ones"),
        Flag("filter", None, "filter", help='Provide filter values (e.g. "until=24h")'),
        Flag("force", "f", bool, help="Do not prompt for confirmation"),
        Flag("keep-storage", None, str, help="Amount of disk space to keep for cache"),
    ],
    args=(0, 0),
    handler="berth.cli.build:builder_prune",
)
BUILDER = Group("builder", summary="Manage builds", commands=[BUILDER_BUILD, BUILDER_PRUNE])
