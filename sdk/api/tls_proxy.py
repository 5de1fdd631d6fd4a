"""TLS in front of the API's private unix socket, for ``berth daemon``'s TCP hosts.

Why not aiohttp's own ``ssl_context``: asyncio's TLS transport cannot half-close.  The
docker CLI sends TLS ``close_notify`` (Go's ``tls.Conn.CloseWrite``) on a hijacked
attach as soon as it has no more stdin, then reads the output; asyncio answers that
alert by shutting the whole connection down ("returning true from eof_received() has
no effect when using ssl"), and ``docker run`` over TLS printed nothing.  dockerd (Go)
keeps writing.  So each TCP connection gets a thread that owns one ``SSLObject``
(never shared between threads, as OpenSSL requires) and relays plaintext to the API's
unix socket: a ``close_notify`` from the client becomes ``shutdown(SHUT_WR)`` there,
which the hijacked handlers already understand, and output keeps flowing back.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import sys
import threading
from dataclasses import dataclass, field

HANDSHAKE_SECONDS = 30
HIGH_WATER = 1 << 20          # stop reading a side while this much waits for the other


@dataclass
class TlsTerminator:
    """Accepts on ``listener``, speaks TLS with ``context``, relays to ``backend``."""

    listener: socket.socket
    context: ssl.SSLContext
    backend: str
    url: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"berth-tls {self.url}")
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; connections in flight finish on their own threads."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="berth-tls-conn").start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            Connection(raw, self.context, self.backend).run()
        except Exception as exc:  # noqa: BLE001 - one connection's failure, not the daemon's
            print(f"berth daemon: {self.url}: {exc}", file=sys.stderr)
        finally:
            raw.close()


class Connection:
    """One client: TLS on ``raw`` <-> plaintext on a fresh unix connection."""

    def __init__(self, raw: socket.socket, context: ssl.SSLContext, backend: str) -> None:
        self.raw = raw
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.backend_path = backend
        self.to_backend = bytearray()
        self.to_client = bytearray()

    def _flush_tls(self) -> None:
        data = self.outgoing.read()
        if data:
            self.to_client += data

    def handshake(self) -> bool:
        self.raw.settimeout(HANDSHAKE_SECONDS)
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                self.raw.sendall(self.to_client)
                self.to_client.clear()
                data = self.raw.recv(65536)
                if not data:
                    return False
                self.incoming.write(data)
                continue
            except (ssl.SSLError, OSError):
                # a client without an accepted certificate, or plain HTTP: tell it
                # (the alert is in outgoing) and drop it
                self._flush_tls()
                with contextlib.suppress(OSError):
                    self.raw.sendall(self.to_client)
                return False
            self._flush_tls()
            self.raw.sendall(self.to_client)
            self.to_client.clear()
            return True

    def run(self) -> None:
        try:
            if not self.handshake():
                return
        except OSError:     # timeout or reset during the handshake
            return
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            backend.connect(self.backend_path)
            self._relay(backend)
        finally:
            backend.close()

    def _read_tls(self) -> tuple[bytes, bool]:
        """Plaintext available from the client, and whether it sent close_notify."""
        out = bytearray()
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return bytes(out), False
            except ssl.SSLZeroReturnError:
                return bytes(out), True
            if not chunk:
                return bytes(out), True
            out += chunk

    def _relay(self, backend: socket.socket) -> None:
        self.raw.setblocking(False)
        backend.setblocking(False)
        sel = selectors.DefaultSelector()
        # a TLS 1.3 client sends its request in the flight that ends the handshake:
        # it may already sit decrypted-to-be in the BIO, where select() cannot see it
        plain, client_eof = self._read_tls()
        self.to_backend += plain
        self._flush_tls()
        backend_eof = half_closed = False
        try:
            while True:
                if backend_eof and not self.to_client:
                    return
                if client_eof and not self.to_backend and not half_closed:
                    # the client's half-close, as the unix socket's handlers expect it
                    half_closed = True
                    with contextlib.suppress(OSError):
                        backend.shutdown(socket.SHUT_WR)
                want_raw = (0 if client_eof or len(self.to_backend) > HIGH_WATER
                            else selectors.EVENT_READ) | \
                    (selectors.EVENT_WRITE if self.to_client else 0)
                want_backend = (0 if backend_eof or len(self.to_client) > HIGH_WATER
                                else selectors.EVENT_READ) | \
                    (selectors.EVENT_WRITE if self.to_backend else 0)
                for sock, events in ((self.raw, want_raw), (backend, want_backend)):
                    try:
                        sel.modify(sock, events) if events else sel.unregister(sock)
                    except KeyError:
                        if events:
                            sel.register(sock, events)
                if not sel.get_map():
                    return
                for key, mask in sel.select():
                    if key.fileobj is self.raw:
                        client_eof = self._on_raw(mask, backend) or client_eof
                    else:
                        backend_eof = self._on_backend(mask, backend) or backend_eof
        except OSError:
            return
        finally:
            sel.close()

    def _on_raw(self, mask: int, backend: socket.socket) -> bool:
        eof = False
        if mask & selectors.EVENT_READ:
            data = self.raw.recv(65536)
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()
            plain, closed = self._read_tls()
            self.to_backend += plain
            self._flush_tls()       # post-handshake messages, alerts
            if closed or not data:
                eof = True
        if mask & selectors.EVENT_WRITE and self.to_client:
            sent = self.raw.send(self.to_client)
            del self.to_client[:sent]
        if self.to_backend:
            self._write_backend(backend)
        return eof

    def _write_backend(self, backend: socket.socket) -> None:
        try:
            sent = backend.send(self.to_backend)
        except BlockingIOError:
            return
        del self.to_backend[:sent]

    def _on_backend(self, mask: int, backend: socket.socket) -> bool:
        eof = False
        if mask & selectors.EVENT_WRITE and self.to_backend:
            self._write_backend(backend)
        if mask & selectors.EVENT_READ:
            data = backend.recv(65536)
            if data:
                self.tls.write(data)
            else:
                eof = True
                with contextlib.suppress(ssl.SSLError):
                    self.tls.unwrap()       # our close_notify
            self._flush_tls()
        return eof
