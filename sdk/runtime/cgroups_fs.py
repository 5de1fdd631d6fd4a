"""Where the cgroup hierarchies are, and the thin file operations on them.

``discover(root)`` finds the hierarchies under ``root`` (normally /sys/fs/cgroup):

* a cgroup2 filesystem at ``root`` itself                 -> v2
* cgroup v1 filesystems in subdirectories of ``root``    -> v1
* both (v1 controllers plus an empty cgroup2, usually at ``root/unified``) -> hybrid

A directory's kind comes from its statfs magic.  A tree that is not cgroupfs at all
(a fake tree in unit tests, a copy in a chroot) is classified by its marker files
instead: ``cgroup.controllers`` only exists in cgroup2, ``cgroup.procs`` in both.

The file operations (``write``, ``read``, ``make_dir``, ``remove_dir``) are module
functions on purpose: they are the single seam unit tests replace to simulate the
kernel, so everything above them runs unchanged against a fake tree.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from sdk.errors import FailedPrecondition

ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270
CGROUP_SUPER_MAGIC = 0x27E0EB

_libc = ctypes.CDLL(None, use_errno=True)


class CgroupMode(StrEnum):
    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Layout:
    """The hierarchies under one root.

    ``v1`` maps a v1 controller (``"memory"``, ``"name=systemd"``...) to the mountpoint
    of its hierarchy; several controllers may share one.  ``unified`` is the cgroup2
    mountpoint: ``root`` on v2, usually ``root/unified`` on hybrid, "" on pure v1.
    """

    root: str
    mode: CgroupMode
    v1: Mapping[str, str]
    unified: str

    def hierarchies(self) -> list[str]:
        """Every mountpoint a container cgroup lives in, v1 ones first."""
        out = sorted(set(self.v1.values()))
        if self.unified:
            out.append(self.unified)
        return out


def fs_magic(path: str) -> int:
    """statfs(2) f_type of ``path`` (0 if it cannot be read); os has no statfs."""
    buf = ctypes.create_string_buffer(256)    # struct statfs is 120 bytes on 64-bit
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return 0
    return int(struct.unpack_from("l", buf)[0]) & 0xFFFFFFFF   # f_type: first, a long


def _kind(path: str) -> str:
    """"cgroup2", "cgroup" (v1) or "" for a directory."""
    magic = fs_magic(path)
    if magic == CGROUP2_SUPER_MAGIC:
        return "cgroup2"
    if magic == CGROUP_SUPER_MAGIC:
        return "cgroup"
    if os.path.isfile(os.path.join(path, "cgroup.controllers")):
        return "cgroup2"
    if os.path.isfile(os.path.join(path, "cgroup.procs")):
        return "cgroup"
    return ""


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def _v1_controllers(name: str) -> set[str]:
    """Controllers of a v1 hierarchy from its super options (or its directory name)."""
    known = {"name=systemd"}
    try:
        with open("/proc/cgroups") as f:
            known |= {line.split()[0] for line in f if not line.startswith("#")}
    except OSError:
        pass
    out = set()
    for opt in name.split(","):
        if opt in known or opt.startswith("name="):
            out.add(opt)
        elif opt == "systemd":              # fake trees and symlink-less names
            out.add("name=systemd")
    return out


def _mount_options() -> dict[str, str]:
    """mountpoint -> super options of every cgroup v1 mount."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = right.split()
                if len(fields) >= 3 and fields[0] == "cgroup":
                    out[_unescape(left.split()[4])] = fields[2]
    except OSError:
        pass
    return out


@lru_cache(maxsize=16)
def discover(root: str = ROOT) -> Layout:
    """The hierarchies under ``root``; FailedPrecondition when there are none."""
    root = os.path.normpath(root)
    if _kind(root) == "cgroup2":
        return Layout(root, CgroupMode.V2, {}, root)
    options = _mount_options()
    v1: dict[str, str] = {}
    unified = ""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise FailedPrecondition(f"cannot list cgroup root {root}: {exc.strerror}") from None
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue                    # cpu -> cpu,cpuacct style aliases
        kind = _kind(entry.path)
        if kind == "cgroup2" and (not unified or entry.name == "unified"):
            unified = entry.path
        elif kind == "cgroup":
            for ctl in _v1_controllers(options.get(entry.path, entry.name)):
                v1.setdefault(ctl, entry.path)
    if not v1 and not unified:
        raise FailedPrecondition(f"no cgroup filesystem is mounted at {root} "
                                 "(mount cgroup2 there, or the v1 controllers below it)")
    if not v1:
        return Layout(root, CgroupMode.V2, {}, unified)
    return Layout(root, CgroupMode.HYBRID if unified else CgroupMode.V1, v1, unified)


# ---- file operations (the seam unit tests replace) ------------------------------------

def write(path: str, value: str) -> None:
    """One write(2) of ``value``: cgroupfs parses each write as one command."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path: str, default: str = "") -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return default
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    except OSError:
        return default
    finally:
        os.close(fd)


def make_dir(path: str) -> None:
    os.mkdir(path, 0o755)


def remove_dir(path: str) -> None:
    os.rmdir(path)


def keyed(text: str) -> dict[str, str]:
    """Parse "key value" lines (memory.stat, cpu.stat, cgroup.events...)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = value.strip()
    return out


def as_int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default
