"""Tree sizes and copies for the layer store (stdlib + coreutils only, no tarfile)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from sdk.errors import RuntimeFailure


def _scan(root: str, *, one_fs: bool = False) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of everything below ``root``; with ``one_fs``, mount points below
    ``root`` are neither counted nor entered."""
    try:
        dev = os.lstat(root).st_dev
    except FileNotFoundError:
        return
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if one_fs and st.st_dev != dev:
                    continue
                yield entry.path, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)


def tree_size(path: Path) -> int:
    """Docker's size of a directory: regular files and symlinks, hardlinks once."""
    total = 0
    seen: set[int] = set()
    for _p, st in _scan(os.fspath(path), one_fs=True):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue
        if st.st_nlink > 1:
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
        total += st.st_size
    return total


def changed_size(tree: Path, base: Path | None) -> int:
    """Bytes of regular files and symlinks in ``tree`` that are new or differ from
    ``base`` (a full copy it started from): a vfs container's own size."""
    root, base_s = os.fspath(tree), os.fspath(base) if base else None
    total = 0
    seen: set[int] = set()
    for path, st in _scan(root, one_fs=True):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue
        if base_s is not None:
            try:
                old = os.lstat(os.path.join(base_s, os.path.relpath(path, root)))
            except (FileNotFoundError, NotADirectoryError):
                old = None
            if old is not None and (old.st_mode, old.st_uid, old.st_gid, old.st_size,
                                    old.st_mtime_ns) == (st.st_mode, st.st_uid, st.st_gid,
                                                         st.st_size, st.st_mtime_ns):
                continue
        if st.st_nlink > 1:
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
        total += st.st_size
    return total


def disk_usage(path: Path) -> int:
    """Allocated bytes below ``path``, every inode once (hardlinks, shared layers),
    without entering mount points (a container's merged dir)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for _p, st in _scan(os.fspath(path), one_fs=True):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += st.st_blocks * 512
    return total


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the content of ``src`` into the existing directory ``dst``, preserving
    owners, modes, times, xattrs, hardlinks, devices and sparseness; reflinks where
    the filesystem can (``cp -a`` is far faster than a Python walk and does all that)."""
    import subprocess

    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", f"{src}/.", f"{dst}/"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"copying {src} to {dst} failed: {err[-1] if err else proc}")


def _make_writable(path: str) -> None:
    """Let the owner enter and modify every directory below ``path`` (unprivileged
    removal of trees unpacked from tars with read-only directories)."""
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            try:
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
            except OSError:
                pass
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass


def remove_tree(path: Path, *, strict: bool = False) -> None:
    """``rm -rf path``; missing is fine.  Errors are raised only with ``strict``."""
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        if os.geteuid() == 0 and strict:
            raise
    _make_writable(os.fspath(path))
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError:
        if strict:
            raise
        shutil.rmtree(path, ignore_errors=True)
