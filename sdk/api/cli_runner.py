"""Daemon side of the warm CLI path (see :mod:`sdk.api.forward`).

Runs inside the daemon's single-threaded helper: each connection is served by a
forked child, so a long command (``logs -f``, ``run -it``) never blocks the helper,
and the child starts with every module already imported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading

MAX_REQUEST = 1 << 20


def serve_one(listener: socket.socket, closers: list[socket.socket],
              root: str | None, config: str | None) -> bool:
    """Accept one connection and fork its runner; the helper returns at once, with
    whether the command starts a container (see ``warm_cgroups``)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return False
    starts = _starts_a_container(conn)
    pid = os.fork()
    if pid != 0:
        conn.close()
        return starts
    code = 125
    try:
        for s in closers:
            s.close()
        if root:
            os.environ["BERTH_ROOT"] = root
        if config:
            os.environ["BERTH_CONFIG"] = config
        code = _run(conn)
    finally:
        for stream in (sys.stdout, sys.stderr):   # all output first, then the exit code:
            try:                                  # the client exits when it has it
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            conn.sendall(struct.pack(">i", code))
        except OSError:
            pass
        os._exit(code & 0xFF)


# commands whose runner joins a new process to a container's cgroups
STARTING = (b'"run"', b'"start"', b'"restart"', b'"exec"')


def _starts_a_container(conn: socket.socket) -> bool:
    """From the request's first bytes, peeked (the runner still reads all of it); the
    client sends them right after connecting, so this waits a few ms at most."""
    import select

    try:
        if not select.select([conn], [], [], 0.02)[0]:
            return False
        head = conn.recv(48, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    verb = head[4:].partition(b"[")[2].partition(b",")[0].partition(b"]")[0]
    return verb in STARTING


_PROCS_FILE: list[str | None] = []
# how long after forking a container-starting command the helper keeps the cgroup lock
# warm: past the runner's engine, record, cgroup creation and clone (~25 ms)
WARM_SECONDS = 0.06
WARM_EVERY = 0.004


def warm_cgroups() -> None:
    """One no-op migration of the helper (see sdk.runtime.cgroup_warmup); repeated every
    few ms while a runner heads for its container's first cgroup join."""
    from sdk.runtime import cgroup_warmup

    if not _PROCS_FILE:
        _PROCS_FILE.append(cgroup_warmup.own_procs_file())
    cgroup_warmup.warm_up(_PROCS_FILE[0])


def reap() -> None:
    """Collect finished runners (the helper forks them and never waits for one)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _recv_request(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST + 4, 3)
    if len(msg) < 4:
        raise ValueError("short request")
    size = struct.unpack(">I", msg[:4])[0]
    body = msg[4:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    return json.loads(body), fds


def _run(conn: socket.socket) -> int:
    request, fds = _recv_request(conn)
    if len(fds) != 3:
        return 125
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # Python's own stdio objects wrap fds 0-2 and now see the client's files
    sys.stdin = open(0, closefd=False)   # noqa: SIM115 - lives as long as the process
    sys.stdout = open(1, "w", closefd=False)   # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)   # noqa: SIM115
    for key, value in dict(request.get("env") or {}).items():
        os.environ[str(key)] = str(value)
    try:
        os.chdir(str(request.get("cwd") or "/"))
    except OSError:
        os.chdir("/")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGWINCH, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=_relay_signals, args=(conn,), daemon=True).start()
    from sdk.cli import common
    from sdk.cli.main import main

    common.SERVED_BY_DAEMON = True
    argv = [str(a) for a in request.get("argv") or []]   # type: ignore[union-attr]
    return int(main(argv))


def _relay_signals(conn: socket.socket) -> None:
    """Bytes from the client are signal numbers it received: deliver them here."""
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            try:
                os.kill(os.getpid(), signum)
            except (OSError, ValueError):
                pass
