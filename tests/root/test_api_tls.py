"""``berth daemon -H tcp://...``: TLS only, mutual TLS with --tlsverify; the docker CLI,
docker-py and berth's own CLI (DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) use it."""

from __future__ import annotations

import glob
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.conftest import BERTH

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
docker_py = pytest.importorskip("docker")
DOCKER = "/usr/local/bin/docker"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_dir: Path        # ca.pem, cert.pem, key.pem: what DOCKER_CERT_PATH holds
    rogue_dir: Path         # a client certificate from another CA


def _sign(base: Path, name: str, ca: Path, ca_key: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert = base / f"{name}-key.pem", base / f"{name}.csr", base / f"{name}.pem"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")
    (base / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile",
             str(base / f"{name}.ext"))
    return cert, key


def _ca(base: Path, name: str) -> tuple[Path, Path]:
    cert, key = base / f"{name}.pem", base / f"{name}-key.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
             str(cert), "-days", "2", "-subj", f"/CN={name}")
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca(base, "ca")
    server, server_key = _sign(base, "server", ca, ca_key,
                               "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    client, client_key = _sign(base, "client", ca, ca_key, "extendedKeyUsage=clientAuth\n")
    rogue_ca, rogue_ca_key = _ca(base, "rogue-ca")
    rogue, rogue_key = _sign(base, "rogue", rogue_ca, rogue_ca_key,
                             "extendedKeyUsage=clientAuth\n")
    dirs = []
    for name, cert, key in (("client", client, client_key), ("rogue", rogue, rogue_key)):
        d = base / name
        d.mkdir()
        (d / "ca.pem").write_bytes(ca.read_bytes())
        (d / "cert.pem").write_bytes(cert.read_bytes())
        (d / "key.pem").write_bytes(key.read_bytes())
        dirs.append(d)
    return Pki(base, ca, server, server_key, dirs[0], dirs[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_dirs() -> set[str]:
    return set(glob.glob("/tmp/berth-daemon-*"))


@dataclass
class TlsDaemon:
    proc: subprocess.Popen[bytes]
    port: int
    url: str

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return err.decode()


def start_tls_daemon(engine: Engine, *flags: str) -> TlsDaemon:
    port = free_port()
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    proc = subprocess.Popen([BERTH, "daemon", "-H", f"tcp://127.0.0.1:{port}", "-G", "",
                             *flags], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"daemon did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    return TlsDaemon(proc, port, f"tcp://127.0.0.1:{port}")


def server_flags(pki: Pki, verify: bool = True) -> list[str]:
    flags = ["--tlscert", str(pki.server_cert), "--tlskey", str(pki.server_key)]
    if verify:
        flags += ["--tlsverify", "--tlscacert", str(pki.ca)]
    return flags


@pytest.fixture
def mtls(engine: Engine, busybox: str, pki: Pki) -> Iterator[TlsDaemon]:
    before = _private_dirs()
    d = start_tls_daemon(engine, *server_flags(pki))
    yield d
    d.stop()
    assert _private_dirs() == before, "the daemon leaves its private sockets behind"


def docker_cli(d: TlsDaemon, certs: Path, *args: str,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [DOCKER, "--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert",
           str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem"), "-H", d.url, *args]
    env = dict(os.environ, DOCKER_CONFIG="/nonexistent")
    env.pop("DOCKER_HOST", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
def test_docker_cli_over_mutual_tls(mtls: TlsDaemon, pki: Pki) -> None:
    r = docker_cli(mtls, pki.client_dir, "version", "--format", "{{.Server.APIVersion}}")
    assert r.returncode == 0 and r.stdout.strip() == "1.43", r.stderr
    # attach over TLS: the CLI half-closes (close_notify) at once, output must still come
    for i in range(3):
        r = docker_cli(mtls, pki.client_dir, "run", "--rm", "--network", "none", "busybox",
                       "sh", "-c", f"echo out-{i}; echo err-{i} >&2; exit {i}")
        assert (r.returncode, r.stdout, r.stderr) == (i, f"out-{i}\n", f"err-{i}\n")
    r = subprocess.run([DOCKER, "--tlsverify", "--tlscacert", str(pki.ca), "--tlscert",
                        str(pki.client_dir / "cert.pem"), "--tlskey",
                        str(pki.client_dir / "key.pem"), "-H", mtls.url, "run", "-i", "--rm",
                        "--network", "none", "busybox", "cat"],
                       input="via stdin\n", capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, DOCKER_CONFIG="/nonexistent"))
    assert r.returncode == 0 and r.stdout == "via stdin\n", r.stderr
    r = docker_cli(mtls, pki.client_dir, "run", "-d", "--name", "tls-ps", "--network",
                   "none", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    r = docker_cli(mtls, pki.client_dir, "ps", "--format", "{{.Names}}")
    assert r.stdout.split() == ["tls-ps"]
    assert docker_cli(mtls, pki.client_dir, "rm", "-f", "tls-ps").returncode == 0


def _handshake(port: int, certs: Path | None, ca: Path) -> bytes:
    """GET /_ping over TLS with the client certificate in ``certs`` (None: none)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if certs is not None:
        ctx.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def test_clients_without_a_trusted_certificate_are_refused(mtls: TlsDaemon,
                                                           pki: Pki) -> None:
    assert _handshake(mtls.port, pki.client_dir, pki.ca).startswith(b"HTTP/1.1 200")
    for certs in (None, pki.rogue_dir):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _handshake(mtls.port, certs, pki.ca)
    # plain HTTP to the TLS port gets no HTTP answer
    with socket.create_connection(("127.0.0.1", mtls.port), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert not data.startswith(b"HTTP/")
    if os.path.exists(DOCKER):
        r = docker_cli(mtls, pki.rogue_dir, "ps")
        assert r.returncode != 0 and "tls" in r.stderr.lower()


def test_docker_py_over_mutual_tls(mtls: TlsDaemon, pki: Pki,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override docker-py's own CA (its session.verify)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tls = docker_py.tls.TLSConfig(client_cert=(str(pki.client_dir / "cert.pem"),
                                               str(pki.client_dir / "key.pem")),
                                  ca_cert=str(pki.ca), verify=True)
    client = docker_py.DockerClient(base_url=mtls.url, tls=tls, version="auto")
    try:
        assert client.ping()
        out = client.containers.run("busybox", ["echo", "hello tls"], remove=True,
                                    network_mode="none")
        assert out == b"hello tls\n"
        c = client.containers.run("busybox", ["sleep", "30"], detach=True,
                                  network_mode="none")
        assert c.exec_run(["echo", "exec"]).output == b"exec\n"
        c.remove(force=True)
    finally:
        client.close()


def berth_remote(d: TlsDaemon, certs: Path, *args: str, input: str | None = None,
                 **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BERTH_ROOT", "BERTH_CONFIG", "BERTH_HOST")}
    env.update(DOCKER_HOST=d.url, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs), **extra)
    return subprocess.run([BERTH, *args], capture_output=True, text=True, env=env,
                          input=input, timeout=60)


def test_berth_cli_through_docker_host_tcp(mtls: TlsDaemon, pki: Pki) -> None:
    r = berth_remote(mtls, pki.client_dir, "run", "--rm", "--network", "none", "busybox",
                     "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = berth_remote(mtls, pki.client_dir, "run", "-i", "--rm", "--network", "none",
                     "busybox", "tr", "a-z", "A-Z", input="shout\n")
    assert (r.returncode, r.stdout) == (0, "SHOUT\n"), r.stderr
    r = berth_remote(mtls, pki.client_dir, "images", "--format", "{{.Repository}}")
    assert r.returncode == 0 and r.stdout.split() == ["busybox"]
    r = berth_remote(mtls, pki.client_dir, "inspect", "no-such-thing")
    assert r.returncode == 1 and "no-such-thing" in r.stderr
    # BERTH_HOST wins over DOCKER_HOST
    r = berth_remote(mtls, pki.client_dir, "ps", BERTH_HOST="tcp://127.0.0.1:1")
    assert r.returncode == 125 and "cannot reach the daemon" in r.stderr
    # a certificate from another CA: refused in the handshake, one line
    r = berth_remote(mtls, pki.rogue_dir, "ps")
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "TLS" in r.stderr


def test_server_tls_without_verify_warns(engine: Engine, busybox: str, pki: Pki) -> None:
    d = start_tls_daemon(engine, *server_flags(pki, verify=False))
    try:
        assert _handshake(d.port, None, pki.ca).startswith(b"HTTP/1.1 200")
    finally:
        err = d.stop()
    assert "does not check client certificates" in err


@pytest.mark.parametrize("flags,message", [
    ([], "without TLS: give --tlscert and --tlskey"),
    (["--tlscert", "CERT"], "without TLS: give --tlskey"),
    (["--tlscert", "CERT", "--tlskey", "KEY", "--tlsverify"], "--tlsverify needs a CA"),
    (["--tlscert", "/nonexistent/cert.pem", "--tlskey", "KEY"],
     "cannot read --tlscert /nonexistent/cert.pem"),
    (["--tlscert", "KEY", "--tlskey", "CERT"], "are not a PEM certificate and its private key"),
])
def test_bad_tls_setups_are_refused(engine: Engine, pki: Pki, flags: list[str],
                                    message: str) -> None:
    flags = [{"CERT": str(pki.server_cert), "KEY": str(pki.server_key)}.get(f, f)
             for f in flags]
    port = free_port()
    before = _private_dirs()
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    r = subprocess.run([BERTH, "daemon", "-H", f"tcp://127.0.0.1:{port}", "-G", "", *flags],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 125 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert _private_dirs() == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_daemon_json_tls_keys(engine: Engine, busybox: str, pki: Pki) -> None:
    """hosts/tlsverify/tlscacert/tlscert/tlskey from daemon.json, as dockerd reads them."""
    import json

    port = free_port()
    engine.config_path.write_text(json.dumps({
        "hosts": [f"tcp://127.0.0.1:{port}"], "tlsverify": True, "tlscacert": str(pki.ca),
        "tlscert": str(pki.server_cert), "tlskey": str(pki.server_key)}))
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    proc = subprocess.Popen([BERTH, "daemon", "-G", ""], env=env, stderr=subprocess.PIPE)
    d = TlsDaemon(proc, port, f"tcp://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _handshake(port, pki.client_dir, pki.ca).startswith(b"HTTP/1.1 200")
                break
            except (ConnectionRefusedError, AssertionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _handshake(port, None, pki.ca)
    finally:
        d.stop()
    engine.config_path.write_text(json.dumps({"tlscert": "server.pem"}))
    r = subprocess.run([BERTH, "daemon", "-G", ""], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode != 0
    assert f'"tlscert" in {engine.config_path} must be an absolute path' in r.stderr
