"""berth's registry server against real peers: skopeo (plain HTTP, TLS, Basic and token
auth), plus process-level behaviour of ``berth registry serve`` (kill -9 mid-upload,
graceful SIGTERM) and the maintenance commands."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.unit.registry_helpers import running, sha

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")]
bcrypt = pytest.importorskip("bcrypt")
BERTH = str(Path(sys.executable).with_name("berth"))


def _policy(tmp: Path) -> Path:
    p = tmp / "policy.json"
    p.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    return p


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Path:
    """An OCI image layout holding busybox as one gzip layer, tag ``latest``."""
    root = tmp_path_factory.mktemp("oci")
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return f"sha256:{h}"

    raw = busybox_tar.read_bytes()
    layer = gzip.compress(raw, compresslevel=1, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [sha(raw)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer), "size": len(layer)}]}).encode()
    md = put(manifest)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
         "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return root


def _skopeo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["skopeo", "--policy", str(_policy(tmp)), *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def _roundtrip(tmp: Path, layout: Path, address: str, push: list[str], pull: list[str]) -> None:
    want = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    _skopeo(tmp, "copy", *push, f"oci:{layout}:latest", f"docker://{address}/lib/busybox:1")
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    _skopeo(tmp, "copy", *pull, f"docker://{address}/lib/busybox:1", f"oci:{out}:copy")
    got = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert got == want                              # digests preserved end to end
    for f in (layout / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / f.name).read_bytes() == f.read_bytes()


def test_skopeo_plain_http(tmp_path: Path, layout: Path) -> None:
    with running(tmp_path / "reg") as s:
        _roundtrip(tmp_path, layout, s.address, ["--dest-tls-verify=false"],
                   ["--src-tls-verify=false"])
        tags = _skopeo(tmp_path, "list-tags", "--tls-verify=false",
                       f"docker://{s.address}/lib/busybox").stdout
        assert json.loads(tags)["Tags"] == ["1"]


def _htpasswd(tmp: Path) -> Path:
    p = tmp / "htpasswd"
    p.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode() + "\n")
    return p


@pytest.mark.parametrize("token", [False, True], ids=["basic", "token"])
def test_skopeo_with_credentials(tmp_path: Path, layout: Path, token: bool) -> None:
    with running(tmp_path / "reg", htpasswd_path=str(_htpasswd(tmp_path)),
                 token_enabled=token) as s:
        r = subprocess.run(["skopeo", "--policy", str(_policy(tmp_path)), "copy",
                            "--dest-tls-verify=false", f"oci:{layout}:latest",
                            f"docker://{s.address}/lib/busybox:1"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0                 # no credentials: refused
        creds = "alice:s3cret"
        _roundtrip(tmp_path, layout, s.address,
                   ["--dest-tls-verify=false", "--dest-creds", creds],
                   ["--src-tls-verify=false", "--src-creds", creds])


def _cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True, timeout=60)
    return cert, key


def test_skopeo_over_tls_with_ca_and_credentials(tmp_path: Path, layout: Path) -> None:
    cert, key = _cert(tmp_path)
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    with running(tmp_path / "reg", tls_certificate=str(cert), tls_key=str(key),
                 htpasswd_path=str(_htpasswd(tmp_path)), token_enabled=True) as s:
        assert s.url.startswith("https://")
        r = requests.get(s.url + "/v2/", auth=("alice", "s3cret"), verify=str(cert), timeout=10)
        assert r.status_code == 200
        creds = "alice:s3cret"
        _roundtrip(tmp_path, layout, s.address, ["--dest-cert-dir", str(certs),
                                                  "--dest-creds", creds],
                   ["--src-cert-dir", str(certs), "--src-creds", creds])


# ---- the serve process -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]], int]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield tmp_path / "reg", procs, _free_port()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _start(root: Path, port: int, procs: list[subprocess.Popen[bytes]]
           ) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([BERTH, "registry", "serve", "--root", str(root), "--addr",
                          f"127.0.0.1:{port}"], stderr=subprocess.PIPE)
    procs.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return p
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("registry did not start: " + (p.stderr.read().decode()
                                                       if p.poll() is not None else ""))


def _partial_patch(port: int, total: int, sent: bytes) -> tuple[socket.socket, str]:
    loc = requests.post(f"http://127.0.0.1:{port}/v2/k/img/blobs/uploads/",
                        timeout=5).headers["Location"]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {total}\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + sent)
    return sock, loc


def test_kill_9_mid_upload_leaves_no_visible_blob(serve: tuple[Path, list, int]) -> None:
    root, procs, port = serve
    p = _start(root, port, procs)
    data = os.urandom(2_000_000)
    sock, _ = _partial_patch(port, len(data), data[:700_000])
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    sock.close()
    assert not [f for f in (root / "blobs").rglob("*") if f.is_file()]
    _start(root, port, procs)
    url = f"http://127.0.0.1:{port}/v2/k/img/blobs/{sha(data)}"
    assert requests.head(url, timeout=5).status_code == 404
    r = requests.post(f"http://127.0.0.1:{port}/v2/k/img/blobs/uploads/?digest={sha(data)}",
                      data=data, timeout=10)
    assert r.status_code == 201
    assert requests.get(url, timeout=5).content == data


def test_sigterm_finishes_in_flight_request(serve: tuple[Path, list, int]) -> None:
    root, procs, port = serve
    p = _start(root, port, procs)
    data = os.urandom(1_000_000)
    sock, _ = _partial_patch(port, len(data), data[:400_000])
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    sock.sendall(data[400_000:])
    sock.settimeout(10)
    head = sock.recv(4096).decode()
    sock.close()
    assert head.startswith("HTTP/1.1 202"), head
    assert f"Range: 0-{len(data) - 1}" in head
    assert p.wait(timeout=20) == 0


def test_cli_garbage_collect_and_scrub(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with running(root) as s:
        d = requests.post(f"{s.url}/v2/c/x/blobs/uploads/?digest={sha(b'orphan')}",
                          data=b"orphan", timeout=5).headers["Docker-Content-Digest"]
    r = subprocess.run([BERTH, "registry", "garbage-collect", "--root", str(root),
                        "--dry-run", "--grace", "0s"], capture_output=True, text=True)
    assert r.returncode == 0 and f"would delete blob {d}" in r.stdout
    r = subprocess.run([BERTH, "registry", "scrub", "--root", str(root)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "1 blobs checked" in r.stdout
    blob = next(f for f in (root / "blobs").rglob("*") if f.is_file())
    blob.write_bytes(b"bitrot")
    r = subprocess.run([BERTH, "registry", "scrub", "--root", str(root)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and f"corrupt blob {d}" in r.stdout
    r = subprocess.run([BERTH, "registry", "garbage-collect", "--root", str(root),
                        "--grace", "0s"], capture_output=True, text=True)
    assert r.returncode == 0 and not blob.exists()
    cfg = tmp_path / "bad.yml"
    cfg.write_text("storage: {delete: {enabeld: true}}\n")
    r = subprocess.run([BERTH, "registry", "serve", "--config", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 125 and "storage.delete.enabeld" in r.stderr
