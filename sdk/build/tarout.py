"""A fast tar writer for the layers the builder writes itself (COPY and ADD).

``tarfile`` spends ~0.2 ms per entry on a header (a TarInfo copy, the PAX checks, one
encoder call per field) and its stream mode moves file data in 16 KB pieces through a
buffer it re-slices on every write: for a COPY of 1,500 small files that was a third
of the step, and it competes for the GIL with the thread unpacking the same stream.
For the entries a COPY writes -- ASCII names and link targets that fit the ustar
fields, ids, sizes and mtimes in range -- ``ustar_header`` builds the header directly,
byte for byte what ``tarfile`` writes in PAX format (a unit test compares them);
anything else (long or non-ASCII names, members of an ADDed archive with their own PAX
records) goes through ``tarfile``'s encoder.  File data goes out in 1 MB writes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import tarfile

BLOCK = 512
RECORD = 20 * BLOCK          # tarfile pads the end to whole records (tar -b20)
CHUNK = 1 << 20

REGTYPE, SYMTYPE, DIRTYPE, FIFOTYPE = b"0", b"2", b"5", b"6"
_MAX7 = 8 ** 7               # what fits an 8-byte octal field
_MAX11 = 8 ** 11             # what fits a 12-byte octal field
_TAIL = b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155)    # magic .. prefix


def ustar_header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int,
                 typeflag: bytes, linkname: str = "") -> bytes | None:
    """The 512-byte header ``tarfile`` (PAX format, empty uname/gname) writes for this
    entry, or None when the entry needs a PAX record (then use ``tarfile``)."""
    if typeflag == DIRTYPE and not name.endswith("/"):
        name += "/"
    if len(name) > 100 or len(linkname) > 100 or not name.isascii() or \
            not linkname.isascii():
        return None
    if not (0 <= uid < _MAX7 and 0 <= gid < _MAX7 and 0 <= size < _MAX11 and
            0 <= mtime < _MAX11):
        return None
    head = b"".join((name.encode().ljust(100, b"\0"), b"%07o\0" % (mode & 0o7777),
                     b"%07o\0" % uid, b"%07o\0" % gid, b"%011o\0" % size,
                     b"%011o\0" % mtime, b"        ", typeflag,
                     linkname.encode().ljust(100, b"\0"), _TAIL, bytes(12)))
    return head[:148] + b"%06o\0" % sum(head) + head[155:]


class TarOut:
    """A tar stream on ``out`` (anything with ``write``); ``close`` ends it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def entry(self, name: str, mode: int, uid: int, gid: int, mtime: int,
              typeflag: bytes, *, size: int = 0, linkname: str = "",
              path: str | None = None) -> None:
        """One entry; a regular file's ``size`` bytes are read from ``path``."""
        head = ustar_header(name, mode, uid, gid, size, mtime, typeflag, linkname)
        if head is None:
            import tarfile

            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
            info.type, info.size, info.linkname = typeflag, size, linkname
            info.uname = info.gname = ""
            head = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._write(head)
        if path is not None and size:
            # never through a symlink swapped in since the caller's lstat
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self._copy_fd(fd, size, path)
            finally:
                os.close(fd)

    def member(self, info: tarfile.TarInfo, fileobj: BinaryIO | None = None) -> None:
        """A ``tarfile`` member as it is (an ADDed archive's entries)."""
        import tarfile

        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if fileobj is not None and info.size:
            left = info.size
            while left:
                data = fileobj.read(min(left, CHUNK))
                if not data:
                    raise OSError(f"{info.name}: unexpected end of data")
                self._write(data)
                left -= len(data)
            self._pad(info.size)

    def _copy_fd(self, fd: int, size: int, path: str) -> None:
        left = size
        while left:
            data = os.read(fd, min(left, CHUNK))
            if not data:
                raise OSError(f"{path} changed size while it was copied")
            self._write(data)
            left -= len(data)
        self._pad(size)

    def close(self) -> None:
        self._write(bytes(2 * BLOCK))
        if self.offset % RECORD:
            self._write(bytes(RECORD - self.offset % RECORD))
