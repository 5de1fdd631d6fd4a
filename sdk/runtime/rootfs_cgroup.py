"""/sys/fs/cgroup inside a container, mirroring the host's layout.

cgroup v2 host: one cgroup2 mount.  v1 or hybrid host: a tmpfs holding one mount per
host hierarchy (same options, e.g. ``cpu,cpuacct`` or ``name=systemd``), the host's
comount symlinks (``cpu -> cpu,cpuacct``) and, on hybrid hosts, cgroup2 at ``unified``.
Mounted from inside the container's cgroup namespace, each one shows the container's
own cgroup as its root.  The host layout is read once per process from mountinfo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from sdk.runtime import linux
from sdk.runtime.rootfs_paths import open_in_root

HOST_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    v2: bool                                   # the host's /sys/fs/cgroup is cgroup2
    v1: tuple[tuple[str, str], ...] = ()       # (dir name, mount options)
    symlinks: tuple[tuple[str, str], ...] = ()  # (name, link target)
    unified: str = ""                          # dir name of a hybrid host's cgroup2


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def parse_layout(mountinfo: str, symlinks: tuple[tuple[str, str], ...] = ()) -> CgroupLayout:
    v1: list[tuple[str, str]] = []
    unified = ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point, fstype = _unescape(fields[4]), tail[0]
        if point == HOST_ROOT and fstype == "cgroup2":
            return CgroupLayout(v2=True)
        if os.path.dirname(point) != HOST_ROOT:
            continue
        name = os.path.basename(point)
        if fstype == "cgroup2":
            unified = name
        elif fstype == "cgroup":
            opts = ",".join(o for o in tail[2].split(",") if o not in ("rw", "ro"))
            v1.append((name, opts))
    return CgroupLayout(v2=False, v1=tuple(v1), symlinks=symlinks, unified=unified)


@lru_cache(maxsize=1)
def host_layout() -> CgroupLayout:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        info = f.read()
    links = []
    try:
        for entry in sorted(os.scandir(HOST_ROOT), key=lambda e: e.name):
            if entry.is_symlink():
                links.append((entry.name, os.readlink(entry.path)))
    except OSError:
        pass
    return parse_layout(info, tuple(links))


def own_cgroups(text: str) -> dict[frozenset[str], str]:
    """/proc/self/cgroup as {controllers: path}; cgroup2 is the empty set."""
    out: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[frozenset(c for c in parts[1].split(",") if c)] = parts[2]
    return out


def _own_path(own: dict[frozenset[str], str], opts: str) -> str:
    words = set(opts.split(","))
    for controllers, path in own.items():
        if controllers and controllers <= words:
            return path
    return "/"


def mount_cgroups(root_fd: int, rel: str, target_fd: int, layout: CgroupLayout, *,
                  readonly: bool, flags: int, own: dict[frozenset[str], str] | None = None
                  ) -> None:
    """Mount the container's cgroup filesystems onto the directory ``target_fd``, which
    is ``rel`` inside the root ``root_fd``.

    In a new cgroup namespace (``own`` None) fresh mounts show the namespace root, i.e.
    the container's cgroup.  Sharing the host's cgroup namespace, fresh mounts would
    show the whole host tree, so the container's own cgroup directories (``own``, from
    /proc/self/cgroup) are bind-mounted instead, as runc does."""
    ro = linux.MS_RDONLY if readonly else 0
    target = linux.fd_path(target_fd)

    def attach(fstype: str, dest: str, opts: str | None, host_dir: str, key: str) -> None:
        if own is None:
            linux.mount("cgroup", dest, fstype, flags | ro, opts)
            return
        path = own.get(frozenset(), "/") if fstype == "cgroup2" else _own_path(own, key)
        linux.mount(f"{host_dir}{path.rstrip('/')}", dest, None, linux.MS_BIND)
        linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | flags | ro)

    if layout.v2:
        attach("cgroup2", target, None, HOST_ROOT, "")
        return
    linux.mount("tmpfs", target, "tmpfs", flags, "mode=755")
    # target_fd names the directory *under* the new tmpfs: a fresh lookup gets the tmpfs
    top = open_in_root(root_fd, rel, os.O_PATH | os.O_DIRECTORY)
    try:
        base = linux.fd_path(top)
        for name, opts in layout.v1:
            os.mkdir(name, 0o755, dir_fd=top)
            attach("cgroup", f"{base}/{name}", opts, f"{HOST_ROOT}/{name}", opts)
        if layout.unified:
            os.mkdir(layout.unified, 0o755, dir_fd=top)
            attach("cgroup2", f"{base}/{layout.unified}", None,
                   f"{HOST_ROOT}/{layout.unified}", "")
        for name, link in layout.symlinks:
            try:
                os.symlink(link, name, dir_fd=top)
            except FileExistsError:
                pass
        if readonly:
            linux.mount(None, base, None, linux.MS_REMOUNT | linux.MS_BIND | flags | ro)
    finally:
        os.close(top)
