"""The ``berth`` command tree: every command, its flags, and the handler that runs it.

Docker's names and flags, so ``alias docker=berth`` works. Handlers are named as strings and
imported only when their command runs.
"""

from __future__ import annotations

from berth.cli.build_commands import BUILD, BUILDER
from berth.cli.container_commands import CONTAINER, NETWORK, SHORTCUTS, VOLUME
from berth.cli.container_extra_commands import EXTRA_SYSTEM_COMMANDS
from berth.cli.flags import GLOBAL_FLAGS, Command, Flag, Group

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template."
)
INSPECT_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template."
)

# ---------------------------------------------------------------------------------- images

IMAGE_LS = Command(
    "ls",
    aliases=("list",),
    summary="List images",
    usage="[OPTIONS] [REPOSITORY[:TAG]]",
    flags=[
        Flag("all", "a", bool, help="Show all images (default hides intermediate images)"),
        Flag("digests", None, bool, help="Show digests"),
        Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
        Flag("format", None, str, help=FORMAT_HELP),
        Flag("no-trunc", None, bool, help="Don't truncate output"),
        Flag("quiet", "q", bool, help="Only show image IDs"),
    ],
    args=(0, 1),
    handler="berth.cli.images:ls",
)
IMAGE_INSPECT = Command(
    "inspect",
    summary="Display detailed information on one or more images",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[Flag("format", "f", str, help=INSPECT_FORMAT_HELP)],
    args=(1, None),
    handler="berth.cli.images:inspect",
)
IMAGE_HISTORY = Command(
    "history",
    summary="Show the history of an image",
    usage="[OPTIONS] IMAGE",
    flags=[
        Flag("format", None, str, help=FORMAT_HELP),
        Flag(
            "human", "H", bool, default=True, help="Print sizes and dates in human readable format"
        ),
        Flag("no-trunc", None, bool, help="Don't truncate output"),
        Flag("quiet", "q", bool, help="Only show image IDs"),
    ],
    args=(1, 1),
    handler="berth.cli.images:history",
)
IMAGE_TAG = Command(
    "tag",
    summary="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    usage="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    args=(2, 2),
    handler="berth.cli.images:tag",
)
IMAGE_RM = Command(
    "rm",
    aliases=("remove",),
    summary="Remove one or more images",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[
        Flag("force", "f", bool, help="Force removal of the image"),
        Flag("no-prune", None, bool, help="Do not delete untagged parents"),
    ],
    args=(1, None),
    handler="berth.cli.images:rm",
)
IMAGE_PRUNE = Command(
    "prune",
    summary="Remove unused images",
    usage="[OPTIONS]",
    flags=[
        Flag("all", "a", bool, help="Remove all unused images, not just dangling ones"),
        Flag("filter", None, "filter", help='Provide filter values (e.g. "until=<timestamp>")'),
        Flag("force", "f", bool, help="Do not prompt for confirmation"),
    ],
    args=(0, 0),
    handler="berth.cli.images:prune",
)
IMAGE_IMPORT = Command(
    "import",
    summary="Import the contents from a tarball to create a filesystem image",
    usage="[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    flags=[
        Flag("change", "c", list, help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", str, help="Set commit message for imported image"),
        Flag("platform", None, str, help="Set platform if server is multi-platform capable"),
    ],
    args=(1, 2),
    handler="berth.cli.images:import_",
)
IMAGE_SAVE = Command(
    "save",
    summary="Save one or more images to a tar archive (streamed to STDOUT by default)",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[
        Flag("output", "o", str, help="Write to a file, instead of STDOUT"),
        Flag(
            "format",
            None,
            str,
            default="docker-archive",
            help='Archive format: "docker-archive" (default) or "oci-archive"',
        ),
    ],
    args=(1, None),
    handler="berth.cli.images:save",
)
IMAGE_LOAD = Command(
    "load",
    summary="Load an image from a tar archive or STDIN",
    usage="[OPTIONS]",
    flags=[
        Flag("input", "i", str, help="Read from tar archive file, instead of STDIN"),
        Flag("quiet", "q", bool, help="Suppress the load output"),
    ],
    args=(0, 0),
    handler="berth.cli.images:load",
)
IMAGE_BOOTSTRAP = Command(
    "bootstrap",
    summary="Make a base image on this host (busybox, debian[:suite])",
    usage="[OPTIONS] busybox|debian[:SUITE]",
    description=(
        "Make a base image locally, where Docker Hub is out of reach: busybox from Debian's\n"
        "busybox-static, or Debian (minbase) with debootstrap, as the official images are made."
    ),
    flags=[
        Flag("tag", "t", str, help="Name the image (default: the name given)"),
        Flag("mirror", None, str, help="Debian mirror for debootstrap"),
        Flag("quiet", "q", bool, help="Only print the image ID"),
    ],
    args=(1, 1),
    handler="berth.cli.images:bootstrap",
)

