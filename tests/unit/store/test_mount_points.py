"""The files a container's /etc binds cover, made in its upper dir before the overlay mount
when the image lacks them (store.rootfs.make_mount_points): as overlayfs would show the
image's directory, its own file never shadowed, and nothing made where the image's directory
is not a plain one."""

from __future__ import annotations

import os
import stat

import pytest

from berth.store.rootfs import make_mount_points

pytestmark = pytest.mark.root  # owners, device nodes, trusted.* xattrs

POINTS = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def _layer(root: str, name: str) -> str:
    path = os.path.join(root, name)
    os.makedirs(path)
    return path


def test_made_with_the_image_directory_mode_and_owner(tmp_path: str) -> None:
    top = _layer(str(tmp_path), "top")
    base = _layer(str(tmp_path), "base")
    upper = _layer(str(tmp_path), "upper")
    os.mkdir(os.path.join(base, "etc"), 0o700)
    os.chmod(os.path.join(base, "etc"), 0o750)
    os.chown(os.path.join(base, "etc"), 12, 34)
    with open(os.path.join(base, "etc", "hosts"), "w") as f:  # the image has this one
        f.write("127.0.0.1 localhost\n")
    make_mount_points([top, base], upper, POINTS)
    etc = os.path.join(upper, "etc")
    st = os.lstat(etc)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 12, 34)
    assert sorted(os.listdir(etc)) == ["hostname", "resolv.conf"]  # hosts is the image's
    made = os.lstat(os.path.join(etc, "hostname"))
    assert stat.S_ISREG(made.st_mode) and made.st_size == 0
    assert stat.S_IMODE(made.st_mode) == 0o755


def test_a_file_whited_out_in_an_upper_layer_is_made(tmp_path: str) -> None:
    top = _layer(str(tmp_path), "top")
    base = _layer(str(tmp_path), "base")
    upper = _layer(str(tmp_path), "upper")
    for layer in (top, base):
        os.mkdir(os.path.join(layer, "etc"))
    open(os.path.join(base, "etc", "hosts"), "w").close()
    os.mknod(os.path.join(top, "etc", "hosts"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    make_mount_points([top, base], upper, ("etc/hosts",))
    assert os.path.isfile(os.path.join(upper, "etc", "hosts"))


@pytest.mark.parametrize("kind", ["symlink", "missing", "whiteout", "opaque-above-file"])
def test_left_to_the_init_unless_a_plain_directory_without_the_file(
        tmp_path: str, kind: str) -> None:
    top = _layer(str(tmp_path), "top")
    base = _layer(str(tmp_path), "base")
    upper = _layer(str(tmp_path), "upper")
    os.mkdir(os.path.join(base, "etc"))
    if kind == "symlink":  # /etc a symlink in the image: an upper dir would replace it
        os.symlink("/elsewhere", os.path.join(top, "etc"))
    elif kind == "whiteout":  # /etc deleted by the top layer
        os.mknod(os.path.join(top, "etc"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    elif kind == "missing":
        os.rmdir(os.path.join(base, "etc"))
    if kind == "opaque-above-file":  # the file below an opaque dir is not the image's
        os.mkdir(os.path.join(top, "etc"))
        os.setxattr(os.path.join(top, "etc"), "trusted.overlay.opaque", b"y")
        open(os.path.join(base, "etc", "hosts"), "w").close()
        make_mount_points([top, base], upper, ("etc/hosts",))
        assert os.path.isfile(os.path.join(upper, "etc", "hosts"))
        return
    make_mount_points([top, base], upper, POINTS)
    assert os.listdir(upper) == []


def test_an_upper_dir_that_has_it_already_is_left_alone(tmp_path: str) -> None:
    base = _layer(str(tmp_path), "base")
    upper = _layer(str(tmp_path), "upper")
    os.mkdir(os.path.join(base, "etc"))
    os.mkdir(os.path.join(upper, "etc"))
    # the container deleted it in an earlier run: its whiteout stays
    os.mknod(os.path.join(upper, "etc", "hosts"), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    make_mount_points([base], upper, ("etc/hosts",))
    assert stat.S_ISCHR(os.lstat(os.path.join(upper, "etc", "hosts")).st_mode)
