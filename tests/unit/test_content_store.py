from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdk.content.digest import check_digest
from sdk.content.store import ContentStore
from sdk.errors import InvalidArgument, NotFound


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stored(store: ContentStore) -> list[str]:
    return sorted(os.listdir(store.root / "sha256")) if (store.root / "sha256").exists() else []


def ingests(store: ContentStore) -> list[str]:
    return os.listdir(store.root / "ingest") if (store.root / "ingest").exists() else []


def test_put_read_open_size_walk_delete(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    dgst = store.put_bytes(b"hello")
    assert dgst == digest_of(b"hello")
    assert store.exists(dgst) and store.read_bytes(dgst) == b"hello" and store.size(dgst) == 5
    with store.open(dgst) as f:
        assert f.read() == b"hello"
    assert store.path(dgst) == tmp_path / "sha256" / dgst[7:]
    assert list(store.walk()) == [dgst]
    assert store.put_bytes(b"hello") == dgst            # idempotent
    assert list(store.walk()) == [dgst] and ingests(store) == []
    store.delete(dgst)
    store.delete(dgst)                                  # missing is fine
    assert not store.exists(dgst) and list(store.walk()) == []
    with pytest.raises(NotFound):
        store.read_bytes(dgst)
    with pytest.raises(NotFound):
        store.open(dgst)
    with pytest.raises(NotFound):
        store.size(dgst)


def test_writer_streams_and_verifies(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(3 << 20)
    with store.writer() as w:
        for i in range(0, len(data), 65536):
            w.write(data[i:i + 65536])
        assert w.size == len(data)
        assert w.commit(digest_of(data), len(data)) == (digest_of(data), len(data))
    assert store.read_bytes(digest_of(data)) == data
    assert stat_mode(store.path(digest_of(data))) == 0o444
    assert ingests(store) == []


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("expected_digest, expected_size", [
    (digest_of(b"something else"), None),
    (None, 3),
    (digest_of(b"payload"), 8),
])
def test_mismatch_stores_nothing(tmp_path: Path, expected_digest: str | None,
                                 expected_size: int | None) -> None:
    store = ContentStore(tmp_path)
    with store.writer() as w:
        w.write(b"payload")
        with pytest.raises(InvalidArgument, match="mismatch"):
            w.commit(expected_digest, expected_size)
    assert stored(store) == [] and ingests(store) == []


def test_leaving_without_commit_removes_the_temp_file(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer() as w:
        w.write(b"abandoned")
        assert len(ingests(store)) == 1
    assert ingests(store) == [] and stored(store) == []
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"x")
        raise RuntimeError("boom")
    assert ingests(store) == [] and stored(store) == []


def test_write_after_commit_is_refused(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer() as w:
        w.write(b"x")
        w.commit()
        with pytest.raises(ValueError):
            w.write(b"y")


@pytest.mark.parametrize("bad", [
    "sha256:../../etc/passwd", "sha256:" + "a" * 63, "sha256:" + "A" * 64,
    "md5:" + "a" * 64, "a" * 64, "", "sha256:" + "a" * 64 + "/x", "sha256:" + "g" * 64,
])
def test_bad_digests_are_refused_everywhere(tmp_path: Path, bad: str) -> None:
    store = ContentStore(tmp_path)
    for call in (store.path, store.exists, store.read_bytes, store.open, store.size,
                 store.delete):
        with pytest.raises(InvalidArgument):
            call(bad)
    with store.writer() as w:
        w.write(b"x")
        with pytest.raises(InvalidArgument):
            w.commit(bad)
    assert stored(store) == []
    with pytest.raises(InvalidArgument):
        check_digest(bad)


def test_walk_ignores_stray_files(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    dgst = store.put_bytes(b"x")
    (tmp_path / "sha256" / "not-a-digest").write_text("junk")
    assert list(store.walk()) == [dgst]


def test_cleanup_ingests_removes_only_abandoned_files(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    (tmp_path / "ingest").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "ingest" / f"{dead}-deadbeef").write_bytes(b"partial")
    (tmp_path / "ingest" / "garbage").write_bytes(b"?")
    live = store.writer()
    live.write(b"in progress")
    assert store.cleanup_ingests(older_than=3600) == 0      # all too young
    assert store.cleanup_ingests() == 2
    assert ingests(store) == [live.tmp.name]
    old = time.time() - 2 * 86400
    os.utime(live.tmp, (old, old))                           # a live but stale writer
    assert store.cleanup_ingests() == 1
    live.abort()


def test_put_bytes_of_stored_content_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No temp copy and no fsync for a blob already stored (its fsync would wait
    behind the whole writeback queue)."""
    store = ContentStore(tmp_path / "content")
    digest = store.put_bytes(b"config")
    syncs: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd))
    assert store.put_bytes(b"config") == digest
    assert syncs == []
    assert store.put_bytes(b"other") != digest and syncs    # new content is synced
    assert store.read_bytes(digest) == b"config"
