"""Start a container's init process: one clone, a sync, the root, privileges, exec.

The caller (single-threaded) clones a child straight into new pid/mnt/uts/ipc/net
namespaces, so the returned pid is its *direct* child and ``os.waitpid`` gives the real
exit status.  The child blocks on a pipe until the caller has run ``on_created(pid)``
(cgroups, network), then unshares its cgroup namespace, builds its root
(``rootfs``), pivots, and finishes in ``spawn_process.finalize``.  Failures before exec
come back as JSON over a close-on-exec pipe (``spawn_errors``); EOF means exec worked.

Everything the child needs is imported here, at module import: after pivot_root the
host's sys.path is gone, so a lazy import in the child would fail.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import select
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from sdk._internal import trace
from sdk.errors import RuntimeFailure
from sdk.runtime import caps as capsmod
from sdk.runtime import linux, rootfs, seccomp
from sdk.runtime.rootfs_cgroup import CgroupLayout, host_layout
from sdk.runtime.rootfs_paths import glob_in_root
from sdk.runtime.spawn_errors import SetupError, os_text, read_report, report, to_error
from sdk.runtime.spawn_process import (
    ProcessSetup,
    apply_limits,
    block_signals,
    check_parent,
    finalize,
    restore_signals,
)
from sdk.runtime.spawn_tty import bind_console, open_pty, receive_master, send_master
from sdk.runtime.spec import Device, Mount, NamespaceMode, Process, RuntimeSpec

SETUP_TIMEOUT = 60.0          # seconds from "go" to exec before the child is killed
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


@dataclass(frozen=True, slots=True)
class Stdio:
    stdin: int | None = None    # caller's fd, becomes fd 0 in the container; None -> /dev/null
    stdout: int | None = None   # None -> /dev/null
    stderr: int | None = None


@dataclass(slots=True)
class Started:
    pid: int                       # host pid of the container's init (pid 1 inside its pid ns)
    pty_master: int | None = None  # master of the container's controlling pty (terminal mode);
                                   # the caller owns and closes it


# ---- parent-side preparation ---------------------------------------------------------
def clone_flags(spec: RuntimeSpec) -> int:
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


def granted_caps(process: Process, privileged: bool) -> int:
    try:
        return _granted(frozenset(process.capabilities), privileged)
    except ValueError as exc:
        raise RuntimeFailure(f"capabilities: {exc}") from None


@lru_cache(maxsize=64)
def _granted(names: frozenset[str], privileged: bool) -> int:
    return capsmod.grantable(names, privileged=privileged)


def seccomp_filter(process: Process, privileged: bool) -> bytes | None:
    """Compiled in the caller (and cached there), so a start pays nothing for it."""
    if privileged or not getattr(process, "seccomp", False):
        return None
    return _seccomp_filter(frozenset(process.capabilities))


@lru_cache(maxsize=64)
def _seccomp_filter(names: frozenset[str]) -> bytes | None:
    return seccomp.build(names) if seccomp.supported() else None


def open_ns(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"joining the {what} namespace {path}: {os_text(exc)}") from None


@lru_cache(maxsize=8)
def expand_globs(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Wildcard paths (/sys/devices/system/cpu/cpu*/thermal_throttle) expanded once per
    process against the host's sysfs, which shows the same CPUs as the container's:
    listing sysfs in every child would cost ~0.4 ms per start."""
    if not any(ch in p for p in paths for ch in "*?["):
        return paths
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return tuple(x for p in paths for x in glob_in_root(root, p))
    finally:
        os.close(root)


@dataclass(slots=True)
class _Plan:
    """Everything computed before the clone (errors surface in the caller, and the
    work is not repeated per child)."""

    flags: int
    caps: int
    seccomp_filter: bytes | None
    cgroups: CgroupLayout | None
    devices: tuple[Device, ...]
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    join: dict[str, int] = field(default_factory=dict)   # "net"/"ipc"/"pid" -> ns fd
    # mounts made before / after the child is in its cgroups (see handshake's early_go)
    early_mounts: tuple[Mount, ...] = ()
    late_mounts: tuple[Mount, ...] = ()

    @property
    def early_go(self) -> bool:
        return bool(self.early_mounts)

    def close(self) -> None:
        for fd in self.join.values():
            os.close(fd)
        self.join.clear()


