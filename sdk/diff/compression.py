"""Layer streams: sniff the compression, and hash the plain tar as it is read."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from typing import BinaryIO, cast

from sdk.errors import FailedPrecondition, InvalidArgument

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEAD = 6


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
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
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
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)):
        return True
    if type(exc).__module__.startswith("zstandard"):
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

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buf))
        except Exception as exc:
            if _is_corruption(exc):
                raise InvalidArgument(f"invalid layer: corrupt compressed stream: {exc}") \
                    from None
            raise
        n = len(data)
        buf[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        """Read (and hash) everything left, e.g. the zero padding after a tar's end."""
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while self.readinto(view):
            pass

