"""Filesystem storage: content-addressed blobs shared by every repository, per-repo links.

Layout under the root::

    blobs/<alg>/<2 hex>/<hex>                          blob (and manifest) bytes
    repositories/<name>/_layers/<alg>/<hex>            empty link: repo may read the blob
    repositories/<name>/_manifests/revisions/<alg>/<hex>   link; content = media type
    repositories/<name>/_manifests/tags/<tag>          content = manifest digest
    repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   descriptor JSON
    uploads/<uuid>/{data,info.json}                    upload sessions (never visible)
    tmp/                                               staging for atomic writes

Every visible file appears by ``rename`` of a fully written, fsynced temp file on the
same filesystem, so a crash (kill -9) leaves either the old state or the new one, and
partial data only in ``uploads/`` or ``tmp/`` (purged later).  Names and tags are
validated by :mod:`sdk.registry.names` before they reach a path.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sdk.registry.names import Digest, parse_digest, valid_name, valid_tag


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Storage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.blobs = self.root / "blobs"
        self.repos = self.root / "repositories"
        self.uploads = self.root / "uploads"
        self.tmp = self.root / "tmp"
        for d in (self.blobs, self.repos, self.uploads, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._catalog: list[str] | None = None
        self._catalog_at = 0.0
        self._noted: set[str] = set()
        self._catalog_lock = threading.Lock()

    # ---- low level --------------------------------------------------------------
    def write_atomic(self, target: Path, data: bytes, sync: bool = True) -> None:
        tmp = self.tmp / f"{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def blob_path(self, d: Digest) -> Path:
        return self.blobs / d.algorithm / d.hex[:2] / d.hex

    def blob_exists(self, d: Digest) -> bool:
        return self.blob_path(d).is_file()

    def blob_size(self, d: Digest) -> int | None:
        try:
            return self.blob_path(d).stat().st_size
        except OSError:
            return None

    def touch_blob(self, d: Digest) -> None:
        """Mark recent use: GC spares blobs touched after it started (online safety)."""
        try:
            os.utime(self.blob_path(d))
        except OSError:
            pass

    def commit_blob(self, src: Path, d: Digest) -> None:
        """Move a verified file into place.  ``src`` must be on this filesystem."""
        target = self.blob_path(d)
        if target.is_file():
            os.unlink(src)
            self.touch_blob(d)
            return
        with open(src, "rb+") as f:
            os.fsync(f.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, target)
        _fsync_dir(target.parent)

    def put_blob_bytes(self, data: bytes, d: Digest) -> None:
        target = self.blob_path(d)
        if target.is_file():
            self.touch_blob(d)
            return
        self.write_atomic(target, data)

    def read_blob(self, d: Digest) -> bytes:
        return self.blob_path(d).read_bytes()

    def delete_blob(self, d: Digest) -> None:
        try:
            os.unlink(self.blob_path(d))
        except FileNotFoundError:
            pass

    def iter_blobs(self) -> Iterator[tuple[Digest, Path]]:
        for alg_dir in sorted(self.blobs.iterdir()) if self.blobs.is_dir() else []:
            for prefix in sorted(alg_dir.iterdir()):
                for f in sorted(prefix.iterdir()):
                    d = parse_digest(f"{alg_dir.name}:{f.name}")
                    if d is not None:
                        yield d, f

    # ---- repositories -----------------------------------------------------------
    def repo_dir(self, name: str) -> Path:
        if not valid_name(name):          # defence in depth: callers validate first
            raise ValueError(f"invalid repository name {name!r}")
        return self.repos / name

    def repo_exists(self, name: str) -> bool:
        d = self.repo_dir(name)
        return (d / "_manifests").is_dir() or (d / "_layers").is_dir()

    def _layer_link(self, name: str, d: Digest) -> Path:
        return self.repo_dir(name) / "_layers" / d.algorithm / d.hex

    def _note_repo(self, name: str) -> None:
        """Keep the cached catalog coherent with repositories this process creates."""
        import bisect

        with self._catalog_lock:
            self._noted.add(name)
            if self._catalog is not None:
                i = bisect.bisect_left(self._catalog, name)
                if i == len(self._catalog) or self._catalog[i] != name:
                    self._catalog.insert(i, name)

    def link_blob(self, name: str, d: Digest) -> None:
        link = self._layer_link(name, d)
        link.parent.mkdir(parents=True, exist_ok=True)
        with open(link, "a"):
            pass
        os.utime(link)
        self._note_repo(name)
        self.touch_blob(d)

    def unlink_blob(self, name: str, d: Digest) -> bool:
        try:
            os.unlink(self._layer_link(name, d))
            return True
        except FileNotFoundError:
            return False

    def repo_has_blob(self, name: str, d: Digest) -> bool:
        return self._layer_link(name, d).is_file() and self.blob_exists(d)

    def iter_layer_links(self, name: str) -> Iterator[Digest]:
        base = self.repo_dir(name) / "_layers"
        for alg in base.iterdir() if base.is_dir() else []:
            for f in alg.iterdir():
                d = parse_digest(f"{alg.name}:{f.name}")
                if d is not None:
                    yield d

    def cached_catalog(self, max_age: float) -> list[str]:
        """The catalog, re-walked when older than ``max_age`` seconds.  Repositories
        created through this Storage are added at once; the walk catches outside changes."""
        now = time.monotonic()
        if self._catalog is None or now - self._catalog_at > max_age:
            with self._catalog_lock:
                self._noted.clear()
            walked = self.catalog()
            with self._catalog_lock:      # repos noted during the walk are not lost
                self._catalog = sorted(set(walked) | self._noted)
                self._catalog_at = now
        return self._catalog

    def catalog(self) -> list[str]:
        """Every repository name, sorted.  Walks directories: no metadata DB to drift."""
        found: list[str] = []

        def walk(path: str, prefix: str) -> None:
            try:
                entries = list(os.scandir(path))
            except OSError:
                return
            if any(e.name.startswith("_") for e in entries):
                found.append(prefix)
            for e in entries:
                if not e.name.startswith("_") and e.is_dir(follow_symlinks=False):
                    walk(e.path, f"{prefix}/{e.name}" if prefix else e.name)

        walk(str(self.repos), "")
        return sorted(n for n in found if n)

    # ---- manifests --------------------------------------------------------------
    def _revision(self, name: str, d: Digest) -> Path:
        return self.repo_dir(name) / "_manifests" / "revisions" / d.algorithm / d.hex

    def _tag_file(self, name: str, tag: str) -> Path:
        if not valid_tag(tag):
            raise ValueError(f"invalid tag {tag!r}")
        return self.repo_dir(name) / "_manifests" / "tags" / tag

    def put_manifest(self, name: str, d: Digest, body: bytes, media_type: str) -> None:
        self.put_blob_bytes(body, d)
        self.write_atomic(self._revision(name, d), media_type.encode())
        self._note_repo(name)

    def manifest_media_type(self, name: str, d: Digest) -> str | None:
        try:
            return self._revision(name, d).read_text()
        except OSError:
            return None

    def has_manifest(self, name: str, d: Digest) -> bool:
        return self._revision(name, d).is_file() and self.blob_exists(d)

    def get_manifest(self, name: str, d: Digest) -> tuple[bytes, str] | None:
        media = self.manifest_media_type(name, d)
        if media is None:
            return None
        try:
            return self.read_blob(d), media
        except OSError:
            return None

    def delete_manifest(self, name: str, d: Digest) -> bool:
        """Remove the revision and every tag pointing at it."""
        try:
            os.unlink(self._revision(name, d))
        except FileNotFoundError:
            return False
        for tag, target in self.tags_with_targets(name):
            if target == d:
                self.delete_tag(name, tag)
        return True

    def iter_revisions(self, name: str) -> Iterator[tuple[Digest, Path]]:
        base = self.repo_dir(name) / "_manifests" / "revisions"
        for alg in base.iterdir() if base.is_dir() else []:
            for f in alg.iterdir():
                d = parse_digest(f"{alg.name}:{f.name}")
                if d is not None:
                    yield d, f

    def set_tag(self, name: str, tag: str, d: Digest) -> None:
        self.write_atomic(self._tag_file(name, tag), str(d).encode())

    def resolve_tag(self, name: str, tag: str) -> Digest | None:
        try:
            return parse_digest(self._tag_file(name, tag).read_text().strip())
        except OSError:
            return None

    def delete_tag(self, name: str, tag: str) -> bool:
        try:
            os.unlink(self._tag_file(name, tag))
            return True
        except FileNotFoundError:
            return False

    def tags(self, name: str) -> list[str]:
        base = self.repo_dir(name) / "_manifests" / "tags"
        try:
            return sorted(e.name for e in os.scandir(base) if valid_tag(e.name))
        except OSError:
            return []

    def tags_with_targets(self, name: str) -> list[tuple[str, Digest]]:
        out = []
        for tag in self.tags(name):
            d = self.resolve_tag(name, tag)
            if d is not None:
                out.append((tag, d))
        return out

    # ---- referrers --------------------------------------------------------------
    def _referrer_dir(self, name: str, subject: Digest) -> Path:
        return self.repo_dir(name) / "_referrers" / subject.algorithm / subject.hex

    def add_referrer(self, name: str, subject: Digest, d: Digest,
                     descriptor: dict[str, object]) -> None:
        path = self._referrer_dir(name, subject) / f"{d.algorithm}-{d.hex}"
        self.write_atomic(path, json.dumps(descriptor, separators=(",", ":")).encode())

    def remove_referrer(self, name: str, subject: Digest, d: Digest) -> None:
        try:
            os.unlink(self._referrer_dir(name, subject) / f"{d.algorithm}-{d.hex}")
        except FileNotFoundError:
            pass

    def referrers(self, name: str, subject: Digest) -> list[dict[str, object]]:
        base = self._referrer_dir(name, subject)
        out = []
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            return []
        for e in entries:
            d = parse_digest(e.name.replace("-", ":", 1))
            if d is None or not self.has_manifest(name, d):
                continue
            try:
                out.append(json.loads(Path(e.path).read_bytes()))
            except (OSError, ValueError):
                continue
        return out

    # ---- uploads ----------------------------------------------------------------
    def new_upload(self, name: str) -> str:
        uid = str(uuid.uuid4())
        d = self.uploads / uid
        d.mkdir()
        (d / "data").touch()
        (d / "info.json").write_text(json.dumps({"name": name, "started": time.time()}))
        return uid

    def upload_dir(self, name: str, uid: str) -> Path | None:
        """The session's directory if ``uid`` is a session of repository ``name``."""
        try:
            uuid.UUID(uid)
        except ValueError:
            return None
        d = self.uploads / uid
        try:
            info = json.loads((d / "info.json").read_text())
        except (OSError, ValueError):
            return None
        return d if info.get("name") == name else None

    def remove_upload(self, uid: str) -> None:
        shutil.rmtree(self.uploads / uid, ignore_errors=True)

    def purge_uploads(self, older_than: float, now: float | None = None) -> list[str]:
        """Remove sessions (and stray temp files) not touched for ``older_than`` seconds."""
        now = time.time() if now is None else now
        gone = []
        for d in list(self.uploads.iterdir()):
            try:
                mtime = max(d.stat().st_mtime, (d / "data").stat().st_mtime)
            except OSError:
                mtime = 0.0
            if now - mtime >= older_than:
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d.name)
        for f in list(self.tmp.iterdir()):
            try:
                if now - f.stat().st_mtime >= min(older_than, 3600.0):
                    f.unlink()
            except OSError:
                pass
        return gone
