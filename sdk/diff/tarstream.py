"""A small streaming tar reader for layer tars.

``tarfile``'s stream mode copies every byte of file data several times through its
internal buffers (the cost dominates big layers), and it silently treats a truncated
or garbled header as the end of the archive.  Here each 512-byte header block is
decoded by the documented ``TarInfo.frombuf`` (ustar, GNU and v7 layouts, base-256
numbers, checksums), the extended headers that layer tars use are handled here
(PAX ``x``/``g`` records, GNU long names and long link names), and file data is read
by the caller straight from the underlying buffered stream.

Rules, as Go's ``archive/tar`` (which Docker uses): only regular files (and unknown
types) carry data blocks, whatever the size field of other types says; the archive
ends at the first zero block or at a clean end of stream between members; anything
else that is short or malformed raises ``tarfile.ReadError``.  Sparse entries are
refused (``tarfile.ReadError``): no layer writer in use produces them.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

BLOCK = 512
_HEADER_ONLY = frozenset({tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                          tarfile.DIRTYPE, tarfile.FIFOTYPE})
_PAX_TYPES = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE})
_MAX_META = 16 << 20    # bound on one PAX/long-name record set, against memory blow-ups


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_pax(data: bytes) -> dict[str, str]:
    """PAX records: ``"<len> <key>=<value>\\n"`` repeated."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:          # some writers pad the record block with NULs
            break
        space = data.find(b" ", pos, pos + 24)
        if space < 0 or not data[pos:space].isdigit():
            raise tarfile.ReadError("invalid PAX header record")
        length = int(data[pos:space])
        record = data[space + 1:pos + length]
        if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n"):
            raise tarfile.ReadError("invalid PAX header record length")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise tarfile.ReadError("invalid PAX header record")
        out[_decode(key)] = _decode(value)
        pos += length
    return out


class TarReader:
    """Iterate over the members of a tar stream; read each regular file's data with
    ``readinto`` before asking for the next member (what is left is skipped)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._f = stream
        #: a stream that lends views of its own buffers (``Prefetch.read_view``):
        #: file data then goes to ``os.write`` without being copied on the way
        self._view: Callable[[int], memoryview] | None = getattr(stream, "read_view", None)
        self._buf = memoryview(b"")
        self._global: dict[str, str] = {}
        self._left = 0      # data bytes of the current member not read yet
        self._pad = 0       # padding after them
        self.offset = 0     # stream position, for error messages

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while (member := self.next()) is not None:
            yield member

    def _read(self, n: int) -> bytes:
        if self._view is None:
            data = self._f.read(n)
        else:
            part = self._view(n)
            data = bytes(part)
            while part and len(data) < n:
                part = self._view(n - len(data))
                data += part
        self.offset += len(data)
        return data

    def _skip(self, n: int) -> None:
        while n > 0:
            if self._view is not None:
                got = len(self._view(min(n, 1 << 20)))
                self.offset += got
            else:
                got = len(self._read(min(n, 1 << 20)))
            if not got:
                raise tarfile.ReadError(f"unexpected end of data at byte {self.offset}")
            n -= got

    def _data(self, info: tarfile.TarInfo) -> bytes:
        """The data blocks of a metadata member (PAX records, long names)."""
        if info.size > _MAX_META:
            raise tarfile.ReadError(f"oversized extended header at byte {self.offset}")
        data = self._read(info.size)
        if len(data) != info.size:
            raise tarfile.ReadError(f"unexpected end of data at byte {self.offset}")
        self._skip(-info.size % BLOCK)
        return data

    def next(self) -> tarfile.TarInfo | None:
        self._skip(self._left + self._pad)
        self._left = self._pad = 0
        pax: dict[str, str] = {}
        long_name = long_link = None
        meta = 0
        while True:
            start = self.offset
            block = self._read(BLOCK)
            if not block:
                if pax or long_name is not None or long_link is not None:
                    raise tarfile.ReadError("end of data after an extended header")
                return None
            if len(block) < BLOCK:
                raise tarfile.ReadError(f"truncated tar header at byte {start}")
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.EOFHeaderError:
                return None
            except tarfile.HeaderError as exc:
                raise tarfile.ReadError(f"bad tar header at byte {start}: {exc}") from None
            if info.type in _PAX_TYPES or info.type in (tarfile.GNUTYPE_LONGNAME,
                                                        tarfile.GNUTYPE_LONGLINK):
                meta += info.size
                if meta > _MAX_META:
                    raise tarfile.ReadError(f"oversized extended header at byte {start}")
                data = self._data(info)
                if info.type == tarfile.XGLTYPE:
                    self._global.update(parse_pax(data))
                elif info.type in _PAX_TYPES:
                    pax.update(parse_pax(data))
                elif info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = _decode(data.split(b"\0", 1)[0])
                else:
                    long_link = _decode(data.split(b"\0", 1)[0])
                continue
            return self._finish(info, {**self._global, **pax}, long_name, long_link)

    def _finish(self, info: tarfile.TarInfo, pax: dict[str, str], long_name: str | None,
                long_link: str | None) -> tarfile.TarInfo:
        if long_name is not None:
            info.name = long_name
        if long_link is not None:
            info.linkname = long_link
        if info.type == tarfile.GNUTYPE_SPARSE or any(k.startswith("GNU.sparse.") for k in pax):
            raise tarfile.ReadError(f"sparse tar entry {info.name!r} is not supported")
        try:
            if "path" in pax:
                info.name = pax["path"]
            if "linkpath" in pax:
                info.linkname = pax["linkpath"]
            for key in ("size", "uid", "gid"):
                if key in pax:
                    setattr(info, key, int(pax[key]))
            if "mtime" in pax:
                info.mtime = float(pax["mtime"])
        except ValueError:
            raise tarfile.ReadError(f"bad PAX value for {info.name!r}") from None
        if "uname" in pax:
            info.uname = pax["uname"]
        if "gname" in pax:
            info.gname = pax["gname"]
        if info.size < 0:
            raise tarfile.ReadError(f"negative size for {info.name!r}")
        info.pax_headers = pax
        if info.type == tarfile.AREGTYPE and info.name.endswith("/"):
            info.type = tarfile.DIRTYPE          # v7: a directory is a file named "x/"
        if info.type == tarfile.DIRTYPE:
            info.name = info.name.rstrip("/") or "/"
        data = 0 if info.type in _HEADER_ONLY else info.size
        self._left, self._pad = data, -data % BLOCK
        return info

    def read_view(self, size: int) -> memoryview:
        """Up to ``size`` bytes of the current member's data (empty when it is all read),
        valid until the next read: borrowed from the stream when it lends views."""
        if not self._left:
            return memoryview(b"")
        want = min(size, self._left)
        if self._view is not None:
            view = self._view(want)
        else:
            if len(self._buf) < want:
                self._buf = memoryview(bytearray(max(want, 1 << 16)))
            view = self._buf[:self._f.readinto(self._buf[:want])]  # type: ignore[attr-defined]
        if not view:
            raise tarfile.ReadError(f"unexpected end of data at byte {self.offset}")
        self._left -= len(view)
        self.offset += len(view)
        return view

    def readinto(self, buf: memoryview) -> int:
        """Read data of the current member into ``buf``; 0 when it is all read."""
        if not self._left:
            return 0
        view = buf[: min(len(buf), self._left)]
        n = self._f.readinto(view)  # type: ignore[attr-defined]
        if not n:
            raise tarfile.ReadError(f"unexpected end of data at byte {self.offset}")
        self._left -= n
        self.offset += n
        return n
