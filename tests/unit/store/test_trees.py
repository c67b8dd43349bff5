"""store/trees.py: a tree removed as rmtree(ignore_errors=True) removes it, symlinks untouched."""

from __future__ import annotations

import os
from pathlib import Path

from berth.store.trees import remove_tree


def test_removes_everything_and_follows_no_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("y")
    (tree / "a" / "to-dir").symlink_to(outside)
    (tree / "to-file").symlink_to(outside / "keep" / "file")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tree / "fifo")
    remove_tree(str(tree))
    assert not tree.exists()
    assert (outside / "keep" / "file").read_text() == "x"


def test_leaves_a_symlink_or_file_at_the_top_alone(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    (target / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(target)
    remove_tree(str(link))
    remove_tree(str(tmp_path / "missing"))
    assert link.is_symlink() and (target / "sub").is_dir()


def test_removal_soon_waits_only_where_deferred(tmp_path: Path) -> None:
    """A fork server's worker defers the trash's removal to its end (beside the database's
    close); anywhere else remove_tree_soon removes at once."""
    from berth.store import trees

    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for tree in (first, second, third):
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "f").write_text("x")
    trees.remove_tree_soon(str(first))
    assert not first.exists()
    trees.defer_removals()
    try:
        trees.remove_tree_soon(str(second))
        assert (second / "sub" / "f").exists()
    finally:
        trees.remove_deferred()
    assert not second.exists()
    trees.remove_tree_soon(str(third))  # at once again
    assert not third.exists()
