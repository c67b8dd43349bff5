"""Handlers of the image commands: images, image inspect, history, tag, rmi, prune,
import, save, load, bootstrap."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

from berth.cli.flags import Invocation
from berth.cli.render import format_rows, inspect_each, write
from berth.engine import Engine
from berth.engine.images import Image
from berth.errors import BerthError, InvalidArgument, UsageError

IMAGE_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "Containers": "CONTAINERS",
}
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def _engine() -> Engine:
    return Engine()


def ls(inv: Invocation) -> int:
    from berth.filters import parse_filters

    filters = parse_filters(inv.get_list("filter"))
    filters.validate(("dangling", "label", "before", "since", "reference", "until"))
    engine = _engine()
    name = inv.args[0] if inv.args else None
    images = engine.images.list(name, all=inv.get_bool("all"), filters=filters.to_dict())
    no_trunc = inv.get_bool("no_trunc")
    rows = [row for image in images for row in _image_rows(image, no_trunc)]
    if inv.get_bool("quiet"):  # one line per row, duplicates included, as docker prints
        write("".join(f"{row['ID']}\n" for row in rows))
        return 0
    if inv.get_bool("digests"):
        default = (
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        )
    else:
        default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    write(format_rows(rows, inv.get_str("format"), default_table=default, headers=IMAGE_HEADERS))
    return 0


def _image_rows(image: Image, no_trunc: bool) -> list[dict[str, Any]]:
    from berth.units import human_size, time_ago

    created = image.created
    image_id = image.id if no_trunc else image.record.id.hex[:12]
    base = {
        "Containers": "N/A",
        "CreatedAt": _go_time(created),
        "CreatedSince": time_ago(created.timestamp()) if created.year > 1 else "N/A",
        "ID": image_id,
        "SharedSize": "N/A",
        "Size": human_size(image.record.size),
        "UniqueSize": "N/A",
        "VirtualSize": human_size(image.record.size),
    }
    digests: dict[str, str] = {}
    for text in image.repo_digests:
        repository, _, digest = text.partition("@")
        digests.setdefault(repository, digest)
    rows = []
    tagged_repos = set()
    for ref in image.record.tags:
        repository = ref.familiar_repository
        tagged_repos.add(repository)
        rows.append(_row(base, repository, ref.tag or "<none>", digests.get(repository, "<none>")))
    for repository, digest in digests.items():
        if repository not in tagged_repos:
            rows.append(_row(base, repository, "<none>", digest))
    if not rows:
        rows.append(_row(base, "<none>", "<none>", "<none>"))
    return rows


def _row(base: dict[str, Any], repository: str, tag: str, digest: str) -> dict[str, Any]:
    row = dict(base)
    row.update({"Digest": digest, "Repository": repository, "Tag": tag})
    return dict(sorted(row.items()))


def _go_time(moment: datetime) -> str:
    """Go's time.Time.String(): ``2024-01-02 03:04:05 +0000 UTC``."""
    local = moment.astimezone(UTC)
    return local.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def inspect(inv: Invocation) -> int:
    engine = _engine()
    return inspect_each(inv.args, engine.images.inspect, inv.get_str("format"))

def history(inv: Invocation) -> int:
    from berth.units import human_size, time_ago

    engine = _engine()
    rows_api = engine.images.history(inv.args[0])
    no_trunc = inv.get_bool("no_trunc")
    human = inv.get_bool("human")
    if inv.get_bool("quiet"):
        for row in rows_api:
            write((row["Id"] if no_trunc or row["Id"] == "<missing>" else row["Id"][7:19]) + "\n")
        return 0
    rows = []
    for row in rows_api:
        created = datetime.fromtimestamp(row["Created"], UTC)
        created_by = row["CreatedBy"]
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(
            {
                "Comment": row["Comment"],
                "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%SZ") if row["Created"] else "N/A",
                "CreatedBy": created_by,
                "CreatedSince": (time_ago(created.timestamp()) if human else created.isoformat())
                if row["Created"]
                else "N/A",
                "ID": row["Id"] if no_trunc or row["Id"] == "<missing>" else row["Id"][7:19],
                "Size": human_size(row["Size"]) if human else str(row["Size"]),
            }
        )
    default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    write(format_rows(rows, inv.get_str("format"), default_table=default, headers=HISTORY_HEADERS))
    return 0


