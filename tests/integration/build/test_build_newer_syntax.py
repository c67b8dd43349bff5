"""What dockerd 20.10's frontend cannot check: heredocs, COPY --chmod (symbolic), --parents,
--exclude, ``${VAR-x}``, a ``scratch`` base. Expected results written from the Dockerfile
reference (docs.docker.com/reference/dockerfile), not from a peer."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from tests.integration.build.oracle import flatten_archive

pytestmark = [pytest.mark.root]

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dockerfiles")


def _fixture(case: str, make_context, extra: dict[str, str | bytes] | None = None) -> str:
    with open(os.path.join(FIXTURES, case, "Dockerfile"), encoding="utf-8") as f:
        files: dict[str, str | bytes] = {"Dockerfile": f.read()}
    files.update(extra or {})
    root = make_context(files)
    source = os.path.join(FIXTURES, case, "context")
    if os.path.isdir(source):
        shutil.copytree(source, root, dirs_exist_ok=True)
    return root


def _tree(bcli, image: str, tmp_path):
    out = str(tmp_path / "image.tar")
    bcli("save", "-o", out, image)
    return flatten_archive(out)


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_heredocs_in_copy_and_run(bcli, busybox, make_context, no_leaks, tmp_path):
    for case in ("heredoc-copy", "heredoc-run", "heredoc-shebang"):
        result = bcli.build(_fixture(case, make_context), "-t", case)
        assert result.returncode == 0, result.stderr
    tree, _ = _tree(bcli, "heredoc-copy", tmp_path)
    assert tree["/greeting"].content == _sha("hello world\n")
    assert tree["/literal"].content == _sha("hello ${NAME}\n")
    assert tree["/chomped"].content == _sha("tab-indented world\n")
    assert tree["/multi/A"].content == _sha("file a\n")
    assert tree["/multi/B"].content == _sha("file b\n")
    tree, _ = _tree(bcli, "heredoc-run", tmp_path)
    assert tree["/two"].content == _sha("two\n")
    assert tree["/hello"].content == _sha("hello /root\n")
    tree, _ = _tree(bcli, "heredoc-shebang", tmp_path)
    assert tree["/script-ran"].content == _sha("run as a script\n")
    assert tree["/fd3"].content == _sha("from fd 3\n")
    assert not any(path.startswith("/dev/pipes") for path in tree)


def test_copy_flags_of_the_current_syntax(bcli, busybox, make_context, no_leaks, tmp_path):
    ctx = _fixture(
        "copy-flags",
        make_context,
        {
            "files1": "1",
            "files2": "2",
            "src/keep.c": "c",
            "src/drop.txt": "t",
            "src/drop.md": "m",
            "src/deep/keep.h": "h",
            "x/y/a.txt": "a",
            "x/y/b.txt": "b",
            "x/y/c.bin": "c",
            "dir/exec": "e",
            "dir/plain": "p",
            "dir/sub/f": "f",
            "with space.txt": "s",
        },
    )
    os.chmod(os.path.join(ctx, "dir/exec"), 0o700)
    os.chmod(os.path.join(ctx, "dir/plain"), 0o600)
    ctx_dockerfile = os.path.join(ctx, "Dockerfile")
    with open(ctx_dockerfile) as f:
        text = f.read()
    # mygroup must exist in the image for --chown to resolve it
    text = text.replace("FROM busybox\n", "FROM busybox\nRUN echo mygroup:x:66: >> /etc/group\n")
    with open(ctx_dockerfile, "w") as f:
        f.write(text)
    result = bcli.build(ctx, "-t", "flags")
    assert result.returncode == 0, result.stderr
    tree, _ = _tree(bcli, "flags", tmp_path)
    for name in ("/somedir/files1", "/somedir/files2"):
        assert (tree[name].uid, tree[name].gid, tree[name].mode) == (55, 66, 0o755)
    assert "/dst/keep.c" in tree and "/dst/deep/keep.h" in tree
    assert "/dst/drop.txt" not in tree and "/dst/drop.md" not in tree
    assert "/parents/y/a.txt" in tree and "/parents/y/b.txt" in tree
    assert "/parents/y/c.bin" not in tree
    assert tree["/modes/exec"].mode == 0o755
    assert tree["/modes/plain"].mode == 0o644
    assert tree["/modes/sub"].mode == 0o755
    assert tree["/dest with space/with space.txt"].content == _sha("s")


def test_expansion_forms(bcli, busybox, make_context, no_leaks, tmp_path):
    result = bcli.build(_fixture("expansions", make_context), "-t", "exp")
    assert result.returncode == 0, result.stderr
    import json

    config = json.loads(bcli("image", "inspect", "exp"))[0]["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["A"] == "foobarbaz" and env["B"] == "default" and env["C"] == "default"
    assert env["D"] == ""  # ${EMPTY-notempty}: EMPTY is set (to empty)
    assert env["E"] == "alt" and env["F"] == "" and env["G"] == "set" and env["H"] == ""
    assert env["I"] == "arbaz" and env["J"] == "az" and env["K"] == "foobar"
    assert env["L"] == "foo" and env["M"] == "fooforbaz" and env["N"] == "fooforfoz"
    assert env["O"] == "$FOO" and env["P"] == "$FOO" and env["Q"] == "foobarbaz"
    assert env["R"] == "foobarbaz_suffix" and env["S"] == "foobarbaz.ext"
    assert env["T"] == "a b" and env["U"] == "a b"
    assert env["abc"] == "bye" and env["def"] == "hello" and env["ghi"] == "bye"
    assert config["WorkingDir"] == "/foobarbaz"
    assert config["Labels"] == {"key with space": "foobarbaz"}


def test_scratch_base(bcli, make_context, no_leaks, tmp_path):
    result = bcli.build(_fixture("scratch", make_context), "-t", "scratchy")
    assert result.returncode == 0, result.stderr
    tree, config = _tree(bcli, "scratchy", tmp_path)
    assert list(tree) == ["/hello.txt"]
    assert stat.S_IMODE(tree["/hello.txt"].mode) == tree["/hello.txt"].mode
    assert config["config"]["Cmd"] == ["/hello.txt"]
