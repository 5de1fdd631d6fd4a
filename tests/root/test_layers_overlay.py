"""The overlay LayerStore end to end: busybox + a layer with whiteouts, a container
mounted by hand (chdir trick, as the runtime does), diff, commit, export, vfs parity."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sdk.diff.apply import apply_layer
from sdk.diff.changes import (
    Change,
    overlay_changes,
    write_flat_tar,
    write_layer_from_upper,
)
from sdk.diff.tarwriter import read_xattrs
from sdk.diff.tree import sort_key, walk_tree
from sdk.errors import RuntimeFailure
from sdk.runtime import linux
from sdk.runtime.spec import Rootfs
from sdk.snapshots.layers import LayerStore, chain_id, overlay_supported
from tests.root.test_diff_apply_root import SPECIAL, check_special
from tests.unit.test_diff_apply import d, f, make_tar, opq, wh
from tests.unit.test_layers import race

pytestmark = pytest.mark.root

LAYER2 = make_tar([wh("bin/vi"), d("etc"), opq("etc"),
                   f("etc/passwd", b"root:x:0:0::/:/bin/sh\n"), f("etc/hostname", b"layer2\n"),
                   *SPECIAL])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def mounted(rootfs: Rootfs) -> Iterator[Path]:
    """Mount an overlay Rootfs like the runtime: relative lowerdirs from ``chdir``."""
    assert rootfs.is_overlay and rootfs.chdir
    data = (f"lowerdir={':'.join(rootfs.lowerdirs)},upperdir={rootfs.upperdir},"
            f"workdir={rootfs.workdir}")
    cwd = os.getcwd()
    os.chdir(rootfs.chdir)
    try:
        linux.mount("overlay", rootfs.path, "overlay", 0, data)
    finally:
        os.chdir(cwd)
    try:
        yield Path(rootfs.path)
    finally:
        linux.umount2(rootfs.path, linux.MNT_DETACH)


def manifest(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything that defines a tree, per path (mtimes of non-directories)."""
    out: dict[str, tuple[object, ...]] = {}
    for rel, full, st in walk_tree(root):
        mode = st.st_mode
        if stat.S_ISREG(mode):
            body: object = hashlib.sha256(Path(full).read_bytes()).hexdigest()
        elif stat.S_ISLNK(mode):
            body = os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            body = st.st_rdev
        else:
            body = None
        mtime = None if stat.S_ISDIR(mode) else int(st.st_mtime)
        out[rel] = (stat.S_IFMT(mode), stat.S_IMODE(mode), st.st_uid, st.st_gid, mtime, body,
                    tuple(sorted(read_xattrs(full).items())))
    return out


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    ok, why = overlay_supported(tmp_path)
    if not ok:
        pytest.skip(f"no overlay here: {why}")
    return LayerStore(tmp_path / "storage", "overlay")


@pytest.fixture
def image(store: LayerStore, busybox_tar: Path) -> tuple[str, str]:
    base_diff = sha(busybox_tar.read_bytes())
    with open(busybox_tar, "rb") as fh:
        assert store.create(base_diff, None, fh).diff_id == base_diff
    top = chain_id([base_diff, sha(LAYER2)])
    assert store.create(top, base_diff, io.BytesIO(LAYER2)).diff_id == sha(LAYER2)
    return base_diff, top


def test_layout_and_diff_dirs(store: LayerStore, image: tuple[str, str]) -> None:
    base, top = image
    layer = store.root / "overlay" / top[7:]
    assert sorted(os.listdir(layer)) == ["diff", "link", "parent", "size"]
    assert (layer / "parent").read_text() == base
    short = (layer / "link").read_text()
    assert len(short) == 26
    assert os.readlink(store.root / "overlay" / "l" / short) == f"../{top[7:]}/diff"
    assert store.lower_dirs(top) == [layer / "diff", store.root / "overlay" / base[7:] / "diff"]
    diff = layer / "diff"
    st = os.lstat(diff / "bin/vi")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(diff / "etc", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(diff / "etc")) == ["hostname", "passwd"]
    check_special(diff)
    assert store.size(base) > 1_900_000
    assert store.disk_usage() > store.size(base)


