"""Definitions of ``attach``, ``commit``, ``cp``, ``diff``, ``export``, ``stats``, ``top``,
``update`` (``berth container ...`` and their top-level forms), ``events``, ``info`` and
``system prune``: docker's names, flags and usage lines.

The command table splices them in: :data:`EXTRA_CONTAINER_COMMANDS` into the ``container``
group, :data:`EXTRA_SYSTEM_COMMANDS` into the ``system`` group, :data:`EXTRA_SHORTCUTS` at
the top level.
"""

from __future__ import annotations

from berth.cli.flags import Command, Flag

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template."
)
TEMPLATE_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template."
)

ATTACH = Command(
    "attach",
    summary="Attach local standard input, output, and error streams to a running container",
    usage="[OPTIONS] CONTAINER",
    flags=lambda: [
        Flag("detach-keys", None, str, help="Override the key sequence for detaching a container"),
        Flag("no-stdin", None, bool, help="Do not attach STDIN"),
        Flag(
            "sig-proxy", None, bool, default=True, help="Proxy all received signals to the process"
        ),
    ],
    args=(1, 1),
    handler="berth.cli.container_extra:attach",
)
COMMIT = Command(
    "commit",
    summary="Create a new image from a container's changes",
    usage="[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    flags=lambda: [
        Flag("author", "a", str, help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Flag("change", "c", list, help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", str, help="Commit message"),
        Flag("pause", "p", bool, default=True, help="Pause container during commit"),
    ],
    args=(1, 2),
    handler="berth.cli.container_extra:commit",
)
CP = Command(
    "cp",
    summary="Copy files/folders between a container and the local filesystem",
    usage="[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- "
    "CONTAINER:DEST_PATH",
    description=(
        "Copy files/folders between a container and the local filesystem\n\n"
        "Use '-' as the source to read a tar archive from stdin\n"
        "and extract it to a directory destination in a container.\n"
        "Use '-' as the destination to stream a tar archive of a\n"
        "container source to stdout."
    ),
    flags=lambda: [
        Flag("archive", "a", bool, help="Archive mode (copy all uid/gid information)"),
        Flag("follow-link", "L", bool, help="Always follow symbol link in SRC_PATH"),
        Flag(
            "quiet",
            "q",
            bool,
            help="Suppress progress output during copy. Progress output is automatically "
            "suppressed if no terminal is attached",
        ),
    ],
    args=(2, 2),
    handler="berth.cli.container_extra:cp",
)
DIFF = Command(
    "diff",
    summary="Inspect changes to files or directories on a container's filesystem",
    usage="CONTAINER",
    args=(1, 1),
    handler="berth.cli.container_extra:diff",
)
EXPORT = Command(
    "export",
    summary="Export a container's filesystem as a tar archive",
    usage="[OPTIONS] CONTAINER",
    flags=lambda: [Flag("output", "o", str, help="Write to a file, instead of STDOUT")],
    args=(1, 1),
    handler="berth.cli.container_extra:export",
)
STATS = Command(
    "stats",
    summary="Display a live stream of container(s) resource usage statistics",
    usage="[OPTIONS] [CONTAINER...]",
    flags=lambda: [
        Flag("all", "a", bool, help="Show all containers (default shows just running)"),
        Flag("format", None, str, help=FORMAT_HELP),
        Flag(
            "no-stream", None, bool, help="Disable streaming stats and only pull the first result"
        ),
        Flag("no-trunc", None, bool, help="Do not truncate output"),
    ],
    args=(0, None),
    handler="berth.cli.container_extra:stats",
)
TOP = Command(
    "top",
    summary="Display the running processes of a container",
    usage="CONTAINER [ps OPTIONS]",
    args=(1, None),
    interspersed=False,
    handler="berth.cli.container_extra:top",
)


def _update_flags() -> list[Flag]:
    return [
        Flag(
            "blkio-weight",
            None,
            int,
            help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)",
        ),
        Flag("cpu-period", None, int, help="Limit CPU CFS (Completely Fair Scheduler) period"),
        Flag("cpu-quota", None, int, help="Limit CPU CFS (Completely Fair Scheduler) quota"),
        Flag("cpu-rt-period", None, int, help="Limit the CPU real-time period in microseconds"),
        Flag("cpu-rt-runtime", None, int, help="Limit the CPU real-time runtime in microseconds"),
        Flag("cpu-shares", "c", int, help="CPU shares (relative weight)"),
        Flag("cpus", None, str, metavar="decimal", help="Number of CPUs"),
        Flag("cpuset-cpus", None, str, help="CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", None, str, help="MEMs in which to allow execution (0-3, 0,1)"),
        Flag("memory", "m", "bytes", help="Memory limit"),
        Flag("memory-reservation", None, "bytes", help="Memory soft limit"),
        Flag(
            "memory-swap",
            None,
            str,
            metavar="bytes",
            help="Swap limit equal to memory plus swap: -1 to enable unlimited swap",
        ),
        Flag("pids-limit", None, int, help="Tune container pids limit (set -1 for unlimited)"),
        Flag("restart", None, str, help="Restart policy to apply when a container exits"),
    ]


UPDATE = Command(
    "update",
    summary="Update configuration of one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=_update_flags,
    args=(1, None),
    handler="berth.cli.container_extra:update",
)

# ------------------------------------------------------------------------------- system

EVENTS = Command(
    "events",
    summary="Get real time events from the server",
    usage="[OPTIONS]",
    flags=lambda: [
        Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
        Flag("format", None, str, help=TEMPLATE_HELP),
        Flag("since", None, str, help="Show all events created since timestamp"),
        Flag("until", None, str, help="Stream events until this timestamp"),
    ],
    args=(0, 0),
    handler="berth.cli.system_extra:events",
)
INFO = Command(
    "info",
    summary="Display system-wide information",
    usage="[OPTIONS]",
    flags=lambda: [Flag("format", "f", str, help=TEMPLATE_HELP)],
    args=(0, 0),
    handler="berth.cli.system_extra:info",
)
SYSTEM_PRUNE = Command(
    "prune",
    summary="Remove unused data",
    usage="[OPTIONS]",
    flags=lambda: [
        Flag("all", "a", bool, help="Remove all unused images not just dangling ones"),
        Flag("filter", None, "filter", help='Provide filter values (e.g. "label=<key>=<value>")'),
        Flag("force", "f", bool, help="Do not prompt for confirmation"),
        Flag("volumes", None, bool, help="Prune anonymous volumes"),
    ],
    args=(0, 0),
    handler="berth.cli.system_extra:prune",
)

EXTRA_CONTAINER_COMMANDS = [ATTACH, COMMIT, CP, DIFF, EXPORT, STATS, TOP, UPDATE]
EXTRA_SYSTEM_COMMANDS = [EVENTS, INFO, SYSTEM_PRUNE]
EXTRA_SHORTCUTS = [
    ATTACH.shortcut("attach"),
    COMMIT.shortcut("commit"),
    CP.shortcut("cp"),
    DIFF.shortcut("diff"),
    EVENTS.shortcut("events"),
    EXPORT.shortcut("export"),
    INFO.shortcut("info", top=10),
    STATS.shortcut("stats"),
    TOP.shortcut("top"),
    UPDATE.shortcut("update"),
]
