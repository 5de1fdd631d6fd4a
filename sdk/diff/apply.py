"""Apply a layer tarball to a directory: our own code, not ``tarfile.extractall``.

Every path is resolved inside the target root with ``openat2(RESOLVE_IN_ROOT)``, so
neither ``..``, absolute names, symlinks (in this or an earlier layer) nor hardlinks
can reach outside it; entries are created with the ``*at`` calls relative to a
directory fd.  OCI whiteouts become overlay whiteouts (``whiteouts="overlay"``) or
deletions (``"delete"``, for the copy-based vfs driver).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sdk.errors import InvalidArgument
from sdk.runtime import linux

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS


@dataclass(frozen=True, slots=True)
class ApplyResult:
    diff_id: str
    size: int


class _Hashing(io.RawIOBase):
    """Reads through ``inner`` while hashing and counting what was read."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.hash.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """Sniff gzip, bzip2, xz or zstd (if available) and return a plain stream."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore
    head = buffered.peek(6)[:6]   # type: ignore[union-attr]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(buffered, "rb")  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(buffered, "rb")  # type: ignore[return-value]
    if head[:4] == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument("layer is zstd-compressed but the zstandard module is "
                                  "not installed (pip install zstandard)") from None
        return zstandard.ZstdDecompressor().stream_reader(buffered)  # type: ignore
    return buffered  # type: ignore[return-value]


def _clean(name: str, what: str) -> str:
    """Path relative to the root; names climbing above it are refused.

    Absolute names are taken relative to the root (as Docker does); resolution with
    RESOLVE_IN_ROOT confines them anyway, the check just gives a clear error.
    """
    raw = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if raw == ".." or raw.startswith("../"):
        raise InvalidArgument(f"invalid layer: {what} {name!r} points outside the root")
    return "" if raw == "." else raw


