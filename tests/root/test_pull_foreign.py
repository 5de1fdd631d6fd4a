"""Foreign layers (``urls`` in the descriptor, the registry does not hold the blob):
pulled from the first URL that answers, as docker does, never with the registry's
credentials, and verified like any blob.  A real CNCF registry with htpasswd auth and
``validation.manifests.urls.allow`` holds the manifest; a local HTTP server on
127.0.0.1 (started here) serves the blob and records what it was sent."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk._internal.arch import goarch
from sdk.errors import InvalidArgument, NotFound
from tests.root.test_registry_client import (
    REGISTRY_BIN,
    Registry,
    _file,
    _sha,
    _tar,
    put_blob,
    start_registry,
    stop_registry,
)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(REGISTRY_BIN),
                                 reason="docker-registry (Debian package) not installed")]
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
USER, PASSWORD = "alice", "s3cret"


class BlobServer:
    """Serves ``blobs`` (path -> bytes) on 127.0.0.1; records each request's headers."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append((self.path, dict(self.headers)))
                body = server.blobs.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[BlobServer]:
    srv = BlobServer()
    yield srv
    srv.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    import bcrypt

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    reg = start_registry(tmp_path / "registry", htpasswd=f"{USER}:{hashed}\n", extra={
        "validation": {"manifests": {"urls": {"allow": [r"^http://127\.0\.0\.1"]}}}})
    yield reg
    stop_registry(reg)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           registry: Registry) -> Iterator[Engine]:
    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "auth.json"))
    eng = Engine(root=tmp_path / "root", config=tmp_path / "daemon.json")
    eng.login(USER, PASSWORD, registry=registry.host)
    yield eng
    eng.repair()
    eng.close()


def _put(reg: Registry, path: str, data: bytes, headers: dict[str, str],
         method: str = "PUT") -> Any:
    import requests

    return requests.request(method, reg.url(path), data=data, headers=headers,
                            auth=(USER, PASSWORD), timeout=30)


def push_foreign_image(reg: Registry, repo: str, base: bytes, foreign: bytes,
                       urls: list[str], *, foreign_in_registry: bool = False) -> str:
    """An image of a normal gzip layer and a foreign one (named by ``urls``)."""
    blobs = [gzip.compress(base, mtime=0), gzip.compress(foreign, mtime=0)]
    config = json.dumps({"architecture": goarch(), "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_sha(base), _sha(foreign)]}}).encode()
    for blob in (blobs[0], config, *(blobs[1:] if foreign_in_registry else [])):
        put_blob(reg, repo, blob, auth=(USER, PASSWORD))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": SCHEMA2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": GZIP, "digest": _sha(blobs[0]), "size": len(blobs[0])},
                   {"mediaType": FOREIGN, "digest": _sha(blobs[1]), "size": len(blobs[1]),
                    "urls": urls}]}).encode()
    r = _put(reg, f"/v2/{repo}/manifests/1", manifest, {"Content-Type": SCHEMA2})
    assert r.status_code == 201, r.text
    return _sha(blobs[1])


def _files(engine: Engine, image_id: str) -> set[str]:
    out: set[str] = set()
    for rec in engine.image_store.layer_chain(image_id):
        diff = engine.layer_store.base / rec.chain_id[7:] / "diff"
        out |= {str(p.relative_to(diff)) for p in diff.rglob("*") if p.is_file()}
    return out


def test_a_foreign_layer_comes_from_its_url_without_credentials(
        registry: Registry, server: BlobServer, engine: Engine) -> None:
    base, foreign = _tar([_file("base", b"b")]), _tar([_file("windows", b"w" * 5000)])
    digest = push_foreign_image(registry, "foreign/app", base, foreign,
                                [server.url("/missing"), server.url("/layer.tgz")])
    server.blobs["/layer.tgz"] = gzip.compress(foreign, mtime=0)
    img = engine.images.pull(f"{registry.host}/foreign/app:1")
    assert _files(engine, img.id) == {"base", "windows"}
    assert engine.content.exists(digest)
    assert [path for path, _ in server.requests] == ["/missing", "/layer.tgz"]
    for _, headers in server.requests:
        assert not any(k.lower() == "authorization" for k in headers)


