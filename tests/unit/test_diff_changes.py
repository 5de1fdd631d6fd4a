"""diff / commit / export writers on plain directories (whiteout devices and the opaque
xattr need root: see tests/root/test_layers_overlay.py)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from sdk.diff.apply import apply_layer
from sdk.diff.changes import Change, overlay_changes, write_dir_tar, write_flat_tar
from sdk.diff.tree import MergedLowers, sort_key, walk_merged, walk_tree


def build(root: Path, spec: dict[str, str | None]) -> Path:
    """Create files ("content"), dirs (None) and symlinks ("-> target")."""
    for rel, content in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif content.startswith("-> "):
            os.symlink(content[3:], path)
        else:
            path.write_text(content)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000),
                     follow_symlinks=False)
    return root


def members(data: bytes) -> list[tuple[str, str, str]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            body = ""
            if m.isreg():
                body = tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            elif m.issym() or m.islnk():
                body = m.linkname
            out.append((m.name, m.type.decode(), body))
    return out


def test_walk_order_is_docker_walk_order(tmp_path: Path) -> None:
    build(tmp_path, {"a": None, "a/b": "x", "a-c": "y", "B": "z", "a/a": None})
    assert [rel for rel, _f, _s in walk_tree(tmp_path)] == ["B", "a", "a/a", "a/b", "a-c"]
    assert sorted(["a-c", "a/b", "a", "B"], key=sort_key) == ["B", "a", "a/b", "a-c"]


def test_write_dir_tar_is_deterministic_and_keeps_hardlinks(tmp_path: Path) -> None:
    root = build(tmp_path / "r", {"etc": None, "etc/passwd": "root", "z": "last",
                                  "l": "-> etc/passwd"})
    os.link(root / "z", root / "etc/z-link")
    first, second = io.BytesIO(), io.BytesIO()
    write_dir_tar(root, first)
    write_dir_tar(root, second)
    assert first.getvalue() == second.getvalue()
    assert members(first.getvalue()) == [
        ("etc", "5", ""), ("etc/passwd", "0", "root"), ("etc/z-link", "0", "last"),
        ("l", "2", "etc/passwd"), ("z", "1", "etc/z-link")]
    out = tmp_path / "out"
    out.mkdir()
    apply_layer(io.BytesIO(first.getvalue()), out, whiteouts="delete")
    assert os.stat(out / "z").st_ino == os.stat(out / "etc/z-link").st_ino
    assert os.stat(out / "etc/passwd").st_mtime == 1_600_000_000


def test_flat_tar_merges_layers_top_first(tmp_path: Path) -> None:
    top = build(tmp_path / "top", {"etc": None, "etc/passwd": "new", "dir-now-file": "f",
                                   "bin": None, "bin/extra": "e"})
    low = build(tmp_path / "low", {"etc": None, "etc/passwd": "old", "etc/group": "g",
                                   "dir-now-file": None, "dir-now-file/hidden": "h",
                                   "bin": None, "bin/sh": "sh"})
    out = io.BytesIO()
    write_flat_tar([top, low, tmp_path / "missing"], out)
    assert members(out.getvalue()) == [
        ("bin", "5", ""), ("bin/extra", "0", "e"), ("bin/sh", "0", "sh"),
        ("dir-now-file", "0", "f"), ("etc", "5", ""), ("etc/group", "0", "g"),
        ("etc/passwd", "0", "new")]
    assert [rel for rel, _f, _s in walk_merged([top, low])] == [
        "bin", "bin/extra", "bin/sh", "dir-now-file", "etc", "etc/group", "etc/passwd"]
    merged = MergedLowers([top, low])
    assert merged.lookup("dir-now-file/hidden") is None
    assert merged.lookup("etc/group") is not None and merged.lookup("nope") is None


def test_overlay_changes_without_whiteouts(tmp_path: Path) -> None:
    low = build(tmp_path / "low", {"etc": None, "etc/passwd": "old", "usr": None,
                                   "usr/local": None, "usr/local/bin": None, "tmp": None})
    upper = build(tmp_path / "up", {"etc": None, "etc/passwd": "changed", "usr": None,
                                    "usr/local": None, "usr/local/bin": None,
                                    "usr/local/bin/tool": "t", "new": None, "new/f": "x"})
    # copied-up directories keep their mtime: only the direct parent of an A/D is listed
    assert overlay_changes(upper, [low]) == [
        Change("C", "/etc/passwd"), Change("A", "/new"), Change("A", "/new/f"),
        Change("C", "/usr/local/bin"), Change("A", "/usr/local/bin/tool")]
    os.utime(upper / "etc", (1_700_000_000, 1_700_000_000))   # really modified dir
    assert Change("C", "/etc") in overlay_changes(upper, [low])
