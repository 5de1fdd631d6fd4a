"""Client side of the warm CLI path: hand this command to ``berth daemon``.

``berth`` connects to the daemon's CLI socket and sends its argv, working directory,
a few environment variables and its stdin/stdout/stderr file descriptors
(SCM_RIGHTS).  A process forked from the daemon's warm, single-threaded helper runs
the very same command code on those descriptors, so output, terminals and exit codes
are exactly those of the embedded CLI, without paying for interpreter start-up and
imports.  Signals the terminal sends to this process are forwarded.

Importing this module costs nothing (``os`` and ``sys``): every command asks
``target()``; the socket machinery is imported only when a daemon will run it.
"""

from __future__ import annotations

import os
import sys

DEFAULT_CLI_SOCKET = "/run/berth-cli.sock"
# the environment a command may depend on; the data root is always the daemon's
PASSED_ENV = ("HOME", "TERM", "COLUMNS", "LINES", "NO_COLOR", "DOCKER_CONFIG",
              "BERTH_AUTH_CONFIG", "TZ", "LANG", "LC_ALL", "USER")
# signal names (not numbers): the module stays importable at no cost for target()
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH", "SIGUSR1",
                     "SIGUSR2")


def cli_socket_for(api_socket: str) -> str:
    """``/run/berth.sock`` -> ``/run/berth-cli.sock`` (beside the Engine API socket)."""
    head, _, tail = api_socket.rpartition("/")
    stem = tail[:-5] if tail.endswith(".sock") else tail
    return f"{head}/{stem}-cli.sock"


def target() -> tuple[str, bool] | None:
    """(socket path, explicit?) to forward to, or None to run embedded."""
    host = os.environ.get("BERTH_HOST")
    if host:
        if host.startswith("unix://"):
            return cli_socket_for(host[7:]), True
        return None
    if os.environ.get("BERTH_ROOT") or os.environ.get("BERTH_CONFIG"):
        return None      # an explicit data root: the embedded engine serves it
    if os.path.exists(DEFAULT_CLI_SOCKET):
        return DEFAULT_CLI_SOCKET, False
    return None


def forward(argv: list[str]) -> int | None:
    """Run ``argv`` in the daemon; None when no daemon answers (run embedded)."""
    where = target()
    if where is None:
        return None
    import signal
    import socket
    import struct

    path, explicit = where
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if explicit:
            print(f"berth: cannot reach the daemon at {path}: {exc.strerror}",
                  file=sys.stderr)
            return 125
        return None
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    import json

    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    payload = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
    fds = [0, 1, 2]
    socket.send_fds(sock, [struct.pack(">I", len(payload)) + payload], fds)

    def relay(signum: int, _frame: object) -> None:
        try:
            sock.sendall(bytes([signum]))
        except OSError:
            pass

    for name in FORWARDED_SIGNALS:
        signal.signal(getattr(signal, name), relay)
    data = b""
    while len(data) < 4:
        try:
            chunk = sock.recv(4 - len(data))
        except InterruptedError:
            continue
        if not chunk:
            print("berth: the daemon ended the command without an exit status",
                  file=sys.stderr)
            return 125
        data += chunk
    return int(struct.unpack(">i", data)[0])