def split_mounts(mounts: tuple[Mount, ...]) -> tuple[tuple[Mount, ...], tuple[Mount, ...]]:
    """(mounts that need no cgroup, the cgroup mounts): the first go up while the caller
    joins the child to its cgroups.  ((), mounts) (all after joining, as before) when a
    mount lies under a cgroup mount, whose order must then be kept."""
    late = tuple(m for m in mounts if m.kind == "cgroup")
    early = tuple(m for m in mounts if m.kind != "cgroup")
    tops = [m.target.rstrip("/") + "/" for m in late]
    if any(m.target.startswith(top) for m in early for top in tops):
        return (), mounts
    return early, late


def _prepare(spec: RuntimeSpec) -> _Plan:
    ns = spec.namespaces
    privileged = spec.privileged
    wants_cgroup = any(m.kind == "cgroup" for m in spec.mounts)
    devices = spec.devices
    if privileged:
        seen = {d.path for d in spec.devices}
        devices = spec.devices + tuple(d for d in rootfs.host_devices() if d.path not in seen)
    plan = _Plan(flags=clone_flags(spec), caps=granted_caps(spec.process, privileged),
                 seccomp_filter=seccomp_filter(spec.process, privileged),
                 cgroups=host_layout() if wants_cgroup else None, devices=devices)
    if not privileged:
        plan.masked_paths = expand_globs(spec.masked_paths)
        plan.readonly_paths = expand_globs(spec.readonly_paths)
    plan.early_mounts, plan.late_mounts = split_mounts(spec.mounts)
    try:
        for name, mode, path in (("net", ns.net, ns.net_path), ("ipc", ns.ipc, ns.ipc_path),
                                 ("pid", ns.pid, ns.pid_path)):
            if mode == NamespaceMode.JOIN:
                if not path:
                    raise RuntimeFailure(f"joining the {name} namespace: no path given")
                plan.join[name] = open_ns(path, name)
    except BaseException:
        plan.close()
        raise
    return plan


def _clone(flags: int, pid_ns: int | None) -> int:
    """clone(), inside ``pid_ns`` when given (pid_for_children, restored afterwards)."""
    if pid_ns is None:
        return linux.clone(flags)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(pid_ns, linux.CLONE_NEWPID)
        try:
            pid = linux.clone(flags)
        except BaseException:
            linux.setns(own, linux.CLONE_NEWPID)
            raise
        if pid != 0:            # the child must not touch namespaces here
            linux.setns(own, linux.CLONE_NEWPID)
        return pid
    finally:
        os.close(own)


# ---- the child ------------------------------------------------------------------------
def _lo_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP,
                                                          b""))


