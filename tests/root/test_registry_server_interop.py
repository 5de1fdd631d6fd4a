"""berth's registry server against real peers: skopeo (plain HTTP, TLS, Basic and token
auth), plus process-level behaviour of ``berth registry serve`` (kill -9 mid-upload,
graceful SIGTERM) and the maintenance commands.  The same flows also run under Debian 12's
aiohttp stack (aiohttp 3.8.4, yarl 1.8.2, multidict 6.0.4) in a venv cached in
/var/cache/berth-test (built once with pip, ~15 s cold)."""

from __future__ import annotations

import fcntl
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
from typing import Any

import pytest
import requests

from tests.fixtures.images import CACHE
from tests.unit.registry_helpers import running, sha

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")]
bcrypt = pytest.importorskip("bcrypt")
BERTH = str(Path(sys.executable).with_name("berth"))
REPO = Path(__file__).resolve().parents[2]
# Debian 12 (bookworm) ships these as python3-aiohttp, python3-bcrypt & co (PyYAML 6.0 has
# no wheel for this Python; Debian's python3-yaml 6.0 passes the unit tests too)
DEBIAN12_AIOHTTP = ["aiohttp==3.8.4", "yarl==1.8.2", "multidict==6.0.4", "frozenlist==1.3.3",
                    "aiosignal==1.3.1", "async-timeout==4.0.2", "charset-normalizer==3.0.1",
                    "attrs==22.2.0", "bcrypt==3.2.2", "PyYAML"]


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


def _roundtrip(tmp: Path, layout: Path, address: str, push: list[str], pull: list[str],
               repo: str = "lib/busybox") -> None:
    want = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    _skopeo(tmp, "copy", *push, f"oci:{layout}:latest", f"docker://{address}/{repo}:1")
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    _skopeo(tmp, "copy", *pull, f"docker://{address}/{repo}:1", f"oci:{out}:copy")
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


def test_skopeo_per_repository_access(tmp_path: Path, layout: Path) -> None:
    """auth.access: bob may pull lib/* and push only below bob/ (Basic and token)."""
    htpasswd = _htpasswd(tmp_path)
    with htpasswd.open("a") as f:
        f.write("bob:" + bcrypt.hashpw(b"b0b", bcrypt.gensalt(5)).decode() + "\n")
    access = {"alice": {"**": ["*"]}, "bob": {"lib/*": ["pull"], "bob/**": ["pull", "push"]}}
    for token in (False, True):
        with running(tmp_path / f"reg-{token}", htpasswd_path=str(htpasswd), access=access,
                     token_enabled=token) as s:
            plain = ["--dest-tls-verify=false"]
            _skopeo(tmp_path, "copy", *plain, "--dest-creds", "alice:s3cret",
                    f"oci:{layout}:latest", f"docker://{s.address}/lib/busybox:1")
            denied = subprocess.run(
                ["skopeo", "--policy", str(_policy(tmp_path)), "copy", *plain,
                 "--dest-creds", "bob:b0b", f"oci:{layout}:latest",
                 f"docker://{s.address}/lib/busybox:2"],
                capture_output=True, text=True, timeout=120)
            assert denied.returncode != 0
            assert "denied" in denied.stderr.lower() or "unauthorized" in denied.stderr.lower()
            _roundtrip(tmp_path, layout, s.address, [*plain, "--dest-creds", "bob:b0b"],
                       ["--src-tls-verify=false", "--src-creds", "bob:b0b"],
                       repo="bob/busybox")
            out = tmp_path / "bob-pull"
            shutil.rmtree(out, ignore_errors=True)
            _skopeo(tmp_path, "copy", "--src-tls-verify=false", "--src-creds", "bob:b0b",
                    f"docker://{s.address}/lib/busybox:1", f"oci:{out}:x")
            tags = requests.get(f"{s.url}/v2/lib/busybox/tags/list", auth=("bob", "b0b"),
                                timeout=10).json()["tags"]
            assert tags == ["1"]                     # bob's denied push left nothing


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


