"""A container's filesystem changes: ``diff`` (A/C/D), commit layers and flat exports."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sdk.diff.tarwriter import TarWriter
from sdk.diff.tree import MergedLowers, sort_key, walk_merged, walk_tree
from sdk.diff.whiteouts import (
    OPAQUE_MARKER,
    OVERLAY_INDIRECT_XATTRS,
    WHITEOUT_PREFIX,
    is_opaque,
    is_overlay_whiteout,
)
from sdk.errors import FailedPrecondition


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["A", "C", "D"]
    path: str       # absolute inside the container


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's test for "this directory was only copied up, not changed": same size,
    mode and mtime, where a whole-second mtime (from a tar) matches any nanoseconds."""
    if a.st_size != b.st_size or a.st_mode != b.st_mode:
        return False
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == nb or na == 0 or nb == 0)


def overlay_changes(upper: Path, lowers: Sequence[Path]) -> list[Change]:
    """``docker diff`` of an overlay container: ``upper`` against ``lowers`` (top first).

    Docker's rules: a 0/0 character device is a deletion (D); an opaque directory that
    hides something of the lowers is D too, and what it now holds is A; an entry the
    lowers show is C, except a directory with the same size, mode and mtime (copied
    up only because something below it changed); anything else is A.  The parent of
    an A or D that is not otherwise listed is listed as C.  Sorted by path components,
    parents first (Docker's walk order).
    """
    merged = MergedLowers(lowers)
    kinds: dict[str, Literal["A", "C", "D"]] = {}
    listed_dirs: set[str] = set()
    opaque_dirs: list[str] = []
    for rel, full, st in walk_tree(upper):
        under_opaque = any(rel.startswith(d + "/") for d in opaque_dirs)
        lower = None if under_opaque else merged.lookup(rel)
        kind: Literal["A", "C", "D"]
        if is_overlay_whiteout(st):
            kind = "D"
        elif stat.S_ISDIR(st.st_mode) and is_opaque(full):
            opaque_dirs.append(rel)
            kind = "A" if lower is None else "D"
        elif lower is None:
            kind = "A"
        elif stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(lower.st_mode) and _same_dir(st, lower):
            continue
        else:
            kind = "C"
        if stat.S_ISDIR(st.st_mode):
            listed_dirs.add(rel)
        parent = posixpath.dirname(rel)
        if kind != "C" and parent and parent not in listed_dirs:
            kinds[parent] = "C"
            listed_dirs.add(parent)
        kinds[rel] = kind
    return [Change(kinds[rel], "/" + rel) for rel in sorted(kinds, key=sort_key)]


def write_layer_from_upper(upper: Path, out: BinaryIO) -> None:
    """Write an overlay upper dir as an OCI layer tar (``docker commit``).

    0/0 character devices become ``.wh.NAME`` entries and opaque directories get a
    ``.wh..wh..opq`` entry right after their own; ``trusted.overlay.*`` xattrs are
    dropped.  Entries are in walk order, so the same tree always gives the same tar.
    """
    with TarWriter(out) as tar:
        for rel, full, st in walk_tree(upper):
            if is_overlay_whiteout(st):
                parent, name = posixpath.split(rel)
                tar.add_empty(posixpath.join(parent, WHITEOUT_PREFIX + name), mode=0o600,
                              uid=st.st_uid, gid=st.st_gid, mtime=st.st_mtime)
                continue
            _check_direct(full)
            tar.add(full, rel, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(full):
                tar.add_empty(posixpath.join(rel, OPAQUE_MARKER),
                              mode=stat.S_IMODE(st.st_mode) & 0o777, uid=st.st_uid,
                              gid=st.st_gid, mtime=st.st_mtime)


def _check_direct(full: str) -> None:
    """Refuse upper dirs made with redirect_dir/metacopy: their content is elsewhere."""
    for name in OVERLAY_INDIRECT_XATTRS:
        try:
            os.getxattr(full, name, follow_symlinks=False)
        except OSError:
            continue
        raise FailedPrecondition(
            f"{full} has {name}: the overlay was mounted with redirect_dir or metacopy, "
            "so its upper dir cannot be committed as a layer (mount with "
            "redirect_dir=off,metacopy=off)")


def write_flat_tar(layer_dirs: Sequence[Path], out: BinaryIO) -> None:
    """The merged view of overlay-style layer dirs (top first) as one flat tar, as
    ``docker export`` writes it, without mounting anything.  Whiteouts and opaque
    directories are honoured, never written; hardlinks become tar hardlinks."""
    with TarWriter(out) as tar:
        for rel, full, st in walk_merged(layer_dirs):
            tar.add(full, rel, st)


def write_dir_tar(root: Path, out: BinaryIO) -> None:
    """A plain tar of the tree below ``root`` (vfs export)."""
    with TarWriter(out) as tar:
        for rel, full, st in walk_tree(root):
            tar.add(full, rel, st)
