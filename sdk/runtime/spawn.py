"""Start a container process: clone into new namespaces, build the root, exec.

The child is cloned with its namespaces in one step (raw clone: fork semantics with
namespace flags), waits until the parent has placed it in its cgroup
(``on_created``), then sets up its mounts inside its *own* mount namespace, pivots
into the rootfs, drops privileges and execs.  Any failure before exec is reported
over a close-on-exec pipe as JSON and raised in the parent as 125/126/127 errors;
EOF on that pipe means exec succeeded.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sdk.errors import CommandNotExecutable, CommandNotFound, RuntimeFailure, SdkError
from sdk.runtime import linux, seccomp
from sdk.runtime.cgroups import CgroupMode, detect_mode
from sdk.runtime.defaults import CAP_NUMBERS, DEFAULT_PATH, DEV_SYMLINKS
from sdk.runtime.spec import Mount, NamespaceMode, Process, RuntimeSpec
from sdk.runtime.users import resolve_user  # imported here: the child cannot after pivot

_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
CLOSE_RANGE_CLOEXEC = 4


@dataclass(frozen=True, slots=True)
class Stdio:
    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


@dataclass(slots=True)
class Started:
    pid: int
    pty_master: int | None = None


class _Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# ---- pieces shared with exec -------------------------------------------------------
def report_failure(err_fd: int, exc: BaseException, stage: str) -> None:
    if isinstance(exc, _Failure):
        kind, message = exc.kind, exc.message
    elif isinstance(exc, SdkError):
        kind, message = type(exc).__name__, str(exc)
    elif isinstance(exc, OSError):
        kind, message = "RuntimeFailure", f"{stage}: {exc.strerror or exc}"
        if exc.filename:
            message += f": {exc.filename}"
    else:
        kind, message = "RuntimeFailure", f"{stage}: {type(exc).__name__}: {exc}"
    try:
        os.write(err_fd, json.dumps({"kind": kind, "message": message}).encode())
    except OSError:
        pass


def raise_failure(data: bytes) -> None:
    try:
        info = json.loads(data)
    except ValueError:
        raise RuntimeFailure(f"container setup failed: {data[:200]!r}") from None
    kinds = {"CommandNotFound": CommandNotFound, "CommandNotExecutable": CommandNotExecutable}
    cls = kinds.get(info.get("kind"), RuntimeFailure)
    raise cls(info.get("message", "container setup failed"))


def read_all(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return data
        data += chunk


def lookup(executable: str, env: list[str]) -> str:
    """exec.LookPath against the container's PATH (we are already inside the root)."""
    if "/" in executable:
        if not os.path.exists(executable):
            raise _Failure("CommandNotFound", f"exec: \"{executable}\": stat {executable}: "
                                              "no such file or directory")
        return executable
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for d in path.split(":"):
        candidate = os.path.join(d or ".", executable)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise _Failure("CommandNotFound",
                   f"exec: \"{executable}\": executable file not found in $PATH")


def apply_process(process: Process, *, privileged: bool, stdio_fds: tuple[int, int, int],
                  tty_slave: int | None) -> tuple[str, list[str]]:
    """Everything after the root is in place: user, rlimits, caps, stdio. Returns the
    resolved executable path and env."""
    user = resolve_user(process.user, process.additional_groups)
    env = list(process.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    if not any(e.startswith("PATH=") for e in env):
        env.append(f"PATH={DEFAULT_PATH}")
    for limit in process.rlimits:
        number = getattr(resource, "RLIMIT_" + limit.name.upper(), None)
        if number is None:
            raise _Failure("RuntimeFailure", f"unknown ulimit {limit.name}")
        inf = resource.RLIM_INFINITY
        resource.setrlimit(number, (inf if limit.soft < 0 else limit.soft,
                                    inf if limit.hard < 0 else limit.hard))
    if process.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process.oom_score_adj))
    cwd = process.cwd or "/"
    if not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
    os.chdir(cwd)
    executable = lookup(process.args[0], env)
    if tty_slave is not None:
        os.setsid()
        fcntl.ioctl(tty_slave, TIOCSCTTY, 0)
        stdio_fds = (tty_slave, tty_slave, tty_slave)
    high = [os.dup(fd) for fd in stdio_fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
    caps = 0
    for name in process.capabilities:
        if name in CAP_NUMBERS:
            caps |= 1 << CAP_NUMBERS[name]
    caps &= _permitted()      # never ask for more than the engine itself holds
    for cap in range(linux.last_cap() + 1):
        if not caps & (1 << cap):
            try:
                linux.prctl(linux.PR_CAPBSET_DROP, cap)
            except OSError:
                pass
    if process.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if process.seccomp and not privileged and seccomp.supported():
        # while we still hold CAP_SYS_ADMIN, so no_new_privs is not required
        seccomp.install(seccomp.build(frozenset(process.capabilities)))
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    linux.capset(caps, caps, 0)
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    linux.close_range(3, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)
    return executable, env


def _permitted() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapPrm:"):
                return int(line.split()[1], 16)
    return (1 << 64) - 1


def do_exec(executable: str, args: tuple[str, ...], env: list[str]) -> None:
    try:
        os.execve(executable, list(args), dict(e.split("=", 1) if "=" in e else (e, "")
                                               for e in env))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM):
            raise _Failure("CommandNotExecutable",
                           f"exec: \"{args[0]}\": permission denied") from None
        if exc.errno == errno.ENOENT:
            raise _Failure("CommandNotFound", f"exec: \"{args[0]}\": no such file or "
                                              "directory") from None
        raise


