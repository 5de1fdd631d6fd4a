"""The host-wide network lock shared by every engine on the host."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_PATH = "/run/berth/networks.lock"

_held = {"depth": 0, "pid": 0, "shared": 0}


@contextmanager
def host_lock(shared: bool = False) -> Iterator[None]:
    """Host-wide lock of every engine: exclusive for bridge creation and removal and
    subnet choice, shared for a start's "bridge is there + lease" step (starts run in
    parallel; a bridge cleanup waits for them).

    Re-entrant within a process (flock on a second fd of the same file would wait for
    the first one forever); an exclusive request inside a shared hold is a bug."""
    if _held["depth"] and _held["pid"] == os.getpid():
        if _held["shared"] and not shared:
            raise RuntimeError("host_lock: exclusive requested inside a shared hold")
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        _held.update(depth=1, pid=os.getpid(), shared=int(shared))
        try:
            yield
        finally:
            _held.update(depth=0, pid=0, shared=0)
    finally:
        os.close(fd)
