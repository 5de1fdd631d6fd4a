"""Walking directory trees in a deterministic order, alone or as an overlay stack.

Order is pre-order with siblings sorted by their bytes, which is what Go's
``filepath.Walk`` (and so Docker's ``diff`` and layer tars) uses.  Symlinks are
never followed; walks use explicit stacks, so deep trees cannot hit the recursion
limit.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from sdk.diff.whiteouts import is_opaque, is_overlay_whiteout

Entry = tuple[str, str, os.stat_result]   # (relative path, absolute path, lstat)


def sort_key(rel: str) -> tuple[bytes, ...]:
    """Key that orders relative paths like the walks here (parents before children)."""
    return tuple(os.fsencode(part) for part in rel.split("/"))


def _names(path: str) -> list[str]:
    return sorted(os.listdir(path), key=os.fsencode)


def walk_tree(root: Path | str) -> Iterator[Entry]:
    """Everything below ``root`` (not ``root`` itself), pre-order, sorted."""
    base = os.fspath(root)
    stack: list[tuple[str, str, Iterator[str]]] = [("", base, iter(_names(base)))]
    while stack:
        rel_dir, full_dir, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(full_dir, name)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue            # removed while walking (a running container)
        yield rel, full, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((rel, full, iter(_names(full))))


def _contributors(dirs: Sequence[str]) -> list[str]:
    """The directories (top first) whose content shows in a merged directory: an
    opaque directory hides those below it."""
    out = []
    for d in dirs:
        out.append(d)
        if is_opaque(d):
            break
    return out


def walk_merged(layer_dirs: Sequence[Path | str]) -> Iterator[Entry]:
    """The merged view of overlay-style layer directories (top first), as overlayfs
    would show it: 0/0 character devices delete, opaque directories hide lower
    content, a non-directory hides everything below it at that path.  Yields the
    top-most visible version of each path, pre-order, sorted."""
    roots = [os.fspath(d) for d in layer_dirs if os.path.isdir(d)]
    stack: list[tuple[str, list[str], Iterator[str]]] = []

    def push(rel: str, dirs: list[str]) -> None:
        names: set[str] = set()
        for d in dirs:
            names.update(os.listdir(d))
        stack.append((rel, dirs, iter(sorted(names, key=os.fsencode))))

    push("", _contributors(roots))
    while stack:
        rel_dir, dirs, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        rel = f"{rel_dir}/{name}" if rel_dir else name
        top: tuple[str, os.stat_result] | None = None
        below: list[str] = []
        for d in dirs:
            full = os.path.join(d, name)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            if is_overlay_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                if top is None and not is_overlay_whiteout(st):
                    top = (full, st)
                break
            if top is None:
                top = (full, st)
            below.append(full)
            if is_opaque(full):
                break
        if top is None:
            continue
        yield rel, top[0], top[1]
        if stat.S_ISDIR(top[1].st_mode):
            push(rel, below)


class MergedLowers:
    """Look up paths in the merged view of lower layer dirs (top first), cheaply:
    which layers contribute to each directory is computed once and cached."""

    def __init__(self, lowers: Sequence[Path | str]) -> None:
        self._lowers = [os.fspath(d) for d in lowers]
        self._dirs: dict[str, list[str] | None] = {
            "": _contributors([d for d in self._lowers if os.path.isdir(d)]) or None}

    def _dir_layers(self, rel_dir: str) -> list[str] | None:
        if rel_dir in self._dirs:
            return self._dirs[rel_dir]
        parent, name = os.path.split(rel_dir)
        result: list[str] | None = None
        parent_layers = self._dir_layers(parent)
        if parent_layers:
            found: list[str] = []
            for d in parent_layers:
                full = os.path.join(d, name)
                try:
                    st = os.lstat(full)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    break       # a file or whiteout hides this path in the layers below
                found.append(full)
                if is_opaque(full):
                    break
            result = found or None
        self._dirs[rel_dir] = result
        return result

    def lookup(self, rel: str) -> os.stat_result | None:
        """lstat of the visible version of ``rel``, or None if the lowers don't show it."""
        parent, name = os.path.split(rel)
        for d in self._dir_layers(parent) or ():
            try:
                st = os.lstat(os.path.join(d, name))
            except FileNotFoundError:
                continue
            return None if is_overlay_whiteout(st) else st
        return None
