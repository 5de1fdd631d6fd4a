"""The fast path pull unpacks with: ``apply_layer(fresh=True)`` into an empty staging dir
(no stat before each create, no chown to the owner a new inode has anyway, files
created with their final mode) must build exactly the tree the careful path builds,
and refuse exactly the same malicious tars.  Runs as root: owners, setuid bits and
overlay whiteouts are what the shortcuts touch."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sdk.diff.apply import apply_layer
from sdk.errors import InvalidArgument
from sdk.snapshots.layers import LayerStore
from tests.unit import test_diff_apply as careful
from tests.unit.test_diff_apply import E, assert_untouched, d, f, hard, make_tar, opq, sym, wh

pytestmark = pytest.mark.root

CORPUS = [
    d("etc"), f("etc/hosts", b"127.0.0.1 localhost\n"), sym("etc/mtab", "/proc/mounts"),
    d("bin", mode=0o700), f("bin/sh", b"#!" + b"x" * 5000, mode=0o755),
    hard("bin/ash", "bin/sh"),
    f("suid", b"s", mode=0o4755), f("suid-user", b"s", mode=0o4755, uid=1000, gid=1000),
    f("sgid", b"g", mode=0o2755, gid=50), f("ro", b"r", mode=0o444),
    f("world", b"w", mode=0o666), f("private", b"p", mode=0o600),
    f("owned", b"o", mode=0o640, uid=1000, gid=1001), d("tmp", mode=0o1777),
    f("dup", b"first"), f("dup", b"second", mode=0o700),
    f("was-file", b"x"), d("was-file"), f("was-file/in", b"in"),
    d("was-dir"), f("was-dir/in", b"in"), f("was-dir", b"now a file"),
    wh("gone"), wh("later"), f("later", b"back"), opq("opaque"), f("opaque/kept", b"k"),
    f("implicit/deep/file", b"parents made on the way"),
    f("xattr", b"x", xattrs={"user.note": b"hello", "trusted.overlay.opaque": b"y"}),
    E("fifo", tarfile.FIFOTYPE, mode=0o640), E("null", tarfile.CHRTYPE, mode=0o666,
                                               dev=(1, 3)),
]
IMPLICIT = {".", "implicit", "implicit/deep", "opaque"}


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in ["", *dirnames, *filenames] if dirpath == str(root) else \
                [*dirnames, *filenames]:
            full = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(full)
            data: object = None
            if stat.S_ISREG(st.st_mode):
                data = Path(full).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(full)
            xattrs = {k: os.getxattr(full, k, follow_symlinks=False)
                      for k in os.listxattr(full, follow_symlinks=False)}
            rel = os.path.relpath(full, root)
            # directories the tar does not list, and whiteouts, get "now" as mtime
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            mtime = None if whiteout or (stat.S_ISDIR(st.st_mode) and rel in IMPLICIT) \
                else st.st_mtime_ns
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev,
                                                st.st_nlink, mtime, data, xattrs)
    return out


@pytest.mark.parametrize("whiteouts", ["overlay", "delete"])
def test_fresh_builds_the_same_tree(tmp_path: Path, whiteouts: str) -> None:
    data = make_tar(CORPUS)
    trees = []
    for fresh in (False, True):
        target = tmp_path / f"fresh-{fresh}"
        target.mkdir()
        result = apply_layer(io.BytesIO(data), target, whiteouts=whiteouts,  # type: ignore
                             fresh=fresh)
        trees.append((snapshot(target), result))
    for path in sorted(set(trees[0][0]) | set(trees[1][0])):
        assert trees[0][0].get(path) == trees[1][0].get(path), path
    assert trees[0][1] == trees[1][1]
    tree = trees[1][0]
    assert stat.S_IMODE(tree["suid"][0]) == 0o4755
    assert stat.S_IMODE(tree["suid-user"][0]) == 0o4755 and tree["suid-user"][1] == 1000
    assert stat.S_IMODE(tree["world"][0]) == 0o666      # not narrowed by the umask
    assert tree["owned"][1:3] == (1000, 1001)
    assert tree["dup"][6] == b"second" and stat.S_IMODE(tree["dup"][0]) == 0o700
    assert tree["bin/sh"][4] == 2
    if whiteouts == "overlay":
        assert stat.S_ISCHR(tree["gone"][0]) and tree["gone"][3] == 0
        assert tree["opaque"][7].get("trusted.overlay.opaque") == b"y"


def test_fresh_refuses_a_target_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        apply_layer(io.BytesIO(make_tar([f("a")])), tmp_path / "t", whiteouts="overlay",
                    fresh=True)


_MALICIOUS = careful.test_malicious_tars_are_refused.pytestmark[0]


def assert_refused(apply: Callable[..., object], tmp_path: Path, case: tuple) -> None:
    """``apply(stream, target, whiteouts=, fresh=)`` refuses the malicious ``case``
    naming its bad entry, and writes nothing outside ``target``."""
    entries, bad = case
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("original")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(InvalidArgument) as err:
        apply(io.BytesIO(make_tar(entries)), target, whiteouts="overlay", fresh=True)
    assert repr(bad) in str(err.value)
    assert_untouched(target, sentinel)


@pytest.mark.parametrize("case", _MALICIOUS.args[1], ids=_MALICIOUS.kwargs["ids"])
def test_fresh_refuses_the_malicious_corpus(tmp_path: Path, case: tuple) -> None:
    assert_refused(apply_layer, tmp_path, case)


def test_staged_layers_publish_in_any_order(tmp_path: Path) -> None:
    """Layers staged before their parents exist, published child-last."""
    store = LayerStore(tmp_path / "storage", "overlay")
    base = make_tar([d("etc"), f("etc/a", b"a")])
    top = make_tar([wh("etc/a"), f("etc/b", b"b")])
    staged_top = store.stage(io.BytesIO(top))
    staged_base = store.stage(io.BytesIO(base))
    c1 = staged_base.result.diff_id
    c2 = "sha256:" + "2" * 64
    with pytest.raises(Exception, match="parent layer"):
        store.commit_staged(staged_top, c2, c1)        # parent not published yet
    assert not staged_top.path.exists()                 # dropped, nothing published
    assert not store.exists(c2)
    staged_top = store.stage(io.BytesIO(top))
    store.commit_staged(staged_base, c1, None)
    store.commit_staged(staged_top, c2, c1)
    lowers = store.lower_dirs(c2)
    assert (lowers[0] / "etc" / "b").read_bytes() == b"b"
    assert stat.S_ISCHR(os.lstat(lowers[0] / "etc" / "a").st_mode)
    assert (lowers[1] / "etc" / "a").read_bytes() == b"a"
    # a second copy of an existing chain is dropped, the first one kept
    again = store.stage(io.BytesIO(base))
    store.commit_staged(again, c1, None)
    assert not again.path.exists() and store.exists(c1)
    assert not list(store.base.glob(".tmp-*"))