def _sysctl(key: str, value: str) -> None:
    """Written through the caller's procfs: /proc/sys/{net,kernel(ipc,uts)} entries
    resolve against the *writer's* namespaces, i.e. the container's."""
    parts = key.replace(".", "/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise SetupError(f"sysctl {key}: invalid name")
    try:
        fd = linux.openat2(-100, "/proc/sys/" + "/".join(parts), os.O_WRONLY | os.O_CLOEXEC,
                           linux.RESOLVE_NO_SYMLINKS)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise SetupError(f"sysctl {key}={value}: {os_text(exc)}", err=exc.errno or 0) from None


@dataclass(slots=True)
class _ChildFds:
    sync_r: int
    err_w: int
    tty_sock: socket.socket | None
    parent_pidfd: int | None


def _child(spec: RuntimeSpec, stdio: Stdio, plan: _Plan, fds: _ChildFds) -> None:
    """The container's init until execve.  Never returns: always ``os._exit``."""
    stage = "init"
    try:
        gc.disable()                  # no finalizer of the caller's objects may run here
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        if fds.parent_pidfd is not None:
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        ns = spec.namespaces
        process = spec.process
        if ns.net == NamespaceMode.NEW:
            # ~0.3 ms of kernel work that needs no cgroup: overlap it with on_created
            stage = "loopback"
            _lo_up()
        if os.read(fds.sync_r, 1) != b"g":   # the caller failed or died: just go away
            os._exit(125)
        if not plan.early_go:
            os.close(fds.sync_r)
        check_parent(fds.parent_pidfd)
        os.umask(0o022)

        stage = "namespaces"
        for name, flag in (("net", linux.CLONE_NEWNET), ("ipc", linux.CLONE_NEWIPC)):
            if name in plan.join:
                stage = f"join {name} namespace"
                linux.setns(plan.join[name], flag)
        if ns.cgroup == NamespaceMode.NEW and not plan.early_go:
            stage = "cgroup namespace"
            linux.unshare(linux.CLONE_NEWCGROUP)
        if ns.uts == NamespaceMode.NEW:
            stage = "hostname"
            if spec.hostname:
                linux.sethostname(spec.hostname)
            if spec.domainname:
                linux.setdomainname(spec.domainname)
        stage = "limits"
        apply_limits(process)
        for key, value in spec.sysctls:
            stage = f"sysctl {key}"
            _sysctl(key, value)
        devnull = -1
        if not process.terminal and None in (stdio.stdin, stdio.stdout, stdio.stderr):
            devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)

        stage = "rootfs"
        rootfs.make_rslave()
        root_fd = rootfs.mount_rootfs(spec.rootfs)
        mounter = rootfs.Mounter(root_fd, privileged=spec.privileged, cgroups=plan.cgroups,
                                 cgroupns=ns.cgroup == NamespaceMode.NEW)
        # with early_go, everything up to pivot_root but the cgroup mounts is done while
        # the caller joins us to our cgroups; none of it depends on them (device nodes
        # are made, not opened; /proc and /sys paths are masked by bind mounts)
        mounter.mount_all(plan.early_mounts if plan.early_go else spec.mounts)
        stage = "devices"
        rootfs.create_devices(root_fd, plan.devices)
        rootfs.create_dev_symlinks(root_fd)
        slave = None
        if process.terminal:
            stage = "terminal"
            master, slave = open_pty(root_fd)
            bind_console(root_fd, slave)
            assert fds.tty_sock is not None
            send_master(fds.tty_sock, master)
            os.close(master)
            fds.tty_sock.close()
        if not spec.privileged:
            stage = "read-only paths"
            rootfs.readonly_paths(root_fd, plan.readonly_paths)
            stage = "masked paths"
            rootfs.mask_paths(root_fd, plan.masked_paths)
        stage = "working directory"
        rootfs.create_workdir(root_fd, process.cwd)   # before a read-only remount
        if plan.early_go:
            stage = "joining the cgroups"
            if os.read(fds.sync_r, 1) != b"c":   # the caller could not: go away
                os._exit(125)
            os.close(fds.sync_r)
            if ns.cgroup == NamespaceMode.NEW:   # rooted at the cgroups we are now in
                stage = "cgroup namespace"
                linux.unshare(linux.CLONE_NEWCGROUP)
            stage = "rootfs"
            mounter.mount_all(plan.late_mounts)
        stage = "pivot_root"
        rootfs.pivot(root_fd)
        os.close(root_fd)
        if spec.rootfs.readonly:
            stage = "read-only rootfs"
            rootfs.remount_root_readonly()

        stage = "process"
        finalize(ProcessSetup(
            process=process, caps=plan.caps, err_fd=fds.err_w,
            stdio=(stdio.stdin, stdio.stdout, stdio.stderr), devnull=devnull,
            tty_slave=slave, seccomp_filter=plan.seccomp_filter,
            parent_pidfd=fds.parent_pidfd, create_cwd=True,
            # with a shared pid namespace other container processes could race a
            # path-based exec; alone in a new one, exec by path (docker's comm/argv)
            exec_by_fd=ns.pid != NamespaceMode.NEW))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        report(fds.err_w, exc, stage)
    finally:
        os._exit(125)


