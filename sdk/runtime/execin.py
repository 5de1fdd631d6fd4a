"""Run a process inside a running container: join its namespaces, then exec.

The caller points its own *pid_for_children* at the container's pid namespace (setns
on a pidfd of the target, so a recycled pid cannot send us elsewhere), forks, and
switches back: the new process is a direct child of the caller (real exit status from
``os.waitpid``) living in the container's pid namespace.  After the caller's
``on_created`` (cgroup placement) the child joins ipc, uts, net, cgroup and mnt in one
setns call on the same pidfd (the mount namespace brings the container's root), then
``spawn_process.finalize`` drops privileges and execs the verified file by fd, since
the container's own processes are running and could race a path-based exec.

Reaping: when the container's init dies the kernel kills the exec'd process, and keeps
init itself unreapable (zap_pid_ns_processes) until every process of its pid namespace
has been reaped.  Exec'd processes are the caller's children, so a caller that blocks in
``waitpid(init)`` while one of them is an unreaped zombie waits forever: reap exec'd
children as they exit (or with ``waitpid(-1)``) before or while waiting for init.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
from collections.abc import Callable

from sdk.errors import ContainerNotFound, RuntimeFailure
from sdk.runtime import linux
from sdk.runtime.spawn import Started, Stdio, granted_caps, handshake, seccomp_filter
from sdk.runtime.spawn_errors import os_text, report
from sdk.runtime.spawn_process import (
    ProcessSetup,
    apply_limits,
    block_signals,
    check_parent,
    finalize,
    restore_signals,
)
from sdk.runtime.spawn_tty import open_pty, send_master
from sdk.runtime.spec import Process

JOIN_FLAGS = (linux.CLONE_NEWIPC | linux.CLONE_NEWUTS | linux.CLONE_NEWNET |
              linux.CLONE_NEWCGROUP | linux.CLONE_NEWNS)


def _child(target: int, process: Process, stdio: Stdio, setup: ProcessSetup, sync_r: int,
           tty_sock: socket.socket | None) -> None:
    stage = "init"
    try:
        gc.disable()
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        if setup.parent_pidfd is not None:
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.read(sync_r, 1) != b"g":
            os._exit(125)
        os.close(sync_r)
        check_parent(setup.parent_pidfd)
        os.umask(0o022)
        stage = "limits"
        apply_limits(process)
        if not process.terminal and None in (stdio.stdin, stdio.stdout, stdio.stderr):
            setup.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        stage = "join namespaces"
        linux.setns(target, JOIN_FLAGS)      # after on_created: cgroupns root is right
        os.close(target)
        if process.terminal:
            stage = "terminal"
            root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            master, setup.tty_slave = open_pty(root)
            os.close(root)
            assert tty_sock is not None
            send_master(tty_sock, master)
            os.close(master)
            tty_sock.close()
        stage = "process"
        finalize(setup)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        report(setup.err_fd, exc, stage)
    finally:
        os._exit(125)


def _pidfd(target_pid: int) -> int:
    try:
        return os.pidfd_open(target_pid)
    except ProcessLookupError:
        raise ContainerNotFound(f"container process {target_pid} is not running") from None
    except OSError as exc:
        raise RuntimeFailure(f"exec: opening process {target_pid}: {os_text(exc)}") from None


def _fork_into(target: int) -> int:
    """fork() with the child in ``target``'s pid namespace; the caller's is restored."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            linux.setns(target, linux.CLONE_NEWPID)
        except OSError as exc:
            raise RuntimeFailure(f"exec: joining the pid namespace: {os_text(exc)}") from None
        try:
            pid = os.fork()
        except OSError as exc:
            linux.setns(own, linux.CLONE_NEWPID)
            raise RuntimeFailure(f"exec: fork into the container: {os_text(exc)} (is the "
                                 "container's init gone?)") from None
        if pid != 0:
            linux.setns(own, linux.CLONE_NEWPID)
        return pid
    finally:
        os.close(own)


def exec_in(target_pid: int, process: Process, stdio: Stdio, *,
            on_created: Callable[[int], None] | None = None, privileged: bool = False,
            die_with_parent: bool = True) -> Started:
    """Start ``process`` in the container whose init is ``target_pid``.  Raises
    CommandNotFound (127), CommandNotExecutable (126), RuntimeFailure (125) or
    ContainerNotFound when the target is gone; nothing is left running then."""
    if not process.args:
        raise RuntimeFailure("no command specified")
    caps = granted_caps(process, privileged)
    filt = seccomp_filter(process, privileged)
    target = _pidfd(target_pid)
    caller = os.getpid()
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent_sock = child_sock = None
    pidfd = None
    try:
        if process.terminal:
            parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if die_with_parent:
            pidfd = os.pidfd_open(os.getpid())
        mask = block_signals()
        try:
            pid = _fork_into(target)
        finally:
            if os.getpid() == caller:
                restore_signals(mask)
    except BaseException:
        for fd in (sync_r, sync_w, err_r, err_w, target):
            os.close(fd)
        for sock in (parent_sock, child_sock):
            if sock is not None:
                sock.close()
        if pidfd is not None:
            os.close(pidfd)
        raise
    if pid == 0:
        try:
            os.close(sync_w)
            os.close(err_r)
            if parent_sock is not None:
                parent_sock.close()
            setup = ProcessSetup(process=process, caps=caps, err_fd=err_w,
                                 stdio=(stdio.stdin, stdio.stdout, stdio.stderr),
                                 seccomp_filter=filt, parent_pidfd=pidfd, create_cwd=False,
                                 exec_by_fd=True)
            _child(target, process, stdio, setup, sync_r, child_sock)
        finally:
            os._exit(125)
    for fd in (sync_r, err_w, target):
        os.close(fd)
    if child_sock is not None:
        child_sock.close()
    if pidfd is not None:
        os.close(pidfd)
    return handshake(pid, sync_w, err_r, parent_sock, on_created)