# ---- the rootfs ----------------------------------------------------------------------
def _flags(names: tuple[str, ...]) -> int:
    out = 0
    for n in names:
        out |= linux.MOUNT_FLAGS.get(n, 0)
    return out


def _ensure_target(root_fd: int, rel: str, is_dir: bool) -> int:
    """O_PATH fd of ``rel`` inside the root, creating it (and parents) when missing."""
    try:
        return linux.openat2(root_fd, rel, os.O_PATH | os.O_CLOEXEC, _RESOLVE)
    except FileNotFoundError:
        pass
    parent_rel, name = os.path.split(rel)
    if parent_rel:
        pfd = _ensure_target(root_fd, parent_rel, True)
    else:
        pfd = os.dup(root_fd)
    try:
        if is_dir:
            os.mkdir(name, 0o755, dir_fd=pfd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=pfd))
    except FileExistsError:
        pass
    finally:
        os.close(pfd)
    return linux.openat2(root_fd, rel, os.O_PATH | os.O_CLOEXEC, _RESOLVE)


def _cgroup_mounts(root_fd: int, rel: str, fd_path: str) -> None:
    """/sys/fs/cgroup inside the cgroup namespace: cgroup2, or v1 hierarchies on tmpfs."""
    mode = detect_mode()
    flags = linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV
    if mode == CgroupMode.V2:
        linux.mount("cgroup", fd_path, "cgroup2", flags | linux.MS_RDONLY)
        return
    linux.mount("tmpfs", fd_path, "tmpfs", flags, "mode=755")
    fd = linux.openat2(root_fd, rel, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _RESOLVE)
    fd_path = f"/proc/self/fd/{fd}"    # the new tmpfs, not the directory under it
    for name in sorted(os.listdir("/sys/fs/cgroup")):
        host = f"/sys/fs/cgroup/{name}"
        if not os.path.ismount(host) or name == "unified":
            continue
        opts = "name=systemd" if name == "systemd" else name
        target = f"{fd_path}/{name}"
        os.mkdir(target)
        try:
            linux.mount("cgroup", target, "cgroup", flags | linux.MS_RDONLY, opts)
        except OSError:
            os.rmdir(target)
    linux.mount(None, fd_path, None, linux.MS_REMOUNT | linux.MS_RDONLY | flags, "mode=755")
    os.close(fd)


