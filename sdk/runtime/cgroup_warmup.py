"""Take the ~10 ms out of a container start's first cgroup migration.

Moving a process between cgroups takes the kernel's ``cgroup_threadgroup_rwsem`` for
writing. From idle, that first waits for an RCU grace period (``rcu_sync``), about 10 ms
here; for roughly another grace period after the writer leaves, the next writer does
not wait. runc and podman pay it on every start.

``warm_up()`` moves the calling process into the cgroup it is already in (a no-op
migration, so the same lock and the same wait), from a process that has nothing else
to do: the daemon's helper, right after it forks the command that will start a
container. When that command joins its container to the cgroups some milliseconds
later, the wait is over or nearly over. Nothing changes on the host but the timing.
"""

from __future__ import annotations

import os

ROOT = "/sys/fs/cgroup"


def own_procs_file(root: str = ROOT) -> str | None:
    """The ``cgroup.procs`` of this process's own cgroup in one hierarchy."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                          # cgroup v2
            candidate = f"{root}{path}/cgroup.procs"
            if os.path.exists(candidate):
                return candidate
            candidate = f"{root}/unified{path}/cgroup.procs"
        elif controllers in ("pids", "memory", "cpu,cpuacct", "freezer"):
            candidate = f"{root}/{controllers}{path}/cgroup.procs"
        else:
            continue
        if os.path.exists(candidate):
            return candidate
    return None


def warm_up(procs_file: str | None) -> bool:
    """Re-enter our own cgroup; False when it cannot (then nothing happened)."""
    if procs_file is None:
        return False
    try:
        fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, b"0")          # "0" means the writing process itself
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