# ---- the caller's side ------------------------------------------------------------------
def wait_report(err_r: int, pid: int, timeout: float = SETUP_TIMEOUT) -> bytes:
    """Block until the child execs (EOF) or reports; kill it after ``timeout``."""
    poller = select.poll()
    poller.register(err_r, select.POLLIN | select.POLLHUP)
    if not poller.poll(timeout * 1000):
        reap(pid)
        raise RuntimeFailure(f"container setup did not finish within {timeout:g}s")
    return read_report(err_r)


def reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def handshake(pid: int, sync_w: int, err_r: int, tty_sock: socket.socket | None,
              on_created: Callable[[int], None] | None, *, early_go: bool = False
              ) -> Started:
    """The caller's half of the protocol, shared with exec_in: on_created, "go",
    then the child's report (or EOF = exec done) and the pty master.

    ``early_go``: "g" goes first, so the child mounts its rootfs while ``on_created``
    joins it to its cgroups (the first cgroup v1 migration waits for an RCU grace
    period, ~10 ms); "c" then tells it it is in them, and only then does it enter its
    cgroup namespace, mount /sys/fs/cgroup and go on towards exec."""
    try:
        try:
            if early_go:
                os.write(sync_w, b"g")
            if on_created is not None:
                on_created(pid)
            trace.mark("cgroup join + network attach")
            os.write(sync_w, b"c" if early_go else b"g")
        except BaseException:
            os.close(sync_w)
            sync_w = -1
            # a child that failed first explains why better than our ESRCH does
            data = wait_report(err_r, pid) if early_go else b""
            reap(pid)
            if data:
                raise to_error(data) from None
            raise
        finally:
            if sync_w >= 0:
                os.close(sync_w)
        data = wait_report(err_r, pid)
        trace.mark("container setup until exec")
        master = receive_master(tty_sock) if tty_sock is not None else None
        if data:
            if master is not None:
                os.close(master)
            reap(pid)
            raise to_error(data)
        if tty_sock is not None and master is None:
            reap(pid)
            raise RuntimeFailure("terminal: the container did not hand over its pty")
        return Started(pid, master)
    finally:
        os.close(err_r)
        if tty_sock is not None:
            tty_sock.close()


def start(spec: RuntimeSpec, stdio: Stdio, *, on_created: Callable[[int], None] | None = None,
          die_with_parent: bool = True) -> Started:
    """Start ``spec``'s process; see the module docstring.  Raises CommandNotFound (127),
    CommandNotExecutable (126) or RuntimeFailure (125); nothing is left running then."""
    if not spec.process.args:
        raise RuntimeFailure("no command specified")
    plan = _prepare(spec)
    trace.mark("runtime plan")
    caller = os.getpid()
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent_sock = child_sock = None
    pidfd = None
    try:
        if spec.process.terminal:
            parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if die_with_parent:
            pidfd = os.pidfd_open(os.getpid())
        mask = block_signals()
        try:
            pid = _clone(plan.flags, plan.join.get("pid"))
        finally:
            if os.getpid() == caller:
                restore_signals(mask)
    except BaseException as exc:
        for fd in (sync_r, sync_w, err_r, err_w):
            os.close(fd)
        for sock in (parent_sock, child_sock):
            if sock is not None:
                sock.close()
        if pidfd is not None:
            os.close(pidfd)
        plan.close()
        if isinstance(exc, OSError):
            what = "creating namespaces" if exc.errno != errno.ENOMEM else \
                "creating namespaces (is the pid namespace to join dead?)"
            raise RuntimeFailure(f"{what}: {os_text(exc)}") from None
        raise
    if pid == 0:
        try:
            os.close(sync_w)
            os.close(err_r)
            if parent_sock is not None:
                parent_sock.close()
            _child(spec, stdio, plan, _ChildFds(sync_r, err_w, child_sock, pidfd))
        finally:
            os._exit(125)
    os.close(sync_r)
    os.close(err_w)
    if child_sock is not None:
        child_sock.close()
    if pidfd is not None:
        os.close(pidfd)
    plan.close()
    trace.mark("clone")
    return handshake(pid, sync_w, err_r, parent_sock, on_created, early_go=plan.early_go)


__all__ = ["Stdio", "Started", "start", "handshake", "reap"]
