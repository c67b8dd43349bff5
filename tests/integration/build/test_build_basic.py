"""``berth build`` end to end on a real kernel: instructions, image, cache, errors, inputs."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest

from tests.integration.build.conftest import BuildCLI

pytestmark = [pytest.mark.root]

EMPTY_TAR = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def inspect(bcli: BuildCLI, name: str) -> dict:
    return json.loads(bcli("image", "inspect", name))[0]


def test_every_instruction_reaches_the_image(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": """\
# syntax=docker/dockerfile:1
FROM busybox
MAINTAINER someone@example.com
ARG WHO=world
ENV GREETING="hello $WHO" EMPTY=
LABEL a=b "with space"="x y"
WORKDIR /app
COPY hello.txt .
ADD hello.txt /added/
RUN echo "$GREETING" > /app/greeting
USER nobody:nogroup
EXPOSE 80 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "cat /app/greeting"]
""",
            "hello.txt": "hi\n",
        }
    )
    result = bcli.build(ctx, "-t", "every", "--build-arg", "WHO=berth")
    assert result.returncode == 0, result.stderr
    image = inspect(bcli, "every")
    config = image["Config"]
    assert config["Env"][-2:] == ["GREETING=hello berth", "EMPTY="]
    assert config["Labels"] == {"a": "b", "with space": "x y"}
    assert config["WorkingDir"] == "/app"
    assert config["User"] == "nobody:nogroup"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGQUIT"
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["OnBuild"] == ["RUN echo triggered"]
    assert config["Entrypoint"] == ["/bin/sh"]
    assert config["Cmd"] == ["-c", "cat /app/greeting"]
    assert image["Author"] == "someone@example.com"
    history = bcli("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "every")
    lines = history.splitlines()
    assert lines[0] == 'CMD ["-c" "cat /app/greeting"]|0B'
    assert 'RUN |1 WHO=berth /bin/sh -c echo "$GREETING" > /app/greeting # buildkit|12B' in lines, (
        "\n".join(lines)
    )
    assert "COPY hello.txt . # buildkit|3B" in lines
    assert "EXPOSE [53/udp 80/tcp]|0B" in lines
    assert "every" in bcli("images", "--format", "{{.Repository}}")
    # 5 layers: busybox, WORKDIR, COPY, ADD, RUN
    assert len(image["RootFS"]["Layers"]) == 5
    # the file system, read back through save
    tree = _files(bcli, "every")
    assert tree["app/hello.txt"] == b"hi\n"
    assert tree["added/hello.txt"] == b"hi\n"
    assert tree["app/greeting"] == b"hello berth\n"


def _files(bcli: BuildCLI, name: str) -> dict[str, bytes]:
    from tests.integration.build.oracle import flatten_archive  # noqa: F401  (import check)

    out = bcli.root + "/saved.tar"
    bcli("save", "-o", out, name)
    files: dict[str, bytes] = {}
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as tar:
                for member in tar:
                    if member.isfile():
                        files[member.name] = tar.extractfile(member).read()
    os.unlink(out)
    return files


def test_a_rebuild_is_fully_cached_and_gives_the_same_image(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": 'FROM busybox\nRUN echo a > /a\nCOPY f /f\nCMD ["x"]\n',
            "f": "one",
        }
    )
    old = time.time() - 10
    os.utime(os.path.join(ctx, "f"), (old, old))
    first = bcli.build(ctx, "-q", "-t", "c1")
    assert first.returncode == 0, first.stderr
    second = bcli.build(ctx, "-t", "c1")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("CACHED") == 3  # FROM, RUN, COPY
    assert first.stdout.strip() in second.stderr
    third = bcli.build(ctx, "-q", "-t", "c1")
    assert third.stdout == first.stdout


def test_a_changed_copy_rebuilds_from_that_step_only(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN echo a > /a\nCOPY f /f\nRUN cat /f > /g\n",
            "f": "one",
            "other": "x",
        }
    )
    assert bcli.build(ctx, "-t", "c2").returncode == 0
    with open(os.path.join(ctx, "f"), "w") as f:
        f.write("two")
    again = bcli.build(ctx, "-t", "c2")
    assert again.returncode == 0, again.stderr
    blocks = _blocks(again.stderr)
    assert blocks["RUN echo a > /a"] == "CACHED"
    assert blocks["COPY f /f"] == "DONE"
    assert blocks["RUN cat /f > /g"] == "DONE"
    assert _files(bcli, "c2")["g"] == b"two"


def _blocks(output: str) -> dict[str, str]:
    """step text -> CACHED / DONE / ERROR from plain progress output."""
    names: dict[str, str] = {}
    states: dict[str, str] = {}
    for line in output.splitlines():
        if not line.startswith("#"):
            continue
        number, _, rest = line.partition(" ")
        if rest.startswith("["):
            names[number] = rest.split("] ", 1)[1]
        elif rest.startswith(("CACHED", "DONE", "ERROR")):
            states[number] = rest.split()[0].rstrip(":")
    return {names[n]: states.get(n, "") for n in names}


def test_ignored_files_and_touching_change_nothing(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
            ".dockerignore": "*.log\n",
            "keep": "k",
            "noise.log": "1",
        }
    )
    first = bcli.build(ctx, "-q")
    with open(os.path.join(ctx, "noise.log"), "w") as f:
        f.write("2")
    os.utime(os.path.join(ctx, "keep"))
    second = bcli.build(ctx)
    assert second.returncode == 0, second.stderr
    assert _blocks(second.stderr)["COPY . /ctx/"] == "CACHED"
    assert first.stdout.strip() in second.stderr
    assert "ctx/noise.log" not in _files(bcli, first.stdout.strip())


def test_a_changed_build_arg_misses_from_its_first_use(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN echo before\nARG V=1\nRUN echo before-use\n"
            "RUN echo $V > /v\n",
        }
    )
    assert bcli.build(ctx, "--build-arg", "V=1").returncode == 0
    again = bcli.build(ctx, "--build-arg", "V=2")
    blocks = _blocks(again.stderr)
    assert blocks["RUN echo before"] == "CACHED"
    # BuildKit: every RUN after the ARG sees it in its environment, so both miss
    assert blocks["RUN echo before-use"] == "DONE"
    assert blocks["RUN echo $V > /v"] == "DONE"


def test_quiet_prints_only_the_id_and_iidfile_gets_it(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN true\n"})
    iid = os.path.join(ctx, "iid")
    result = bcli.build(ctx, "-q", "--iidfile", iid)
    assert result.returncode == 0
    assert result.stderr == ""
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    with open(iid) as f:
        assert f.read() == image_id


def test_a_run_that_changes_nothing_still_makes_a_layer(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN true\n"})
    image_id = bcli.build(ctx, "-q").stdout.strip()
    layers = inspect(bcli, image_id)["RootFS"]["Layers"]
    assert layers[-1] == EMPTY_TAR


def test_a_failing_run_shows_output_and_code_and_writes_nothing(
    bcli, busybox, make_context, no_leaks
):
    ctx = make_context(
        {
            "Dockerfile": "FROM busybox\nRUN echo ok > /ok\nRUN echo oops >&2; exit 3\n",
        }
    )
    before = bcli("images", "-aq")
    result = bcli.build(ctx, "-t", "broken")
    assert result.returncode == 1
    assert "#3 " in result.stderr and "oops" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Dockerfile:3: ")
    assert "exit code: 3" in last
    assert 'process "/bin/sh -c echo oops >&2; exit 3"' in last
    assert ">>> RUN echo oops >&2; exit 3" in result.stderr
    assert bcli("images", "-aq") == before
    # the step before it is in the cache
    fixed = make_context({"Dockerfile": "FROM busybox\nRUN echo ok > /ok\n"})
    again = bcli.build(fixed)
    assert _blocks(again.stderr)["RUN echo ok > /ok"] == "CACHED"


def test_quiet_failure_still_shows_the_output(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo visible-output; false\n"})
    result = bcli.build(ctx, "-q")
    assert result.returncode == 1
    assert "visible-output" in result.stderr
    assert "exit code: 1" in result.stderr


def test_syntax_errors_name_file_and_line(bcli, busybox, make_context):
    ctx = make_context({"Dockerfile": "FROM busybox\n\nRUNN echo\n"})
    result = bcli.build(ctx)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)"
    )
    assert "Traceback" not in result.stderr


def test_a_missing_base_image_is_a_clear_error(bcli, make_context):
    ctx = make_context({"Dockerfile": "FROM localhost:1/nothing-here:1\nRUN true\n"})
    result = bcli.build(ctx)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "Dockerfile:1" in last and "pull access denied or not found" in last
    assert "berth image bootstrap" in last
    assert "Traceback" not in result.stderr


def test_an_unknown_stage_or_image_in_copy_from_is_a_clear_error(bcli, busybox, make_context):
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY --from=nosuchstage /x /x\n"})
    result = bcli.build(ctx)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "Dockerfile:2" in last and "nosuchstage" in last
    assert "Traceback" not in result.stderr


def test_a_missing_source_is_a_clear_error(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY nothere /x\n"})
    result = bcli.build(ctx)
    assert result.returncode == 1
    assert 'Dockerfile:2: failed to compute cache key: "/nothere": not found' in result.stderr


def test_dockerfile_and_context_from_stdin(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"f": "from-context"})
    dockerfile = b"FROM busybox\nCOPY f /f\n"
    result = bcli.build(ctx, "-q", "-f", "-", input=dockerfile)
    assert result.returncode == 0, result.stderr
    assert _files(bcli, result.stdout.strip())["f"] == b"from-context"
    # a bare Dockerfile on stdin: no context
    bare = bcli.build("-", "-q", input=b"FROM busybox\nRUN echo bare > /bare\n")
    assert bare.returncode == 0, bare.stderr
    # a tar (gzip) of the whole context on stdin
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("Dockerfile", dockerfile), ("f", b"from-tar")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    from_tar = bcli.build("-", "-q", input=buffer.getvalue())
    assert from_tar.returncode == 0, from_tar.stderr
    assert _files(bcli, from_tar.stdout.strip())["f"] == b"from-tar"


def test_dockerfile_elsewhere_with_its_own_ignore_file(bcli, busybox, make_context, no_leaks):
    ctx = make_context(
        {
            "build/app.Dockerfile": "FROM busybox\nCOPY . /c/\n",
            "build/app.Dockerfile.dockerignore": "secret*\n",
            ".dockerignore": "",
            "secret.key": "x",
            "public": "y",
        }
    )
    result = bcli.build(ctx, "-q", "-f", os.path.join(ctx, "build/app.Dockerfile"))
    assert result.returncode == 0, result.stderr
    files = _files(bcli, result.stdout.strip())
    assert "c/public" in files and "c/secret.key" not in files


def test_builder_prune_empties_the_cache(bcli, busybox, make_context, no_leaks):
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo x > /x\n"})
    assert bcli.build(ctx).returncode == 0
    pruned = bcli("builder", "prune", "-af")
    assert pruned.startswith("Deleted build cache objects:")
    again = bcli.build(ctx)
    assert _blocks(again.stderr)["RUN echo x > /x"] == "DONE"
    assert "Total reclaimed space" in bcli("builder", "prune", "-f")
