"""The build cache hits only when the content really matches; what a COPY layer stores;
``image prune`` of a rebuilt image's old chain; scratch and ``-q`` rebuilds."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.conftest import Cli

pytestmark = pytest.mark.root

DOCKERFILE = """\
FROM busybox
COPY tree /srv/tree
COPY big.bin /srv/big.bin
CMD ["sh"]
"""


def _ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    for i in range(40):
        d = ctx / "tree" / f"d{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}.txt").write_text(f"file {i}\n" * (1 + i))
    (ctx / "tree" / "link").symlink_to("d0/f000.txt")
    (ctx / "big.bin").write_bytes(os.urandom(3 << 20))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def _build(berth: Cli, ctx: Path, *args: str) -> tuple[str, str]:
    res = berth("build", *args, "-t", "keys", str(ctx), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout, res.stderr


def _cat(engine: Engine, image: str, path: str) -> bytes:
    return engine.containers.run(image, ["cat", path], remove=True)


def test_cache_hits_only_on_the_same_content(berth: Cli, engine: Engine,
                                             tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    first, _ = _build(berth, ctx)
    assert "Using cache" not in first
    again, _ = _build(berth, ctx)
    assert again.count("Using cache") == 3

    # touched, same bytes: still a hit
    target = ctx / "tree" / "d1" / "f001.txt"
    os.utime(target, (1_600_000_000, 1_600_000_000))
    touched, _ = _build(berth, ctx)
    assert touched.count("Using cache") == 3

    # same size, mtime and inode put back: ctime still moved, so it must miss
    st = os.stat(target)
    with open(target, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.upper())
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(target).st_size == st.st_size
    changed, _ = _build(berth, ctx)
    assert changed.count("Using cache") == 0
    assert _cat(engine, "keys", "/srv/tree/d1/f001.txt") == data.upper()

    # a mode change alone misses too, and the new mode is in the image
    os.chmod(target, 0o600)
    moded, _ = _build(berth, ctx)
    assert moded.count("Using cache") == 0
    out = engine.containers.run("keys", ["stat", "-c", "%a", "/srv/tree/d1/f001.txt"],
                                remove=True)
    assert out.strip() == b"600"

    # the big file: one byte changed in the middle, size and mtime as before
    big = ctx / "big.bin"
    st = os.stat(big)
    with open(big, "r+b") as f:
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    big_changed, _ = _build(berth, ctx)
    assert big_changed.count("Using cache") == 1        # the tree COPY only
    digest = engine.containers.run("keys", ["sha256sum", "/srv/big.bin"], remove=True)
    assert digest.split()[0].decode() == hashlib.sha256(big.read_bytes()).hexdigest()


def test_copy_layer_blob_is_the_plain_tar_it_unpacked(berth: Cli, engine: Engine,
                                                      tmp_path: Path) -> None:
    """COPY layers are stored uncompressed (as docker's classic builder does): the blob's
    digest is the DiffID, and its entries are what the unpacked layer holds."""
    ctx = _ctx(tmp_path)
    _build(berth, ctx)
    image_id = engine.images.get("keys").id
    store = engine.image_store
    layers = store.layer_chain(image_id)
    big = layers[-1]
    assert big.blob_digest == big.diff_id
    blob = store.content.path(big.blob_digest)
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == big.diff_id
    with tarfile.open(blob) as tar:
        names = tar.getnames()
        member = tar.getmember("srv/big.bin")
        assert (member.uid, member.gid, member.mode) == (0, 0, 0o644)
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert names == ["srv", "srv/big.bin"]
    assert data == (ctx / "big.bin").read_bytes()
    tree = layers[-2]
    with tarfile.open(store.content.path(tree.blob_digest)) as tar:
        link = tar.getmember("srv/tree/link")
        assert link.issym() and link.linkname == "d0/f000.txt"
        assert len([m for m in tar.getmembers() if m.isfile()]) == 40
    listing = engine.containers.run("keys", ["sh", "-c", "find /srv/tree | sort | wc -l"],
                                    remove=True)
    assert int(listing) == 1 + 4 + 40 + 1


def test_image_prune_removes_the_old_chain_up_to_the_shared_step(
        berth: Cli, engine: Engine, tmp_path: Path) -> None:
    """As docker's (checked against dockerd 20.10): after a rebuild, the old final image
    is dangling; pruning it removes its untagged parents that no other image builds on,
    and stops at the first step both builds share."""
    ctx = tmp_path / "p"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nENV A=1\nCOPY f /f\nRUN echo x > /y\n'
                                    'CMD ["sh"]\n')
    (ctx / "f").write_text("1\n")
    berth("build", "-t", "pr", str(ctx))
    old = {i.id for i in engine.images.list(all=True)}
    (ctx / "f").write_text("2\n")
    berth("build", "-t", "pr", str(ctx))
    new_chain = []
    image = engine.images.get("pr").id
    while image:
        new_chain.append(image)
        image = engine.image_store.inspect(image)["Parent"]
    busybox, shared = new_chain[-1], new_chain[-2]      # the base and the ENV step
    doomed = old - set(new_chain)
    assert len(doomed) == 3                              # COPY, RUN and CMD of build 1
    res = berth("image", "prune", "-f")
    assert res.returncode == 0, res.stderr
    left = {i.id for i in engine.images.list(all=True)}
    assert left == set(new_chain)
    assert shared in left and busybox in left
    for image_id in doomed:
        assert f"deleted: {image_id}" in res.stdout
    assert berth("image", "prune", "-f").stdout.startswith("Total reclaimed space: 0B")


def test_scratch_and_quiet_rebuilds(berth: Cli, engine: Engine, tmp_path: Path) -> None:
    ctx = tmp_path / "s"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "Dockerfile.meta").write_text("FROM scratch\nENV A=1\nLABEL b=2\n")
    ids = []
    for _ in range(2):
        res = berth("build", "-q", str(ctx))
        assert res.returncode == 0, res.stderr
        ids.append(res.stdout)
    assert ids[0] == ids[1]
    assert ids[0].startswith("sha256:") and ids[0].count("\n") == 1
    for _ in range(2):
        res = berth("build", "-q", "-f", str(ctx / "Dockerfile.meta"), str(ctx))
        assert res.returncode == 0, res.stderr
        ids.append(res.stdout)
    assert ids[2] == ids[3]
    # fully cached -q: the ID alone on stdout, nothing on stderr
    res = berth("build", "-q", "-f", str(ctx / "Dockerfile.meta"), str(ctx))
    assert (res.stdout, res.stderr) == (ids[2], "")
    config = engine.images.get(ids[2].strip()).attrs["Config"]
    assert "A=1" in config["Env"] and config["Labels"] == {"b": "2"}
