"""HTTP to the engine service: http.client over a unix socket, or TLS over TCP.

One connection per request: streams (logs, exec output, pulls) read to the end, and a
connection the server closes after a stream never gets reused by mistake.  ``ssl`` and
the TLS settings (:class:`sdk.api.forward_tcp.ClientTls`, the docker CLI's
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) load only for ``tcp://`` hosts.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sdk.engine import API_VERSION
from sdk.errors import FailedPrecondition, InvalidArgument
from sdk.remote.errors import error_for

API_PREFIX = f"/v{API_VERSION}"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def quote_ref(ref: str) -> str:
    """A name in a path segment: ``localhost:5000/app:1`` stays readable."""
    return quote(ref, safe="/:@")


def query_string(query: Mapping[str, Any] | None) -> str:
    """Booleans as 1/0, dicts (filters) as JSON, lists repeated; None left out."""
    items: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            items.append((key, "1" if value else "0"))
        elif isinstance(value, dict):
            items.append((key, json.dumps(value)))
        elif isinstance(value, list | tuple):
            items += [(key, str(v)) for v in value]
        else:
            items.append((key, str(value)))
    return "?" + urlencode(items) if items else ""


@dataclass
class Response:
    """An answered request whose status was not an error; read it, then close."""

    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection

    @property
    def status(self) -> int:
        return self.raw.status

    @property
    def multiplexed(self) -> bool:
        return (self.raw.getheader("Content-Type") or "").startswith(MULTIPLEXED)

    def read(self) -> bytes:
        try:
            return self.raw.read()
        finally:
            self.close()

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data.strip() else None

    def lines(self) -> Iterator[dict[str, Any]]:
        """JSON lines as they arrive (pull/import progress)."""
        try:
            while line := self.raw.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            self.close()

    def chunks(self, size: int = 65536) -> Iterator[bytes]:
        try:
            while data := self.raw.read1(size):
                yield data
        finally:
            self.close()

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(stream id, payload) of docker's multiplexed framing; raw streams are
        all stdout (1)."""
        try:
            if not self.multiplexed:
                while data := self.raw.read1(65536):
                    yield 1, data
                return
            while True:
                head = _read_exact(self.raw, 8)
                if not head:
                    return
                stream, size = struct.unpack(">BxxxL", head)
                yield stream, _read_exact(self.raw, size)
        finally:
            self.close()

    def close(self) -> None:
        self.raw.close()
        self.conn.close()


def _read_exact(raw: http.client.HTTPResponse, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = raw.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class Transport:
    """Requests to one engine service (``unix:///path`` or ``tcp://host:port``)."""

    def __init__(self, host: str, timeout: float | None = None) -> None:
        if host.startswith("unix://") and len(host) > 7:
            self.kind = "unix"
        elif host.startswith("tcp://") and len(host) > 6:
            self.kind = "tcp"
            from sdk.api.tls import parse_tcp_host

            self.addr = parse_tcp_host(host)
        else:
            raise InvalidArgument(f"engine service host {host!r}: expected "
                                  "unix:///path/to/socket or tcp://HOST:PORT")
        self.host = host
        self.timeout = timeout
        self._ssl: Any = None

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.kind == "unix":
            return UnixConnection(self.host[7:], timeout)
        if self._ssl is None:
            from sdk.api.forward_tcp import ClientSetupError, ClientTls

            try:
                self._ssl = ClientTls.from_env().context()
            except ClientSetupError as exc:
                raise FailedPrecondition(str(exc)) from None
        addr, port = self.addr
        return http.client.HTTPSConnection(addr, port, timeout=timeout, context=self._ssl)

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, data: bytes | None = None,
                content_type: str = "application/json", timeout: float | None = None,
                resource: str = "") -> Response:
        """Send; an error status raises the SDK's exception with the daemon's message."""
        headers = {"Host": "localhost" if self.kind == "unix" else self.host[6:]}
        payload = data
        if body is not None:
            payload = json.dumps(body).encode()
        if payload is not None:
            headers["Content-Type"] = content_type
        conn = self._connection(timeout if timeout is not None else self.timeout)
        url = API_PREFIX + path + query_string(query)
        try:
            conn.request(method, url, body=payload, headers=headers)
            raw = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise FailedPrecondition(f"cannot reach the engine service at {self.host}: "
                                     f"{reason}") from None
        if raw.status >= 400:
            text = raw.read().decode("utf-8", "replace")
            raw.close()
            conn.close()
            try:
                message = str(json.loads(text)["message"])
            except (ValueError, KeyError, TypeError):
                message = text.strip() or f"{method} {path}: HTTP {raw.status}"
            raise error_for(raw.status, message, resource or path.split("/")[1],
                            starting=path.endswith(("/start", "/restart")))
        return Response(raw, conn)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def call(self, method: str, path: str, **kwargs: Any) -> int:
        """A request whose answer has no body worth reading; its status."""
        resp = self.request(method, path, **kwargs)
        resp.read()
        return resp.status
