"""Unpacked layers, each stored once and shared by every image and container using it.

overlay: ``overlay/<chain>/diff`` holds one layer's own files (with overlay
whiteouts); ``overlay/l/<short>`` links keep a container's lowerdir list short enough
for 127 layers in one mount page (as Docker's overlay2 does).  vfs: ``vfs/<chain>/fs``
holds the full materialised tree, copied for each child layer and container.
Everything is unpacked into a temp dir and renamed into place, so a crash never leaves
a half-unpacked layer visible (``cleanup_partial`` removes the leftovers).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from sdk.errors import NotFound, RuntimeFailure
from sdk.runtime.spec import Rootfs

if TYPE_CHECKING:   # tarfile & co. stay off the container start path
    from sdk.diff.apply import ApplyResult

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def chain_id(diff_ids: Sequence[str]) -> str:
    """OCI ChainID: chain(1) = diff(1); chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    if not diff_ids:
        raise ValueError("chain_id of no layers")
    current = diff_ids[0]
    for diff in diff_ids[1:]:
        current = "sha256:" + hashlib.sha256(f"{current} {diff}".encode()).hexdigest()
    return current


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def tree_size(path: Path) -> int:
    """Apparent size of regular files, hardlinked files counted once."""
    total = 0
    seen: set[int] = set()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
            total += st.st_size
    return total


def _copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", str(dst)], check=True,
                   stderr=subprocess.PIPE)


def overlay_supported(root: Path) -> tuple[bool, str]:
    """Mount a tiny overlay under ``root`` in a throwaway mount namespace."""
    from sdk.runtime import linux

    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".overlay-probe-{secrets.token_hex(4)}"
    try:
        for d in ("lower", "upper", "work", "merged"):
            (probe / d).mkdir(parents=True)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount("", "/", "", linux.MS_REC | linux.MS_PRIVATE)
                linux.mount("overlay", str(probe / "merged"), "overlay", 0,
                            f"lowerdir={probe}/lower,upperdir={probe}/upper,"
                            f"workdir={probe}/work")
            except OSError as exc:
                os.write(w, str(exc).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        reason = os.read(r, 4096).decode()
        os.close(r)
        _, status = os.waitpid(pid, 0)
        ok = os.waitstatus_to_exitcode(status) == 0
        return ok, ("" if ok else reason or "overlay mount failed")
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class LayerStore:
    def __init__(self, root: Path, driver: Literal["overlay", "vfs"]) -> None:
        self.root = Path(root)
        self.driver = driver
        self.base = self.root / driver
        self.links = self.base / "l"
        self.cdir = self.root / "containers"

    def _dir(self, chain: str) -> Path:
        return self.base / _hex(chain)

    def _content(self, chain: str) -> Path:
        return self._dir(chain) / ("diff" if self.driver == "overlay" else "fs")

    def exists(self, chain: str) -> bool:
        return (self._dir(chain) / "size").exists()

    def create(self, chain: str, parent: str | None, stream: BinaryIO) -> ApplyResult:
        from sdk.diff.apply import apply_layer

        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        content = tmp / ("diff" if self.driver == "overlay" else "fs")
        try:
            content.mkdir(parents=True)
            if self.driver == "vfs" and parent:
                _copy_tree(self._content(parent), content)
            result = apply_layer(stream, content, whiteouts="overlay"
                                 if self.driver == "overlay" else "delete")
            (tmp / "parent").write_text(parent or "")
            (tmp / "size").write_text(str(tree_size(content)))
            if self.driver == "overlay":
                short = "".join(secrets.choice(_B32) for _ in range(26))
                (tmp / "link").write_text(short)
            final = self._dir(chain)
            try:
                os.rename(tmp, final)
            except OSError:
                if self.exists(chain):     # someone else unpacked it first
                    shutil.rmtree(tmp, ignore_errors=True)
                    return result
                raise
            if self.driver == "overlay":
                self.links.mkdir(exist_ok=True)
                os.symlink(f"../{_hex(chain)}/diff", self.links / short)
            return result
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self, chain: str) -> None:
        d = self._dir(chain)
        link = d / "link"
        if link.exists():
            (self.links / link.read_text().strip()).unlink(missing_ok=True)
        shutil.rmtree(d, ignore_errors=True)

    def size(self, chain: str) -> int:
        try:
            return int((self._dir(chain) / "size").read_text())
        except FileNotFoundError:
            raise NotFound(f"layer {chain} not found") from None

    def _chain(self, chain: str) -> list[str]:
        out = []
        current: str | None = chain
        while current:
            out.append(current)
            try:
                current = (self._dir(current) / "parent").read_text().strip() or None
            except FileNotFoundError:
                raise NotFound(f"layer {current} not found") from None
        return out

    def lower_dirs(self, chain: str) -> list[Path]:
        if self.driver == "vfs":
            return [self._content(chain)]
        return [self._content(c) for c in self._chain(chain)]

    def prepare_container(self, container_id: str, chain: str | None) -> Rootfs:
        d = self.cdir / container_id
        if self.driver == "vfs":
            fs = d / "fs"
            fs.mkdir(parents=True)
            if chain:
                _copy_tree(self._content(chain), fs)
            return Rootfs(path=str(fs))
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if chain:
            lowers = tuple("l/" + (self._dir(c) / "link").read_text().strip()
                           for c in self._chain(chain))
        else:
            (d / "empty").mkdir(exist_ok=True)
            lowers = (os.path.relpath(d / "empty", self.base),)
        return Rootfs(path=str(d / "merged"), lowerdirs=lowers, upperdir=str(d / "upper"),
                      workdir=str(d / "work"), chdir=str(self.base))

    def container_upper(self, container_id: str) -> Path:
        return self.cdir / container_id / ("upper" if self.driver == "overlay" else "fs")

    def remove_container(self, container_id: str) -> None:
        d = self.cdir / container_id
        if not d.exists():
            return
        try:
            shutil.rmtree(d)
        except OSError as exc:
            # a busy merged dir means a mount is still alive somewhere: say which
            raise RuntimeFailure(f"removing container storage {d}: {exc}") from None

    def container_size(self, container_id: str) -> int:
        path = self.container_upper(container_id)
        return tree_size(path) if path.exists() else 0

    def disk_usage(self) -> int:
        total = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, dirs, files in os.walk(self.root):
            for name in files + dirs:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += st.st_blocks * 512
        return total

    def cleanup_partial(self) -> int:
        if not self.base.is_dir():
            return 0
        removed = 0
        for entry in self.base.iterdir():
            if entry.name.startswith(".tmp-"):
                pid = entry.name.split("-")[1]
                if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