def tag(inv: Invocation) -> int:
    _engine().images.tag(inv.args[0], inv.args[1])
    return 0


def rm(inv: Invocation) -> int:
    engine = _engine()
    failed = False
    for name in inv.args:
        try:
            records = engine.images.remove(
                name, force=inv.get_bool("force"), noprune=inv.get_bool("no_prune")
            )
        except BerthError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            failed = True
            continue
        for record in records:
            for kind, what in record.items():
                write(f"{kind}: {what}\n")
    return 1 if failed else 0


def prune(inv: Invocation) -> int:
    from berth.filters import parse_filters
    from berth.units import human_size

    filters = parse_filters(inv.get_list("filter"))
    filters.validate(("dangling", "label", "label!", "until"))
    all_images = inv.get_bool("all")
    if not inv.get_bool("force") and not _confirm(
        "WARNING! This will remove all images without at least one container associated to them."
        if all_images
        else "WARNING! This will remove all dangling images."
    ):
        return 0
    result = _engine().images.prune(all=all_images, filters=filters.to_dict())
    deleted = result["ImagesDeleted"] or []
    if deleted:
        write("Deleted Images:\n")
        for record in deleted:
            for kind, what in record.items():
                write(f"{kind.lower()}: {what}\n")
        write("\n")
    write(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}\n")
    return 0


def _confirm(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def import_(inv: Invocation) -> int:
    source_arg = inv.args[0]
    repository = inv.args[1] if len(inv.args) > 1 else None
    if source_arg.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"importing from a URL ({source_arg}) is not supported",
            hint="download it first, then `berth import FILE`",
        )
    source: Any = sys.stdin.buffer if source_arg == "-" else source_arg
    image = _engine().images.import_image(
        source, repository, changes=inv.get_list("change"), message=inv.get_str("message")
    )
    write(image.id + "\n")
    return 0


def save(inv: Invocation) -> int:
    output = inv.get_str("output")
    fmt = inv.get_str("format")
    engine = _engine()
    if not output:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        engine.images.save(inv.args, sys.stdout.buffer, format=fmt)
        sys.stdout.buffer.flush()
        return 0
    if os.path.exists(output) and not os.path.isfile(output):
        # a device, fifo or socket (e.g. /dev/stdout): write to it, never replace it
        with open(output, "wb") as out:
            engine.images.save(inv.args, out, format=fmt)
        return 0
    directory = os.path.dirname(os.path.abspath(output))
    temp = os.path.join(directory, f".{os.path.basename(output)}.berth-tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as out:
            engine.images.save(inv.args, out, format=fmt)
        os.replace(temp, output)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return 0


def load(inv: Invocation) -> int:
    path = inv.get_str("input")
    quiet = inv.get_bool("quiet")
    if not path and sys.stdin.isatty():
        raise UsageError(
            "requested load from stdin, but stdin is empty",
            hint="pass an archive with -i FILE or pipe one in",
        )
    engine = _engine()
    loaded = engine.images.load(path or sys.stdin.buffer)
    if not quiet:
        for image, tags in loaded:
            if tags:
                for name in tags:
                    write(f"Loaded image: {name}\n")
            else:
                write(f"Loaded image ID: {image.id}\n")
    return 0


def bootstrap(inv: Invocation) -> int:
    quiet = inv.get_bool("quiet")

    def progress(line: str) -> None:
        if not quiet:
            sys.stderr.write(f"{line}\n")

    image = _engine().images.bootstrap(
        inv.args[0],
        tag=inv.get_str("tag") or None,
        mirror=inv.get_str("mirror") or None,
        progress=progress,
    )
    if quiet:
        write(image.id + "\n")
    else:
        for name in image.tags:
            write(f"Bootstrapped image: {name} ({image.id})\n")
    return 0
