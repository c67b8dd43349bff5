"""The container commands' definitions: docker's names, flags and usage lines.

``run``/``create`` carry ~70 flags; they are built only when one of those commands runs (or
shows its help), so other commands do not pay for them.
"""

from __future__ import annotations

from berth.cli.container_extra_commands import EXTRA_CONTAINER_COMMANDS, EXTRA_SHORTCUTS
from berth.cli.flags import Command, Flag, Group

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template."
)


def create_flags() -> list[Flag]:
    """Flags shared by ``create`` and ``run``."""
    return [
        Flag("add-host", None, list, help="Add a custom host-to-IP mapping (host:ip)"),
        Flag("attach", "a", list, help="Attach to STDIN, STDOUT or STDERR"),
        Flag("blkio-weight", None, int, help="Block IO (relative weight), between 10 and 1000"),
        Flag("cap-add", None, list, help="Add Linux capabilities"),
        Flag("cap-drop", None, list, help="Drop Linux capabilities"),
        Flag("cidfile", None, str, help="Write the container ID to the file"),
        Flag("cpu-period", None, int, help="Limit CPU CFS (Completely Fair Scheduler) period"),
        Flag("cpu-quota", None, int, help="Limit CPU CFS (Completely Fair Scheduler) quota"),
        Flag("cpu-shares", "c", int, help="CPU shares (relative weight)"),
        Flag("cpus", None, str, metavar="decimal", help="Number of CPUs"),
        Flag("cpuset-cpus", None, str, help="CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", None, str, help="MEMs in which to allow execution (0-3, 0,1)"),
        Flag("detach-keys", None, str, help="Override the key sequence for detaching a container"),
        Flag("device", None, list, help="Add a host device to the container"),
        Flag("dns", None, list, help="Set custom DNS servers"),
        Flag("dns-option", None, list, help="Set DNS options"),
        Flag("dns-search", None, list, help="Set custom DNS search domains"),
        Flag("domainname", None, str, help="Container NIS domain name"),
        Flag("entrypoint", None, str, help="Overwrite the default ENTRYPOINT of the image"),
        Flag("env", "e", list, help="Set environment variables"),
        Flag("env-file", None, list, help="Read in a file of environment variables"),
        Flag("expose", None, list, help="Expose a port or a range of ports"),
        Flag("group-add", None, list, help="Add additional groups to join"),
        Flag("health-cmd", None, str, help="Command to run to check health"),
        Flag(
            "health-interval",
            None,
            "duration",
            help="Time between running the check (ms|s|m|h) (default 0s)",
        ),
        Flag("health-retries", None, int, help="Consecutive failures needed to report unhealthy"),
        Flag(
            "health-start-interval",
            None,
            "duration",
            help="Time between running the check during the start period (ms|s|m|h) (default 0s)",
        ),
        Flag(
            "health-start-period",
            None,
            "duration",
            help="Start period for the container to "
            "initialize before starting health-retries countdown (ms|s|m|h) (default 0s)",
        ),
        Flag(
            "health-timeout",
            None,
            "duration",
            help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
        ),
        Flag("hostname", "h", str, help="Container host name"),
        Flag(
            "init",
            None,
            bool,
            help="Run an init inside the container that forwards signals and reaps processes",
        ),
        Flag("interactive", "i", bool, help="Keep STDIN open even if not attached"),
        Flag("ip", None, str, help="IPv4 address (e.g., 172.30.100.104)"),
        Flag("label", "l", list, help="Set meta data on a container"),
        Flag("label-file", None, list, help="Read in a line delimited file of labels"),
        Flag("log-driver", None, str, help="Logging driver for the container"),
        Flag("log-opt", None, list, help="Log driver options"),
        Flag("mac-address", None, str, help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        Flag("memory", "m", "bytes", help="Memory limit"),
        Flag("memory-reservation", None, "bytes", help="Memory soft limit"),
        Flag(
            "memory-swap",
            None,
            str,
            metavar="bytes",
            help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
        ),
        Flag(
            "memory-swappiness",
            None,
            int,
            default=-1,
            help="Tune container memory swappiness (0 to 100)",
        ),
        Flag("mount", None, list, help="Attach a filesystem mount to the container"),
        Flag("name", None, str, help="Assign a name to the container"),
        Flag("network", None, str, help="Connect a container to a network"),
        Flag("network-alias", None, list, help="Add network-scoped alias for the container"),
        Flag("no-healthcheck", None, bool, help="Disable any container-specified HEALTHCHECK"),
        Flag("oom-kill-disable", None, bool, help="Disable OOM Killer"),
        Flag("oom-score-adj", None, int, help="Tune host's OOM preferences (-1000 to 1000)"),
        Flag("pids-limit", None, int, help="Tune container pids limit (set -1 for unlimited)"),
        Flag("platform", None, str, help="Set platform if server is multi-platform capable"),
        Flag("privileged", None, bool, help="Give extended privileges to this container"),
        Flag("publish", "p", list, help="Publish a container's port(s) to the host"),
        Flag("publish-all", "P", bool, help="Publish all exposed ports to random ports"),
        Flag(
            "pull",
            None,
            str,
            default="missing",
            help='Pull image before creating ("always", "missing", "never")',
        ),
        Flag("quiet", "q", bool, help="Suppress the pull output"),
        Flag("read-only", None, bool, help="Mount the container's root filesystem as read only"),
        Flag(
            "restart",
            None,
            str,
            default="no",
            help="Restart policy to apply when a container exits",
        ),
        Flag(
            "rm",
            None,
            bool,
            help="Automatically remove the container and its associated "
            "anonymous volumes when it exits",
        ),
        Flag(
            "runtime",
            None,
            str,
            help="Runtime to use for this container (berth, runc, crun or a path)",
        ),
        Flag("security-opt", None, list, help="Security Options"),
        Flag("shm-size", None, "bytes", help="Size of /dev/shm"),
        Flag("stop-signal", None, str, help="Signal to stop the container"),
        Flag("stop-timeout", None, int, help="Timeout (in seconds) to stop a container"),
        Flag("sysctl", None, list, help="Sysctl options"),
        Flag("tmpfs", None, list, help="Mount a tmpfs directory"),
        Flag("tty", "t", bool, help="Allocate a pseudo-TTY"),
        Flag("ulimit", None, list, help="Ulimit options"),
        Flag("user", "u", str, help="Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("userns", None, str, help="User namespace to use"),
        Flag("volume", "v", list, help="Bind mount a volume"),
        Flag("volumes-from", None, list, help="Mount volumes from the specified container(s)"),
        Flag("workdir", "w", str, help="Working directory inside the container"),
    ]


def run_flags() -> list[Flag]:
    return [
        *create_flags(),
        Flag("detach", "d", bool, help="Run container in background and print container ID"),
        Flag("sig-proxy", None, bool, default=True, help="Proxy received signals to the process"),
    ]


RUN = Command(
    "run",
    summary="Create and run a new container from an image",
    usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
    flags=run_flags,
    args=(1, None),
    interspersed=False,
    handler="berth.cli.containers:run",
    top=1,
)
CREATE = Command(
    "create",
    summary="Create a new container",
    usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
    flags=create_flags,
    args=(1, None),
    interspersed=False,
    handler="berth.cli.containers:create",
)
START = Command(
    "start",
    summary="Start one or more stopped containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("attach", "a", bool, help="Attach STDOUT/STDERR and forward signals"),
        Flag("detach-keys", None, str, help="Override the key sequence for detaching a container"),
        Flag("interactive", "i", bool, help="Attach container's STDIN"),
    ],
    args=(1, None),
    handler="berth.cli.containers:start",
)
STOP = Command(
    "stop",
    summary="Stop one or more running containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("signal", "s", str, help="Signal to send to the container"),
        Flag("time", "t", int, default=None, help="Seconds to wait before killing the container"),
    ],
    args=(1, None),
    handler="berth.cli.containers:stop",
)
RESTART = Command(
    "restart",
    summary="Restart one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("signal", "s", str, help="Signal to send to the container"),
        Flag("time", "t", int, default=None, help="Seconds to wait before killing the container"),
    ],
    args=(1, None),
    handler="berth.cli.containers:restart",
)
KILL = Command(
    "kill",
    summary="Kill one or more running containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[Flag("signal", "s", str, default="KILL", help="Signal to send to the container")],
    args=(1, None),
    handler="berth.cli.containers:kill",
)
RM = Command(
    "rm",
    aliases=("remove",),
    summary="Remove one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("force", "f", bool, help="Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", bool, help="Remove the specified link"),
        Flag("volumes", "v", bool, help="Remove anonymous volumes associated with the container"),
    ],
    args=(1, None),
    handler="berth.cli.containers:rm",
)
PS = Command(
    "ls",
    aliases=("ps", "list"),
    summary="List containers",
    usage="[OPTIONS]",
    flags=[
        Flag("all", "a", bool, help="Show all containers (default shows just running)"),
        Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
        Flag("format", None, str, help=FORMAT_HELP),
        Flag(
            "last",
            "n",
            int,
            default=-1,
            help="Show n last created containers (includes all states)",
        ),
        Flag("latest", "l", bool, help="Show the latest created container (includes all states)"),
        Flag("no-trunc", None, bool, help="Don't truncate output"),
        Flag("quiet", "q", bool, help="Only display container IDs"),
        Flag("size", "s", bool, help="Display total file sizes"),
    ],
    args=(0, 0),
    handler="berth.cli.containers:ps",
)
INSPECT = Command(
    "inspect",
    summary="Display detailed information on one or more containers",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    flags=[
        Flag("format", "f", str, help="Format output using a custom template"),
        Flag("size", "s", bool, help="Display total file sizes"),
    ],
    args=(1, None),
    handler="berth.cli.containers:inspect",
)
LOGS = Command(
    "logs",
    summary="Fetch the logs of a container",
    usage="[OPTIONS] CONTAINER",
    flags=[
        Flag("details", None, bool, help="Show extra details provided to logs"),
        Flag("follow", "f", bool, help="Follow log output"),
        Flag(
            "since",
            None,
            str,
            help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z")'
            ' or relative (e.g. "42m" for 42 minutes)',
        ),
        Flag(
            "tail", "n", str, default="all", help="Number of lines to show from the end of the logs"
        ),
        Flag("timestamps", "t", bool, help="Show timestamps"),
        Flag(
            "until",
            None,
            str,
            help="Show logs before a timestamp (e.g. "
            '"2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)',
        ),
    ],
    args=(1, 1),
    handler="berth.cli.containers:logs",
)
EXEC = Command(
    "exec",
    summary="Execute a command in a running container",
    usage="[OPTIONS] CONTAINER COMMAND [ARG...]",
    flags=[
        Flag("detach", "d", bool, help="Detached mode: run command in the background"),
        Flag("detach-keys", None, str, help="Override the key sequence for detaching a container"),
        Flag("env", "e", list, help="Set environment variables"),
        Flag("env-file", None, list, help="Read in a file of environment variables"),
        Flag("interactive", "i", bool, help="Keep STDIN open even if not attached"),
        Flag("privileged", None, bool, help="Give extended privileges to the command"),
        Flag("tty", "t", bool, help="Allocate a pseudo-TTY"),
        Flag("user", "u", str, help='Username or UID (format: "<name|uid>[:<group|gid>]")'),
        Flag("workdir", "w", str, help="Working directory inside the container"),
    ],
    args=(2, None),
    interspersed=False,
    handler="berth.cli.containers:exec_",
    top=3,
)
WAIT = Command(
    "wait",
    summary="Block until one or more containers stop, then print their exit codes",
    usage="CONTAINER [CONTAINER...]",
    args=(1, None),
    handler="berth.cli.containers:wait",
)
PAUSE = Command(
    "pause",
    summary="Pause all processes within one or more containers",
    usage="CONTAINER [CONTAINER...]",
    args=(1, None),
    handler="berth.cli.containers:pause",
)
UNPAUSE = Command(
    "unpause",
    summary="Unpause all processes within one or more containers",
    usage="CONTAINER [CONTAINER...]",
    args=(1, None),
    handler="berth.cli.containers:unpause",
)
RENAME = Command(
    "rename",
    summary="Rename a container",
    usage="CONTAINER NEW_NAME",
    args=(2, 2),
    handler="berth.cli.containers:rename",
)
PRUNE = Command(
    "prune",
    summary="Remove all stopped containers",
    usage="[OPTIONS]",
    flags=[
        Flag("filter", None, "filter", help='Provide filter values (e.g. "until=<timestamp>")'),
        Flag("force", "f", bool, help="Do not prompt for confirmation"),
    ],
    args=(0, 0),
    handler="berth.cli.containers:prune",
)

