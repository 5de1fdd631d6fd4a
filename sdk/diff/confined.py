"""Open directories below a root without ever following a symlink.

Paths are walked one component at a time with ``openat(O_PATH | O_DIRECTORY |
O_NOFOLLOW)`` relative to the previous directory's fd, so a symlink (or anything else
that is not a real directory) anywhere in a path is *seen*, never traversed: nothing
can be reached outside the root, whatever earlier entries created.  Callers pass
normalised relative paths (no ``..``, no ``.``, no empty components).

Directory fds are cached (LRU, bounded) because layer tars visit the same directories
again and again; ``forget(rel)`` must be called when a directory is removed or
replaced so a stale fd is never used.
"""

from __future__ import annotations

import errno
import os
from collections import OrderedDict
from collections.abc import Callable

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: called as ``on_conflict(parent_fd, name, rel)`` when component ``rel`` exists but is
#: not a directory; it must raise, or replace it with a directory and return.
Conflict = Callable[[int, str, str], None]
#: called as ``on_create(rel)`` after a missing component was created
Created = Callable[[str], None]


class DirResolver:
    def __init__(self, root_fd: int, *, capacity: int = 512) -> None:
        self.root_fd = root_fd
        self._capacity = max(capacity, 8)
        self._cache: OrderedDict[str, int] = OrderedDict()

    def open_dir(self, rel: str, *, create: bool = False, on_conflict: Conflict,
                 on_create: Created | None = None, mode: int = 0o755) -> int:
        """An fd (owned by the resolver, valid until the next call) for directory ``rel``.

        Missing components are created with ``mode`` when ``create`` is set, else
        ``FileNotFoundError`` is raised.
        """
        if not rel:
            return self.root_fd
        fd = self._cache.get(rel)
        if fd is not None:
            self._cache.move_to_end(rel)
            return fd
        parts = rel.split("/")
        start, fd = 0, self.root_fd
        for i in range(len(parts) - 1, 0, -1):
            cached = self._cache.get("/".join(parts[:i]))
            if cached is not None:
                start, fd = i, cached
                break
        for i in range(start, len(parts)):
            name, prefix = parts[i], "/".join(parts[: i + 1])
            fd = self._open_component(fd, name, prefix, create, on_conflict, on_create, mode)
            self._cache[prefix] = fd
        while len(self._cache) > self._capacity:
            _, old = self._cache.popitem(last=False)
            os.close(old)
        return fd

    def _open_component(self, parent: int, name: str, rel: str, create: bool,
                        on_conflict: Conflict, on_create: Created | None, mode: int) -> int:
        for _attempt in range(3):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    continue
                if on_create is not None:
                    on_create(rel)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                on_conflict(parent, name, rel)
        raise OSError(errno.ELOOP, "directory keeps changing while it is opened", rel)

    def forget(self, rel: str = "") -> None:
        """Drop cached fds of ``rel`` and everything below it ("" = all)."""
        if not rel:
            doomed = list(self._cache)
        else:
            below = rel + "/"
            doomed = [k for k in self._cache if k == rel or k.startswith(below)]
        for key in doomed:
            os.close(self._cache.pop(key))

    def close(self) -> None:
        self.forget()
