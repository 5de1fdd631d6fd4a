"""SELinux on the host: is it on, and the labels a container runs and mounts with.

Like go-selinux (used by docker and podman): each container gets a process label
``system_u:system_r:container_t:s0:cA,cB`` and a matching file label
``system_u:object_r:container_file_t:s0:cA,cB`` with a random pair of MCS categories
(A < B, both < 1024) that no other container uses, so containers cannot touch each
other's files even when they share a type.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from sdk.errors import FailedPrecondition

SELINUXFS = Path("/sys/fs/selinux")
MOUNTINFO = Path("/proc/self/mountinfo")
CONFIG_ROOT = Path("/etc/selinux")
CATEGORIES = 1024                    # go-selinux's uniqMcs(1024)

DEFAULT_PROCESS = "system_u:system_r:container_t:s0"
DEFAULT_FILE = "system_u:object_r:container_file_t:s0"


def selinuxfs_mount(mountinfo: Path = MOUNTINFO) -> Path | None:
    """Where selinuxfs is mounted (usually /sys/fs/selinux), from mountinfo."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "selinuxfs":
            fields = left.split()
            if len(fields) >= 5:
                return Path(fields[4].replace("\\040", " "))
    return None


def selinux_enabled(mountinfo: Path = MOUNTINFO, default_fs: Path = SELINUXFS) -> bool:
    """SELinux is enabled: selinuxfs is mounted and has an ``enforce`` file.

    Falls back to ``/sys/fs/selinux`` when mountinfo is unreadable (early boot, odd
    sandboxes).  Permissive mode counts as enabled: labels are still applied.
    """
    mount = selinuxfs_mount(mountinfo)
    if mount is None:
        if mountinfo.exists():
            return False
        mount = default_fs
    return (mount / "enforce").is_file()


def enforcing(mountinfo: Path = MOUNTINFO) -> bool:
    """True in enforcing mode, False in permissive mode or when SELinux is off."""
    mount = selinuxfs_mount(mountinfo) or SELINUXFS
    try:
        return (mount / "enforce").read_text().strip() == "1"
    except OSError:
        return False


def default_contexts(root: Path = CONFIG_ROOT) -> tuple[str, str]:
    """(process, file) contexts from the policy's ``lxc_contexts``, else container-selinux's.

    go-selinux reads ``/etc/selinux/<SELINUXTYPE>/contexts/lxc_contexts`` the same way.
    """
    process, file = DEFAULT_PROCESS, DEFAULT_FILE
    try:
        config = (root / "config").read_text()
        m = re.search(r"^\s*SELINUXTYPE\s*=\s*(\S+)", config, re.M)
        policy = m.group(1).strip("\"'") if m else "targeted"
        text = (root / policy / "contexts" / "lxc_contexts").read_text()
    except OSError:
        return process, file
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip().strip("\"")
        if key.strip() == "process" and value:
            process = value
        elif key.strip() == "file" and value:
            file = value
    return process, file


def level_of(label: str) -> str:
    """The MLS/MCS level of ``user:role:type:level`` ("" when there is none)."""
    parts = label.split(":", 3)
    return parts[3] if len(parts) == 4 else ""


def with_level(context: str, level: str) -> str:
    """``context`` with its level replaced by ``level``."""
    parts = context.split(":", 3)
    if len(parts) < 3:
        raise ValueError(f"not an SELinux context: {context!r}")
    return ":".join(parts[:3] + [level])


def process_label(level: str, base: str = DEFAULT_PROCESS) -> str:
    """``system_u:system_r:container_t:<level>``: the label a container's processes get."""
    return with_level(base, level)


def mount_label(level: str, base: str = DEFAULT_FILE) -> str:
    """``system_u:object_r:container_file_t:<level>``: for its rootfs and volumes."""
    return with_level(base, level)


def new_level(in_use: Iterable[str] = (), *,
              randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A random ``s0:cA,cB`` (A < B) that no label or level in ``in_use`` has.

    ``in_use`` is what the engine's other containers hold (their process or mount
    labels, or bare levels): a per-process set like go-selinux's would not do, as every
    berth CLI call is a new process.
    """
    taken = {level_of(x) if x.count(":") >= 3 else x for x in in_use}
    if len(taken) >= CATEGORIES * (CATEGORIES - 1) // 2:
        raise FailedPrecondition("no free SELinux MCS category pair left: remove containers")
    while True:
        a, b = randbelow(CATEGORIES), randbelow(CATEGORIES)
        if a == b:
            continue
        level = f"s0:c{min(a, b)},c{max(a, b)}"
        if level not in taken:
            return level


def new_labels(in_use: Iterable[str] = ()) -> tuple[str, str]:
    """(process label, mount label) for a new container, sharing fresh MCS categories."""
    process, file = default_contexts()
    level = new_level(in_use)
    return process_label(level, process), mount_label(level, file)


__all__ = ["selinux_enabled", "enforcing", "selinuxfs_mount", "default_contexts",
           "process_label", "mount_label", "new_level", "new_labels", "level_of",
           "with_level"]