def test_container_merged_view_changes_commit_export(store: LayerStore,
                                                     image: tuple[str, str],
                                                     tmp_path: Path) -> None:
    base, top = image
    rootfs = store.prepare_container("c1", top)
    links = sorted(os.listdir(store.root / "overlay" / "l"))
    assert len(rootfs.lowerdirs) == 2 and all(x[2:] in links for x in rootfs.lowerdirs)
    assert rootfs.chdir == str(store.root / "overlay")
    assert rootfs.upperdir == str(store.container_upper("c1"))
    with mounted(rootfs) as merged:
        assert not os.path.lexists(merged / "bin/vi")
        assert os.readlink(merged / "bin/ls") == "../bin/busybox"
        assert sorted(os.listdir(merged / "etc")) == ["hostname", "passwd"]
        assert (merged / "etc/hostname").read_text() == "layer2\n"
        check_special(merged)
        assert subprocess.run([merged / "bin/busybox", "true"]).returncode == 0
        with pytest.raises(RuntimeFailure, match="mounted"):
            store.remove_container("c1")
        # what a container process would do
        (merged / "tmp/new").write_text("new")
        os.unlink(merged / "bin/ls")
        with open(merged / "etc/passwd", "a") as fh:
            fh.write("app:x:1000:1000::/:/bin/sh\n")
        subprocess.run(["rm", "-rf", str(merged / "home")], check=True)
        (merged / "home").mkdir()
        (merged / "home/x").write_text("x")
        os.chmod(merged / "srv/suid", 0o755)
        before = manifest(merged)
    upper = store.container_upper("c1")
    lowers = store.lower_dirs(top)
    changes = overlay_changes(upper, lowers)
    assert changes == sorted(changes, key=lambda c: sort_key(c.path[1:]))
    for expected in (Change("C", "/tmp"), Change("A", "/tmp/new"), Change("C", "/bin"),
                     Change("D", "/bin/ls"), Change("C", "/etc/passwd"),
                     Change("D", "/home"), Change("A", "/home/x"),
                     Change("C", "/srv/suid")):
        assert expected in changes
    assert not any(c.path.startswith(("/usr", "/var", "/bin/busybox", "/etc/hostname"))
                   for c in changes)
    assert store.container_size("c1") >= len("new") + len("x")

    # commit: the upper dir as a layer, applied on top, must show the same tree
    commit = io.BytesIO()
    write_layer_from_upper(upper, commit)
    with tarfile.open(fileobj=io.BytesIO(commit.getvalue())) as tar:
        names = [m.name for m in tar]
    assert "bin/.wh.ls" in names and "home/.wh..wh..opq" in names
    assert names.index("home") < names.index("home/.wh..wh..opq") < names.index("home/x")
    again = io.BytesIO()
    write_layer_from_upper(upper, again)
    assert again.getvalue() == commit.getvalue()           # deterministic
    committed = chain_id([base, sha(LAYER2), sha(commit.getvalue())])
    result = store.create(committed, top, io.BytesIO(commit.getvalue()))
    assert result.diff_id == sha(commit.getvalue())
    with mounted(store.prepare_container("c2", committed)) as merged2:
        assert manifest(merged2) == before

    # export without mounting: the merged view as one flat tar
    flat = io.BytesIO()
    write_flat_tar([upper, *lowers], flat)
    with tarfile.open(fileobj=io.BytesIO(flat.getvalue())) as tar:
        members = {m.name: m for m in tar}
    assert not any(".wh." in name for name in members)
    assert members["srv/ping-link"].islnk() and members["srv/ping-link"].linkname == "srv/ping"
    out = tmp_path / "export"
    out.mkdir()
    apply_layer(io.BytesIO(flat.getvalue()), out, whiteouts="delete")
    assert manifest(out) == before

    store.remove_container("c1")
    store.remove_container("c2")
    assert os.listdir(store.root / "containers") == []


def test_empty_rootfs(store: LayerStore) -> None:
    rootfs = store.prepare_container("scratch", None)
    assert rootfs.lowerdirs == ("../containers/scratch/empty",)
    with mounted(rootfs) as merged:
        assert os.listdir(merged) == []
        (merged / "hello").write_text("hi")
    assert (store.container_upper("scratch") / "hello").read_text() == "hi"
    assert overlay_changes(store.container_upper("scratch"), []) == [Change("A", "/hello")]


def test_vfs_tree_equals_overlay_merged_view(store: LayerStore, image: tuple[str, str],
                                            busybox_tar: Path, tmp_path: Path) -> None:
    _, top = image
    vfs = LayerStore(tmp_path / "vfs-storage", "vfs")
    base_diff = sha(busybox_tar.read_bytes())
    with open(busybox_tar, "rb") as fh:
        vfs.create(base_diff, None, fh)
    vfs.create(top, base_diff, io.BytesIO(LAYER2))
    assert vfs.size(top) == store.size(top)
    vfs_root = Path(vfs.prepare_container("v", top).path)
    check_special(vfs_root)
    with mounted(store.prepare_container("o", top)) as merged:
        assert manifest(vfs_root) == manifest(merged)


def test_concurrent_overlay_creators(tmp_path: Path, busybox_tar: Path) -> None:
    ok, why = overlay_supported(tmp_path)
    if not ok:
        pytest.skip(why)
    cid = race(tmp_path, "overlay", busybox_tar.read_bytes(), n=3)
    store = LayerStore(tmp_path, "overlay")
    assert store.exists(cid)
    assert sorted(os.listdir(tmp_path / "overlay")) == sorted([cid[7:], "l"])
    assert len(os.listdir(tmp_path / "overlay" / "l")) == 1   # losers dropped their links
    assert store.cleanup_partial() == 0


def test_remove_layer_drops_its_link(store: LayerStore, image: tuple[str, str]) -> None:
    _, top = image
    store.remove(top)
    assert len(os.listdir(store.root / "overlay" / "l")) == 1
    os.symlink("../" + "f" * 64 + "/diff", store.root / "overlay" / "l" / "DANGLING")
    assert store.cleanup_partial() == 1


def test_overlay_on_overlay_is_refused(tmp_path: Path) -> None:
    for name in ("lower", "upper", "work", "merged"):
        (tmp_path / name).mkdir()
    linux.mount("overlay", str(tmp_path / "merged"), "overlay", 0,
                f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,"
                f"workdir={tmp_path}/work")
    try:
        ok, why = overlay_supported(tmp_path / "merged" / "data")
    finally:
        linux.umount2(str(tmp_path / "merged"), linux.MNT_DETACH)
    if ok:
        pytest.skip("this kernel accepts overlayfs as an upper layer")
    assert "overlay" in why
