"""The layer read path: ``_Gunzip`` (gzip members inflated by zlib or zlib-ng, CRC and
length checked by the inflater) and ``Prefetch`` (inflate and hash in a second thread)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
import time
import zlib
from pathlib import Path

import pytest

from sdk.diff import compression
from sdk.diff.apply import apply_layer
from sdk.diff.compression import open_decompressed
from sdk.diff.prefetch import Prefetch
from sdk.distribution.tee import BlobTee, Cancelled
from sdk.errors import InvalidArgument
from tests.unit.test_diff_apply import BASIC, f, make_tar


def _inflaters() -> list[str]:
    try:
        import zlib_ng  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return ["zlib"]
    return ["zlib", "zlib-ng"]


@pytest.fixture(params=_inflaters())
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "zlib":
        monkeypatch.setattr(compression, "zlib_module", lambda: zlib)
    return str(request.param)


def _read_all(data: bytes) -> bytes:
    return open_decompressed(io.BytesIO(data)).read()


def _members(plain: bytes, cuts: int) -> bytes:
    step = max(len(plain) // cuts, 1)
    return b"".join(gzip.compress(plain[i:i + step], mtime=0)
                    for i in range(0, len(plain), step))


def test_members_padding_and_header_fields(inflater: str) -> None:
    plain = os.urandom(200_000) + b"text " * 100_000
    assert _read_all(gzip.compress(plain)) == plain
    assert _read_all(_members(plain, 7)) == plain
    assert _read_all(_members(plain, 3) + b"\0" * 5000) == plain      # zero padding
    buf = io.BytesIO()      # FNAME and a comment-less header with a name and mtime
    with gzip.GzipFile(filename="layer.tar", mode="wb", fileobj=buf, mtime=123) as gz:
        gz.write(plain)
    assert _read_all(buf.getvalue()) == plain
    assert _read_all(gzip.compress(b"")) == b""


@pytest.mark.parametrize("tail", [b"garbage", b"\0\0\0x", b"\x1f"])
def test_trailing_garbage_is_an_error(inflater: str, tail: bytes) -> None:
    with pytest.raises(Exception) as info:  # noqa: B017 - the kind is checked below
        _read_all(gzip.compress(b"data" * 100) + tail)
    assert compression._is_corruption(info.value)


def test_a_corrupt_deflate_stream_raises_zlib_error_with_either_inflater(
        inflater: str) -> None:
    """Callers outside this module (container archives, load) catch ``zlib.error``:
    zlib-ng's own error type must not slip past them."""
    with pytest.raises(zlib.error):
        _read_all(b"\x1f\x8b\x08\x00garbage" * 10)


def test_corrupt_crc_truncated_member_and_bad_layers(inflater: str, tmp_path: Path) -> None:
    good = gzip.compress(make_tar(BASIC), mtime=0)
    bad_crc = good[:-8] + bytes([good[-8] ^ 1]) + good[-7:]
    cases = {
        "crc": bad_crc,
        "truncated-second-member": good + gzip.compress(b"x" * 1000)[:-5],
        "garbage-after": good + b"not gzip at all",
    }
    for name, blob in cases.items():
        target = tmp_path / name
        target.mkdir()
        with pytest.raises(InvalidArgument, match="corrupt compressed stream"):
            apply_layer(io.BytesIO(blob), target, whiteouts="delete")


def test_layer_of_several_members_has_the_plain_diff_id(inflater: str,
                                                         tmp_path: Path) -> None:
    plain = make_tar([f(f"d/f{i}", os.urandom(5000)) for i in range(40)])
    result = apply_layer(io.BytesIO(_members(plain, 5)), tmp_path, whiteouts="delete")
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.size == len(plain)
    assert len(os.listdir(tmp_path / "d")) == 40


# ---- Prefetch -----------------------------------------------------------------------
def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_prefetch_delivers_every_byte_in_order_then_the_error() -> None:
    data = os.urandom(1 << 20)
    src = io.BytesIO(data)
    state = {"n": 0}

    def read(n: int) -> bytes:
        state["n"] += 1
        chunk = src.read(n)
        if not chunk:
            raise OSError(5, "disk went away")
        return chunk

    p = Prefetch(read, chunk=10_000, depth=2, name="t-prefetch")
    got = bytearray()
    buf = memoryview(bytearray(7_777))
    with pytest.raises(OSError, match="disk went away"):
        while n := p.readinto(buf):
            got += buf[:n]
    assert bytes(got) == data       # everything before the error arrived first
    p.close()
    assert not _threads("t-prefetch")


def test_prefetch_close_stops_a_producer_blocked_in_its_source() -> None:
    """A consumer that gives up while the source blocks (a download tee with no data
    yet) aborts the source and joins the thread: nothing is left running."""
    tee = BlobTee(1 << 20, threading.Event())
    tee.put(b"first")
    p = Prefetch(tee.read, chunk=4096, abort=tee.abort, name="t-blocked")
    buf = memoryview(bytearray(100))
    assert bytes(buf[:p.readinto(buf)]) == b"first"
    time.sleep(0.05)                # the producer now waits inside tee.read
    assert _threads("t-blocked")
    started = time.monotonic()
    p.close()
    assert time.monotonic() - started < 2
    assert not _threads("t-blocked")
    tee.put(b"late")                # dropped, never waits
    with pytest.raises(ValueError):
        p.readinto(buf)


def test_tee_abort_wakes_a_waiting_reader() -> None:
    tee = BlobTee(1 << 20, threading.Event())
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            tee.read(10)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.05)
    tee.abort()
    th.join(2)
    assert not th.is_alive() and isinstance(errors[0], Cancelled)


def test_a_bad_entry_while_the_download_streams_leaves_no_thread(tmp_path: Path) -> None:
    """The first entry is refused while most of the layer has not arrived: the applier
    fails at once, its inflate thread ends, and the downloader's puts never block."""
    evil = make_tar([f("../escape", b"x"), *(f(f"big{i}", os.urandom(100_000))
                                           for i in range(30))])
    blob = gzip.compress(evil, mtime=0)
    tee = BlobTee(64 << 10, threading.Event())
    tee.attach()
    tee.put(blob[:20_000])          # the rest never comes during apply
    with pytest.raises(InvalidArgument, match="escape"):
        apply_layer(tee, tmp_path, whiteouts="delete", prefetch=True)  # type: ignore[arg-type]
    assert not _threads("inflate")
    started = time.monotonic()
    for i in range(20_000, len(blob), 50_000):
        tee.put(blob[i:i + 50_000])
    assert time.monotonic() - started < 2
    assert not (tmp_path.parent / "escape").exists()


def test_the_same_tree_and_digest_with_and_without_prefetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sdk.diff import apply as apply_mod
    from tests.unit.test_diff_apply import tree

    plain = make_tar([*BASIC, *(f(f"many/f{i}", os.urandom(i * 997)) for i in range(50))])
    blob = _members(plain, 3)
    out = []
    for prefetch in (True, False):
        monkeypatch.setattr(apply_mod, "PREFETCH", prefetch)
        target = tmp_path / str(prefetch)
        target.mkdir()
        out.append((apply_layer(io.BytesIO(blob), target, whiteouts="delete"), tree(target)))
    assert out[0] == out[1]
    assert out[0][0].diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
