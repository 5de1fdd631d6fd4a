"""Thin ctypes wrappers over the Linux syscalls the engine needs.

Every wrapper raises OSError(errno, message) like the os module does, so callers
handle kernel errors uniformly.  Nothing here knows about containers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal


def _load_libc() -> ctypes.CDLL:
    try:   # glibc's soname; find_library would spawn ldconfig on every CLI start
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes import util

        return ctypes.CDLL(util.find_library("c") or "libc.so.6", use_errno=True)


libc = _load_libc()
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]
libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]

# The same libc entry point, called WITHOUT releasing the GIL: clone() must not let
# another Python thread run (or hold the GIL) while the address space is copied.
_syscall_gil = ctypes.PyDLL(libc._name, use_errno=True).syscall
_syscall_gil.restype = ctypes.c_long

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

# statvfs f_flag bits (ST_*) that a bind remount must carry over
ST_RDONLY = 1
ST_NOSUID = 2
ST_NODEV = 4
ST_NOEXEC = 8
ST_NOATIME = 1024
ST_NODIRATIME = 2048

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

CLOSE_RANGE_CLOEXEC = 4

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

PROC_SUPER_MAGIC = 0x9FA0
DEVPTS_SUPER_MAGIC = 0x1CD1
TMPFS_MAGIC = 0x01021994
SYSFS_MAGIC = 0x62656572
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270

_MACHINE = os.uname().machine
SYS = {
    "x86_64": {"clone": 56, "pivot_root": 155, "openat2": 437, "capset": 126,
               "capget": 125, "close_range": 436, "setns": 308, "seccomp": 317,
               "mount_setattr": 442},
    "aarch64": {"clone": 220, "pivot_root": 41, "openat2": 437, "capset": 91,
                "capget": 90, "close_range": 436, "setns": 268, "seccomp": 277,
                "mount_setattr": 442},
}[_MACHINE if _MACHINE in ("x86_64", "aarch64") else "x86_64"]

MOUNT_FLAGS = {
    "ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
    "sync": MS_SYNCHRONOUS, "dirsync": MS_DIRSYNC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
    "nosymfollow": MS_NOSYMFOLLOW,
}
# options that *clear* a flag (mount(8) spelling); they set nothing
MOUNT_CLEAR_FLAGS = {"rw": MS_RDONLY, "suid": MS_NOSUID, "dev": MS_NODEV, "exec": MS_NOEXEC,
                     "async": MS_SYNCHRONOUS, "atime": MS_NOATIME, "diratime": MS_NODIRATIME,
                     "norelatime": MS_RELATIME, "nostrictatime": MS_STRICTATIME,
                     "symfollow": MS_NOSYMFOLLOW}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)


def fd_path(fd: int) -> str:
    """The magic-link path naming ``fd``: how mount(2) is pointed at a verified fd."""
    return f"/proc/self/fd/{fd}"


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(libc.umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc.setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(libc.syscall(SYS["pivot_root"], _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def clone(flags: int) -> int:
    """fork() with namespace flags: the raw syscall with a NULL stack, so the child
    continues on a copy of the caller's stack exactly like fork() and returns 0.

    Called without releasing the GIL.  Unlike os.fork() neither glibc's nor Python's
    at-fork handlers run, so the caller must be single-threaded; glibc's cached TID in
    the child is stale (avoid pthread-robust locks and raise() there).
    """
    pid = _syscall_gil(ctypes.c_long(SYS["clone"]), ctypes.c_ulong(flags | signal.SIGCHLD),
                       None, None, None, None)
    return _check(pid, "clone")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


OPENAT2_RETRIES = 64


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2).  With RESOLVE_IN_ROOT/BENEATH the kernel answers EAGAIN when *any*
    mount or rename on the system raced a ".." step of the lookup (busybox's
    ``../bin/busybox`` links have one): that is retried here, not reported."""
    how = _OpenHow(flags, mode, resolve)
    raw = _b(path)
    size = ctypes.c_size_t(ctypes.sizeof(how))
    for _ in range(OPENAT2_RETRIES):
        fd = libc.syscall(SYS["openat2"], ctypes.c_int(dirfd), raw, ctypes.byref(how), size)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    if first > last:
        return
    res = libc.syscall(SYS["close_range"], ctypes.c_uint(first), ctypes.c_uint(last),
                       ctypes.c_uint(flags))
    if res < 0 and not flags:   # old kernels: fall back
        os.closerange(first, min(last + 1, 65536))


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """mount_setattr(2) (5.12+): with AT_RECURSIVE it changes a whole mount tree."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(libc.syscall(SYS["mount_setattr"], ctypes.c_int(fd), _b(path),
                        ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def fstatfs_type(fd: int) -> int:
    """f_type (the filesystem magic) of the filesystem ``fd`` lives on."""
    buf = ctypes.create_string_buffer(256)     # struct statfs is 120 bytes on 64-bit
    _check(libc.fstatfs(fd, buf), "fstatfs")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _check(libc.syscall(SYS["capset"], ctypes.byref(header), data), "capset")


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of ``pid`` (0 = the caller)."""
    header = _CapHeader(_CAP_V3, pid)
    data = (_CapData * 2)()
    _check(libc.syscall(SYS["capget"], ctypes.byref(header), data), "capget")
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


_last_cap: int | None = None


def last_cap() -> int:
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except (OSError, ValueError):
            _last_cap = 40
    return _last_cap
