"""The runtime's state directory: one directory per container under the state root.

``<root>/<id>/state.json`` is what ``create`` recorded (pid and its start time, bundle, the
spec, the cgroup manager's state); ``<root>/<id>/exec.fifo`` exists from ``create`` until
``start``: the container's init blocks opening it for writing, and ``start`` opens it for
reading. Status is never stored; it is read from the kernel each time, as runc does:
the init gone (or a zombie, or its pid reused) means ``stopped``, a frozen cgroup ``paused``,
the fifo still there ``created``, else ``running``.
"""

from __future__ import annotations

import fcntl
import os
import time

from berth import jsonio
from berth.errors import ContainerNotFound, ContainerStateConflict, InvalidArgument, NameInUse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_STATE_ROOT = "/run/berth-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
LOCK_FILE = "lock"

STATUS_CREATING = "creating"
STATUS_CREATED = "created"
STATUS_RUNNING = "running"
STATUS_STOPPED = "stopped"
STATUS_PAUSED = "paused"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
MAX_ID_LENGTH = 1024


def validate_id(container_id: str) -> None:
    """Container ids are names of directories: letters, digits and ``_+-.``, as runc allows."""
    if (
        not container_id
        or container_id in (".", "..")
        or len(container_id) > MAX_ID_LENGTH
        or not _ID_CHARS.issuperset(container_id)
    ):
        raise InvalidArgument(
            f"invalid container id {container_id!r}",
            hint="use letters, digits and _ + - . only (and not '.' or '..')",
        )


def rfc3339_now() -> str:
    """Now, as runc writes ``created``: UTC with nanoseconds."""
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def process_start_time(pid: int, *, exited_child: bool = False) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks), None when the process is
    gone or a zombie. Together with the pid it names one process even if the pid is reused.

    ``exited_child``: ``pid`` is this process's child, not reaped yet (so its pid is not
    reused): a zombie's start time too. A container created and started in one may have run
    its program and exited before its creator looks (``true`` on a busy host)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    # fields[0] is field 3 (state); field 22 is fields[19]
    if fields[0] in (b"Z", b"X") and not exited_child:
        return None
    return int(fields[19])


class ContainerRecord:
    """What ``create`` records about a container (``state.json``)."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroup",
        "created",
        "id",
        "owner",
        "pid",
        "pid_start",
        "rootfs",
        "spec",
    )

    def __init__(
        self,
        container_id: str,
        bundle: str,
        rootfs: str,
        spec: dict[str, Any],
        *,
        pid: int = 0,
        pid_start: int = 0,
        created: str = "",
        owner: str = "",
        annotations: dict[str, str] | None = None,
        cgroup: dict[str, Any] | None = None,
    ) -> None:
        self.id = container_id
        self.bundle = bundle
        self.rootfs = rootfs
        self.spec = spec
        self.pid = pid
        self.pid_start = pid_start
        self.created = created or rfc3339_now()
        self.owner = owner
        self.annotations = annotations if annotations is not None else {}
        self.cgroup = cgroup

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        return cls(
            data["id"],
            data["bundle"],
            data["rootfs"],
            data["spec"],
            pid=data.get("pid", 0),
            pid_start=data.get("pid_start", 0),
            created=data.get("created", ""),
            owner=data.get("owner", ""),
            annotations=data.get("annotations") or {},
            cgroup=data.get("cgroup"),
        )

    def init_alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.pid_start

    def oci_state(self, status: str) -> dict[str, Any]:
        """The state as ``runc state`` prints it (runtime-spec's state plus runc's fields)."""
        return {
            "ociVersion": self.spec.get("ociVersion", "1.0.2"),
            "id": self.id,
            "pid": self.pid if status != STATUS_STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        }


class StateDir:
    """``<root>/<id>``: the files of one container."""

    __slots__ = ("container_id", "path", "root")

    def __init__(self, root: str, container_id: str) -> None:
        validate_id(container_id)
        self.root = os.path.abspath(root)
        self.container_id = container_id
        self.path = os.path.join(self.root, container_id)

    @property
    def state_file(self) -> str:
        return os.path.join(self.path, STATE_FILE)

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def make(self) -> None:
        """Create the directory and the exec fifo; the id must not be in use."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise NameInUse(
                f"container {self.container_id!r} already exists in {self.root}",
                hint="delete it first, or choose another id",
            ) from None
        os.mkfifo(self.fifo, 0o622)

    def save(self, record: ContainerRecord) -> None:
        tmp = os.path.join(self.path, f".{STATE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            data = jsonio.dumps(record.to_json()).encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.rename(tmp, self.state_file)

    def load(self) -> ContainerRecord:
        try:
            with open(self.state_file, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            if self.exists():
                raise ContainerStateConflict(
                    f"container {self.container_id!r} is still being created (or its creation "
                    "failed half-way)",
                    hint="wait for create to finish, or run 'delete --force'",
                ) from None
            raise ContainerNotFound(
                f"container {self.container_id!r} does not exist in {self.root}",
                hint="check the id with 'list', and the --root of the command",
            ) from None
        return ContainerRecord.from_json(jsonio.loads(raw))

    def fifo_exists(self) -> bool:
        return os.path.exists(self.fifo)

    def lock(self) -> int:
        """An exclusive lock on this container (released by closing the returned fd)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(
                f"container {self.container_id!r} does not exist in {self.root}",
                hint="check the id with 'list', and the --root of the command",
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def remove(self) -> None:
        for name in os.listdir(self.path):
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    # other dirs (such as "@seccomp", the kept seccomp programs) are not containers
    return sorted(n for n in names if _ID_CHARS.issuperset(n) and os.path.isdir(f"{root}/{n}"))


def status_of(record: ContainerRecord, state_dir: StateDir, frozen: bool) -> str:
    if not record.init_alive():
        return STATUS_STOPPED
    if frozen:
        return STATUS_PAUSED
    if state_dir.fifo_exists():
        return STATUS_CREATED
    return STATUS_RUNNING


def load_json_file(path: str) -> Any:
    with open(path, "rb") as f:
        return jsonio.loads(f.read())