IMAGE = Group(
    "image",
    summary="Manage images",
    commands=[
        IMAGE_BOOTSTRAP,
        IMAGE_HISTORY,
        IMAGE_IMPORT,
        IMAGE_INSPECT,
        IMAGE_LOAD,
        IMAGE_LS,
        IMAGE_PRUNE,
        IMAGE_RM,
        IMAGE_SAVE,
        IMAGE_TAG,
    ],
)

# ---------------------------------------------------------------------------------- system

SYSTEM_DF = Command(
    "df",
    summary="Show berth disk usage",
    usage="[OPTIONS]",
    flags=[
        Flag("format", None, str, help=FORMAT_HELP),
        Flag("verbose", "v", bool, help="Show detailed information on space usage"),
    ],
    args=(0, 0),
    handler="berth.cli.system:df",
)
SYSTEM_CHECK = Command(
    "check",
    summary="Check the store for damage and leftovers of interrupted commands",
    usage="[OPTIONS]",
    flags=[Flag("repair", None, bool, help="Remove leftovers (temp files, orphaned layers)")],
    args=(0, 0),
    handler="berth.cli.system:check",
)
SYSTEM_RESET = Command(
    "reset",
    summary="Remove everything in the store and everything it has on the host",
    usage="[OPTIONS]",
    flags=[Flag("force", "f", bool, help="Do not prompt for confirmation")],
    args=(0, 0),
    handler="berth.cli.system:reset",
)
SYSTEM_BOOT = Command(
    "boot",
    summary="Start the containers whose restart policy says they run after a reboot",
    usage="",
    args=(0, 0),
    handler="berth.cli.monitor:boot",
)
SYSTEM_SUPERVISOR = Group(
    "supervisor",
    summary="Manage the store's supervisor of detached containers",
    commands=[
        Command(
            "status",
            summary="Show the supervisor's state",
            usage="[OPTIONS]",
            flags=[Flag("format", "f", str, help=INSPECT_FORMAT_HELP)],
            args=(0, 0),
            handler="berth.cli.monitor:supervisor_status",
        ),
        Command(
            "stop",
            summary="Stop the supervisor (refused while containers run)",
            usage="[OPTIONS]",
            flags=[
                Flag(
                    "force",
                    "f",
                    bool,
                    help="Stop it even while containers run: they go on unsupervised",
                )
            ],
            args=(0, 0),
            handler="berth.cli.monitor:supervisor_stop",
        ),
    ],
)
SYSTEM = Group(
    "system",
    summary="Manage berth",
    commands=[
        SYSTEM_BOOT,
        SYSTEM_CHECK,
        SYSTEM_DF,
        SYSTEM_RESET,
        SYSTEM_SUPERVISOR,
        *EXTRA_SYSTEM_COMMANDS,
    ],
)

# ---------------------------------------------------------------------------- distribution

PULL = Command(
    "pull",
    summary="Download an image from a registry",
    usage="[OPTIONS] NAME[:TAG|@DIGEST]",
    flags=[
        Flag("all-tags", "a", bool, help="Download all tagged images in the repository"),
        Flag("platform", None, str, help="Set platform if server is multi-platform capable"),
        Flag("quiet", "q", bool, help="Suppress verbose output"),
    ],
    args=(1, 1),
    handler="berth.cli.distribution:pull",
    top=6,
)
PUSH = Command(
    "push",
    summary="Upload an image to a registry",
    usage="[OPTIONS] NAME[:TAG]",
    flags=[
        Flag("all-tags", "a", bool, help="Push all tags of an image to the repository"),
        Flag("quiet", "q", bool, help="Suppress verbose output"),
    ],
    args=(1, 1),
    handler="berth.cli.distribution:push",
    top=7,
)
LOGIN = Command(
    "login",
    summary="Authenticate to a registry",
    usage="[OPTIONS] [SERVER]",
    flags=[
        Flag("password", "p", str, help="Password"),
        Flag("password-stdin", None, bool, help="Take the password from stdin"),
        Flag("username", "u", str, help="Username"),
    ],
    args=(0, 1),
    handler="berth.cli.distribution:login",
    top=8,
)
LOGOUT = Command(
    "logout",
    summary="Log out from a registry",
    usage="[SERVER]",
    args=(0, 1),
    handler="berth.cli.distribution:logout",
)
SEARCH = Command(
    "search",
    summary="Search Docker Hub for images",
    usage="[OPTIONS] TERM",
    flags=[
        Flag("filter", "f", "filter", help="Filter output based on conditions provided"),
        Flag("format", None, str, help="Pretty-print search using a Go template"),
        Flag("limit", None, int, default=25, help="Max number of search results"),
        Flag("no-trunc", None, bool, help="Don't truncate output"),
    ],
    args=(1, 1),
    handler="berth.cli.distribution:search",
)
MANIFEST = Group(
    "manifest",
    summary="Manage image manifests and manifest lists",
    commands=[
        Command(
            "inspect",
            summary="Display an image manifest, or manifest list",
            usage="[OPTIONS] [MANIFEST_LIST] MANIFEST",
            flags=[
                Flag("insecure", None, bool, help="Allow communication with an insecure registry"),
                Flag(
                    "verbose",
                    "v",
                    bool,
                    help="Output additional info including layers and platform",
                ),
            ],
            args=(1, 2),
            handler="berth.cli.distribution:manifest_inspect",
        )
    ],
)

