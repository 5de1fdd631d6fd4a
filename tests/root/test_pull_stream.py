"""Pulls through a real registry exercising the streamed read path: layers of several
gzip members inflated by zlib and by zlib-ng, and a malicious first entry found while
the rest of a big layer is still downloading (nothing left: no thread, layer, image)."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from sdk.diff import compression
from sdk.errors import ImageNotFound, InvalidArgument
from tests.root.test_registry_client import (
    REGISTRY_BIN,
    Registry,
    _file,
    _tar,
    start_registry,
    stop_registry,
    upload_image,
)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(REGISTRY_BIN),
                                 reason="docker-registry (Debian package) not installed")]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path / "registry")
    yield reg
    stop_registry(reg)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "auth.json"))
    eng = Engine(root=tmp_path / "root", config=tmp_path / "daemon.json")
    yield eng
    eng.repair()
    eng.close()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=[True, False], ids=["prefetch", "one-thread"])
def prefetch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both read paths, whatever the load: inflate beside the unpacker, or in it."""
    from sdk.distribution import pull as pull_mod

    monkeypatch.setattr(pull_mod, "_prefetch", lambda *_a: request.param)
    return bool(request.param)


@pytest.mark.parametrize("inflater", ["zlib", "zlib-ng"])
def test_layers_of_several_gzip_members(registry: Registry, engine: Engine,
                                        monkeypatch: pytest.MonkeyPatch,
                                        inflater: str, prefetch: bool) -> None:
    if inflater == "zlib":
        monkeypatch.setattr(compression, "_inflater", lambda: zlib)
    elif compression._inflater() is zlib:
        pytest.skip("zlib-ng is not installed")
    files = {f"data/f{i}": os.urandom(20_000) + b"text\n" * 2000 for i in range(30)}
    plain = _tar([_file(name, data) for name, data in files.items()])
    step = len(plain) // 4
    blob = b"".join(gzip.compress(plain[i:i + step], mtime=0)
                    for i in range(0, len(plain), step)) + b"\0" * 1024
    upload_image(registry, "multi/member", "1", [blob], gzip_layers=False,
                 diff_ids=[_sha(plain)])
    img = engine.images.pull(f"{registry.host}/multi/member:1")
    (layer,) = engine.image_store.layer_chain(img.id)
    assert layer.diff_id == _sha(plain)
    diff = engine.layer_store.base / layer.chain_id.split(":", 1)[1] / "diff"
    for name, data in files.items():
        assert (diff / name).read_bytes() == data
    assert not [t for t in threading.enumerate() if t.name == "inflate"]


def test_bad_first_entry_of_a_streaming_layer_leaves_nothing(registry: Registry,
                                                             engine: Engine,
                                                             prefetch: bool) -> None:
    big = _tar([_file("ok", b"fine"), _file("../../escape", b"pwned"),
                *(_file(f"big/f{i}", os.urandom(200_000)) for i in range(150))])
    upload_image(registry, "bad/stream", "1", [big])
    with pytest.raises(InvalidArgument, match="escape"):
        engine.images.pull(f"{registry.host}/bad/stream:1")
    with pytest.raises(ImageNotFound):
        engine.images.get(f"{registry.host}/bad/stream:1")
    assert not [t for t in threading.enumerate() if t.name in ("inflate", "unpack_0")]
    assert engine.db.query("SELECT * FROM layers") == []
    assert [p.name for p in engine.layer_store.base.glob("*") if p.name != "l"] == []
    assert not list((engine.content.root / "ingest").glob("*"))