class _Applier:
    def __init__(self, target: Path, whiteouts: str, allow_devices: bool) -> None:
        self.root = os.open(target, os.O_PATH | os.O_DIRECTORY)
        self.whiteouts = whiteouts
        self.allow_devices = allow_devices
        self.is_root = os.geteuid() == 0
        self.cache: dict[str, int] = {}
        self.added: set[str] = set()
        self.dir_times: list[tuple[str, float]] = []

    def close(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()
        os.close(self.root)

    def _forget(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()

    def parent(self, rel_dir: str, entry: str) -> int:
        """fd of directory ``rel_dir`` inside the root (created when missing)."""
        if rel_dir in ("", "."):
            return self.root
        fd = self.cache.get(rel_dir)
        if fd is not None:
            return fd
        try:
            fd = linux.openat2(self.root, rel_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                               _RESOLVE)
        except OSError as exc:
            if exc.errno == 20:   # ENOTDIR: a file where a directory should be
                raise InvalidArgument(f"invalid layer: parent of {entry!r} is not a "
                                      "directory") from None
            if exc.errno != 2:
                raise
            up, name = posixpath.split(rel_dir)
            pfd = self.parent(up, entry)
            try:
                os.mkdir(name, 0o755, dir_fd=pfd)
            except FileExistsError:
                pass
            fd = linux.openat2(self.root, rel_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                               _RESOLVE)
        self.cache[rel_dir] = fd
        return fd

    def _remove(self, pfd: int, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
            self._forget()
        else:
            os.unlink(name, dir_fd=pfd)

    def apply(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            rel = _clean(member.name, "entry")
            if not rel or rel == ".":
                self._meta_root(member)
                continue
            rel_dir, name = posixpath.split(rel)
            if name.startswith(WHITEOUT):
                self._whiteout(rel_dir, name, rel)
                continue
            pfd = self.parent(rel_dir, rel)
            self._create(tar, member, pfd, rel_dir, name, rel)
            self.added.add(rel)
        for rel, mtime in reversed(self.dir_times):
            rel_dir, name = posixpath.split(rel)
            try:
                pfd = self.parent(rel_dir, rel)
                os.utime(name, (mtime, mtime), dir_fd=pfd, follow_symlinks=False)
            except OSError:
                pass

    def _meta_root(self, member: tarfile.TarInfo) -> None:
        if member.isdir() and self.is_root:
            os.chown(f"/proc/self/fd/{self.root}", member.uid, member.gid)
        if member.isdir():
            os.chmod(f"/proc/self/fd/{self.root}", member.mode & 0o7777)

    def _whiteout(self, rel_dir: str, name: str, rel: str) -> None:
        pfd = self.parent(rel_dir, rel)
        if name == OPAQUE:
            if self.whiteouts == "overlay":
                os.setxattr(f"/proc/self/fd/{pfd}", "trusted.overlay.opaque", b"y")
            else:
                for entry in os.listdir(f"/proc/self/fd/{pfd}"):
                    if posixpath.join(rel_dir, entry) not in self.added:
                        self._remove(pfd, entry)
            return
        victim = name[len(WHITEOUT):]
        if not victim or "/" in victim or victim in (".", ".."):
            raise InvalidArgument(f"invalid layer: bad whiteout {rel!r}")
        if self.whiteouts == "overlay":
            self._remove(pfd, victim)
            os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        else:
            self._remove(pfd, victim)

    def _create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, rel_dir: str,
                name: str, rel: str) -> None:
        try:
            existing = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            self._remove(pfd, name)
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(name, 0o700, dir_fd=pfd)
            self.dir_times.append((rel, m.mtime))
        elif m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                src = tar.extractfile(m)
                assert src is not None
                with os.fdopen(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
        elif m.islnk():
            target = _clean(m.linkname, "hardlink target")
            t_dir, t_name = posixpath.split(target)
            tfd = self.parent(t_dir, rel)
            try:
                os.link(t_name, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidArgument(f"invalid layer: hardlink {rel!r} points to "
                                      f"{m.linkname!r}, which is not in the layer") from None
            return      # a hardlink shares the target's metadata
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        elif m.ischr() or m.isblk():
            if not self.allow_devices or not self.is_root:
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        else:
            return
        self._metadata(m, pfd, name)

    def _metadata(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        if self.is_root:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if not m.issym():
            os.chmod(name, m.mode & 0o7777, dir_fd=pfd)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                attr = key[len("SCHILY.xattr."):]
                if attr.startswith("trusted.overlay.") or m.issym():
                    continue
                if not self.is_root and not attr.startswith("user."):
                    continue
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) \
                    else value
                try:
                    os.setxattr(f"/proc/self/fd/{pfd}/{name}", attr, raw)
                except OSError:
                    pass
        if not m.isdir():
            os.utime(name, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)


def apply_layer(stream: BinaryIO, target: Path, *, whiteouts: Literal["overlay", "delete"],
                allow_devices: bool = True) -> ApplyResult:
    """Unpack ``stream`` (compressed or not) into ``target``; returns the layer's DiffID.

    On error the target is left partially written: callers unpack into a fresh
    temporary directory and rename it into place only on success.
    """
    hashing = _Hashing(open_decompressed(stream))
    reader = io.BufferedReader(hashing, 1 << 20)
    applier = _Applier(Path(target), whiteouts, allow_devices)
    try:
        try:
            with tarfile.open(fileobj=reader, mode="r|", errorlevel=2) as tar:
                applier.apply(tar)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"invalid layer tarball: {exc}") from None
        except (EOFError, OSError, lzma.LZMAError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (None, 0) and \
                    not isinstance(exc, gzip.BadGzipFile):
                raise
            raise InvalidArgument(f"invalid layer tarball: {exc}") from None
        while reader.read(1 << 20):
            pass
    finally:
        applier.close()
    return ApplyResult("sha256:" + hashing.hash.hexdigest(), hashing.size)