# -------------------------------------------------------------------------------- registry

REGISTRY_SERVE = Command(
    "serve",
    summary="Serve an OCI registry (distribution spec v1.1) from a directory",
    usage="[OPTIONS]",
    flags=lambda: [
        Flag(
            "addr",
            None,
            str,
            default="127.0.0.1:5000",
            help="Address to listen on (binds 127.0.0.1 unless told otherwise)",
        ),
        Flag(
            "storage",
            None,
            str,
            default="/var/lib/berth/registry",
            help="Directory that holds the registry's blobs, manifests and uploads",
        ),
        Flag("htpasswd", None, str, help="Require basic auth with this htpasswd (bcrypt) file"),
        Flag("tls-cert", None, str, help="Serve HTTPS with this certificate (PEM)"),
        Flag("tls-key", None, str, help="Private key of --tls-cert (PEM)"),
        Flag("token", None, bool, help="Require bearer tokens (issued at /token by default)"),
        Flag("token-realm", None, str, help="Token endpoint of another issuer"),
        Flag(
            "token-service",
            None,
            str,
            default="berth-registry",
            help="Service name in token requests",
        ),
        Flag("acl", None, str, help="JSON or YAML file of per-repository pull/push rights"),
        Flag("read-only", None, bool, help="Refuse pushes and deletes"),
        Flag("workers", None, int, default=1, help="Worker processes sharing the port"),
        Flag("quiet", "q", bool, help="Do not log one line per request"),
    ],
    args=(0, 0),
    handler="berth.cli.registry:serve",
)
REGISTRY_GC = Command(
    "gc",
    summary="Remove blobs no manifest references (safe while the registry serves)",
    usage="[OPTIONS] STORAGE",
    flags=[
        Flag("dry-run", None, bool, help="Only report what would be removed"),
        Flag(
            "grace",
            None,
            int,
            default=3600,
            help="Keep content written less than this many seconds ago",
        ),
    ],
    args=(1, 1),
    handler="berth.cli.registry:gc",
)
REGISTRY = Group(
    "registry", summary="Serve an OCI registry", commands=[REGISTRY_GC, REGISTRY_SERVE]
)

VERSION = Command(
    "version",
    summary="Show the berth version information",
    usage="[OPTIONS]",
    flags=[Flag("format", "f", str, help=INSPECT_FORMAT_HELP)],
    args=(0, 0),
    handler="berth.cli.system:version",
    top=9,
)

ROOT = Group(
    "berth",
    summary="A container engine for Linux: build, store, run, push and pull OCI images",
    flags=GLOBAL_FLAGS,
    commands=[
        BUILDER,
        CONTAINER,
        IMAGE,
        MANIFEST,
        NETWORK,
        REGISTRY,
        SYSTEM,
        VOLUME,
        *SHORTCUTS,
        BUILD,
        IMAGE_LS.shortcut("images", top=5),
        PULL,
        PUSH,
        LOGIN,
        LOGOUT,
        SEARCH,
        IMAGE_RM.shortcut("rmi"),
        IMAGE_TAG.shortcut("tag"),
        IMAGE_HISTORY.shortcut("history"),
        IMAGE_IMPORT.shortcut("import"),
        IMAGE_SAVE.shortcut("save"),
        IMAGE_LOAD.shortcut("load"),
        VERSION,
    ],
)
