"""A container's writable layer as an OCI layer tar (for RUN steps and ``commit``).

overlay: the upper dir, with 0/0 character devices written as ``.wh.NAME`` and
opaque directories as ``.wh..wh..opq``.  vfs: the container's full tree compared with
the image's tree.  Either way the mount points berth itself creates for a container
(empty /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev, ...) are left
out, as Docker keeps them in an "init" layer that is never committed.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path
from typing import BinaryIO

from sdk.build.rootview import RootView
from sdk.diff.tree import walk_tree
from sdk.diff.whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX, is_opaque, is_overlay_whiteout

#: what the runtime creates as mount points when the image lacks them
ARTEFACT_FILES = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv"})
ARTEFACT_DIRS = frozenset({"proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue"})


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode == b.st_mode and a.st_uid == b.st_uid and a.st_gid == b.st_gid and
            int(a.st_mtime) == int(b.st_mtime))


def _artefact(rel: str, st: os.stat_result, base: RootView) -> bool:
    if rel in ARTEFACT_FILES and stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return True     # a bind-mount target: its content never lands in the upper
    return rel in ARTEFACT_DIRS and stat.S_ISDIR(st.st_mode) and base.lstat(rel) is None


def write_upper_layer(upper: Path, base: RootView, out: BinaryIO) -> int:
    """overlay: write ``upper`` as a layer tar; returns the number of entries."""
    from sdk.diff.tarwriter import TarWriter

    entries = list(walk_tree(upper))
    keep: dict[str, bool] = {}
    skipped_below: set[str] = set()
    has_kept_below: set[str] = set()
    for rel, full, st in reversed(entries):       # children before parents
        if is_overlay_whiteout(st):
            keep[rel] = True
        elif stat.S_ISDIR(st.st_mode):
            if rel in has_kept_below or is_opaque(full):
                keep[rel] = True
            elif rel in skipped_below or (rel in ARTEFACT_DIRS and base.lstat(rel) is None):
                keep[rel] = False
            else:
                lower = base.lstat(rel)
                keep[rel] = lower is None or not stat.S_ISDIR(lower.st_mode) or \
                    not _same_dir(st, lower)
        else:
            keep[rel] = not _artefact(rel, st, base)
        parent = posixpath.dirname(rel)
        while parent:
            (has_kept_below if keep[rel] else skipped_below).add(parent)
            if not keep[rel]:
                break
            parent = posixpath.dirname(parent)
    count = 0
    with TarWriter(out) as tar:
        for rel, full, st in entries:
            if not keep[rel]:
                continue
            count += 1
            if is_overlay_whiteout(st):
                parent, name = posixpath.split(rel)
                tar.add_empty(posixpath.join(parent, WHITEOUT_PREFIX + name), mode=0o600,
                              uid=0, gid=0, mtime=st.st_mtime)
                continue
            tar.add(full, rel, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(full):
                tar.add_empty(posixpath.join(rel, OPAQUE_MARKER), mode=0o600, uid=0, gid=0,
                              mtime=st.st_mtime)
    return count


def write_tree_layer(tree: Path, base_tree: Path | None, out: BinaryIO) -> int:
    """vfs: the difference between a container's full tree and its image's tree."""
    from sdk.diff.tarwriter import TarWriter

    def index(root: Path | None) -> dict[str, os.stat_result]:
        if root is None or not root.exists():
            return {}
        return {rel: st for rel, _full, st in walk_tree(root)}

    new, old = index(tree), index(base_tree)
    empty = RootView([])
    count = 0
    with TarWriter(out) as tar:
        for rel, st in new.items():
            prev = old.get(rel)
            if prev is None:
                if _artefact(rel, st, empty) or (rel in ARTEFACT_DIRS and not
                                                 os.listdir(tree / rel)):
                    continue
            elif stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(prev.st_mode):
                if _same_dir(st, prev):
                    continue
            elif (stat.S_IFMT(st.st_mode) == stat.S_IFMT(prev.st_mode) and
                  st.st_mode == prev.st_mode and st.st_uid == prev.st_uid and
                  st.st_gid == prev.st_gid and st.st_size == prev.st_size and
                  st.st_mtime_ns == prev.st_mtime_ns):
                continue
            tar.add(str(tree / rel), rel, st)
            count += 1
        for rel in old:
            if rel in new:
                continue
            parent, name = posixpath.split(rel)
            if parent and parent not in new:
                continue
            if parent in old and parent in new and \
                    not stat.S_ISDIR(new[parent].st_mode):
                continue
            tar.add_empty(posixpath.join(parent, WHITEOUT_PREFIX + name), mode=0o600,
                          uid=0, gid=0, mtime=0)
            count += 1
    return count
