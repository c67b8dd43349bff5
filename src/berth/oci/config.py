"""The image configuration (OCI image-spec ``config.json``, with Docker's extensions).

Docker's extensions that BuildKit writes and Docker reads (``Healthcheck``, ``OnBuild``,
``Shell``, ``ArgsEscaped``) are kept, as are unknown keys, so a config read and written again
loses nothing.
"""

from __future__ import annotations

from berth.errors import InvalidManifest
from berth.oci.digest import Digest
from berth.oci.jsondoc import canonical_json, load_json_object
from berth.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Healthcheck(Value):
    __slots__ = (
        "interval_ns",
        "retries",
        "start_interval_ns",
        "start_period_ns",
        "test",
        "timeout_ns",
    )

    def __init__(
        self,
        test: list[str],
        interval_ns: int = 0,
        timeout_ns: int = 0,
        start_period_ns: int = 0,
        start_interval_ns: int = 0,
        retries: int = 0,
    ) -> None:
        self.test = test
        self.interval_ns = interval_ns
        self.timeout_ns = timeout_ns
        self.start_period_ns = start_period_ns
        self.start_interval_ns = start_interval_ns
        self.retries = retries

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval_ns),
            ("Timeout", self.timeout_ns),
            ("StartPeriod", self.start_period_ns),
            ("StartInterval", self.start_interval_ns),
            ("Retries", self.retries),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Healthcheck:
        return cls(
            test=list(data.get("Test") or []),
            interval_ns=int(data.get("Interval") or 0),
            timeout_ns=int(data.get("Timeout") or 0),
            start_period_ns=int(data.get("StartPeriod") or 0),
            start_interval_ns=int(data.get("StartInterval") or 0),
            retries=int(data.get("Retries") or 0),
        )


class ContainerConfig(Value):
    """The ``config`` member: how to run a container from the image."""

    __slots__ = (
        "args_escaped",
        "cmd",
        "entrypoint",
        "env",
        "exposed_ports",
        "healthcheck",
        "labels",
        "on_build",
        "shell",
        "stop_signal",
        "user",
        "volumes",
        "working_dir",
    )

    def __init__(
        self,
        user: str = "",
        exposed_ports: list[str] | None = None,  # "80/tcp"
        env: list[str] | None = None,
        entrypoint: list[str] | None = None,
        cmd: list[str] | None = None,
        volumes: list[str] | None = None,
        working_dir: str = "",
        labels: dict[str, str] | None = None,
        stop_signal: str = "",
        args_escaped: bool = False,
        healthcheck: Healthcheck | None = None,
        on_build: list[str] | None = None,
        shell: list[str] | None = None,
    ) -> None:
        self.user = user
        self.exposed_ports = [] if exposed_ports is None else exposed_ports
        self.env = [] if env is None else env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.volumes = [] if volumes is None else volumes
        self.working_dir = working_dir
        self.labels = {} if labels is None else labels
        self.stop_signal = stop_signal
        self.args_escaped = args_escaped
        self.healthcheck = healthcheck
        self.on_build = [] if on_build is None else on_build
        self.shell = shell

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {path: {} for path in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ContainerConfig:
        data = data or {}
        health = data.get("Healthcheck")
        return cls(
            user=data.get("User") or "",
            exposed_ports=list((data.get("ExposedPorts") or {}).keys()),
            env=list(data.get("Env") or []),
            entrypoint=_opt_list(data.get("Entrypoint")),
            cmd=_opt_list(data.get("Cmd")),
            volumes=list((data.get("Volumes") or {}).keys()),
            working_dir=data.get("WorkingDir") or "",
            labels=dict(data.get("Labels") or {}),
            stop_signal=data.get("StopSignal") or "",
            args_escaped=bool(data.get("ArgsEscaped")),
            healthcheck=Healthcheck.from_json(health) if isinstance(health, dict) else None,
            on_build=list(data.get("OnBuild") or []),
            shell=_opt_list(data.get("Shell")),
        )

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def set_env(self, key: str, value: str) -> None:
        prefix = f"{key}="
        self.env = [e for e in self.env if not e.startswith(prefix)] + [f"{key}={value}"]


class HistoryEntry(Value):
    __slots__ = ("author", "comment", "created", "created_by", "empty_layer")

    def __init__(
        self,
        created: str = "",
        created_by: str = "",
        author: str = "",
        comment: str = "",
        empty_layer: bool = False,
    ) -> None:
        self.created = created
        self.created_by = created_by
        self.author = author
        self.comment = comment
        self.empty_layer = empty_layer

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            created=data.get("created") or "",
            created_by=data.get("created_by") or "",
            author=data.get("author") or "",
            comment=data.get("comment") or "",
            empty_layer=bool(data.get("empty_layer")),
        )


class ImageConfig(Value):
    __slots__ = (
        "architecture",
        "author",
        "config",
        "created",
        "diff_ids",
        "extra",
        "history",
        "os",
        "variant",
    )

    def __init__(
        self,
        architecture: str,
        os: str,
        diff_ids: list[Digest],
        config: ContainerConfig | None = None,
        created: str = "",
        author: str = "",
        variant: str = "",
        history: list[HistoryEntry] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.architecture = architecture
        self.os = os
        self.diff_ids = diff_ids
        self.config = ContainerConfig() if config is None else config
        self.created = created
        self.author = author
        self.variant = variant
        self.history = [] if history is None else history
        self.extra = {} if extra is None else extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["architecture"] = self.architecture
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_json()
        if self.created:
            out["created"] = self.created
        out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        if self.variant:
            out["variant"] = self.variant
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageConfig:
        data = load_json_object(raw, "image config")
        rootfs = data.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
            raise InvalidManifest("image config has no rootfs.diff_ids")
        try:
            diff_ids = [Digest.parse(str(d)) for d in rootfs["diff_ids"]]
        except Exception as exc:
            raise InvalidManifest(f"image config has an invalid diff_id: {exc}") from None
        known = {
            "architecture",
            "os",
            "config",
            "created",
            "author",
            "variant",
            "history",
            "rootfs",
        }
        history = data.get("history") or []
        return cls(
            architecture=str(data.get("architecture") or ""),
            os=str(data.get("os") or ""),
            diff_ids=diff_ids,
            config=ContainerConfig.from_json(data.get("config")),
            created=str(data.get("created") or ""),
            author=str(data.get("author") or ""),
            variant=str(data.get("variant") or ""),
            history=[HistoryEntry.from_json(h) for h in history if isinstance(h, dict)],
            extra={k: v for k, v in data.items() if k not in known},
        )


def _opt_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
