"""Hand a blob's bytes from the thread downloading it to the thread unpacking it.

``pull`` writes each downloaded chunk into the content store *and* into a ``BlobTee``;
the unpacker reads the tee as a file, so decompression, hashing and unpacking overlap
the download instead of waiting for the whole blob to be stored.

The buffer is bounded (``limit`` bytes) while a reader is active, so a slow unpacker
slows the download instead of holding the whole blob in memory.  A writer never waits
for a reader that has not started: it *abandons* the tee instead (the reader, when it
starts, gets ``Restart`` and unpacks the stored blob), so a download holding a lock
can never wait on an unpacker queued behind something waiting for that lock.
"""

from __future__ import annotations

import io
import threading
from collections import deque

_TICK = 0.2     # how often waiting sides look at the cancel event


class Restart(Exception):
    """The streamed copy is gone (retry, abandoned, found stored): read the stored blob."""


class Cancelled(Exception):
    """The pull was cancelled while waiting on the tee."""


class BlobTee(io.RawIOBase):
    def __init__(self, limit: int, cancel: threading.Event) -> None:
        self._limit = limit
        self._cancel = cancel
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._reading = False       # a reader has started
        self._closed = False        # the reader is done (or gave up): drop what comes

    # ---- the downloading side -----------------------------------------------------------
    def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` for the reader; waits while the buffer is full and a reader is
        draining it.  With no reader yet, a full buffer abandons the tee."""
        if not chunk:
            return
        with self._cond:
            while not (self._closed or self._error):
                if self._buffered < self._limit:
                    self._chunks.append(memoryview(chunk))
                    self._buffered += len(chunk)
                    self._cond.notify_all()
                    return
                if not self._reading:
                    self._fail_locked(Restart("unpacker not started; read the stored blob"))
                    return
                if self._cancel.is_set():
                    return
                self._cond.wait(_TICK)

    def finish(self) -> None:
        """Everything was put: the reader sees the end of the stream."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """The reader's next read raises ``exc`` (a ``Restart`` means: use the store);
        a no-op once ``finish`` was called."""
        with self._cond:
            self._fail_locked(exc)

    def _fail_locked(self, exc: BaseException) -> None:
        if self._eof:
            return      # the stream is complete; the download's own verdict follows
        if self._error is None:
            self._error = exc
        self._chunks.clear()
        self._buffered = 0
        self._cond.notify_all()

    # ---- the unpacking side -------------------------------------------------------------
    def attach(self) -> None:
        """A reader has started: from now on a full buffer makes the writer wait."""
        with self._cond:
            self._reading = True

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        with self._cond:
            self._reading = True
            while True:
                if self._error is not None:
                    raise self._error
                if self._chunks:
                    break
                if self._eof:
                    return 0
                if self._cancel.is_set():
                    raise Cancelled("pull cancelled")
                self._cond.wait(_TICK)
            n = 0
            while self._chunks and n < len(buf):
                head = self._chunks[0]
                take = min(len(head), len(buf) - n)
                buf[n:n + take] = head[:take]
                n += take
                if take == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
            self._buffered -= n
            self._cond.notify_all()
            return n

    def abort(self) -> None:
        """The reader gives up (from any thread): a ``readinto`` waiting for data raises
        ``Cancelled`` at once, and later puts are dropped."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._buffered = 0
            self._error = Cancelled("the unpacker stopped")
            self._cond.notify_all()

    def close(self) -> None:
        """The reader is done: later puts are dropped and never wait."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()
        super().close()
