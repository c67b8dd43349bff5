"""The three files Docker writes for every container: /etc/hostname, /etc/hosts and
/etc/resolv.conf, kept in the container's dir and bound into it."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def write_etc_files(
    container_dir: str,
    config: dict[str, Any],
    host: dict[str, Any],
    *,
    addresses: list[str] | None = None,
    resolv_conf: str | None = None,
    hosts_extra: list[str] | None = None,
) -> None:
    hostname = config.get("Hostname") or ""
    domain = config.get("Domainname") or ""
    _write(os.path.join(container_dir, "hostname"), f"{hostname}\n")
    lines = [HOSTS_BASE]
    for entry in host.get("ExtraHosts") or []:
        name, _, address = entry.partition(":")
        if not address:
            name, _, address = entry.partition("=")
        lines.append(f"{address}\t{name}\n")
    for line in hosts_extra or []:
        lines.append(line if line.endswith("\n") else line + "\n")
    fqdn = f"{hostname}.{domain}" if domain else hostname
    names = f"{fqdn} {hostname}" if domain else hostname
    for address in addresses or []:
        lines.append(f"{address}\t{names}\n")
    _write(os.path.join(container_dir, "hosts"), "".join(lines))
    _write(
        os.path.join(container_dir, "resolv.conf"),
        resolv_conf if resolv_conf is not None else host_resolv_conf(host),
    )


def host_resolv_conf(host: dict[str, Any], source: str = "/etc/resolv.conf") -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a container),
    with --dns / --dns-search / --dns-option applied, as Docker does."""
    try:
        with open(source) as f:
            text = f.read()
    except OSError:
        text = ""
    nameservers, search, options, other = [], [], [], []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not words[1].startswith(("127.", "::1")):
                nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
        else:
            other.append(line)
    if host.get("Dns"):
        nameservers = list(host["Dns"])
    if host.get("DnsSearch"):
        search = list(host["DnsSearch"])
    if host.get("DnsOptions"):
        options = list(host["DnsOptions"])
    out = [f"nameserver {ns}" for ns in nameservers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n" if out else ""


def _write(path: str, text: str) -> None:
    temp = f"{path}.tmp"
    with open(temp, "w") as f:
        f.write(text)
    os.chmod(temp, 0o644)
    os.replace(temp, path)
