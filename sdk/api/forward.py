"""Client side of the warm CLI path: hand this command to ``berth daemon``.

``berth`` connects to the daemon's CLI socket and sends its argv, working directory,
a few environment variables and its stdin/stdout/stderr file descriptors
(SCM_RIGHTS).  A process forked from the daemon's warm, single-threaded helper runs
the very same command code on those descriptors, so output, terminals and exit codes
are exactly those of the embedded CLI, without paying for interpreter start-up and
imports.  Signals the terminal sends to this process are forwarded.  A ``tcp://``
BERTH_HOST (or DOCKER_HOST) goes through :mod:`sdk.api.forward_tcp` instead: TLS, and
the streams relayed over the connection, since descriptors cannot cross TCP.

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
# the tcp path (forward_tcp <-> cli_relay): client frames are kind (1 byte) | size (4);
# the daemon answers in docker's multiplexed framing, the exit status on stream 3
STDIN_FRAME, SIGNAL_FRAME, EXIT_STREAM = 0, 1, 3
# what a remote command may see of the client's environment: no paths, which would
# name files of another machine
RELAYED_ENV = ("TERM", "COLUMNS", "LINES", "NO_COLOR", "TZ", "LANG", "LC_ALL")
# signal names (not numbers): the module stays importable at no cost for target()
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH", "SIGUSR1",
                     "SIGUSR2")


def cli_socket_for(api_socket: str) -> str:
    """``/run/berth.sock`` -> ``/run/berth-cli.sock`` (beside the Engine API socket)."""
    head, _, tail = api_socket.rpartition("/")
    stem = tail[:-5] if tail.endswith(".sock") else tail
    return f"{head}/{stem}-cli.sock"


def target() -> tuple[str, bool] | None:
    """(socket path or tcp:// URL, explicit?) to forward to, or None to run embedded."""
    host = os.environ.get("BERTH_HOST")
    if host:
        if host.startswith("unix://"):
            return cli_socket_for(host[7:]), True
        if host.startswith("tcp://"):
            return host, True
        return None
    if os.environ.get("BERTH_ROOT") or os.environ.get("BERTH_CONFIG"):
        return None      # an explicit data root: the embedded engine serves it
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("tcp://"):
        # like the docker CLI (a unix DOCKER_HOST is docker's own socket: ignored)
        return host, True
    if os.path.exists(DEFAULT_CLI_SOCKET):
        return DEFAULT_CLI_SOCKET, False
    return None


def _json_string(text: str) -> str:
    """``text`` as a JSON string literal, escaped as ``json.dumps`` does (ensure_ascii).

    Written out because ``import json`` (and the ``re`` it pulls in) would be most of
    this client's import time."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:              # astral: a UTF-16 surrogate pair
            code -= 0x10000
            out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:                            # controls, non-ASCII, lone surrogates
            out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def encode_request(argv: list[str], cwd: str, env: dict[str, str]) -> bytes:
    """The request the daemon's CLI runner decodes with ``json.loads``."""
    args = ",".join(_json_string(a) for a in argv)
    pairs = ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in env.items())
    body = f'{{"argv":[{args}],"cwd":{_json_string(cwd)},"env":{{{pairs}}}}}'.encode("ascii")
    return len(body).to_bytes(4, "big") + body


def forward(argv: list[str]) -> int | None:
    """Run ``argv`` in the daemon; None when no daemon answers (run embedded)."""
    where = target()
    if where is None:
        return None
    # the C modules, not socket.py/signal.py: their enum classes cost ~5 ms of start-up
    import _signal
    import _socket

    path, explicit = where
    if path.startswith("tcp://"):
        from sdk.api.forward_tcp import forward_tcp

        return forward_tcp(path, argv)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
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
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    # SCM_RIGHTS carries C ints; array.array would import collections (~2 ms)
    fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
    sock.sendmsg([encode_request(argv, cwd, env)],
                 [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])

    def relay(signum: int, _frame: object) -> None:
        try:
            sock.sendall(bytes([signum]))
        except OSError:
            pass

    for name in FORWARDED_SIGNALS:
        _signal.signal(getattr(_signal, name), relay)
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
    return int.from_bytes(data, "big", signed=True)
