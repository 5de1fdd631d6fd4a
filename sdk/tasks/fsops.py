"""Filesystem views of a container: ``diff`` (A/C/D) and ``export`` (flat tar)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sdk.diff.changes import Change

if TYPE_CHECKING:
    from sdk.engine import Engine


def _layers(engine: Engine, doc: dict) -> tuple[Path, list[Path]]:
    upper = engine.layer_store.container_upper(doc["Id"])
    top = engine.image_store.top_layer(doc["Image"]) if engine.image_store.exists(
        doc["Image"]) else None
    lowers = engine.layer_store.lower_dirs(top) if top else []
    return upper, lowers


def container_changes(engine: Engine, ref: str) -> list[Change]:
    from sdk.diff.changes import overlay_changes

    doc = engine.tasks.get(ref)
    upper, lowers = _layers(engine, doc)
    if engine.storage_driver == "overlay":
        return overlay_changes(upper, lowers)
    return _tree_changes(upper, lowers[0] if lowers else None)


def export_container(engine: Engine, ref: str, out: IO[bytes]) -> None:
    from sdk.diff.changes import write_dir_tar, write_flat_tar

    doc = engine.tasks.get(ref)
    upper, lowers = _layers(engine, doc)
    if engine.storage_driver == "overlay":
        write_flat_tar([upper, *lowers], out)
    else:
        write_dir_tar(upper, out)


def _tree_changes(tree: Path, base: Path | None) -> list[Change]:
    """vfs: compare the container's full tree with the image's full tree."""
    def index(root: Path | None) -> dict[str, os.stat_result]:
        out: dict[str, os.stat_result] = {}
        if root is None or not root.exists():
            return out
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                out["/" + os.path.relpath(full, root)] = os.lstat(full)
        return out

    new, old = index(tree), index(base)
    changes = []
    for path, st in new.items():
        prev = old.get(path)
        if prev is None:
            changes.append(Change("A", path))
        elif (stat.S_IFMT(st.st_mode) != stat.S_IFMT(prev.st_mode) or st.st_mode != prev.st_mode
              or st.st_uid != prev.st_uid or st.st_gid != prev.st_gid or
              (not stat.S_ISDIR(st.st_mode) and (st.st_size != prev.st_size or
                                                  st.st_mtime_ns != prev.st_mtime_ns))):
            changes.append(Change("C", path))
    changes += [Change("D", p) for p in old if p not in new]
    # docker lists changed parent directories as C
    touched = {c.path for c in changes}
    for c in list(changes):
        parent = os.path.dirname(c.path)
        while parent not in ("/", "") and parent not in touched:
            if parent in new and parent in old:
                changes.append(Change("C", parent))
            touched.add(parent)
            parent = os.path.dirname(parent)
    return sorted(changes, key=lambda c: c.path)