def _mount_one(root_fd: int, m: Mount) -> None:
    rel = m.target.lstrip("/")
    if m.kind == "bind":
        try:
            st = os.stat(m.source)
        except OSError as exc:
            raise _Failure("RuntimeFailure", f"mount {m.target}: source {m.source}: "
                                             f"{exc.strerror.lower()}") from None
        fd = _ensure_target(root_fd, rel, stat.S_ISDIR(st.st_mode))
    else:
        fd = _ensure_target(root_fd, rel, True)
    path = f"/proc/self/fd/{fd}"
    try:
        flags = _flags(m.flags)
        if m.kind == "bind":
            linux.mount(m.source, path, None, linux.MS_BIND |
                        (linux.MS_REC if m.recursive else 0))
            # the old fd still names what is *under* the new mount: reopen it
            os.close(fd)
            fd = linux.openat2(root_fd, rel, os.O_PATH | os.O_CLOEXEC, _RESOLVE)
            path = f"/proc/self/fd/{fd}"
            if m.readonly or flags:
                src = os.statvfs(m.source)
                keep = src.f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
                linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | flags | keep |
                            (linux.MS_RDONLY if m.readonly else 0))
            linux.mount(None, path, None, linux.PROPAGATION.get(m.propagation or "rprivate",
                                                                linux.MS_PRIVATE | linux.MS_REC))
        elif m.kind == "cgroup":
            _cgroup_mounts(root_fd, rel, path)
        else:
            data = ",".join(m.options) or None
            linux.mount(m.source or m.kind, path, m.kind,
                        flags | (linux.MS_RDONLY if m.readonly else 0), data)
    except OSError as exc:
        raise _Failure("RuntimeFailure", f"mount {m.target} ({m.kind}): "
                                         f"{exc.strerror}") from None
    finally:
        os.close(fd)


def _make_devices(root_fd: int, spec: RuntimeSpec) -> None:
    dev_fd = linux.openat2(root_fd, "dev", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _RESOLVE)
    try:
        devices = list(spec.devices)
        if spec.privileged:
            devices = _host_devices()
        for d in devices:
            rel = d.path[len("/dev/"):] if d.path.startswith("/dev/") else d.path.lstrip("/")
            if "/" in rel:
                _ensure_target(dev_fd, os.path.dirname(rel), True)
            kind = stat.S_IFCHR if d.kind == "c" else stat.S_IFBLK
            try:
                os.mknod(rel, kind | (d.mode & 0o7777), os.makedev(d.major, d.minor),
                         dir_fd=dev_fd)
            except FileExistsError:
                continue
            os.chown(rel, d.uid, d.gid, dir_fd=dev_fd, follow_symlinks=False)
            os.chmod(rel, d.mode & 0o7777, dir_fd=dev_fd)
        for target, name in DEV_SYMLINKS:
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                pass
    finally:
        os.close(dev_fd)


def _host_devices() -> list:
    from sdk.runtime.spec import Device

    out = []
    for dirpath, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if d not in ("pts", "shm", "mqueue")]
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                if full in ("/dev/console", "/dev/ptmx"):
                    continue
                out.append(Device(full, "c" if stat.S_ISCHR(st.st_mode) else "b",
                                  os.major(st.st_rdev), os.minor(st.st_rdev),
                                  stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    return out


def _open_pty(root_fd: int) -> tuple[int, int]:
    master = linux.openat2(root_fd, "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC,
                           _RESOLVE)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, slave


def _lo_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP,
                                                          b""))


def _mask_paths(spec: RuntimeSpec) -> None:
    for path in spec.masked_paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, None)
        else:
            null = os.stat("/dev/null")
            if not stat.S_ISCHR(null.st_mode) or null.st_rdev != os.makedev(1, 3):
                raise _Failure("RuntimeFailure", "/dev/null is not the null device")
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    for path in spec.readonly_paths:
        if not os.path.exists(path):
            continue
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY |
                    linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_REC)


