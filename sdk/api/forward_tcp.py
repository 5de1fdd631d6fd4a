"""``berth`` against a remote ``berth daemon``: ``BERTH_HOST`` / ``DOCKER_HOST=tcp://...``.

TLS settings come from the docker CLI's environment: ``DOCKER_CERT_PATH`` (default
``~/.docker``) holds ``ca.pem``, ``cert.pem`` and ``key.pem``; with
``DOCKER_TLS_VERIFY`` set the daemon's certificate must be signed by ``ca.pem`` and
name the host, and ``cert.pem``/``key.pem`` (when present) identify this client, which
a daemon started with ``--tlsverify`` requires.  Without ``DOCKER_TLS_VERIFY`` the
connection is still TLS (berth daemon serves nothing else) but the daemon's
certificate is not checked, like ``docker --tls``.

The command runs in the daemon's helper exactly like on the unix warm path; its
streams travel over the connection (see :mod:`sdk.api.cli_relay` for the framing).
Imported only for tcp hosts: ``ssl`` stays off the local start path.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import struct
import sys
from dataclasses import dataclass

from sdk.api.forward import (
    EXIT_STREAM,
    FORWARDED_SIGNALS,
    RELAYED_ENV,
    SIGNAL_FRAME,
    STDIN_FRAME,
)
from sdk.api.tls import DEFAULT_TLS_PORT, parse_tcp_host


class ClientSetupError(Exception):
    """What keeps this client from reaching the daemon (printed as one line)."""


@dataclass(frozen=True)
class ClientTls:
    verify: bool
    cacert: str | None
    cert: str | None
    key: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClientTls:
        env = dict(os.environ) if env is None else env
        base = env.get("DOCKER_CERT_PATH") or os.path.join(
            env.get("HOME") or os.path.expanduser("~"), ".docker")
        verify = bool(env.get("DOCKER_TLS_VERIFY"))
        ca, cert, key = (os.path.join(base, n) for n in ("ca.pem", "cert.pem", "key.pem"))
        if verify and not os.path.isfile(ca):
            raise ClientSetupError(f"DOCKER_TLS_VERIFY is set but {ca} does not exist "
                                   "(set DOCKER_CERT_PATH to the directory holding ca.pem, "
                                   "cert.pem and key.pem)")
        has_pair = os.path.isfile(cert) and os.path.isfile(key)
        return cls(verify, ca if verify else None, cert if has_pair else None,
                   key if has_pair else None)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.verify:
                ctx.load_verify_locations(cafile=self.cacert)
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.cert and self.key:
                ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ClientSetupError(f"cannot load the TLS files from DOCKER_CERT_PATH: "
                                   f"{exc}") from None
        return ctx


def connect(host: str, tls: ClientTls, timeout: float = 30) -> ssl.SSLSocket:
    addr, port = parse_tcp_host(host)
    try:
        raw = socket.create_connection((addr, port or DEFAULT_TLS_PORT), timeout=timeout)
    except OSError as exc:
        raise ClientSetupError(f"cannot reach the daemon at {host}: "
                               f"{exc.strerror or exc}") from None
    try:
        sock = tls.context().wrap_socket(raw, server_hostname=addr)
    except ssl.SSLError as exc:
        raw.close()
        raise ClientSetupError(f"TLS handshake with {host} failed: "
                               f"{exc.reason or exc}") from None
    except ClientSetupError:
        raw.close()
        raise
    sock.settimeout(None)
    return sock


def request_bytes(host: str, argv: list[str], env: dict[str, str]) -> bytes:
    from sdk.api.forward import _json_string

    args = ",".join(_json_string(a) for a in argv)
    pairs = ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in env.items())
    body = f'{{"argv":[{args}],"env":{{{pairs}}}}}'.encode("ascii")
    head = (f"POST /berth/cli HTTP/1.1\r\nHost: {host.partition('://')[2]}\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("ascii")
    return head + body


def read_response_head(sock: ssl.SSLSocket, host: str) -> bytes:
    """Up to the blank line; ClientSetupError with the daemon's message unless 101."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ClientSetupError(f"{host} closed the connection without an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[1] == "101":
        return rest
    message = rest.decode("utf-8", "replace")
    try:
        import json

        message = json.loads(rest)["message"]
    except (ValueError, KeyError, TypeError):
        pass
    raise ClientSetupError(f"{host} is not a berth daemon that runs berth commands "
                           f"({status_line.strip()}: {str(message).strip()[:200]})")


def forward_tcp(host: str, argv: list[str]) -> int:
    try:
        tls = ClientTls.from_env()
        sock = connect(host, tls)
        sock.sendall(request_bytes(host, argv,
                                   {k: os.environ[k] for k in RELAYED_ENV
                                    if k in os.environ}))
        pending = read_response_head(sock, host)
    except ClientSetupError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 125
    except OSError as exc:
        print(f"berth: talking to {host}: {exc}", file=sys.stderr)
        return 125
    return Session(sock, pending).run()


class Session:
    """One relayed command: stdin and signals out, stdout/stderr and the status in."""

    def __init__(self, sock: ssl.SSLSocket, pending: bytes) -> None:
        self.sock = sock
        self.buf = pending
        self.wake_r, self.wake_w = os.pipe()
        self.signals: list[int] = []

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)
        try:
            os.write(self.wake_w, b"\0")
        except OSError:
            pass

    def _send(self, kind: int, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">BI", kind, len(payload)) + payload)

    def run(self) -> int:
        for name in FORWARDED_SIGNALS:
            signal.signal(getattr(signal, name), self._on_signal)
        stdin_open = True
        try:
            while True:
                code = self._deliver()
                if code is not None:
                    return code
                watched: list[int | ssl.SSLSocket] = [self.sock, self.wake_r]
                if stdin_open:
                    watched.append(0)
                if self.sock.pending():
                    ready = [self.sock]
                else:
                    try:
                        ready = select.select(watched, [], [])[0]
                    except InterruptedError:
                        continue
                if self.wake_r in ready:
                    os.read(self.wake_r, 512)
                while self.signals:
                    self._send(SIGNAL_FRAME, bytes([self.signals.pop(0)]))
                if 0 in ready:
                    try:
                        data = os.read(0, 65536)
                    except OSError:
                        data = b""
                    if data:
                        self._send(STDIN_FRAME, data)
                    else:
                        self._send(STDIN_FRAME, b"")
                        stdin_open = False
                if self.sock in ready:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        code = self._deliver()
                        if code is not None:
                            return code
                        print("berth: the daemon ended the command without an exit "
                              "status", file=sys.stderr)
                        return 125
                    self.buf += chunk
        except BrokenPipeError:
            return 141
        except OSError as exc:
            print(f"berth: the connection to the daemon failed: {exc}", file=sys.stderr)
            return 125
        finally:
            self.sock.close()

    def _deliver(self) -> int | None:
        """Write the complete frames in the buffer; the exit status once it is there."""
        while len(self.buf) >= 8:
            stream, size = struct.unpack(">BxxxL", self.buf[:8])
            if len(self.buf) < 8 + size:
                return None
            payload, self.buf = self.buf[8:8 + size], self.buf[8 + size:]
            if stream == EXIT_STREAM:
                return int(struct.unpack(">i", payload)[0])
            fd = 2 if stream == 2 else 1
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        return None
