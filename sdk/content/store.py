"""Content-addressed blob store: sha256 blobs, written through a verified ingest."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sdk.errors import InvalidArgument, NotFound

HEX = frozenset("0123456789abcdef")


def check_digest(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= HEX:
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return hexpart


class BlobWriter:
    """Write a blob to a temp file, hashing as it goes; ``commit`` makes it visible."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.tmp = store.root / "ingest" / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "wb")   # noqa: SIM115 - closed in commit/abort
        self.hash = hashlib.sha256()
        self.size = 0
        self.committed = False

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)

    def commit(self, expected_digest: str | None = None,
               expected_size: int | None = None) -> tuple[str, int]:
        digest = "sha256:" + self.hash.hexdigest()
        if expected_size is not None and expected_size != self.size:
            self.abort()
            raise InvalidArgument(f"size mismatch: expected {expected_size} bytes, got "
                                  f"{self.size}")
        if expected_digest is not None and expected_digest != digest:
            self.abort()
            raise InvalidArgument(f"digest mismatch: expected {expected_digest}, got {digest}")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        target = self.store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self.tmp.unlink()
        else:
            os.chmod(self.tmp, 0o444)
            os.replace(self.tmp, target)
        self.committed = True
        return digest, self.size

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.abort()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
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
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[str]:
        base = self.root / "sha256"
        if base.is_dir():
            for entry in base.iterdir():
                yield "sha256:" + entry.name

    def cleanup_ingests(self, older_than: float = 0) -> int:
        base = self.root / "ingest"
        if not base.is_dir():
            return 0
        removed = 0
        now = time.time()
        for entry in base.iterdir():
            pid = entry.name.split("-", 1)[0]
            alive = pid.isdigit() and os.path.exists(f"/proc/{pid}")
            if alive and now - entry.stat().st_mtime < max(older_than, 3600):
                continue
            entry.unlink(missing_ok=True)
            removed += 1
        return removed