def _child(spec: RuntimeSpec, stdio: Stdio, sync_r: int, err_w: int,
           pty_sock: socket.socket | None, parent: int, die_with_parent: bool) -> None:
    stage = "prepare"
    try:
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        if die_with_parent:
            # in a new pid namespace getppid() is 0; a parent that died before this
            # point is caught by the sync pipe below (EOF instead of "g")
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.read(sync_r, 1) != b"g":
            os._exit(125)
        os.close(sync_r)
        ns = spec.namespaces
        if ns.cgroup == NamespaceMode.NEW:
            stage = "cgroup namespace"
            linux.unshare(linux.CLONE_NEWCGROUP)
        if ns.net == NamespaceMode.JOIN:
            stage = "join network namespace"
            fd = os.open(ns.net_path, os.O_RDONLY | os.O_CLOEXEC)
            linux.setns(fd, linux.CLONE_NEWNET)
            os.close(fd)
        stage = "mount propagation"
        linux.mount(None, "/", None, linux.MS_SLAVE | linux.MS_REC)
        stage = "rootfs"
        rootfs = spec.rootfs
        if rootfs.is_overlay:
            os.chdir(rootfs.chdir or "/")
            data = (f"lowerdir={':'.join(rootfs.lowerdirs)},upperdir={rootfs.upperdir},"
                    f"workdir={rootfs.workdir}")
            if rootfs.mount_label:
                data += f",context=\"{rootfs.mount_label}\""
            linux.mount("overlay", rootfs.path, "overlay", 0, data)
        else:
            linux.mount(rootfs.path, rootfs.path, None, linux.MS_BIND | linux.MS_REC)
        root_fd = os.open(rootfs.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for m in spec.mounts:
            stage = f"mount {m.target}"
            _mount_one(root_fd, m)
        stage = "devices"
        _make_devices(root_fd, spec)
        master = slave = None
        if spec.process.terminal:
            stage = "terminal"
            master, slave = _open_pty(root_fd)
            console = _ensure_target(root_fd, "dev/console", False)
            linux.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{console}", None,
                        linux.MS_BIND)
            os.close(console)
            assert pty_sock is not None
            socket.send_fds(pty_sock, [b"m"], [master])
            os.close(master)
            pty_sock.close()
        stage = "pivot_root"
        os.chdir(rootfs.path)
        linux.pivot_root(".", ".")
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")
        os.close(root_fd)
        if rootfs.readonly:
            stage = "read-only rootfs"
            linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
        if ns.uts == NamespaceMode.NEW:
            stage = "hostname"
            if spec.hostname:
                linux.sethostname(spec.hostname)
            if spec.domainname:
                linux.setdomainname(spec.domainname)
        for key, value in spec.sysctls:
            stage = f"sysctl {key}"
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        if ns.net == NamespaceMode.NEW:
            stage = "loopback"
            _lo_up()
        stage = "masked paths"
        _mask_paths(spec)
        stage = "process"
        devnull = os.open("/dev/null", os.O_RDWR)
        fds = (stdio.stdin if stdio.stdin is not None else devnull,
               stdio.stdout if stdio.stdout is not None else devnull,
               stdio.stderr if stdio.stderr is not None else devnull)
        executable, env = apply_process(spec.process, privileged=spec.privileged,
                                        stdio_fds=fds, tty_slave=slave)
        stage = "exec"
        do_exec(executable, spec.process.args, env)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        report_failure(err_w, exc, stage)
    finally:
        os._exit(125)


def _ns_flags(spec: RuntimeSpec) -> int:
    ns = spec.namespaces
    flags = linux.CLONE_NEWNS
    if ns.pid == NamespaceMode.NEW:
        flags |= linux.CLONE_NEWPID
    if ns.uts == NamespaceMode.NEW:
        flags |= linux.CLONE_NEWUTS
    if ns.ipc == NamespaceMode.NEW:
        flags |= linux.CLONE_NEWIPC
    if ns.net == NamespaceMode.NEW:
        flags |= linux.CLONE_NEWNET
    return flags


def start(spec: RuntimeSpec, stdio: Stdio, *, on_created: Callable[[int], None] | None = None,
          die_with_parent: bool = True) -> Started:
    if not spec.process.args:
        raise RuntimeFailure("no command specified")
    sync_r, sync_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent_sock = child_sock = None
    if spec.process.terminal:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    try:
        pid = linux.clone(_ns_flags(spec))
    except OSError as exc:
        for fd in (sync_r, sync_w, err_r, err_w):
            os.close(fd)
        raise RuntimeFailure(f"creating namespaces: {exc.strerror}") from None
    if pid == 0:
        os.close(sync_w)
        os.close(err_r)
        if parent_sock is not None:
            parent_sock.close()
        _child(spec, stdio, sync_r, err_w, child_sock, parent, die_with_parent)
        os._exit(125)
    os.close(sync_r)
    os.close(err_w)
    if child_sock is not None:
        child_sock.close()
    try:
        if on_created is not None:
            on_created(pid)
        os.write(sync_w, b"g")
    except BaseException:
        os.close(sync_w)
        os.close(err_r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if parent_sock is not None:
            parent_sock.close()
        raise
    os.close(sync_w)
    data = read_all(err_r)
    os.close(err_r)
    master = None
    if parent_sock is not None:
        if not data:
            _msg, fds, _flags, _addr = socket.recv_fds(parent_sock, 16, 1)
            master = fds[0] if fds else None
        parent_sock.close()
    if data:
        os.waitpid(pid, 0)
        raise_failure(data)
    return Started(pid, master)
