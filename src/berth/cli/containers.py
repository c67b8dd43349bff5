"""Handlers of the container commands: run, create, start, stop, restart, kill, rm, ps,
inspect, logs, exec, wait, pause, unpause, rename, container prune."""

from __future__ import annotations

import os
import sys
import time

from berth import trace
from berth.cli.render import format_rows, inspect_each, write
from berth.containers.options import CreateOptions, HealthcheckOverride, LogConfig
from berth.engine import Engine
from berth.errors import BerthError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.cli.flags import Invocation
    from berth.engine.containers import Container

PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "Ports": "PORTS",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "Size": "SIZE",
    "State": "STATE",
    "LocalVolumes": "LOCAL VOLUMES",
}


# --------------------------------------------------------------------------- create / run


def options_from(inv: Invocation) -> CreateOptions:
    """``run``/``create`` flags -> CreateOptions, with docker's checks and messages."""
    from berth.containers import flagvalues as fv

    image, *command = inv.args
    o = CreateOptions(image=image, command=command or None)
    if inv.is_set("entrypoint"):
        entry = inv.get_str("entrypoint")
        o.entrypoint = [entry] if entry else []
    env: list[str] = []
    for path in inv.get_list("env_file"):
        env += fv.read_env_file(path)
    o.env = env + inv.get_list("env")
    o.name = inv.get_str("name") or None
    o.working_dir = inv.get_str("workdir")
    o.user = inv.get_str("user")
    o.hostname = inv.get_str("hostname")
    o.domainname = inv.get_str("domainname")
    labels: list[str] = []
    for path in inv.get_list("label_file"):
        labels += fv.read_env_file(path)
    o.labels = fv.parse_key_values(labels + inv.get_list("label"), "label")
    o.tty = inv.get_bool("tty")
    o.stdin_open = inv.get_bool("interactive")
    attach = [a.lower() for a in inv.get_list("attach")]
    detach = bool(inv.options.get("detach"))
    o.attach_stdin = ("stdin" in attach) or (o.stdin_open and not detach)
    o.attach_stdout = not detach and (not attach or "stdout" in attach)
    o.attach_stderr = not detach and (not attach or "stderr" in attach)
    o.stop_signal = inv.get_str("stop_signal")
    if inv.is_set("stop_timeout"):
        o.stop_timeout = inv.get_int("stop_timeout")
    o.exposed_ports = [p if "/" in p else f"{p}/tcp" for p in inv.get_list("expose")]
    o.healthcheck = HealthcheckOverride(
        test=["CMD-SHELL", inv.get_str("health_cmd")] if inv.get_str("health_cmd") else None,
        interval_ns=inv.get_int("health_interval") if inv.is_set("health_interval") else None,
        timeout_ns=inv.get_int("health_timeout") if inv.is_set("health_timeout") else None,
        start_period_ns=inv.get_int("health_start_period")
        if inv.is_set("health_start_period")
        else None,
        start_interval_ns=inv.get_int("health_start_interval")
        if inv.is_set("health_start_interval")
        else None,
        retries=inv.get_int("health_retries") if inv.is_set("health_retries") else None,
        disable=inv.get_bool("no_healthcheck"),
    )
    if o.healthcheck.disable and o.healthcheck.test:
        raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
    o.mounts = [fv.parse_volume(v) for v in inv.get_list("volume")]
    o.mounts += [fv.parse_mount(m) for m in inv.get_list("mount")]
    o.mounts += [fv.parse_tmpfs(t) for t in inv.get_list("tmpfs")]
    o.volumes_from = inv.get_list("volumes_from")
    o.read_only = inv.get_bool("read_only")
    o.memory = inv.get_int("memory")
    o.memory_reservation = inv.get_int("memory_reservation")
    swap = inv.get_str("memory_swap")
    o.memory_swap = -1 if swap == "-1" else (_ram_size(swap) if swap else 0)
    swappiness = inv.get_int("memory_swappiness")
    o.memory_swappiness = swappiness if swappiness >= 0 else None
    o.oom_kill_disable = inv.get_bool("oom_kill_disable")
    o.oom_score_adj = inv.get_int("oom_score_adj")
    if not -1000 <= o.oom_score_adj <= 1000:
        raise InvalidArgument(
            f"invalid value {o.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    cpus = inv.get_str("cpus")
    if cpus:
        try:
            o.nano_cpus = round(float(cpus) * 1e9)
        except ValueError:
            raise InvalidArgument(f'invalid argument "{cpus}" for "--cpus" flag') from None
    o.cpu_shares = inv.get_int("cpu_shares")
    o.cpu_period = inv.get_int("cpu_period")
    o.cpu_quota = inv.get_int("cpu_quota")
    o.cpuset_cpus = inv.get_str("cpuset_cpus")
    o.cpuset_mems = inv.get_str("cpuset_mems")
    if inv.is_set("pids_limit"):
        o.pids_limit = inv.get_int("pids_limit")
    o.blkio_weight = inv.get_int("blkio_weight")
    o.shm_size = inv.get_int("shm_size")
    o.ulimits = [fv.parse_ulimit(u) for u in inv.get_list("ulimit")]
    o.privileged = inv.get_bool("privileged")
    o.cap_add = inv.get_list("cap_add")
    o.cap_drop = inv.get_list("cap_drop")
    o.security_opt = inv.get_list("security_opt")
    o.group_add = inv.get_list("group_add")
    o.devices = [fv.parse_device(d) for d in inv.get_list("device")]
    o.sysctls = fv.parse_key_values(inv.get_list("sysctl"), "sysctl")
    o.userns_mode = inv.get_str("userns")
    if o.userns_mode not in ("", "host"):
        raise InvalidArgument(
            f"invalid USER mode: {o.userns_mode}", hint="berth supports --userns=host (the default)"
        )
    o.init = inv.get_bool("init")
    o.restart_policy = fv.parse_restart(inv.get_str("restart"))
    o.auto_remove = inv.get_bool("rm")
    if o.auto_remove and o.restart_policy.name != "no":
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    o.log_config = LogConfig(
        inv.get_str("log_driver") or "json-file",
        fv.parse_key_values(inv.get_list("log_opt"), "log-opt"),
    )
    if o.log_config.type not in ("json-file", "none", "local"):
        raise InvalidArgument(
            f'logging driver "{o.log_config.type}" is not supported',
            hint="berth has json-file, local and none",
        )
    o.runtime = inv.get_str("runtime")
    o.network_mode = inv.get_str("network")
    o.network_aliases = inv.get_list("network_alias")
    o.ipv4_address = inv.get_str("ip")
    o.publish = inv.get_list("publish")
    o.publish_all = inv.get_bool("publish_all")
    o.extra_hosts = inv.get_list("add_host")
    o.dns = inv.get_list("dns")
    o.dns_search = inv.get_list("dns_search")
    o.dns_options = inv.get_list("dns_option")
    o.mac_address = inv.get_str("mac_address")
    o.platform = inv.get_str("platform")
    pull = inv.get_str("pull")
    if pull not in ("always", "missing", "never"):
        raise InvalidArgument(
            f'invalid pull option: "{pull}": must be one of "always", "missing" or "never"'
        )
    o.pull = pull  # type: ignore[assignment]
    return o


def _ram_size(text: str) -> int:
    from berth.units import parse_ram_size  # here: berth.units is big, and rarely needed

    return parse_ram_size(text)


def create(inv: Invocation) -> int:
    engine = Engine()
    container = engine.containers.create(options_from(inv))
    _write_cidfile(inv, container.id)
    write(container.id + "\n")
    return 0


def run(inv: Invocation) -> int:
    trace.mark("run handler imported")
    from berth.runtime.cgroups import warm

    warm.start()  # the container's init joins its cgroups faster: see berth.runtime.cgroups.warm
    options = options_from(inv)
    detach = inv.get_bool("detach")
    engine = Engine()
    container = engine.containers.create(options)
    trace.mark("container created")
    _write_cidfile(inv, container.id)
    if detach:
        engine.containers.start(container)
        write(container.id + "\n")
        return 0
    if options.tty and options.stdin_open:
        # attached and started in one step by the supervisor, as Docker's client does: the
        # detach keys leave it running, and `berth attach` comes back to it
        return engine.containers.start_attached(
            container, stdin=True, detach_keys=inv.get_str("detach_keys") or "ctrl-p,ctrl-q"
        )
    return _run_attached(engine, container, options, sig_proxy=inv.get_bool("sig_proxy"))


def _run_attached(
    engine: Engine, container: Container, options: CreateOptions, *, sig_proxy: bool
) -> int:
    """``run`` in the foreground: the container is this process's child."""
    stdin = 0 if options.stdin_open else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    logging = not options.auto_remove and options.log_config.type != "none"
    try:
        if options.tty:
            from berth.engine.foreground_tty import run_foreground_tty

            code = run_foreground_tty(engine.containers, container, stdin_open=options.stdin_open)
        elif logging:
            read_out, write_out = os.pipe()
            read_err, write_err = os.pipe()
            out = sys.stdout.buffer
            err = sys.stderr.buffer

            def sink(name: str, data: bytes) -> None:
                stream = out if name == "stdout" else err
                stream.write(data)
                stream.flush()

            code = engine.containers.run_foreground(
                container,
                stdio=(stdin, write_out, write_err),
                pipes={"stdout": read_out, "stderr": read_err},
                sink=sink,
                sig_proxy=sig_proxy,
            )
        else:
            code = engine.containers.run_foreground(
                container, stdio=(stdin, 1, 2), sig_proxy=sig_proxy, log=False
            )
    finally:
        if stdin != 0:
            os.close(stdin)
    return code


def _write_cidfile(inv: Invocation, container_id: str) -> None:
    path = inv.get_str("cidfile")
    if not path:
        return
    if os.path.exists(path):
        raise InvalidArgument(
            f"container ID file found, make sure the other container isn't running or delete {path}"
        )
    with open(path, "w") as f:
        f.write(container_id)


# ------------------------------------------------------------------------------ lifecycle


def _each(inv: Invocation, action: Any, *, echo: bool = True) -> int:
    """Docker's multi-container commands: act on each, report failures, exit 1 if any."""
    engine = Engine()
    failed = False
    for name in inv.args:
        try:
            container = engine.containers.get(name)
            action(engine, container)
            if echo:
                write(f"{name}\n")
        except BerthError as exc:
            sys.stderr.write(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


def start(inv: Invocation) -> int:
    attach = inv.get_bool("attach") or inv.get_bool("interactive")
    if attach and len(inv.args) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    if attach:
        engine = Engine()
        return engine.containers.start_attached(
            engine.containers.get(inv.args[0]),
            stdin=inv.get_bool("interactive"),
            detach_keys=inv.get_str("detach_keys") or "ctrl-p,ctrl-q",
        )
    return _each(inv, lambda engine, c: engine.containers.start(c))


def stop(inv: Invocation) -> int:
    timeout = inv.get_int("time") if inv.is_set("time") else None
    signal_name = inv.get_str("signal") or None
    return _each(
        inv, lambda engine, c: engine.containers.stop(c, timeout=timeout, signal_name=signal_name)
    )


def restart(inv: Invocation) -> int:
    timeout = inv.get_int("time") if inv.is_set("time") else None

    def action(engine: Engine, container: Container) -> None:
        if container.record.running:
            engine.containers.stop(
                container, timeout=timeout, signal_name=inv.get_str("signal") or None
            )
        container.reload()
        engine.containers.start(container)

    return _each(inv, action)


def kill(inv: Invocation) -> int:
    signal_name = inv.get_str("signal") or "KILL"
    return _each(inv, lambda engine, c: engine.containers.kill(c, signal_name))


def rm(inv: Invocation) -> int:
    force = inv.get_bool("force")
    volumes = inv.get_bool("volumes")
    return _each(inv, lambda engine, c: engine.containers.remove(c, force=force, volumes=volumes))


def pause(inv: Invocation) -> int:
    return _each(inv, lambda engine, c: engine.containers.pause(c, True))


def unpause(inv: Invocation) -> int:
    return _each(inv, lambda engine, c: engine.containers.pause(c, False))


def rename(inv: Invocation) -> int:
    Engine().containers.get(inv.args[0]).rename(inv.args[1])
    return 0


def wait(inv: Invocation) -> int:
    engine = Engine()
    failed = False
    for name in inv.args:
        try:
            container = engine.containers.get(name)
            write(f"{engine.containers.wait(container)}\n")
        except BerthError as exc:
            sys.stderr.write(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


def prune(inv: Invocation) -> int:
    from berth.filters import parse_filters
    from berth.units import human_size

    filters = parse_filters(inv.get_list("filter"))
    if not inv.get_bool("force"):
        sys.stdout.write(
            "WARNING! This will remove all stopped containers.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = Engine().containers.prune(filters.to_dict())
    deleted = result["ContainersDeleted"] or []
    if deleted:
        write("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) + "\n")
    write(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}\n")
    return 0


# ---------------------------------------------------------------------------- listing


def ps(inv: Invocation) -> int:
    from berth.filters import parse_filters

    engine = Engine()
    filters = parse_filters(inv.get_list("filter"))
    limit = 1 if inv.get_bool("latest") else inv.get_int("last")
    containers = engine.containers.list(
        all=inv.get_bool("all"), filters=filters.to_dict(), limit=limit
    )
    no_trunc = inv.get_bool("no_trunc")
    if inv.get_bool("quiet"):
        write("".join(f"{c.id if no_trunc else c.short_id}\n" for c in containers))
        return 0
    rows = [ps_row(engine, c, no_trunc=no_trunc, size=inv.get_bool("size")) for c in containers]
    default = (
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
        "{{.Ports}}\t{{.Names}}"
    )
    if inv.get_bool("size"):
        default += "\t{{.Size}}"
    write(format_rows(rows, inv.get_str("format"), default_table=default, headers=PS_HEADERS))
    return 0


def ps_row(
    engine: Engine, container: Container, *, no_trunc: bool, size: bool = False
) -> dict[str, Any]:
    from berth.units import human_size, time_ago

    record = container.record
    argv = [record.extra.get("Path") or "", *(record.extra.get("Args") or [])]
    command = " ".join(a for a in argv if a)
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    image = record.image_ref or record.image_id
    if image.startswith("sha256:") and not no_trunc:
        image = image[7:19]
    labels = record.config.get("Labels") or {}
    row = {
        "Command": f'"{command}"',
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(record.created)),
        "ID": record.id if no_trunc else record.short_id,
        "Image": image,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "LocalVolumes": str(
            sum(1 for m in record.extra.get("Mounts") or [] if m.get("Type") == "volume")
        ),
        "Mounts": ",".join(
            m.get("Name") or m.get("Source", "") for m in record.extra.get("Mounts") or []
        ),
        "Names": record.name,
        "Networks": str(record.host_config.get("NetworkMode") or ""),
        "Ports": _ports(record.extra.get("NetworkSettings") or {}) if record.running else "",
        "RunningFor": time_ago(record.created),
        "Size": "",
        "State": record.status,
        "Status": status_text(record.status, record.state),
    }
    if size:
        from berth.engine.containers import _dir_size

        upper = engine.containers.launcher.rootfs_dirs(record.id).upper
        row["Size"] = (
            f"{human_size(_dir_size(upper))} (virtual "
            f"{human_size(_image_size(engine, record.image_id) + _dir_size(upper))})"
        )
    return row


def _image_size(engine: Engine, image_id: str) -> int:
    record = engine.store.images.get(image_id)
    return record.size if record else 0


def _ports(settings: dict[str, Any]) -> str:
    out = []
    for port, bindings in (settings.get("Ports") or {}).items():
        for binding in bindings or []:
            host = binding.get("HostIp") or "0.0.0.0"
            out.append(f"{host}:{binding.get('HostPort')}->{port}")
        if not bindings:
            out.append(port)
    return ", ".join(out)


def status_text(status: str, state: dict[str, Any]) -> str:
    """ps's STATUS column: ``Up 5 minutes (healthy)``, ``Exited (0) 2 hours ago``..."""
    from berth.units import human_duration

    now = time.time()
    if status in ("running", "paused", "restarting"):
        if status == "restarting":
            return f"Restarting ({state.get('ExitCode', 0)}) {_since(state.get('FinishedAt'))}"
        text = f"Up {human_duration(now - _parse(state.get('StartedAt')))}"
        if status == "paused":
            text += " (Paused)"
        health = (state.get("Health") or {}).get("Status")
        if health == "starting":
            text += " (health: starting)"
        elif health in ("healthy", "unhealthy"):
            text += f" ({health})"
        return text
    if status == "created":
        return "Created"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {_since(state.get('FinishedAt'))}"
    if status == "dead":
        return "Dead"
    return status.capitalize()


def _since(text: Any) -> str:
    from berth.units import time_ago

    seconds = _parse(text)
    return time_ago(seconds) if seconds > 0 else ""


def _parse(text: Any) -> float:
    if not text or str(text).startswith("0001"):
        return 0.0
    from berth.engine.images import parse_time

    return parse_time(str(text)).timestamp()


def inspect(inv: Invocation) -> int:
    engine = Engine()
    return inspect_each(inv.args, lambda name: engine.containers.get(name).attrs,
                        inv.get_str("format"))

def logs(inv: Invocation) -> int:
    from berth.units import parse_timestamp

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    since = parse_timestamp(inv.get_str("since")) / 1e9 if inv.get_str("since") else None
    until = parse_timestamp(inv.get_str("until")) / 1e9 if inv.get_str("until") else None
    tail = inv.get_str("tail")
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise InvalidArgument(f'invalid value for "tail": {tail}')
    chunks = engine.containers.log_chunks(
        container,
        stdout=True,
        stderr=True,
        timestamps=inv.get_bool("timestamps"),
        tail=tail,
        since=since,
        until=until,
        follow=inv.get_bool("follow"),
    )
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    for name, data in chunks:
        stream = out if name == "stdout" else err
        stream.write(data)
        stream.flush()
    return 0


def exec_(inv: Invocation) -> int:
    from berth.containers import flagvalues as fv

    engine = Engine()
    container = engine.containers.get(inv.args[0])
    argv = inv.args[1:]
    env: list[str] = []
    for path in inv.get_list("env_file"):
        env += fv.read_env_file(path)
    env += inv.get_list("env")
    tty = inv.get_bool("tty")
    detach = inv.get_bool("detach")
    interactive = inv.get_bool("interactive")
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if detach:
            devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            engine.containers.launcher.exec(
                container.id,
                argv,
                env=env,
                user=inv.get_str("user"),
                workdir=inv.get_str("workdir"),
                stdio=(devnull, devnull, devnull),
                detached=True,
                privileged=inv.get_bool("privileged"),
            )
            os.close(devnull)
            return 0
        return engine.containers.launcher.exec(
            container.id,
            argv,
            env=env,
            user=inv.get_str("user"),
            workdir=inv.get_str("workdir"),
            tty=tty,
            stdio=(stdin, 1, 2),
            privileged=inv.get_bool("privileged"),
        )
    finally:
        if stdin != 0:
            os.close(stdin)
