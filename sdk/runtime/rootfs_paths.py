"""Paths inside a container root, resolved by the kernel as if the root were "/".

Every mount target, device node and file the runtime touches in a rootfs goes through
here: a symlink or ``..`` in the image can never point us outside the root
(CVE-2021-30465, 2019-19921, 2024-45310 class).  Lookups use openat2 with
RESOLVE_IN_ROOT; creation walks one component at a time with O_NOFOLLOW and
re-resolves symlinks itself, so dangling links get their target created *inside* the
root, the way runc's MkdirAllInRoot does.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections import deque

from sdk.runtime import linux

IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
MAX_SYMLINKS = 40


def split(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *,
                 no_symlinks: bool = False) -> int:
    """openat2(root_fd, path, RESOLVE_IN_ROOT); ``path`` may be absolute."""
    resolve = IN_ROOT | (linux.RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    return linux.openat2(root_fd, path.lstrip("/") or ".", flags | os.O_CLOEXEC, resolve)


def ensure_in_root(root_fd: int, path: str, *, directory: bool = True,
                   mode: int = 0o755) -> int:
    """O_PATH fd of ``path`` inside the root, creating it (and missing parents) first.

    The last component becomes a directory or, with ``directory=False``, an empty
    file (mode 0644).  Existing objects are returned as they are, whatever their type.
    """
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        pass
    stack = [os.dup(root_fd)]
    pending = deque(split(path))
    hops = 0
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            fd = _open_or_create(cur, comp, directory=directory or bool(pending), mode=mode)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extendleft(reversed(split(target)))
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        return stack.pop() if len(stack) > 1 else os.dup(stack[0])
    finally:
        for fd in stack:
            os.close(fd)


def _open_or_create(dir_fd: int, name: str, *, directory: bool, mode: int) -> int:
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(8):      # lose a race against a concurrent creator: look again
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        try:
            if directory:
                os.mkdir(name, mode, dir_fd=dir_fd)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=dir_fd))
        except FileExistsError:
            continue
    raise OSError(errno.EAGAIN, "path keeps changing", name)


def glob_in_root(root_fd: int, pattern: str) -> list[str]:
    """Expand ``*``/``?``/``[]`` components of an absolute pattern inside the root.

    Directories are listed through RESOLVE_IN_ROOT fds, so a symlinked component lists
    what the container would see, never the host."""
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    results = ["/"]
    for comp in split(pattern):
        nxt = []
        for base in results:
            if not any(ch in comp for ch in "*?["):
                nxt.append(os.path.join(base, comp))
                continue
            try:
                fd = open_in_root(root_fd, base, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            nxt += [os.path.join(base, n) for n in sorted(fnmatch.filter(names, comp))]
        results = nxt
    return results


def path_of(fd: int) -> str:
    return os.readlink(linux.fd_path(fd))


def is_within(fd: int, root_path: str) -> bool:
    """Does ``fd`` (still) sit under ``root_path`` (as the caller's /proc names it)?"""
    path = path_of(fd)
    root = root_path.rstrip("/")
    return path == root or path.startswith(root + "/") or root == ""
