"""Container filesystem changes: ``diff`` (A/C/D), commit layers and flat exports."""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

OPAQUE_XATTR = "trusted.overlay.opaque"


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["A", "C", "D"]
    path: str


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) for everything under root, parents first."""
    base = str(root)
    for dirpath, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            yield os.path.relpath(full, base), full, os.lstat(full)


def overlay_changes(upper: Path, lowers: Sequence[Path]) -> list[Change]:
    changes = []
    for rel, _full, st in _walk(upper):
        path = "/" + rel
        if _is_whiteout(st):
            changes.append(Change("D", path))
            continue
        in_lower = any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)
        changes.append(Change("C" if in_lower else "A", path))
    return sorted(changes, key=lambda c: c.path)


def _xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _add(tar: tarfile.TarFile, full: str, arcname: str) -> None:
    info = tar.gettarinfo(full, arcname)
    info.uname = info.gname = ""
    info.pax_headers.update(_xattrs(full))
    if info.isreg():
        with open(full, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _empty_file(tar: tarfile.TarFile, arcname: str, mtime: float) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime = int(mtime)
    tar.addfile(info)


def write_layer_from_upper(upper: Path, out: BinaryIO) -> None:
    """Tar an overlay upper dir as an OCI layer: whiteouts become ``.wh.`` entries."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, full, st in _walk(upper):
            if _is_whiteout(st):
                d, name = posixpath.split(rel)
                _empty_file(tar, posixpath.join(d, ".wh." + name), st.st_mtime)
                continue
            _add(tar, full, rel)
            if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
                _empty_file(tar, posixpath.join(rel, ".wh..wh..opq"), st.st_mtime)


def _hidden(rel: str, whiteouts: set[str], opaque: set[str]) -> bool:
    """Whited-out paths hide themselves and their subtree; an opaque directory from a
    higher layer hides what lower layers have *below* it."""
    if rel in whiteouts:
        return True
    parent = posixpath.dirname(rel)
    while parent:
        if parent in whiteouts or parent in opaque:
            return True
        parent = posixpath.dirname(parent)
    return False


def write_flat_tar(layer_dirs: Sequence[Path], out: BinaryIO) -> None:
    """The merged view of overlay-style layer dirs (top first) as one flat tar."""
    chosen: dict[str, str] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    for layer in layer_dirs:
        if not Path(layer).exists():
            continue
        new_whiteouts, new_opaque = set(), set()
        for rel, full, st in _walk(Path(layer)):
            if _hidden(rel, whiteouts, opaque):
                continue
            if _is_whiteout(st):
                new_whiteouts.add(rel)
                continue
            chosen.setdefault(rel, full)
            if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
                new_opaque.add(rel)
        whiteouts |= new_whiteouts
        opaque |= new_opaque
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(chosen):
            _add(tar, chosen[rel], rel)


def write_dir_tar(root: Path, out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, full, _st in _walk(root):
            _add(tar, full, rel)
