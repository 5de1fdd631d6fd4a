"""Read-only lookups in an image's root filesystem without mounting it.

Works on the layer store's directories (top first): overlay diff dirs with their
whiteouts and opaque directories, or the single full tree of the vfs driver.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from sdk.diff.whiteouts import is_opaque, is_overlay_whiteout
from sdk.errors import InvalidArgument


class RootView:
    def __init__(self, layer_dirs: Sequence[Path | str]) -> None:
        self.dirs = [os.fspath(d) for d in layer_dirs if os.path.isdir(d)]
        root: list[str] = []
        for d in self.dirs:
            root.append(d)
            if is_opaque(d):
                break
        self._root = root

    def find(self, rel: str) -> str | None:
        """Host path of the visible ``rel`` (no symlinks followed), or None."""
        parts = [p for p in rel.split("/") if p and p != "."]
        if not parts:
            return self._root[0] if self._root else None
        dirs = self._root
        for idx, name in enumerate(parts):
            found: str | None = None
            below: list[str] = []
            for d in dirs:
                full = os.path.join(d, name)
                try:
                    st = os.lstat(full)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if is_overlay_whiteout(st):
                    break
                if not stat.S_ISDIR(st.st_mode):
                    if found is None:
                        found = full
                    break
                if found is None:
                    found = full
                below.append(full)
                if is_opaque(full):
                    break
            if found is None:
                return None
            if idx == len(parts) - 1:
                return found
            if not below:
                return None
            dirs = below
        return None

    def dir_layers(self, rel: str) -> list[str]:
        """The host directories (top first) whose merged content is directory ``rel``."""
        dirs = list(self._root)
        for name in [p for p in rel.split("/") if p and p != "."]:
            below: list[str] = []
            for d in dirs:
                full = os.path.join(d, name)
                try:
                    st = os.lstat(full)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    break           # a file or a whiteout hides the layers below
                below.append(full)
                if is_opaque(full):
                    break
            if not below:
                return []
            dirs = below
        return dirs

    def lstat(self, rel: str) -> os.stat_result | None:
        full = self.find(rel)
        return os.lstat(full) if full else None

    def resolve(self, rel: str, follow_last: bool = True) -> str:
        """``rel`` with every symlink resolved inside the root (chroot semantics)."""
        parts = [p for p in rel.split("/") if p and p != "."]
        out: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if out:
                    out.pop()
                continue
            candidate = "/".join([*out, name])
            full = self.find(candidate)
            if full and (parts or follow_last) and os.path.islink(full):
                hops += 1
                if hops > 40:
                    raise InvalidArgument(f"too many levels of symbolic links: /{rel}")
                target = os.readlink(full)
                if target.startswith("/"):
                    out = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            out.append(name)
        return "/".join(out)

    def read_text(self, rel: str) -> str | None:
        full = self.find(self.resolve(rel))
        if full is None or not os.path.isfile(full):
            return None
        try:
            with open(full, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def lookup_user(self, spec: str) -> tuple[int, int]:
        """``--chown`` user[:group] -> (uid, gid), names from the image's passwd/group."""
        user, _, group = spec.partition(":")
        uid: int | None = None
        gid: int | None = None
        if user.isdigit():
            uid = int(user)
        else:
            for line in (self.read_text("etc/passwd") or "").splitlines():
                f = line.split(":")
                if len(f) >= 4 and f[0] == user:
                    uid, gid = int(f[2]), int(f[3])
                    break
            if uid is None:
                raise InvalidArgument(f"unable to find user {user}: no matching entries in "
                                      "passwd file")
        if group:
            if group.isdigit():
                gid = int(group)
            else:
                gid = None
                for line in (self.read_text("etc/group") or "").splitlines():
                    f = line.split(":")
                    if len(f) >= 3 and f[0] == group:
                        gid = int(f[2])
                        break
                if gid is None:
                    raise InvalidArgument(f"unable to find group {group}: no matching "
                                          "entries in group file")
        elif gid is None:
            gid = uid
        return uid, gid
