"""BlobTee: the hand-off of a blob's bytes from a download thread to an unpacker."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import time

import pytest

from sdk.diff.apply import layer_digest
from sdk.distribution.tee import BlobTee, Cancelled, Restart


def _reader(tee: BlobTee, out: list[bytes], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        tee.attach()
        try:
            while chunk := tee.read(7000):
                out.append(chunk)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    return th


def test_streams_every_byte_in_order_with_a_bounded_buffer() -> None:
    tee = BlobTee(64 << 10, threading.Event())
    data = os.urandom(3 << 20)
    out: list[bytes] = []
    errors: list[BaseException] = []
    th = _reader(tee, out, errors)
    for i in range(0, len(data), 100_000):
        tee.put(data[i:i + 100_000])
        assert tee._buffered <= (64 << 10) + 100_000     # never far ahead of the reader
    tee.finish()
    th.join(10)
    assert not errors
    assert b"".join(out) == data


def test_a_layer_digest_read_through_the_tee_matches() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(50):
            payload = os.urandom(5000)
            info = tarfile.TarInfo(f"d/f{i}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    blob = gzip.compress(raw, mtime=0)
    tee = BlobTee(32 << 10, threading.Event())
    result: list[str] = []

    def unpack() -> None:
        tee.attach()
        result.append(layer_digest(tee).diff_id)

    th = threading.Thread(target=unpack)
    th.start()
    for i in range(0, len(blob), 4096):
        tee.put(blob[i:i + 4096])
    tee.finish()
    th.join(10)
    assert result == ["sha256:" + hashlib.sha256(raw).hexdigest()]


def test_a_full_tee_without_a_reader_is_abandoned_not_waited_on() -> None:
    tee = BlobTee(1000, threading.Event())
    start = time.monotonic()
    for _ in range(10):
        tee.put(b"x" * 600)         # no reader: never blocks
    assert time.monotonic() - start < 1
    assert tee._buffered == 0
    tee.attach()
    with pytest.raises(Restart):
        tee.read(10)


def test_fail_reaches_a_waiting_reader_and_is_ignored_after_finish() -> None:
    tee = BlobTee(1 << 20, threading.Event())
    out: list[bytes] = []
    errors: list[BaseException] = []
    th = _reader(tee, out, errors)
    tee.put(b"abc")
    time.sleep(0.05)
    tee.fail(Restart("retry"))
    th.join(10)
    assert len(errors) == 1 and isinstance(errors[0], Restart)

    done = BlobTee(1 << 20, threading.Event())
    done.put(b"all of it")
    done.finish()
    done.fail(Restart("download ended"))     # the stream was complete: nothing lost
    done.attach()
    assert done.read(100) == b"all of it"
    assert done.read(100) == b""


def test_cancel_wakes_both_sides() -> None:
    cancel = threading.Event()
    tee = BlobTee(10, cancel)
    errors: list[BaseException] = []
    th = _reader(tee, [], errors)
    cancel.set()
    th.join(5)
    assert not th.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    # a writer blocked on a full buffer with an attached reader returns on cancel
    cancel2 = threading.Event()
    tee2 = BlobTee(10, cancel2)
    tee2.attach()
    tee2.put(b"x" * 10)
    timer = threading.Timer(0.3, cancel2.set)
    timer.start()
    start = time.monotonic()
    tee2.put(b"y")
    assert time.monotonic() - start < 3
    timer.join()


def test_puts_after_the_reader_closed_are_dropped() -> None:
    tee = BlobTee(10, threading.Event())
    tee.attach()
    tee.close()
    start = time.monotonic()
    for _ in range(100):
        tee.put(b"z" * 100)
    assert time.monotonic() - start < 1
