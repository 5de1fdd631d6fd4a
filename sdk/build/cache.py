"""The build cache, kept under the engine root so it survives across processes.

``build-cache/steps/<key>`` holds the image ID a step produced; the key is a hash of
the parent image, the step's run config (which carries the instruction text after
expansion, the content hash of COPY/ADD sources and the build args in effect).
``build-cache/files.json`` remembers content hashes by (path, size, mtime, inode,
ctime, device) so a cached rebuild does not read big files again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any


def step_key(parent: str, run_config: dict[str, Any], extra: str = "") -> str:
    text = json.dumps({"parent": parent, "config": run_config, "extra": extra},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class StepCache:
    def __init__(self, root: Path) -> None:
        self.dir = root / "build-cache" / "steps"
        self.files_path = root / "build-cache" / "files.json"
        self._files: dict[str, list[Any]] | None = None
        self._dirty = False

    def get(self, key: str) -> str | None:
        try:
            return (self.dir / key).read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def records(self) -> list[tuple[str, str, float]]:
        """Every step record: (key, image ID, when it was written)."""
        out = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        for name in sorted(names):
            if name.startswith("."):
                continue
            try:
                st = os.stat(self.dir / name)
                image_id = (self.dir / name).read_text().strip()
            except FileNotFoundError:
                continue
            out.append((name, image_id, st.st_mtime))
        return out

    def drop(self, key: str) -> None:
        (self.dir / key).unlink(missing_ok=True)

    def put(self, key: str, image_id: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-{os.getpid()}-{key}"
        tmp.write_text(image_id)
        os.replace(tmp, self.dir / key)

    # ---- content hashes of context files ----------------------------------------------
    def _load(self) -> dict[str, list[Any]]:
        if self._files is None:
            try:
                self._files = json.loads(self.files_path.read_text())
            except (FileNotFoundError, ValueError):
                self._files = {}
        return self._files

    def file_hash(self, path: str, st: os.stat_result) -> str:
        """The sha256 of a context file, read again only when its stat changed.

        The key is (size, mtime, inode, ctime, device): any write or metadata change
        moves ctime, which nobody can set back, so a changed file always misses; a
        file touched but unchanged is read again and hashes the same."""
        files = self._files if self._files is not None else self._load()
        sig = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev]
        known = files.get(path)
        if known is not None and known[:5] == sig:
            return str(known[5])
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
        files[path] = [*sig, digest]
        self._dirty = True
        return digest

    def flush(self) -> None:
        if not self._dirty or self._files is None:
            return
        self.files_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.files_path.with_name(f".files-{os.getpid()}.json")
        tmp.write_text(json.dumps(self._files, separators=(",", ":")))
        os.replace(tmp, self.files_path)
        self._dirty = False


def entry_hash(cache: StepCache, full: str, rel: str, st: os.stat_result, h: Any) -> None:
    """Feed one file, link or directory into hash ``h``: name, mode, link target and
    content (not mtimes, as Docker's tarsum)."""
    mode = st.st_mode
    fmt = stat.S_IFMT(mode)
    text = f"{rel}\0{stat.S_IMODE(mode):o}\0{fmt:o}\0"
    if fmt == stat.S_IFREG:
        text += cache.file_hash(full, st)
    elif fmt == stat.S_IFLNK:
        text += os.readlink(full) + "\0"
    h.update(text.encode("utf-8", "surrogateescape"))
