"""Writing layer/export tars from files on disk, deterministically.

Headers are built from ``lstat`` (never following symlinks) rather than
``TarFile.gettarinfo``: no user/group name lookups in the host's databases (names
are left empty, ids are what count), mtimes truncated to whole seconds as Docker
does, xattrs as PAX ``SCHILY.xattr.*`` records, and hardlinks within one tar written
as tar hardlinks to the first name seen.
"""

from __future__ import annotations

import os
import stat
import tarfile
from types import TracebackType
from typing import BinaryIO

from sdk.diff.whiteouts import is_overlay_xattr

_BUFSIZE = 1 << 16   # tarfile's stream buffer is copied on every write: keep it small


def read_xattrs(path: str) -> dict[str, bytes]:
    """xattrs of ``path`` (not following symlinks), minus overlayfs' own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if is_overlay_xattr(name):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


class TarWriter:
    """A PAX tar stream on ``out``; use as a context manager (or call ``close``)."""

    def __init__(self, out: BinaryIO) -> None:
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()/__exit__
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_BUFSIZE,
            copybufsize=_BUFSIZE)
        self._links: dict[tuple[int, int], str] = {}

    def add(self, full: str, arcname: str, st: os.stat_result | None = None) -> bool:
        """Add the file at ``full`` as ``arcname``; False for what tar cannot hold
        (sockets)."""
        if st is None:
            st = os.lstat(full)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return False
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        for name, value in read_xattrs(full).items():
            info.pax_headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type = tarfile.LNKTYPE
                info.linkname = self._links[key]
                self._tar.addfile(info)
                return True
            if st.st_nlink > 1:
                self._links[key] = arcname
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb", buffering=0) as f:
                self._tar.addfile(info, f)
            return True
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return False
        self._tar.addfile(info)
        return True

    def add_empty(self, arcname: str, *, mode: int, uid: int, gid: int, mtime: float) -> None:
        """An empty regular file: how OCI tars write whiteouts."""
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, int(mtime)
        info.uname = info.gname = ""
        self._tar.addfile(info)

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
