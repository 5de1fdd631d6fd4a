"""Pulls through a real registry exercising the streamed read path: layers of several
gzip members inflated by zlib and by zlib-ng, a malicious first entry found while the
rest of a big layer is still downloading (nothing left: no thread, layer, image), and
big layers unpacked in child processes (``sdk.diff.worker``): the same layers, nothing
left by a bad one, no child left by a pull killed with SIGKILL."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from sdk.diff import compression
from sdk.diff import worker as worker_mod
from sdk.distribution import pull as pull_mod
from sdk.errors import ImageNotFound, InvalidArgument
from tests.root.conftest import BERTH, Cli
from tests.root.test_registry_client import (
    REGISTRY_BIN,
    Registry,
    _file,
    _tar,
    upload_image,
)
from tests.root.test_unpack_worker import workers_of

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(REGISTRY_BIN),
                                 reason="docker-registry (Debian package) not installed")]


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
        monkeypatch.setattr(compression, "zlib_module", lambda: zlib)
    elif compression.zlib_module() is zlib:
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


def _big_layer(n: int, files: int = 6) -> bytes:
    """A layer whose gzip is over ``_WORKER_MIN_BYTES`` (random data does not shrink)."""
    size = worker_mod.MIN_BYTES // files + 4096
    return _tar([_file(f"l{n}/f{i}", os.urandom(size)) for i in range(files)])


def test_big_layers_unpack_in_workers_small_ones_in_process(
        registry: Registry, engine: Engine, worker_calls: list[Path]) -> None:
    layers = [_big_layer(0), _big_layer(1), _tar([_file("small", b"s")]), _big_layer(2)]
    upload_image(registry, "big/layers", "1", layers)
    img = engine.images.pull(f"{registry.host}/big/layers:1")
    chain = engine.image_store.layer_chain(img.id)
    assert [rec.diff_id for rec in chain] == [_sha(t) for t in layers]
    assert len(worker_calls) == 3
    top = engine.layer_store.base / chain[3].chain_id.split(":", 1)[1] / "diff"
    assert len(list((top / "l2").iterdir())) == 6
    assert workers_of(os.getpid()) == []
    out = subprocess.run([BERTH, "run", "--rm", "--network", "none",
                          f"{registry.host}/big/layers:1", "/bin/nothing"],
                         env=Cli(engine).env, capture_output=True, text=True, timeout=60)
    assert "nothing" in out.stderr      # the image mounts and starts; it has no binaries


def test_the_unpack_plan() -> None:
    mb = 1 << 20
    assert pull_mod._plan([50 * mb], 2, 2).in_worker == (False,)
    assert pull_mod._plan([50 * mb, 1000, 40 * mb], 2, 0).in_worker == (True, False, True)
    assert pull_mod._plan([50 * mb, 40 * mb], 1, 1).in_worker == (False, False)
    plan = pull_mod._plan([50 * mb] * 6, 2, 0)
    assert plan.threads == pull_mod._UNPACKERS and not plan.prefetch


def test_a_bad_big_layer_in_a_worker_leaves_nothing(registry: Registry, engine: Engine,
                                                    worker_calls: list[Path]) -> None:
    bad = _tar([_file("ok", b"fine"), _file("../../escape", b"pwned"),
                *(_file(f"big/f{i}", os.urandom(1 << 20)) for i in range(6))])
    upload_image(registry, "bad/big", "1", [_big_layer(0), bad])
    with pytest.raises(InvalidArgument, match="escape"):
        engine.images.pull(f"{registry.host}/bad/big:1")
    assert len(worker_calls) == 2
    with pytest.raises(ImageNotFound):
        engine.images.get(f"{registry.host}/bad/big:1")
    assert engine.db.query("SELECT * FROM layers") == []
    assert [p.name for p in engine.layer_store.base.glob("*") if p.name != "l"] == []
    assert not (engine.layer_store.base.parent / "escape").exists()
    assert workers_of(os.getpid()) == []


def test_kill_during_a_pull_with_workers_leaves_no_worker(registry: Registry,
                                                          engine: Engine) -> None:
    layers = [_big_layer(n, files=20) for n in range(3)]
    upload_image(registry, "big/killed", "1", layers, gzip_layers=False)
    target = f"{registry.host}/big/killed:1"
    proc = subprocess.Popen([BERTH, "pull", target], env=Cli(engine).env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    seen: list[int] = []
    for line in proc.stdout:
        if "Extracting" in line or "Downloading" in line:
            for _ in range(100):
                seen = workers_of(proc.pid)
                if seen or proc.poll() is not None:
                    break
                time.sleep(0.01)
            proc.kill()
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    for _ in range(100):
        if not workers_of(proc.pid):
            break
        time.sleep(0.05)
    assert workers_of(proc.pid) == []
    if proc.returncode == -9:
        assert seen, "the pull was killed while its workers ran"
    engine.repair()
    assert not list(engine.layer_store.base.glob(".tmp-*"))
    img = engine.images.pull(target)
    assert len(img.attrs["RootFS"]["Layers"]) == 3
