"""LayerStore with the vfs driver (no root needed), chain ids, crash repair, races."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sdk.errors import Conflict, InvalidArgument, NotFound
from sdk.snapshots.layers import LayerStore, chain_id
from tests.unit.test_diff_apply import d, f, hard, make_tar, opq, sym, tree, wh

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def test_chain_id_known_answers() -> None:
    assert chain_id([A]) == A
    # printf 'sha256:aaa…a sha256:bbb…b' | sha256sum
    ab = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
    assert chain_id([A, B]) == ab
    assert chain_id([A, B, C]) == "sha256:" + hashlib.sha256(f"{ab} {C}".encode()).hexdigest()
    with pytest.raises(InvalidArgument):
        chain_id([])
    with pytest.raises(InvalidArgument):
        chain_id([A, "sha256:nope"])


BASE = make_tar([d("bin"), f("bin/sh", b"sh", mode=0o755), f("bin/vi", b"vi"),
                 hard("bin/ash", "bin/sh"), d("etc"), f("etc/passwd", b"root"),
                 f("etc/group", b"g"), sym("etc/mtab", "/proc/mounts")])
TOP = make_tar([wh("bin/vi"), d("etc"), opq("etc"), f("etc/passwd", b"new"),
                f("added", b"12345")])


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_chain(store: LayerStore) -> tuple[str, str]:
    base = digest(BASE)
    top = chain_id([digest(BASE), digest(TOP)])
    assert store.create(base, None, io.BytesIO(BASE)).diff_id == digest(BASE)
    assert store.create(top, base, io.BytesIO(TOP)).diff_id == digest(TOP)
    return base, top


def test_vfs_layers_and_containers(tmp_path: Path) -> None:
    store = LayerStore(tmp_path, "vfs")
    base, top = make_chain(store)
    assert store.exists(base) and store.exists(top) and not store.exists(A)
    assert store.size(base) == 2 + 2 + 4 + 1 + len("/proc/mounts")
    assert store.size(top) == 3 + 5
    assert store.lower_dirs(top) == [tmp_path / "vfs" / top[7:] / "fs"]
    assert tree(store.lower_dirs(top)[0]) == {
        "bin": "dir", "bin/sh": "file sh", "bin/ash": "file sh", "etc": "dir",
        "etc/passwd": "file new", "added": "file 12345"}
    # the parent's tree is untouched by the child's whiteouts
    assert "bin/vi" in tree(store.lower_dirs(base)[0])

    rootfs = store.prepare_container("c1", top)
    assert rootfs.path == str(tmp_path / "containers" / "c1" / "fs")
    assert not rootfs.is_overlay
    fs = Path(rootfs.path)
    assert tree(fs) == tree(store.lower_dirs(top)[0])
    assert store.container_upper("c1") == fs
    assert store.container_size("c1") == 0
    (fs / "new").write_bytes(b"x" * 100)
    (fs / "etc" / "passwd").write_bytes(b"changed")
    assert store.container_size("c1") == 100 + 7
    with pytest.raises(Conflict):
        store.prepare_container("c1", top)
    empty = store.prepare_container("c2", None)
    assert os.listdir(empty.path) == []
    store.remove_container("c1")
    store.remove_container("c1")
    assert not (tmp_path / "containers" / "c1").exists()
    store.remove(top)
    store.remove(top)
    assert not store.exists(top) and store.exists(base)
    assert sorted(os.listdir(tmp_path / "vfs")) == [base[7:]]
    assert store.disk_usage() > 0


def test_errors(tmp_path: Path) -> None:
    store = LayerStore(tmp_path, "vfs")
    with pytest.raises(NotFound):
        store.create(B, A, io.BytesIO(TOP))
    with pytest.raises(NotFound):
        store.size(A)
    with pytest.raises(NotFound):
        store.prepare_container("c", A)
    for bad in ("../x", "a/b", "", ".", "x" * 200):
        with pytest.raises(InvalidArgument):
            store.prepare_container(bad, None)
    with pytest.raises(InvalidArgument):
        store.exists("sha256:../../x")
    with pytest.raises(InvalidArgument):
        LayerStore(tmp_path, "zfs")  # type: ignore[arg-type]


def test_a_bad_layer_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LayerStore(tmp_path, "vfs")
    with pytest.raises(InvalidArgument, match="'../x'"):
        store.create(A, None, io.BytesIO(make_tar([f("ok", b"1"), f("../x", b"2")])))
    assert not store.exists(A)
    assert os.listdir(tmp_path / "vfs") == []


def test_existing_layer_is_only_hashed(tmp_path: Path) -> None:
    store = LayerStore(tmp_path, "vfs")
    base = digest(BASE)
    store.create(base, None, io.BytesIO(BASE))
    again = store.create(base, None, io.BytesIO(BASE))
    assert again.diff_id == base and again.content_size == store.size(base)


def test_cleanup_partial(tmp_path: Path) -> None:
    store = LayerStore(tmp_path, "vfs")
    make_chain(store)
    (tmp_path / "vfs" / ".tmp-999999999-abc" / "fs").mkdir(parents=True)
    (tmp_path / "vfs" / ".trash-999999999-abc").mkdir()
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / ".tmp-999999999-abc").mkdir()
    live = tmp_path / "vfs" / f".tmp-{os.getpid()}-abc"
    live.mkdir()
    assert store.cleanup_partial() == 3
    assert live.exists()
    assert store.cleanup_partial() == 0


def _create(root: str, driver: str, barrier: Barrier,
            data: bytes, cid: str) -> None:
    store = LayerStore(Path(root), driver)  # type: ignore[arg-type]
    barrier.wait()
    result = store.create(cid, None, io.BytesIO(data))
    assert result.diff_id == cid


def race(root: Path, driver: str, data: bytes, n: int = 2) -> str:
    """n processes create the same layer at the same moment; all must succeed."""
    cid = digest(data)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_create, args=(str(root), driver, barrier, data, cid))
             for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    return cid


def test_concurrent_creators_both_succeed(tmp_path: Path) -> None:
    big = make_tar([f(f"file{i}", os.urandom(20000)) for i in range(200)])
    cid = race(tmp_path, "vfs", big, n=3)
    store = LayerStore(tmp_path, "vfs")
    assert store.exists(cid)
    assert os.listdir(tmp_path / "vfs") == [cid[7:]]       # no leftovers
    assert len(os.listdir(store.lower_dirs(cid)[0])) == 200
