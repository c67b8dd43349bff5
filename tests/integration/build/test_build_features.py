"""RUN mounts, secrets, network, multi-stage builds, ONBUILD, ADD of archives and URLs."""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import ipaddress
import json
import lzma
import os
import tarfile
import threading
from collections.abc import Iterator

import pytest
import zstandard

from tests.integration.build.conftest import BuildCLI
from tests.integration.build.test_build_basic import _blocks, _files

pytestmark = [pytest.mark.root]


def test_cache_mount_persists_between_builds_and_stays_out_of_the_image(
    bcli, busybox, make_context, no_leaks
):
    first = make_context(
        {
            "Dockerfile": "FROM busybox\n"
            "RUN --mount=type=cache,target=/cache echo one >> /cache/log && cp /cache/log /seen\n",
        }
    )
    image1 = bcli.build(first, "-q").stdout.strip()
    second = make_context(
        {
            "Dockerfile": "FROM busybox\n"
            "RUN --mount=type=cache,target=/cache echo two >> /cache/log && cp /cache/log /seen2\n",
        }
    )
    result = bcli.build(second, "-q")
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert files["seen2"] == b"one\ntwo\n"
    assert not any(name.startswith("cache/") for name in files)
    assert _files(bcli, image1)["seen"] == b"one\n"


def test_secret_mount_is_readable_but_never_stored(bcli, busybox, make_context, no_leaks, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\n"
            "RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /len\n"
            'RUN --mount=type=secret,id=token,env=TOKEN echo -n "$TOKEN" | wc -c > /envlen\n',
        }
    )
    result = bcli.build(ctx, "-q", "-t", "sec", "--secret", f"id=token,src={secret}")
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip()
    files = _files(bcli, image_id)
    assert files["len"].strip() == b"12"
    assert files["envlen"].strip() == b"12"
    assert not any("secrets" in name for name in files)
    saved = os.path.join(bcli.root, "sec.tar")
    bcli("save", "-o", saved, "sec")
    with open(saved, "rb") as f:
        assert b"s3cr3t-value" not in f.read()
    # another value: the cache does not care (secrets are not part of the key)
    secret.write_text("other-value!")
    again = bcli.build(ctx, "--secret", f"id=token,src={secret}")
    assert (
        _blocks(again.stderr)[
            "RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /len"
        ]
        == "CACHED"
    )
    missing = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /x\n",
        }
    )
    failed = bcli.build(missing)
    assert failed.returncode == 1
    assert "secret nope not found" in failed.stderr


