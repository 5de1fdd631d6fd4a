"""``load`` with overlay and several big layers: they unpack at once in child processes
(``sdk.diff.worker``), then publish in chain order.  The same layers as one at a time,
and a bad layer anywhere (hostile entry, wrong DiffID) leaves the store as it was, with
no staging dir and no child process behind."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

from sdk.diff import worker as worker_mod
from sdk.errors import InvalidArgument
from sdk.images.service import ImageService
from tests.root.test_unpack_worker import workers_of
from tests.unit.test_archive_load import (
    Img,
    config,
    docker_old,
    load_bytes,
    make_service,
    sha,
    tar_of,
)
from tests.unit.test_diff_apply import f, make_tar

pytestmark = pytest.mark.root


@pytest.fixture
def overlay(tmp_path: Path) -> ImageService:
    return make_service(tmp_path / "engine", "overlay")


def big(n: int) -> bytes:
    size = worker_mod.MIN_BYTES // 4 + 4096
    return tar_of({f"l{n}/f{i}": os.urandom(size) for i in range(4)})


def state(service: ImageService) -> dict[str, Any]:
    db = service.db
    out: dict[str, Any] = {t: sorted(tuple(r) for r in db.query(f"SELECT * FROM {t}"))
                           for t in ("images", "tags", "layers", "image_layers")}
    # the short-link dir ``l`` may stay, empty: it is created once and kept
    out["storage"] = sorted(p.name for p in service.layers.base.glob("*") if p.name != "l")
    out["links"] = sorted(os.listdir(service.layers.links)) \
        if service.layers.links.is_dir() else []
    return out


def test_big_layers_load_in_workers_and_match_one_at_a_time(
        overlay: ImageService, tmp_path: Path, worker_calls: list[Path]) -> None:
    layers = [big(0), tar_of({"small": b"s"}), gzip.compress(big(1), mtime=0), big(2)]
    plain = [gzip.decompress(x) if x[:2] == b"\x1f\x8b" else x for x in layers]
    archive = docker_old([Img(layers, ["big:1"], cfg=config(plain))])
    [loaded] = load_bytes(overlay, archive)
    assert len(worker_calls) == 3
    chain = overlay.layer_chain(loaded.id)
    assert [lr.diff_id for lr in chain] == [sha(x) for x in plain]
    one_by_one = make_service(tmp_path / "one", "overlay")
    worker_calls.clear()
    [again] = load_bytes(one_by_one, docker_old([Img(layers[:1], ["one:1"],
                                                     cfg=config(plain[:1]))]))
    assert worker_calls == []          # a lone big layer unpacks in-process
    assert one_by_one.layer_chain(again.id)[0].chain_id == chain[0].chain_id
    top = overlay.layers.base / chain[3].chain_id[7:] / "diff" / "l2"
    assert sorted(p.name for p in top.iterdir()) == [f"f{i}" for i in range(4)]
    assert not list(overlay.layers.base.glob(".tmp-*"))
    assert workers_of(os.getpid()) == []
    # loading it again changes nothing and unpacks nothing
    before = state(overlay)
    worker_calls.clear()
    load_bytes(overlay, archive)
    assert worker_calls == [] and state(overlay) == before


def test_a_hostile_big_layer_leaves_nothing(overlay: ImageService, tmp_path: Path,
                                            worker_calls: list[Path]) -> None:
    bad = make_tar([f("ok", b"fine"), f("../escape", b"pwned"),
                    *(f(f"pad/f{i}", os.urandom(1 << 20)) for i in range(5))])
    before = state(overlay)
    with pytest.raises(InvalidArgument, match="escape"):
        load_bytes(overlay, docker_old([Img([big(0), bad, big(1)], ["evil:1"])]))
    assert len(worker_calls) == 3
    assert state(overlay) == before
    assert not (overlay.layers.base.parent / "escape").exists()
    assert workers_of(os.getpid()) == []


def test_a_wrong_diff_id_of_a_compressed_big_layer_leaves_nothing(
        overlay: ImageService, worker_calls: list[Path]) -> None:
    tars = [big(0), big(1)]
    layers = [gzip.compress(t, mtime=0) for t in tars]
    wrong = config([tars[0], big(5)])       # layer 1's DiffID is not its content's
    before = state(overlay)
    with pytest.raises(InvalidArgument, match="invalid diffID for layer 1"):
        load_bytes(overlay, docker_old([Img(layers, ["wrong:1"], cfg=wrong)]))
    assert len(worker_calls) == 2
    assert state(overlay) == before
    assert workers_of(os.getpid()) == []
