"""Run a process inside a running container: join its namespaces, then exec.

The caller switches its *pid_for_children* namespace to the container's before
forking, so the new process is a direct child (the caller waits for it and gets its
real exit status) that lives in the container's pid namespace, then switches back.
The child joins ipc, uts, net, cgroup and finally the mount namespace (which also
moves it to the container's root) before it drops privileges and execs.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable

from sdk.errors import ContainerNotFound, RuntimeFailure
from sdk.runtime import linux
from sdk.runtime.spawn import (
    Started,
    Stdio,
    _open_pty,
    apply_process,
    do_exec,
    raise_failure,
    read_all,
    report_failure,
)
from sdk.runtime.spec import Process

NS_ORDER = (("ipc", linux.CLONE_NEWIPC), ("uts", linux.CLONE_NEWUTS),
            ("net", linux.CLONE_NEWNET), ("cgroup", linux.CLONE_NEWCGROUP),
            ("mnt", linux.CLONE_NEWNS))


def _child(fds: dict[str, int], process: Process, stdio: Stdio, sync_r: int, err_w: int,
           sock: socket.socket | None, privileged: bool, parent: int,
           die_with_parent: bool) -> None:
    stage = "prepare"
    try:
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        if die_with_parent:   # getppid() is 0 from inside the container's pid namespace
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.read(sync_r, 1) != b"g":
            os._exit(125)
        for name, flag in NS_ORDER:
            stage = f"join {name} namespace"
            if name in fds:
                linux.setns(fds[name], flag)
        os.chdir("/")
        slave = None
        if process.terminal:
            stage = "terminal"
            root = os.open("/", os.O_PATH | os.O_DIRECTORY)
            master, slave = _open_pty(root)
            os.close(root)
            assert sock is not None
            socket.send_fds(sock, [b"m"], [master])
            os.close(master)
        stage = "process"
        devnull = os.open("/dev/null", os.O_RDWR)
        stdio_fds = (stdio.stdin if stdio.stdin is not None else devnull,
                     stdio.stdout if stdio.stdout is not None else devnull,
                     stdio.stderr if stdio.stderr is not None else devnull)
        executable, env = apply_process(process, privileged=privileged, stdio_fds=stdio_fds,
                                        tty_slave=slave)
        stage = "exec"
        do_exec(executable, process.args, env)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        report_failure(err_w, exc, stage)
    finally:
        os._exit(125)


def exec_in(target_pid: int, process: Process, stdio: Stdio, *,
            on_created: Callable[[int], None] | None = None, privileged: bool = False,
            die_with_parent: bool = True) -> Started:
    if not process.args:
        raise RuntimeFailure("no command specified")
    fds: dict[str, int] = {}
    try:
        for name, _ in (*NS_ORDER, ("pid", 0)):
            path = f"/proc/{target_pid}/ns/{name}"
            if os.readlink(path) != os.readlink(f"/proc/self/ns/{name}") or name == "mnt":
                fds[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        for fd in fds.values():
            os.close(fd)
        raise ContainerNotFound(f"container process {target_pid} is gone") from None
    sync_r, sync_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    psock = csock = None
    if process.terminal:
        psock, csock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    pid_fd = fds.pop("pid", None)
    try:
        if pid_fd is not None:
            linux.setns(pid_fd, linux.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os.close(sync_w)
            os.close(err_r)
            _child(fds, process, stdio, sync_r, err_w, csock, privileged, parent,
                   die_with_parent)
    finally:
        if pid_fd is not None:
            try:
                if os.getpid() == parent:
                    linux.setns(own_pid_ns, linux.CLONE_NEWPID)
            finally:
                os.close(pid_fd)
    os.close(own_pid_ns)
    for fd in fds.values():
        os.close(fd)
    os.close(sync_r)
    os.close(err_w)
    if csock is not None:
        csock.close()
    try:
        if on_created is not None:
            on_created(pid)
        os.write(sync_w, b"g")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(sync_w)
    data = read_all(err_r)
    os.close(err_r)
    master = None
    if psock is not None:
        if not data:
            _m, got, _f, _a = socket.recv_fds(psock, 16, 1)
            master = got[0] if got else None
        psock.close()
    if data:
        os.waitpid(pid, 0)
        raise_failure(data)
    return Started(pid, master)