def test_bind_mount_of_the_context_and_tmpfs(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\n"
            "RUN --mount=type=bind,source=data,target=/mnt --mount=type=tmpfs,target=/scratch "
            "cat /mnt/in > /out && touch /scratch/x && ! touch /mnt/y 2>/dev/null\n",
            "data/in": "bound\n",
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert files["out"] == b"bound\n"
    assert not any(n.startswith(("mnt/", "scratch/")) for n in files)
    # the bound content is part of the key
    with open(os.path.join(ctx, "data/in"), "w") as f:
        f.write("changed\n")
    again = bcli.build(ctx, "-q")
    assert _files(bcli, again.stdout.strip())["out"] == b"changed\n"


def test_run_steps_network_bridge_by_default_none_and_host(
    bcli, busybox, make_context, no_leaks
):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN --network=none ls /sys/class/net > /nets\n"
            "RUN ls /sys/class/net > /bridge-nets && ip -4 -o addr show eth0 > /bridge-addr\n"
            "RUN --network=host ls /sys/class/net > /host-nets\n",
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert files["nets"].split() == [b"lo"]
    # the default: a veth on the store's default bridge, with an address of its subnet
    assert files["bridge-nets"].split() == [b"eth0", b"lo"]
    inspect = bcli.run("network", "inspect", "bridge", "-f", "{{json .}}")
    bridge = json.loads(inspect.stdout)
    subnet = ipaddress.ip_network(bridge["IPAM"]["Config"][0]["Subnet"])
    address = files["bridge-addr"].split()[3].decode().split("/")[0]
    assert ipaddress.ip_address(address) in subnet
    assert bridge["Containers"] == {}  # the step's endpoint is gone with the step
    host_links = set(os.listdir("/sys/class/net"))
    assert "lo" in host_links and set(files["host-nets"].decode().split()) & (host_links - {"lo"})


def test_from_platform_of_another_arch_warns_as_buildkit(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM --platform=$BUILDPLATFORM busybox AS tools\n"
            "ARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"
            "FROM --platform=linux/arm64 busybox\nCOPY --from=tools /arch /arch\n",
        }
    )
    for _ in range(2):  # built, then proven unchanged from the cache: the same warning
        result = bcli.build(ctx, "--progress", "plain")
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
        assert warnings == [
            'WARNING: InvalidBaseImagePlatform: Base image busybox was pulled with platform '
            '"linux/amd64", expected "linux/arm64" for current build (line 4)'
        ]
    bad = make_context({"Dockerfile": "FROM --platform=not/a/platform/at/all busybox\n"})
    failed = bcli.build(bad)
    assert failed.returncode != 0 and "Dockerfile:1" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_only_the_stages_the_target_needs_are_built(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": """\
FROM busybox AS unused
RUN exit 1

FROM busybox AS a
RUN echo a > /a

FROM busybox AS b
RUN echo b > /b

FROM busybox AS final
COPY --from=a /a /a
COPY --from=b /b /b
RUN cat /a /b > /ab
""",
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    assert _files(bcli, result.stdout.strip())["ab"] == b"a\nb\n"
    target = bcli.build(ctx, "--target", "a", "-q")
    assert target.returncode == 0, target.stderr
    assert "a" in _files(bcli, target.stdout.strip())
    missing = bcli.build(ctx, "--target", "nope")
    assert missing.returncode == 1
    assert "target stage 'nope' could not be found" in missing.stderr


def test_a_failing_parallel_stage_fails_the_build(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox AS a\nRUN sleep 0.3; exit 4\n"
            "FROM busybox AS b\nRUN echo b\n"
            "FROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n",
        }
    )
    result = bcli.build(ctx)
    assert result.returncode == 1
    assert "exit code: 4" in result.stderr.strip().splitlines()[-1]


def test_onbuild_triggers_run_in_the_child_build(bcli, busybox, make_context, no_leaks):
    parent = make_context(
        {
            "Dockerfile": "FROM busybox\nONBUILD COPY msg /msg\nONBUILD RUN cat /msg > /seen\n",
        }
    )
    assert bcli.build(parent, "-t", "parent-img").returncode == 0
    child = make_context({"Dockerfile": "FROM parent-img\nRUN true\n", "msg": "from child\n"})
    result = bcli.build(child, "-q")
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert files["seen"] == b"from child\n"
    config = json.loads(bcli("image", "inspect", result.stdout.strip()))[0]["Config"]
    assert not config["OnBuild"]


@pytest.mark.parametrize("kind", ["tar", "gz", "bz2", "xz", "zst"])
def test_add_unpacks_local_archives(bcli, busybox, make_context, no_leaks, kind):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("pkg/file.txt")
        info.size = 5
        info.uid = 1000
        tar.addfile(info, io.BytesIO(b"hello"))
    raw = buffer.getvalue()
    data = {
        "tar": raw,
        "gz": gzip.compress(raw),
        "bz2": bz2.compress(raw),
        "xz": lzma.compress(raw),
        "zst": zstandard.ZstdCompressor().compress(raw),
    }[kind]
    ctx = make_context(
        {
            "Dockerfile": f"FROM busybox\nADD a.{kind} /opt/\n"
            f"ADD --chown=7:8 --chmod=600 a.{kind} /owned/\n"
            "RUN stat -c '%u:%g %a' /opt/pkg/file.txt /owned/pkg/file.txt > /stat\n",
            f"a.{kind}": data,
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert files["opt/pkg/file.txt"] == b"hello"
    assert files["stat"].decode().splitlines() == ["1000:0 644", "7:8 600"]


@contextlib.contextmanager
def http_server(directory: str) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_with_checksum(bcli, busybox, make_context, no_leaks, tmp_path):
    payload = b"downloaded content\n"
    (tmp_path / "file.bin").write_bytes(payload)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    with http_server(str(tmp_path)) as base:
        ctx = make_context(
            {
                "Dockerfile": f"FROM busybox\nADD --checksum={digest} {base}/file.bin /dl/\n"
                f"ADD {base}/file.bin /plain\n",
            }
        )
        result = bcli.build(ctx, "-q")
        assert result.returncode == 0, result.stderr
        files = _files(bcli, result.stdout.strip())
        assert files["dl/file.bin"] == payload and files["plain"] == payload
        bad = make_context(
            {
                "Dockerfile": f"FROM busybox\nADD --checksum=sha256:{'0' * 64} "
                f"{base}/file.bin /x\n",
            }
        )
        failed = bcli.build(bad)
        assert failed.returncode == 1
        assert "digest mismatch" in failed.stderr.strip().splitlines()[-1]


def test_copy_chown_uses_the_images_own_users(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\n"
            "RUN echo 'svc:x:4321:4322::/:/bin/sh' >> /etc/passwd && "
            "echo 'svcg:x:4322:' >> /etc/group\n"
            "COPY --chown=svc f /by-name\nCOPY --chown=svc:svcg f /by-both\n"
            "COPY --chown=77 f /by-number\nCOPY --chown=77:88 --chmod=640 f /by-numbers\n"
            "RUN stat -c '%u:%g %a %n' /by-name /by-both /by-number /by-numbers > /owners\n",
            "f": "x",
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    owners = _files(bcli, result.stdout.strip())["owners"].decode().splitlines()
    assert owners == [
        "4321:4322 644 /by-name",
        "4321:4322 644 /by-both",
        "77:77 644 /by-number",
        "77:88 640 /by-numbers",
    ]
    unknown = make_context({"Dockerfile": "FROM busybox\nCOPY --chown=nosuchuser f /f\n", "f": "x"})
    failed = bcli.build(unknown)
    assert failed.returncode == 1 and "nosuchuser" in failed.stderr


def test_copy_never_writes_through_an_image_symlink_out_of_the_root(
    bcli: BuildCLI, busybox, make_context, no_leaks, tmp_path
):
    victim = tmp_path / "victim"
    victim.mkdir()
    ctx = make_context(
        {
            "Dockerfile": f"FROM busybox\nRUN ln -s {victim} /escape\nCOPY f /escape/f\n",
            "f": "x",
        }
    )
    result = bcli.build(ctx, "-q")
    assert result.returncode == 0, result.stderr
    assert not (victim / "f").exists()
    assert _files(bcli, result.stdout.strip())[str(victim).lstrip("/") + "/f"] == b"x"
