"""TLS failures, private CAs from certs.d, and 429: one clear line naming the registry."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("requests")

from sdk.distribution import transport  # noqa: E402
from sdk.distribution.transport import RateLimited, RegistryClient  # noqa: E402
from sdk.errors import FailedPrecondition  # noqa: E402


class _Handler(BaseHTTPRequestHandler):
    limited = False

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        if self.path.startswith("/v2/limited"):
            self.send_response(429)
            self.send_header("Retry-After", "30")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=berth-test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], d / "cert.pem"
    srv.shutdown()
    srv.server_close()


def test_tls_failure_suggests_insecure_registries(tls_server: tuple[int, Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    port, cert = tls_server
    host = f"127.0.0.1:{port}"
    monkeypatch.setattr(transport, "DEFAULT_INSECURE", ())    # pretend it is remote
    client = RegistryClient(host, certs_dir=tmp_path, config_path="/etc/berth/daemon.json")
    with pytest.raises(FailedPrecondition) as err:
        client.connect()
    msg = str(err.value)
    assert "\n" not in msg and f"TLS handshake with registry {host} failed" in msg
    assert "insecure-registries in /etc/berth/daemon.json" in msg
    client.close()
    # its CA in certs.d/HOST:PORT/ca.crt makes it work, verified
    (tmp_path / host).mkdir()
    shutil.copy(cert, tmp_path / host / "ca.crt")
    client = RegistryClient(host, certs_dir=tmp_path)
    client.connect()
    assert client.endpoint.verify == str(tmp_path / host / "ca.crt")
    client.close()
    # listed in insecure-registries: HTTPS without verification
    client = RegistryClient(host, insecure=[host], certs_dir=tmp_path / "none")
    client.connect()
    assert client.endpoint.url == f"https://{host}" and client.endpoint.verify is False
    client.close()


def test_rate_limit_is_one_clear_line(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    client = RegistryClient(f"127.0.0.1:{port}")
    with pytest.raises(RateLimited) as err:
        client.request("GET", "/v2/limited/manifests/x")
    assert str(err.value) == (f"registry 127.0.0.1:{port} refused the request: 429 Too Many "
                              "Requests (rate limit reached); retry after 30 s or log in "
                              "with `berth login`")
    client.close()
