"""Spool an input archive's members to files, hashing each, before anything is trusted.

The members of an archive come in any order (``manifest.json`` last in ``docker save``
output, ``index.json`` anywhere in an OCI archive) and the input may be a pipe, so every
regular file is written once to ``<content>/ingest/<pid>-<random>`` (where a crash
leaves only what ``ContentStore.cleanup_ingests`` removes) with its sha256 computed on
the way.  Layer blobs are later moved into the content store by rename, never copied.

Member names are checked here: absolute names, ``..`` escapes and NUL bytes are refused.
Symlinks and hardlinks between members (older ``docker save`` links a repeated layer to
its first copy) become aliases, resolved only inside the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import secrets
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sdk.diff.compression import compression_of, open_decompressed
from sdk.diff.tarstream import TarReader
from sdk.errors import InvalidArgument

_CHUNK = 1 << 20
MAX_JSON = 16 << 20          # a manifest, index or config bigger than this is refused
_MAX_HOPS = 40               # symlink resolutions per name, like Linux's ELOOP bound


class _Source(Protocol):
    def readinto(self, buf: memoryview) -> int: ...


@dataclass(slots=True)
class StagedFile:
    path: Path
    digest: str
    size: int
    published: bool = False

    def head(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read(6)

    def compression(self) -> str:
        return compression_of(self.head())


def member_name(raw: str, what: str = "member") -> str:
    """A member name made relative and normal; escapes are refused."""
    if "\x00" in raw:
        raise InvalidArgument(f"invalid archive: {what} name {raw!r} contains NUL")
    if raw.startswith("/"):
        raise InvalidArgument(f"invalid archive: {what} {raw!r} has an absolute path")
    norm = posixpath.normpath(raw) if raw else "."
    if norm == ".." or norm.startswith("../"):
        raise InvalidArgument(f"invalid archive: {what} {raw!r} points outside the archive")
    return "" if norm == "." else norm


class _Checked(io.RawIOBase):
    """Turns decompressor failures of the whole-archive stream into InvalidArgument."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buf))
        except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise InvalidArgument(f"invalid archive: corrupt compressed stream: {exc}") \
                from None
        except OSError as exc:
            if exc.errno:       # a real I/O error of the input
                raise
            raise InvalidArgument(f"invalid archive: corrupt compressed stream: {exc}") \
                from None
        except Exception as exc:
            if type(exc).__module__.startswith("zstandard"):
                raise InvalidArgument(f"invalid archive: corrupt zstd stream: {exc}") \
                    from None
            raise
        n = len(data)
        buf[:n] = data
        return n


class Staging:
    """The spooled members of one archive; ``close`` removes what was not published."""

    def __init__(self, ingest: Path) -> None:
        self.ingest = Path(ingest)
        self.files: dict[str, StagedFile] = {}
        self.links: dict[str, str] = {}
        self._all: list[StagedFile] = []

    # ---- reading the archive ------------------------------------------------------------
    def read(self, stream: BinaryIO) -> None:
        """Spool every member of ``stream`` (plain, gzip, bzip2, xz or zstd tar)."""
        plain = open_decompressed(stream)
        tar = TarReader(io.BufferedReader(_Checked(plain), _CHUNK))
        try:
            for m in tar:
                self._member(tar, m)
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"invalid archive: {exc}") from None
        if not self.files and not self.links:
            raise InvalidArgument("invalid archive: no files in it (empty input or not a "
                                  "tar archive)")

    def _member(self, tar: TarReader, m: tarfile.TarInfo) -> None:
        name = member_name(m.name)
        if m.type == tarfile.DIRTYPE or not name:
            return
        if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
            self.files[name] = self._spool(tar)
            self.links.pop(name, None)
        elif m.type == tarfile.SYMTYPE:
            if "\x00" in m.linkname or not m.linkname:
                raise InvalidArgument(f"invalid archive: symlink {name!r} has a bad target")
            self.links[name] = m.linkname
            self.files.pop(name, None)
        elif m.type == tarfile.LNKTYPE:
            target = self.resolve(member_name(m.linkname, "hardlink target"))
            self.files[name] = target
            self.links.pop(name, None)
        else:
            raise InvalidArgument(f"invalid archive: member {name!r} is not a regular file, "
                                  "directory or link")

    def _spool(self, source: _Source) -> StagedFile:
        self.ingest.mkdir(parents=True, exist_ok=True)
        path = self.ingest / f"{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        staged = StagedFile(path, "", 0)
        self._all.append(staged)
        digest = hashlib.sha256()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        with os.fdopen(fd, "wb", buffering=0) as out:
            while n := source.readinto(view):
                chunk = view[:n]
                digest.update(chunk)
                while chunk:
                    written = out.write(chunk)
                    chunk = chunk[written:]
                staged.size += n
        staged.digest = "sha256:" + digest.hexdigest()
        return staged

    # ---- looking members up -------------------------------------------------------------
    def resolve(self, name: str, what: str = "file") -> StagedFile:
        """The file at ``name``, following the archive's own symlinks inside it."""
        parts = [p for p in member_name(name, what).split("/") if p]
        hops = 0
        i = 0
        while i < len(parts):
            prefix = "/".join(parts[:i + 1])
            if prefix in self.links:
                hops += 1
                if hops > _MAX_HOPS:
                    raise InvalidArgument(f"invalid archive: too many symlinks in {name!r}")
                target = self.links[prefix]
                base = "" if target.startswith("/") else "/".join(parts[:i])
                joined = posixpath.normpath(posixpath.join(base, target.lstrip("/")))
                if joined == ".." or joined.startswith("../"):
                    raise InvalidArgument(f"invalid archive: symlink {prefix!r} points "
                                          "outside the archive")
                parts = [p for p in joined.split("/") if p not in ("", ".")] + parts[i + 1:]
                i = 0
                continue
            i += 1
        found = self.files.get("/".join(parts))
        if found is None:
            raise InvalidArgument(f"invalid archive: {what} {name!r} is missing")
        return found

    def has(self, name: str) -> bool:
        try:
            self.resolve(name)
        except InvalidArgument:
            return False
        return True

    def read_bytes(self, staged: StagedFile, name: str) -> bytes:
        if staged.size > MAX_JSON:
            raise InvalidArgument(f"invalid archive: {name} is too large "
                                  f"({staged.size} bytes, at most {MAX_JSON})")
        return staged.path.read_bytes()

    def read_json(self, name: str, data: bytes | None = None) -> Any:
        if data is None:
            data = self.read_bytes(self.resolve(name), name)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"invalid archive: {name} is not valid JSON: {exc}") \
                from None

    # ---- converting, publishing, cleaning up ---------------------------------------------
    def decompressed_copy(self, staged: StagedFile) -> StagedFile:
        """A plain copy of a bzip2/xz layer (no media type names those compressions)."""
        with open(staged.path, "rb") as f:
            return self._spool(io.BufferedReader(_Checked(open_decompressed(f)), _CHUNK))

    def publish(self, staged: StagedFile, content_root: Path) -> None:
        """Move a verified blob into the content store (``<root>/sha256/<hex>``)."""
        if staged.published:
            return
        target = content_root / "sha256" / staged.digest[7:]
        if target.exists():
            return
        fd = os.open(staged.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(staged.path, 0o444)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        staged.published = True
        dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        for staged in self._all:
            if not staged.published:
                staged.path.unlink(missing_ok=True)
        self._all.clear()
        self.files.clear()
        self.links.clear()
