"""Small pieces of the builder: progress output, --chmod, --secret, users, contexts, times."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from berth.build.builder import _fill_created
from berth.build.chmod import parse_chmod
from berth.build.context_source import RecordingContext, prepare_context
from berth.build.fsops import lookup_chown, lookup_user
from berth.build.progress import Progress
from berth.engine.build import parse_secret
from berth.errors import BuildError, InvalidArgument, PathNotFound
from berth.oci.config import HistoryEntry

# -- progress ------------------------------------------------------------------------------


def test_plain_progress_blocks():
    out: list[str] = []
    progress = Progress(out.append)
    first = progress.vertex("[1/2] FROM busybox")
    first.cached()
    run = progress.vertex("[2/2] RUN echo hi")
    run.log(b"hel")
    run.log(b"lo\npartial")
    run.done()
    text = "".join(out)
    lines = text.splitlines()
    assert lines[:3] == ["#1 [1/2] FROM busybox", "#1 CACHED", ""]
    assert lines[3] == "#2 [2/2] RUN echo hi"
    assert lines[4].startswith("#2 0.") and lines[4].endswith(" hello")
    assert lines[5].endswith(" partial")
    assert lines[6].startswith("#2 DONE ") and lines[6].endswith("s")


def test_failure_summary_shows_output_and_dockerfile_lines():
    out: list[str] = []
    progress = Progress(out.append)
    vertex = progress.vertex("[2/2] RUN false")
    vertex.log(b"some output\n")
    vertex.error('process "/bin/sh -c false" did not complete successfully: exit code: 1')
    dockerfile = ["FROM busybox\n", "RUN echo\n", "RUN false\n", "CMD x\n"]
    progress.failure(progress.failed, dockerfile, "Dockerfile", 3, 3)
    text = "".join(out)
    assert " > [2/2] RUN false:\n" in text
    assert "Dockerfile:3\n" in text
    assert "   3 | >>> RUN false" in text.replace(" 3 | >>>", "   3 | >>>")
    assert "   2 |     RUN echo" in text.replace(" 2 |", "   2 |")


def test_quiet_progress_prints_nothing_but_the_failing_output():
    out: list[str] = []
    progress = Progress(out.append, quiet=True)
    vertex = progress.vertex("[1/1] RUN x")
    vertex.log(b"why it failed\n")
    assert out == []
    progress.failure(vertex, [], "Dockerfile", 0, 0)
    assert "why it failed" in "".join(out)


# -- --chmod, --chown, USER ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "current", "is_dir", "expected"),
    [
        ("755", 0o600, False, 0o755),
        ("0644", 0o777, True, 0o644),
        ("u=rwX,go=rX", 0o600, False, 0o644),
        ("u=rwX,go=rX", 0o700, False, 0o755),
        ("u=rwX,go=rX", 0o700, True, 0o755),
        ("+x", 0o644, False, 0o755),
        ("go-w", 0o777, False, 0o755),
        ("a=r", 0o777, False, 0o444),
        ("u+s", 0o755, False, 0o4755),
    ],
)
def test_chmod_octal_and_symbolic(spec, current, is_dir, expected):
    change = parse_chmod(spec)
    assert change is not None
    assert change(current, is_dir) == expected


@pytest.mark.parametrize("spec", ["999", "u=q", "x", "17777"])
def test_bad_chmod_values(spec):
    with pytest.raises(BuildError):
        parse_chmod(spec)


@pytest.fixture
def rootfs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_chown_lookups_use_the_images_files(rootfs):
    assert lookup_chown(rootfs, "app") == (1000, 1001)
    assert lookup_chown(rootfs, "app:extra") == (1000, 2000)
    assert lookup_chown(rootfs, "42") == (42, 42)
    assert lookup_chown(rootfs, "42:7") == (42, 7)
    assert lookup_chown(rootfs, "42:extra") == (42, 2000)
    with pytest.raises(BuildError, match="no such user: ghost"):
        lookup_chown(rootfs, "ghost")
    with pytest.raises(BuildError, match="no such group: ghosts"):
        lookup_chown(rootfs, "app:ghosts")


def test_user_lookups(rootfs):
    user = lookup_user(rootfs, "app")
    assert (user.uid, user.gid, user.additional_gids) == (1000, 1001, (2000,))
    assert lookup_user(rootfs, "1000").gid == 1001  # a number in passwd takes its group
    assert (lookup_user(rootfs, "555").uid, lookup_user(rootfs, "555").gid) == (555, 0)
    assert lookup_user(rootfs, "app:extra").gid == 2000
    assert lookup_user(rootfs, "").uid == 0
    with pytest.raises(BuildError, match="unable to find user ghost"):
        lookup_user(rootfs, "ghost")


def test_user_lookups_never_leave_the_root(tmp_path):
    (tmp_path / "etc").symlink_to("/etc")  # an absolute link means the image's /etc
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(BuildError):
            lookup_user(fd, "root")  # the host has root; the image has no passwd at all
    finally:
        os.close(fd)


# -- --secret ------------------------------------------------------------------------------


def test_secret_specs(tmp_path):
    secret = parse_secret(f"id=token,src={tmp_path}/t")
    assert (secret.id, secret.path, secret.env) == ("token", f"{tmp_path}/t", None)
    assert parse_secret("id=aws,env=AWS_KEY").env == "AWS_KEY"
    assert parse_secret("id=X,type=env").env == "X"
    assert parse_secret(f"source={tmp_path}/file").id == "file"
    with pytest.raises(InvalidArgument):
        parse_secret("token")
    with pytest.raises(InvalidArgument):
        parse_secret("id=a,colour=blue")


# -- contexts ------------------------------------------------------------------------------


def test_a_directory_context_records_what_it_shows(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "a").write_text("a")
    with prepare_context(str(tmp_path)) as prepared:
        assert prepared.dockerfile == "FROM scratch\n"
        assert prepared.recordable
        context = prepared.context
        assert isinstance(context, RecordingContext)
        context.entry("a")
        assert str(tmp_path / "a") in context.seen
        assert context.seen[str(tmp_path / "Dockerfile.dockerignore")] is None


def test_stdin_tar_and_bare_dockerfile(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"FROM scratch\nCOPY x /x\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    with prepare_context("-", stdin=buffer, temp_root=str(tmp_path)) as prepared:
        assert prepared.dockerfile.startswith("FROM scratch")
        assert prepared.context is not None and not prepared.recordable
        temp = prepared.temp_dir
        assert temp is not None and os.path.isdir(temp)
    assert not os.path.exists(temp)
    bare = io.BytesIO(b"FROM busybox\n")
    with prepare_context("-", stdin=bare) as prepared:
        assert prepared.context is None and prepared.dockerfile == "FROM busybox\n"


def test_context_errors(tmp_path):
    with pytest.raises(PathNotFound, match="not found"):
        prepare_context(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="must be a directory"):
        prepare_context(str(tmp_path / "file"))
    with pytest.raises(PathNotFound, match="failed to read dockerfile"):
        prepare_context(str(tmp_path))
    with pytest.raises(InvalidArgument, match="remote context"):
        prepare_context("https://example.com/repo.git")


# -- history times -------------------------------------------------------------------------


def test_empty_layer_entries_take_the_next_layers_time_else_the_last():
    entries = [
        HistoryEntry(created_by="ENV a=1", empty_layer=True),
        HistoryEntry(created="T1", created_by="RUN x"),
        HistoryEntry(created_by="USER x", empty_layer=True),
        HistoryEntry(created="T2", created_by="COPY y"),
        HistoryEntry(created_by="CMD z", empty_layer=True),
    ]
    _fill_created(entries, "BASE")
    assert [e.created for e in entries] == ["T1", "T1", "T2", "T2", "T2"]
    only_metadata = [HistoryEntry(created_by="ENV a=1", empty_layer=True)]
    _fill_created(only_metadata, "BASE")
    assert only_metadata[0].created == "BASE"