def _start(root: Path, port: int, procs: list[subprocess.Popen[bytes]],
           berth: list[str] | None = None, config: Path | None = None,
           scheme: str = "http", verify: Any = True) -> subprocess.Popen[bytes]:
    argv = [*(berth or [BERTH]), "registry", "serve", "--root", str(root), "--addr",
            f"127.0.0.1:{port}"]
    env = None
    if berth is not None:           # another interpreter runs the sdk from this tree
        env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([*argv, *(["--config", str(config)] if config else [])],
                         stderr=subprocess.PIPE, env=env)
    procs.append(p)
    deadline = time.time() + 15
    while time.time() < deadline and p.poll() is None:
        try:
            # any HTTP answer (401 with auth) means it serves
            requests.get(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1, verify=verify)
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


# ---- Debian 12's aiohttp 3.8.4 -----------------------------------------------------------
@pytest.fixture(scope="module")
def aiohttp38() -> list[str]:
    """``[python, -m, sdk.cli.main]`` of a venv with Debian 12's aiohttp stack."""
    tag = hashlib.sha256(" ".join([sys.version, *DEBIAN12_AIOHTTP]).encode()).hexdigest()[:10]
    venv = CACHE / f"venv-aiohttp-3.8.4-{tag}"
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # parallel sessions build it once
        done = venv / "berth-complete"
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                           check=True, timeout=120)
            r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python),
                                "install", "--quiet", "--disable-pip-version-check",
                                *DEBIAN12_AIOHTTP], capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(f"cannot build the aiohttp 3.8.4 venv (pip needs PyPI): "
                            f"{r.stderr[-2000:]}")
            done.write_text("\n".join(DEBIAN12_AIOHTTP) + "\n")
    r = subprocess.run([str(python), "-c", "import aiohttp; print(aiohttp.__version__)"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "3.8.4"
    return [str(python), "-m", "sdk.cli.main"]


def test_aiohttp_3_8_serves_skopeo_push_pull(serve: tuple[Path, list, int], layout: Path,
                                            aiohttp38: list[str], tmp_path: Path) -> None:
    root, procs, port = serve
    _start(root, port, procs, berth=aiohttp38)
    r = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
    assert r.status_code == 200 and "aiohttp/3.8.4" in r.headers["Server"]
    _roundtrip(tmp_path, layout, f"127.0.0.1:{port}", ["--dest-tls-verify=false"],
               ["--src-tls-verify=false"])
    # an error answer on a kept-alive connection leaves the connection usable (3.8 sent a
    # success header's Content-Length: 0 along with the JSON error body)
    with requests.Session() as s:
        base = f"http://127.0.0.1:{port}/v2/k/img/blobs/uploads/"
        loc = s.post(base, timeout=5).headers["Location"]
        url = f"http://127.0.0.1:{port}{loc}"
        assert s.patch(url, data=b"x" * 10, headers={"Content-Range": "5-14"},
                       timeout=5).status_code == 416
        assert s.patch(url, data=b"x" * 10, headers={"Content-Range": "0-9"},
                       timeout=5).status_code == 202


def test_aiohttp_3_8_over_tls_with_token_auth(serve: tuple[Path, list, int], layout: Path,
                                              aiohttp38: list[str], tmp_path: Path) -> None:
    root, procs, port = serve
    cert, key = _cert(tmp_path)
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    cfg = tmp_path / "config.yml"
    cfg.write_text(json.dumps({"version": "0.1", "http": {"tls": {
        "certificate": str(cert), "key": str(key)}}, "auth": {
        "htpasswd": {"realm": "t", "path": str(_htpasswd(tmp_path))},
        "token": {"enabled": True}}}))
    _start(root, port, procs, berth=aiohttp38, config=cfg, scheme="https", verify=str(cert))
    r = requests.get(f"https://127.0.0.1:{port}/v2/", verify=str(cert), timeout=5)
    assert r.status_code == 401 and "aiohttp/3.8.4" in r.headers["Server"]
    creds = "alice:s3cret"
    _roundtrip(tmp_path, layout, f"127.0.0.1:{port}",
               ["--dest-cert-dir", str(certs), "--dest-creds", creds],
               ["--src-cert-dir", str(certs), "--src-creds", creds])


def test_aiohttp_3_8_sigterm_finishes_in_flight_request(serve: tuple[Path, list, int],
                                                        aiohttp38: list[str]) -> None:
    root, procs, port = serve
    p = _start(root, port, procs, berth=aiohttp38)
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
