"""Fully cached rebuilds proven from a record: what invalidates one, what does not."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from berth.build import fastpath
from berth.store.store import Store

IMAGE = "sha256:" + "1" * 64
BASE = "sha256:" + "2" * 64


@pytest.fixture
def db(store_root: str) -> str:
    store = Store.open(store_root)
    with store.db.write() as conn:
        for image_id in (IMAGE, BASE):
            conn.execute(
                "INSERT INTO images (id, manifest_digest, manifest_media_type, size, "
                "added) VALUES (?, 'm', 't', 0, 0)",
                (image_id,),
            )
        conn.execute(
            "INSERT INTO tags VALUES ('docker.io/library/busybox:latest', "
            "'docker.io/library/busybox', 'latest', ?, 0)",
            (BASE,),
        )
        conn.execute(
            "INSERT INTO tags VALUES ('docker.io/library/app:latest', "
            "'docker.io/library/app', 'latest', ?, 0)",
            (IMAGE,),
        )
    store.close()
    return os.path.join(store_root, "berth.db")


@pytest.fixture
def context(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    old = time.time() - 100
    os.utime(path, (old, old))
    return tmp_path


def _stats(*paths: str) -> dict:
    out = {}
    for path in paths:
        try:
            out[path] = fastpath.stat_fields(os.lstat(path))
        except FileNotFoundError:
            out[path] = None
    return out


def _record(db: str, stats: dict, key: str = "k", warnings: tuple[str, ...] = ()) -> bool:
    return fastpath.record_build(
        db,
        key,
        image_id=IMAGE,
        bases=[("busybox", "tag:docker.io/library/busybox:latest", BASE)],
        stats=stats,
        tags={"app": "docker.io/library/app:latest"},
        vertices=["[1/2] FROM docker.io/library/busybox", "[2/2] COPY f /f"],
        cache_keys=["c"],
        warnings=warnings,
    )


def test_an_unchanged_build_replays(db, context, monkeypatch):
    monkeypatch.setattr(fastpath, "RACY_WINDOW_NS", 0)
    assert _record(db, _stats(str(context / "f"), str(context / "absent")))
    replayed = fastpath.replay(db, "k", ["app"])
    assert replayed is not None
    image_id, lines = replayed
    assert image_id == IMAGE
    assert lines[:3] == ["#1 [1/2] FROM docker.io/library/busybox", "#1 CACHED", ""]
    assert f"#3 writing image {IMAGE} done" in lines
    assert "#3 naming to docker.io/library/app:latest done" in lines
    assert fastpath.replay(db, "other-key", ["app"]) is None


def test_a_replay_prints_the_builds_warnings_again(db, context, monkeypatch):
    monkeypatch.setattr(fastpath, "RACY_WINDOW_NS", 0)
    warning = "One or more build-args [UNUSED] were not consumed"
    assert _record(db, _stats(str(context / "f")), warnings=(warning,))
    replayed = fastpath.replay(db, "k", ["app"])
    assert replayed is not None
    assert replayed[1][0] == f"WARNING: {warning}"


@pytest.mark.parametrize(
    "change", ["content", "mode", "removed", "appeared", "base-moved", "image-gone", "new-tag"]
)
def test_any_change_makes_it_miss(db, context, monkeypatch, change):
    monkeypatch.setattr(fastpath, "RACY_WINDOW_NS", 0)
    f, absent = str(context / "f"), str(context / "absent")
    assert _record(db, _stats(f, absent))
    tags = ["app"]
    conn = sqlite3.connect(db, isolation_level=None)
    if change == "content":
        with open(f, "w") as out:
            out.write("y")  # same size, and the same mtime put back: ctime still moves
        old = time.time() - 100
        os.utime(f, (old, old))
    elif change == "mode":
        os.chmod(f, 0o600)
    elif change == "removed":
        os.unlink(f)
    elif change == "appeared":
        with open(absent, "w") as out:
            out.write("")
    elif change == "base-moved":
        conn.execute(
            "UPDATE tags SET image_id = ? WHERE repository = 'docker.io/library/busybox'", (IMAGE,)
        )
    elif change == "image-gone":
        conn.execute("DELETE FROM tags WHERE image_id = ?", (IMAGE,))
        conn.execute("DELETE FROM images WHERE id = ?", (IMAGE,))
    elif change == "new-tag":
        tags = ["app", "another"]
    conn.close()
    assert fastpath.replay(db, "k", tags) is None


def test_racy_files_are_not_recorded(db, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.write_text("just written")
    assert not _record(db, _stats(str(fresh)))
    assert fastpath.replay(db, "k", []) is None


def test_record_keys_cover_every_option():
    base = {
        "dockerfile": "FROM x",
        "dockerfile_name": "Dockerfile",
        "context_root": "/c",
        "build_args": {"A": "1"},
        "target": None,
        "labels": {},
        "network": "default",
        "platform": None,
    }
    key = fastpath.record_key(**base)
    for name, value in (
        ("dockerfile", "FROM y"),
        ("build_args", {"A": "2"}),
        ("target", "t"),
        ("labels", {"l": "v"}),
        ("network", "none"),
        ("context_root", "/d"),
        ("platform", "linux/amd64"),
        ("dockerfile_name", "Other"),
    ):
        assert fastpath.record_key(**{**base, name: value}) != key, name


def test_a_missing_store_or_table_is_simply_a_miss(tmp_path):
    assert fastpath.replay(str(tmp_path / "none.db"), "k", []) is None
    conn = sqlite3.connect(tmp_path / "empty.db")
    conn.close()
    assert fastpath.replay(str(tmp_path / "empty.db"), "k", []) is None
    assert (
        fastpath.attempt(
            str(tmp_path),
            context="-",
            dockerfile=None,
            build_args={},
            target=None,
            labels={},
            network="default",
            platform=None,
            tags=[],
        )
        is None
    )


def test_locate_dockerfile(tmp_path):
    assert fastpath.locate_dockerfile(str(tmp_path), None) == str(tmp_path / "Dockerfile")
    (tmp_path / "dockerfile").write_text("FROM x")
    assert fastpath.locate_dockerfile(str(tmp_path), None) == str(tmp_path / "dockerfile")
    assert fastpath.locate_dockerfile(str(tmp_path), "sub/D") == os.path.abspath("sub/D")
