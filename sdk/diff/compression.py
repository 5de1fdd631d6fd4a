"""Layer streams: sniff the compression, and hash the plain tar as it is read.

gzip is inflated by ``_Gunzip`` rather than ``gzip.GzipFile``: zlib checks each
member's header, CRC-32 and length itself (``wbits=31``), where GzipFile inflates raw
deflate and computes the CRC again in Python.  ``zlib-ng`` (the ``zlib_ng`` module, a
wheel on PyPI) is used when installed: it inflates layer data ~1.5-2x faster than the
system zlib here (see docs/benchmarks.md, "Pull and push"); without it, ``zlib``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from types import ModuleType
from typing import BinaryIO, cast

from sdk.errors import FailedPrecondition, InvalidArgument

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEAD = 6
#: compressed bytes handed to the inflater at a time (the output per call is bounded
#: by the caller's buffer, so a small input keeps ``unconsumed_tail`` copies small)
_GZ_IN = 128 << 10


def zlib_module() -> ModuleType:
    """zlib-ng's ``zlib_ng`` module when installed (inflates and deflates faster), else
    the stdlib's zlib; the same API either way."""
    try:
        from zlib_ng import zlib_ng  # type: ignore[import-not-found]
    except ImportError:
        return zlib
    return cast(ModuleType, zlib_ng)


class BadGzip(Exception):
    """Not gzip data where a gzip member should start."""


class _Gunzip(io.RawIOBase):
    """Concatenated gzip members (RFC 1952), as ``gzip -d`` and Go's reader accept them;
    zero padding after the last member is ignored (GzipFile's rule), anything else
    after it is an error.  A stream that ends inside a member raises ``EOFError``."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        #: what has arrived, without waiting for a full chunk (a download streams in)
        self._read_some = getattr(inner, "read1", inner.read)
        self._z = zlib_module()
        self._d = self._z.decompressobj(31)
        self._pending = b""         # input read but not given to the inflater yet
        self._in_member = True      # the caller sniffed the magic of the first member
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (``b""`` at the end), without an extra copy."""
        if size is None or size < 0:
            return self.readall()
        while not self._eof and size:
            if not self._pending:
                self._pending = self._read_some(_GZ_IN)
                if not self._pending:
                    if self._in_member:
                        raise EOFError("compressed file ended before the end-of-stream "
                                       "marker was reached")
                    self._eof = True
                    break
            if not self._in_member:
                self._pending = self._pending.lstrip(b"\0")
                if not self._pending:
                    continue
                if len(self._pending) < 2:
                    more = self._read_some(_GZ_IN)
                    if more:
                        self._pending += more
                        continue
                if not self._pending.startswith(GZIP_MAGIC):
                    raise BadGzip("trailing garbage after the gzip data")
                self._d = self._z.decompressobj(31)
                self._in_member = True
            try:
                out = self._d.decompress(self._pending, size)
            except self._z.error as exc:
                # one exception type whichever inflater runs: callers catch zlib.error
                raise zlib.error(str(exc)) from None
            self._pending = self._d.unconsumed_tail
            if self._d.eof:
                self._pending = self._d.unused_data
                self._in_member = False
            if out:
                return out
        return b""

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


class _Prefixed(io.RawIOBase):
    """``head`` (bytes already read from ``inner`` to sniff it) followed by ``inner``."""

    def __init__(self, head: bytes, inner: BinaryIO) -> None:
        self._head = head
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._inner.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n


def _read_head(stream: BinaryIO) -> bytes:
    """Read the first bytes, looping because pipes and sockets may return short reads."""
    head = b""
    while len(head) < _HEAD:
        chunk = stream.read(_HEAD - len(head))
        if not chunk:
            break
        head += chunk
    return head


def compression_of(head: bytes) -> str:
    """"gzip", "bzip2", "xz", "zstd" or "" (plain) from the first bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A readable plain stream over ``stream``, which may be gzip, bzip2, xz, zstd or plain.

    zstd needs the optional ``zstandard`` module; without it this raises
    ``FailedPrecondition`` naming the module.  Corrupt compressed data surfaces as
    errors from ``read`` (``HashingReader`` turns them into ``InvalidArgument``).
    """
    head = _read_head(stream)
    raw = io.BufferedReader(_Prefixed(head, stream), 1 << 18)
    kind = compression_of(head)
    if kind == "gzip":
        return cast(BinaryIO, _Gunzip(cast(BinaryIO, raw)))
    if kind == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    if kind == "xz":
        return cast(BinaryIO, lzma.LZMAFile(raw, "rb"))
    if kind == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise FailedPrecondition(
                "layer is zstd-compressed but the Python module zstandard is not installed "
                "(pip install zstandard)") from None
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw))
    return cast(BinaryIO, raw)


def _is_corruption(exc: BaseException) -> bool:
    """Decompressor failures, as opposed to I/O errors of the underlying file."""
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, BadGzip)):
        return True
    if type(exc).__module__.startswith(("zstandard", "zlib_ng")):
        return True
    # bz2 reports bad data as a bare OSError("Invalid data stream") without errno
    return isinstance(exc, OSError) and not exc.errno


class HashingReader(io.RawIOBase):
    """Reads ``inner`` while computing the sha256 and byte count of what was read.

    Decompression errors become ``InvalidArgument``; real I/O errors pass through.
    """

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes as the inner stream returns them (no extra copy)."""
        if size is None or size < 0:
            return self.readall()
        try:
            data = self._inner.read(size)
        except Exception as exc:
            if _is_corruption(exc):
                raise InvalidArgument(f"invalid layer: corrupt compressed stream: {exc}") \
                    from None
            raise
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def drain(self) -> None:
        """Read (and hash) everything left, e.g. the zero padding after a tar's end."""
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while self.readinto(view):
            pass

