"""Read a stream in a thread of its own, a bounded number of chunks ahead of its consumer.

Unpacking a layer is two jobs of different kinds: inflating and hashing the stream
(zlib and OpenSSL release the GIL on big buffers) and creating files (Python between
system calls).  ``Prefetch`` runs the first in a second thread, so on a machine with a
spare core the inflating and hashing overlap the file creation instead of adding to
it (measured in docs/benchmarks.md, "Pull and push").

The producer thread never outlives ``close()``: a consumer that stops early (a bad
entry) sets the closed flag, calls ``abort`` (given by the caller for a source whose
``read`` may block, e.g. a download tee) and joins the thread.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable

Read = Callable[[int], bytes]


class Prefetch(io.RawIOBase):
    def __init__(self, read: Read, *, chunk: int = 1 << 20, depth: int = 8,
                 abort: Callable[[], None] | None = None, name: str = "prefetch") -> None:
        self._source = read
        self._chunk = chunk
        self._depth = max(depth, 1)
        self._abort = abort
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._head = memoryview(b"")
        self._eof = False
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- the producer thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                data = self._source(self._chunk)
                with self._cond:
                    while len(self._chunks) >= self._depth and not self._stopped:
                        self._cond.wait()
                    if self._stopped:
                        return
                    if not data:
                        self._eof = True
                        self._cond.notify_all()
                        return
                    self._chunks.append(data)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    # ---- the consumer ---------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        view = self.read_view(len(buf))
        n = len(view)
        buf[:n] = view
        return n

    def read_view(self, size: int) -> memoryview:
        """Up to ``size`` bytes of the next chunk without copying them (empty at the
        end); the caller may keep the view, the chunk is never reused."""
        if not self._head:
            with self._cond:
                if self._stopped:
                    raise ValueError("read from a closed Prefetch")
                while not self._chunks and not self._eof and self._error is None:
                    self._cond.wait()
                if not self._chunks:
                    if self._error is not None:
                        raise self._error
                    return memoryview(b"")
                self._head = memoryview(self._chunks.popleft())
                self._cond.notify_all()
        view = self._head[:size]
        self._head = self._head[size:]
        return view

    def drain(self) -> None:
        """Read everything left (the producer sees the whole stream)."""
        while self.read_view(self._chunk):
            pass

    def close(self) -> None:
        """Stop the producer (if it is still running) and wait for it."""
        with self._cond:
            self._stopped = True
            running = not (self._eof or self._error is not None)
            self._chunks.clear()
            self._cond.notify_all()
        if running and self._abort is not None:
            self._abort()
        self._thread.join()
        self._head = memoryview(b"")
        super().close()