CONTAINER = Group(
    "container",
    summary="Manage containers",
    commands=[
        CREATE,
        EXEC,
        INSPECT,
        KILL,
        LOGS,
        PS,
        PAUSE,
        PRUNE,
        RENAME,
        RESTART,
        RM,
        RUN,
        START,
        STOP,
        UNPAUSE,
        WAIT,
        *EXTRA_CONTAINER_COMMANDS,
    ],
)


# ----------------------------------------------------------------------------------- volumes

VOLUME = Group(
    "volume",
    summary="Manage volumes",
    commands=[
        Command(
            "create",
            summary="Create a volume",
            usage="[OPTIONS] [VOLUME]",
            flags=[
                Flag("driver", "d", str, default="local", help="Specify volume driver name"),
                Flag("label", None, list, help="Set metadata for a volume"),
                Flag("name", None, str, help="Specify volume name"),
                Flag("opt", "o", list, help="Set driver specific options"),
            ],
            args=(0, 1),
            handler="berth.cli.volumes:create",
        ),
        Command(
            "inspect",
            summary="Display detailed information on one or more volumes",
            usage="[OPTIONS] VOLUME [VOLUME...]",
            flags=[Flag("format", "f", str, help="Format output using a custom template")],
            args=(1, None),
            handler="berth.cli.volumes:inspect",
        ),
        Command(
            "ls",
            aliases=("list",),
            summary="List volumes",
            usage="[OPTIONS]",
            flags=[
                Flag("filter", "f", "filter", help="Provide filter values (e.g. 'dangling=true')"),
                Flag("format", None, str, help=FORMAT_HELP),
                Flag("quiet", "q", bool, help="Only display volume names"),
            ],
            args=(0, 0),
            handler="berth.cli.volumes:ls",
        ),
        Command(
            "prune",
            summary="Remove unused local volumes",
            usage="[OPTIONS]",
            flags=[
                Flag("all", "a", bool, help="Remove all unused volumes, not just anonymous ones"),
                Flag("filter", None, "filter", help="Provide filter values"),
                Flag("force", "f", bool, help="Do not prompt for confirmation"),
            ],
            args=(0, 0),
            handler="berth.cli.volumes:prune",
        ),
        Command(
            "rm",
            aliases=("remove",),
            summary="Remove one or more volumes",
            usage="[OPTIONS] VOLUME [VOLUME...]",
            flags=[Flag("force", "f", bool, help="Force the removal of one or more volumes")],
            args=(1, None),
            handler="berth.cli.volumes:rm",
        ),
    ],
)

