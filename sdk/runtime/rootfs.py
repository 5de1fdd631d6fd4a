"""Build the container's filesystem view inside its (already unshared) mount namespace.

Order (runc's prepareRootfs + the hardening steps):

1. ``/`` becomes rslave: nothing we mount can propagate back to the host.
2. The rootfs: an overlay mounted at ``path``, or ``path`` bound onto itself.
3. ``spec.mounts`` in order.  Each target is resolved *inside* the root
   (RESOLVE_IN_ROOT; missing targets are created there), the mount is done onto
   ``/proc/self/fd/N`` of that O_PATH fd, then the target is looked up again and
   verified to still be inside the root (and, for binds, to be the source inode).
4. Device nodes, the /dev symlinks.
5. Read-only and masked paths (skipped for privileged containers).
6. pivot_root(".", ".") and a detached unmount of the old root; the rootfs is remounted
   read-only when asked.

Steps 1-5 run before the pivot, while ``/proc`` is still the host's procfs, so every
``/proc/self/fd`` path we hand to mount(2) is resolved by a procfs we trust.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from sdk.runtime import linux
from sdk.runtime.defaults import DEV_SYMLINKS
from sdk.runtime.rootfs_cgroup import CgroupLayout, mount_cgroups, own_cgroups
from sdk.runtime.rootfs_paths import (
    ensure_in_root,
    glob_in_root,
    is_within,
    open_in_root,
    path_of,
)
from sdk.runtime.spawn_errors import SetupError, os_text
from sdk.runtime.spec import Device, Mount, Rootfs

_KEEP_ST = {linux.ST_NOSUID: linux.MS_NOSUID, linux.ST_NODEV: linux.MS_NODEV,
            linux.ST_NOEXEC: linux.MS_NOEXEC, linux.ST_NOATIME: linux.MS_NOATIME,
            linux.ST_NODIRATIME: linux.MS_NODIRATIME}
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class MountOptions:
    flags: int              # MS_* to set (MS_RDONLY excluded: see ``readonly``)
    readonly: bool
    data: str               # filesystem-specific options, comma-joined
    propagation: int        # MS_PRIVATE/... (0 = leave as is)
    recursive: bool


def parse_options(m: Mount) -> MountOptions:
    """Split a Mount's flags/options into mount(2) arguments.

    ``options`` may also carry flag words (``ro``, ``nosuid``...), ``bind``/``rbind``
    and propagation names; whatever is left is filesystem data such as ``size=64m``."""
    flags, data = 0, []
    readonly, recursive = m.readonly, m.recursive
    propagation = m.propagation
    for word in (*m.flags, *m.options):
        if word == "ro":
            readonly = True
        elif word == "rw":
            readonly = False
        elif word in linux.MOUNT_FLAGS:
            flags |= linux.MOUNT_FLAGS[word]
        elif word in linux.MOUNT_CLEAR_FLAGS:
            flags &= ~linux.MOUNT_CLEAR_FLAGS[word]
        elif word in linux.PROPAGATION:
            propagation = word
        elif word in ("bind", "rbind"):
            recursive = word == "rbind"
        elif word and word not in ("defaults",):
            data.append(word)
    if not propagation and m.kind == "bind":
        propagation = "rprivate"
    try:
        prop = linux.PROPAGATION[propagation] if propagation else 0
    except KeyError:
        raise SetupError(f"mount {m.target}: unknown propagation {propagation!r}") from None
    return MountOptions(flags & ~linux.MS_RDONLY, readonly, ",".join(data), prop, recursive)


def _kept_flags(fd: int) -> int:
    """nosuid/nodev/noexec/atime flags of the mount ``fd`` is on: a bind remount must
    repeat them or the kernel refuses (locked flags) or silently clears them."""
    f_flag = os.fstatvfs(fd).f_flag
    out = 0
    for st_bit, ms_bit in _KEEP_ST.items():
        if f_flag & st_bit:
            out |= ms_bit
    return out


# ---- 1 + 2: propagation and the rootfs -----------------------------------------------
def make_rslave() -> None:
    linux.mount(None, "/", None, linux.MS_SLAVE | linux.MS_REC)


def mount_rootfs(rootfs: Rootfs) -> int:
    """Mount the rootfs at ``rootfs.path``; returns an O_PATH fd of the mounted root."""
    try:
        if rootfs.is_overlay:
            if rootfs.chdir:
                os.chdir(rootfs.chdir)   # short relative lowerdir names resolve here
            parts = [f"lowerdir={':'.join(rootfs.lowerdirs)}"]
            if rootfs.upperdir:
                parts += [f"upperdir={rootfs.upperdir}", f"workdir={rootfs.workdir}"]
            if rootfs.mount_label:
                parts.append(f'context="{rootfs.mount_label}"')
            data = ",".join(parts)
            if len(data) >= PAGE_SIZE:
                raise SetupError(f"mount rootfs {rootfs.path}: overlay options are "
                                 f"{len(data)} bytes, over the kernel's {PAGE_SIZE - 1}")
            linux.mount("overlay", rootfs.path, "overlay", 0, data)
        else:
            linux.mount(rootfs.path, rootfs.path, None, linux.MS_BIND | linux.MS_REC)
        return os.open(rootfs.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        what = "overlay" if rootfs.is_overlay else "bind"
        raise SetupError(f"mount rootfs {rootfs.path} ({what}): {os_text(exc)}",
                         err=exc.errno or 0) from None


# ---- 3: spec mounts --------------------------------------------------------------------
class Mounter:
    """Mounts into one root; ``root_path`` is how our procfs names the root."""

    def __init__(self, root_fd: int, *, privileged: bool = False,
                 cgroups: CgroupLayout | None = None, cgroupns: bool = True) -> None:
        self.root_fd = root_fd
        self.root_path = path_of(root_fd)
        self.privileged = privileged
        self.cgroups = cgroups
        self.cgroupns = cgroupns      # in a cgroup namespace of its own

    def mount_all(self, mounts: Iterable[Mount]) -> None:
        for m in mounts:
            self.mount(m)

    def mount(self, m: Mount) -> None:
        if not m.target.startswith("/"):
            raise SetupError(f"mount {m.target}: the target must be an absolute path")
        opts = parse_options(m)
        try:
            if m.kind == "bind":
                self._bind(m, opts)
            elif m.kind == "cgroup":
                self._cgroup(m, opts)
            else:
                self._fs(m, opts)
        except SetupError:
            raise
        except OSError as exc:
            src = f" ({m.kind} {m.source})" if m.kind == "bind" else f" ({m.kind})"
            raise SetupError(f"mount {m.target}{src}: {os_text(exc)}",
                             err=exc.errno or 0) from None

    def _target(self, m: Mount, *, directory: bool, no_symlinks: bool = False) -> int:
        if no_symlinks:
            try:
                return open_in_root(self.root_fd, m.target, no_symlinks=True)
            except FileNotFoundError:
                os.close(ensure_in_root(self.root_fd, m.target, directory=directory))
            except OSError as exc:
                raise SetupError(f"mount {m.target}: the target must not be or go through "
                                 f"a symlink ({os_text(exc)})") from None
            return open_in_root(self.root_fd, m.target, no_symlinks=True)
        return ensure_in_root(self.root_fd, m.target, directory=directory)

    def _reopen(self, m: Mount) -> int:
        """A fresh lookup of the target, which now lands on the new mount: verified to
        be inside the root (the O_PATH fd we mounted onto may have been moved)."""
        fd = open_in_root(self.root_fd, m.target)
        if not is_within(fd, self.root_path):
            os.close(fd)
            raise SetupError(f"mount {m.target}: the target moved outside the container "
                             "root while it was being mounted")
        return fd

    def _bind(self, m: Mount, opts: MountOptions) -> None:
        if not m.source.startswith("/"):
            raise SetupError(f"mount {m.target}: source {m.source!r} must be an absolute path")
        try:
            src = os.open(m.source, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            raise SetupError(f"mount {m.target}: source {m.source}: {os_text(exc)}",
                             err=exc.errno or 0) from None
        try:
            src_st = os.fstat(src)
            target = self._target(m, directory=stat.S_ISDIR(src_st.st_mode))
            try:
                linux.mount(linux.fd_path(src), linux.fd_path(target), None,
                            linux.MS_BIND | (linux.MS_REC if opts.recursive else 0))
            finally:
                os.close(target)
            top = self._reopen(m)
            try:
                top_st = os.fstat(top)
                if (top_st.st_dev, top_st.st_ino) != (src_st.st_dev, src_st.st_ino):
                    raise SetupError(f"mount {m.target}: after mounting, the target is not "
                                     f"{m.source}")
                if opts.readonly or opts.flags:
                    ro = linux.MS_RDONLY if opts.readonly else 0
                    linux.mount(None, linux.fd_path(top), None,
                                linux.MS_BIND | linux.MS_REMOUNT | opts.flags | ro |
                                _kept_flags(src))
                    if opts.readonly and opts.recursive:
                        _recursive_readonly(top)
                if opts.propagation:
                    linux.mount(None, linux.fd_path(top), None, opts.propagation)
            finally:
                os.close(top)
        finally:
            os.close(src)

    def _fs(self, m: Mount, opts: MountOptions) -> None:
        readonly = opts.readonly and not (self.privileged and m.kind == "sysfs")
        target = self._target(m, directory=True, no_symlinks=m.kind in ("proc", "sysfs"))
        try:
            linux.mount(m.source or m.kind, linux.fd_path(target), m.kind,
                        opts.flags | (linux.MS_RDONLY if readonly else 0), opts.data or None)
        finally:
            os.close(target)
        top = self._reopen(m)
        try:
            if opts.propagation:
                linux.mount(None, linux.fd_path(top), None, opts.propagation)
        finally:
            os.close(top)

    def _cgroup(self, m: Mount, opts: MountOptions) -> None:
        if self.cgroups is None:
            raise SetupError(f"mount {m.target}: the host's cgroup layout is unknown")
        own = None
        if not self.cgroupns:
            with open("/proc/self/cgroup", encoding="utf-8") as f:
                own = own_cgroups(f.read())
        target = self._target(m, directory=True, no_symlinks=True)
        try:
            mount_cgroups(self.root_fd, m.target, target, self.cgroups,
                          readonly=opts.readonly and not self.privileged, flags=opts.flags,
                          own=own)
        finally:
            os.close(target)


def _recursive_readonly(fd: int) -> None:
    """Make every submount of a read-only rbind read-only too (docker 25+ on 5.12+)."""
    try:
        linux.mount_setattr(fd, "", linux.AT_EMPTY_PATH | linux.AT_RECURSIVE,
                            linux.MOUNT_ATTR_RDONLY)
    except OSError:   # older kernel: only the top mount is read-only, like runc
        pass


# ---- 4: devices ------------------------------------------------------------------------
def create_devices(root_fd: int, devices: Iterable[Device]) -> None:
    parents: dict[str, int] = {}     # most devices share /dev: resolve it once
    try:
        for d in devices:
            parent, name = os.path.split(d.path)
            if not d.path.startswith("/") or not name:
                raise SetupError(f"device {d.path}: the path must be absolute")
            kind = stat.S_IFCHR if d.kind == "c" else stat.S_IFBLK if d.kind == "b" else 0
            if not kind:
                raise SetupError(f"device {d.path}: unknown type {d.kind!r}")
            try:
                pfd = parents.get(parent)
                if pfd is None:
                    pfd = parents[parent] = ensure_in_root(root_fd, parent or "/")
                try:
                    os.mknod(name, kind | (d.mode & 0o7777), os.makedev(d.major, d.minor),
                             dir_fd=pfd)
                except FileExistsError:
                    continue
                os.chown(name, d.uid, d.gid, dir_fd=pfd, follow_symlinks=False)
                os.chmod(name, d.mode & 0o7777, dir_fd=pfd)   # undo the umask
            except OSError as exc:
                raise SetupError(f"device {d.path}: {os_text(exc)}",
                                 err=exc.errno or 0) from None
    finally:
        for fd in parents.values():
            os.close(fd)


def create_dev_symlinks(root_fd: int) -> None:
    try:
        dev = open_in_root(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return
    try:
        for target, name in DEV_SYMLINKS:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
    finally:
        os.close(dev)


def host_devices(root: str = "/dev") -> tuple[Device, ...]:
    """Every char/block device of the host, for privileged containers (runc's
    HostDevices): /dev/pts, shm, mqueue and fd are skipped, and so are console and
    ptmx, which the container gets from its own devpts."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        if dirpath == root:
            dirs[:] = [d for d in dirs if d not in ("pts", "shm", "mqueue", "fd")]
        for name in files:
            full = os.path.join(dirpath, name)
            if full in (f"{root}/console", f"{root}/ptmx"):
                continue
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(Device(full, "c" if stat.S_ISCHR(st.st_mode) else "b",
                                  os.major(st.st_rdev), os.minor(st.st_rdev),
                                  stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    return tuple(out)


# ---- 5: read-only and masked paths -----------------------------------------------------
def _null_device(root_fd: int) -> int:
    """The root's /dev/null, verified to be the 1:3 char device (CVE-2025-31133)."""
    try:
        fd = open_in_root(root_fd, "/dev/null", no_symlinks=True)
    except OSError as exc:
        raise SetupError(f"masked paths: /dev/null: {os_text(exc)}") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise SetupError("masked paths: /dev/null is not the null device (1:3)")
    return fd


def readonly_paths(root_fd: int, paths: Iterable[str]) -> None:
    for pattern in paths:
        for path in glob_in_root(root_fd, pattern):
            try:
                fd = open_in_root(root_fd, path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                linux.mount(linux.fd_path(fd), linux.fd_path(fd), None,
                            linux.MS_BIND | linux.MS_REC)
            except OSError as exc:
                raise SetupError(f"read-only path {path}: {os_text(exc)}") from None
            finally:
                os.close(fd)
            top = open_in_root(root_fd, path)
            try:
                linux.mount(None, linux.fd_path(top), None,
                            linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY |
                            _kept_flags(top))
            except OSError as exc:
                raise SetupError(f"read-only path {path}: {os_text(exc)}") from None
            finally:
                os.close(top)


def mask_paths(root_fd: int, paths: Iterable[str]) -> None:
    null = -1
    try:
        for pattern in paths:
            for path in glob_in_root(root_fd, pattern):
                try:
                    fd = open_in_root(root_fd, path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                try:
                    if stat.S_ISDIR(os.fstat(fd).st_mode):
                        linux.mount("tmpfs", linux.fd_path(fd), "tmpfs", linux.MS_RDONLY)
                    else:
                        if null < 0:
                            null = _null_device(root_fd)
                        linux.mount(linux.fd_path(null), linux.fd_path(fd), None,
                                    linux.MS_BIND)
                except OSError as exc:
                    raise SetupError(f"masked path {path}: {os_text(exc)}") from None
                finally:
                    os.close(fd)
    finally:
        if null >= 0:
            os.close(null)


def create_workdir(root_fd: int, cwd: str) -> None:
    """docker creates a missing WORKDIR (owned by root, 0755); done before the pivot so
    a read-only rootfs does not prevent it."""
    if not cwd or cwd == "/":
        return
    try:
        os.close(ensure_in_root(root_fd, cwd if cwd.startswith("/") else "/" + cwd))
    except OSError as exc:
        raise SetupError(f'chdir to cwd ("{cwd}") failed: {os_text(exc)}',
                         err=exc.errno or 0) from None


# ---- 6: pivot ---------------------------------------------------------------------------
def pivot(root_fd: int) -> None:
    """pivot_root(".", ".") into ``root_fd``, then drop the old root (runc's pivotRoot)."""
    old = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(root_fd)
        linux.pivot_root(".", ".")
        os.fchdir(old)
        # rslave so the unmount below cannot propagate to the host, then detach
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
    except OSError as exc:
        raise SetupError(f"pivot_root: {os_text(exc)}", err=exc.errno or 0) from None
    finally:
        os.close(old)
    os.chdir("/")


def remount_root_readonly() -> None:
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = _kept_flags(fd)
    finally:
        os.close(fd)
    try:
        linux.mount(None, "/", None,
                    linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | flags)
    except OSError as exc:
        raise SetupError(f"read-only rootfs: {os_text(exc)}", err=exc.errno or 0) from None