def test_the_registry_comes_first_when_it_has_the_blob(
        registry: Registry, server: BlobServer, engine: Engine) -> None:
    base, foreign = _tar([_file("base", b"b")]), _tar([_file("w", b"w")])
    push_foreign_image(registry, "foreign/both", base, foreign, [server.url("/x")],
                       foreign_in_registry=True)
    img = engine.images.pull(f"{registry.host}/foreign/both:1")
    assert _files(engine, img.id) == {"base", "w"}
    assert server.requests == []


def test_wrong_bytes_at_the_url_are_refused_and_nothing_is_kept(
        registry: Registry, server: BlobServer, engine: Engine) -> None:
    base, foreign = _tar([_file("base", b"b")]), _tar([_file("w", b"w")])
    push_foreign_image(registry, "foreign/bad", base, foreign, [server.url("/bad")])
    server.blobs["/bad"] = gzip.compress(_tar([_file("w", b"evil")]), mtime=0)[:40] + \
        b"\0" * 60
    with pytest.raises(InvalidArgument, match="foreign URL http://127.0.0.1"):
        engine.images.pull(f"{registry.host}/foreign/bad:1")
    assert engine.db.query("SELECT * FROM images") == []
    assert engine.db.query("SELECT * FROM layers") == []


def test_no_url_answering_is_the_registry_s_not_found(
        registry: Registry, server: BlobServer, engine: Engine) -> None:
    base, foreign = _tar([_file("base", b"b")]), _tar([_file("w", b"w")])
    digest = push_foreign_image(registry, "foreign/gone", base, foreign,
                                [server.url("/gone")])
    with pytest.raises(NotFound, match=digest[7:19]):
        engine.images.pull(f"{registry.host}/foreign/gone:1")
    assert engine.db.query("SELECT * FROM images") == []


def test_only_http_and_https_urls_are_tried(server: BlobServer) -> None:
    from sdk.distribution.manifest import Descriptor
    from sdk.distribution.pull import _open_foreign

    server.blobs["/ok"] = b"data"
    desc = Descriptor(FOREIGN, _sha(b"data"), 4,
                      urls=("file:///etc/passwd", "ftp://127.0.0.1/x", server.url("/ok")))
    found = _open_foreign(desc)
    assert found is not None
    resp, source = found
    with resp:
        assert resp.content == b"data"
    assert source == f"foreign URL {server.url('/ok')}"
    assert [path for path, _ in server.requests] == ["/ok"]


def test_a_pushed_image_leaves_its_foreign_layer_where_its_urls_point(
        registry: Registry, server: BlobServer, engine: Engine) -> None:
    import requests

    base, foreign = _tar([_file("base", b"b")]), _tar([_file("w", b"w" * 3000)])
    digest = push_foreign_image(registry, "foreign/src", base, foreign,
                                [server.url("/layer.tgz")])
    server.blobs["/layer.tgz"] = gzip.compress(foreign, mtime=0)
    img = engine.images.pull(f"{registry.host}/foreign/src:1")
    img.tag(f"{registry.host}/foreign/copy", tag="1")
    events = [json.loads(line) for line in
              engine.images.push(f"{registry.host}/foreign/copy", tag="1").splitlines()]
    assert {"status": "Skipped foreign layer", "id": digest[7:19],
            "progressDetail": {}} in events
    head = requests.head(registry.url(f"/v2/foreign/copy/blobs/{digest}"),
                         auth=(USER, PASSWORD), timeout=30)
    assert head.status_code == 404          # never uploaded
    manifest = requests.get(registry.url("/v2/foreign/copy/manifests/1"), timeout=30,
                            auth=(USER, PASSWORD), headers={"Accept": SCHEMA2}).json()
    assert manifest["layers"][1]["urls"] == [server.url("/layer.tgz")]