# ---------------------------------------------------------------------------------- networks

PORT = Command(
    "port",
    summary="List port mappings or a specific mapping for the container",
    usage="CONTAINER [PRIVATE_PORT[/PROTO]]",
    args=(1, 2),
    handler="berth.cli.networks:port",
)
NETWORK = Group(
    "network",
    summary="Manage networks",
    commands=[
        Command(
            "connect",
            summary="Connect a container to a network",
            usage="[OPTIONS] NETWORK CONTAINER",
            flags=[
                Flag("alias", None, list, help="Add network-scoped alias for the container"),
                Flag("ip", None, str, help='IPv4 address (e.g., "172.30.100.104")'),
            ],
            args=(2, 2),
            handler="berth.cli.networks:connect",
        ),
        Command(
            "create",
            summary="Create a network",
            usage="[OPTIONS] NETWORK",
            flags=[
                Flag("driver", "d", str, default="bridge", help="Driver to manage the Network"),
                Flag("gateway", None, list, help="IPv4 or IPv6 Gateway for the master subnet"),
                Flag("internal", None, bool, help="Restrict external access to the network"),
                Flag("label", None, list, help="Set metadata on a network"),
                Flag("opt", "o", list, help="Set driver specific options"),
                Flag(
                    "subnet",
                    None,
                    list,
                    help="Subnet in CIDR format that represents a network segment",
                ),
            ],
            args=(1, 1),
            handler="berth.cli.networks:create",
        ),
        Command(
            "disconnect",
            summary="Disconnect a container from a network",
            usage="[OPTIONS] NETWORK CONTAINER",
            flags=[
                Flag("force", "f", bool, help="Force the container to disconnect from a network")
            ],
            args=(2, 2),
            handler="berth.cli.networks:disconnect",
        ),
        Command(
            "inspect",
            summary="Display detailed information on one or more networks",
            usage="[OPTIONS] NETWORK [NETWORK...]",
            flags=[Flag("format", "f", str, help="Format output using a custom template")],
            args=(1, None),
            handler="berth.cli.networks:inspect",
        ),
        Command(
            "ls",
            aliases=("list",),
            summary="List networks",
            usage="[OPTIONS]",
            flags=[
                Flag("filter", "f", "filter", help='Provide filter values (e.g. "driver=bridge")'),
                Flag("format", None, str, help=FORMAT_HELP),
                Flag("no-trunc", None, bool, help="Do not truncate the output"),
                Flag("quiet", "q", bool, help="Only display network IDs"),
            ],
            args=(0, 0),
            handler="berth.cli.networks:ls",
        ),
        Command(
            "prune",
            summary="Remove all unused networks",
            usage="[OPTIONS]",
            flags=[
                Flag("filter", None, "filter", help="Provide filter values"),
                Flag("force", "f", bool, help="Do not prompt for confirmation"),
            ],
            args=(0, 0),
            handler="berth.cli.networks:prune",
        ),
        Command(
            "rm",
            aliases=("remove",),
            summary="Remove one or more networks",
            usage="NETWORK [NETWORK...]",
            args=(1, None),
            handler="berth.cli.networks:rm",
        ),
    ],
)

SHORTCUTS = [
    *EXTRA_SHORTCUTS,
    PORT,
    RUN.shortcut("run", top=1),
    EXEC.shortcut("exec", top=3),
    PS.shortcut("ps", top=2),
    CREATE.shortcut("create"),
    START.shortcut("start"),
    STOP.shortcut("stop"),
    RESTART.shortcut("restart"),
    KILL.shortcut("kill"),
    RM.shortcut("rm"),
    LOGS.shortcut("logs"),
    INSPECT.shortcut("inspect"),
    WAIT.shortcut("wait"),
    PAUSE.shortcut("pause"),
    UNPAUSE.shortcut("unpause"),
    RENAME.shortcut("rename"),
]
