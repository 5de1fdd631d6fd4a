"""Deterministic tar headers for archives we write: uid/gid 0, no user names, fixed
mtime, 0644 files and 0755 directories, PAX records only when a value needs them."""

from __future__ import annotations

import tarfile

BLOCK = 512
#: Go's archive/tar ends an archive with two zero blocks (no padding to a record)
END = b"\0" * (2 * BLOCK)


def header(name: str, size: int = 0, *, directory: bool = False, mtime: int = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)
