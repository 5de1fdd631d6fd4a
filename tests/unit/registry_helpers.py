"""Helpers shared by the registry server tests: a server on 127.0.0.1:<free port>."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from sdk.registry import RegistryServer, load_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


@contextmanager
def running(root: Path, **overrides: Any) -> Iterator[RegistryServer]:
    overrides.setdefault("addr", "127.0.0.1:0")
    server = RegistryServer(load_config(overrides={"root": str(root), **overrides}),
                            shutdown_timeout=5).start()
    try:
        yield server
    finally:
        server.stop()


class Client:
    def __init__(self, url: str, auth: Any = None, verify: Any = True) -> None:
        self.url = url
        self.s = requests.Session()
        self.s.auth = auth
        self.s.verify = verify

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        if not path.startswith("http"):
            path = self.url + path
        return self.s.request(method, path, allow_redirects=False, timeout=30, **kw)

    def push_blob(self, repo: str, data: bytes, alg: str = "sha256") -> str:
        d = sha(data, alg)
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data=data)
        assert r.status_code == 201, r.text
        return d

    def push_image(self, repo: str, tag: str | None, layers: list[bytes] | None = None,
                   config: bytes = b'{"architecture":"amd64","os":"linux"}',
                   extra: dict[str, Any] | None = None) -> tuple[str, bytes]:
        layers = [b"layer-one", b"layer-two"] if layers is None else layers
        cd = self.push_blob(repo, config)
        descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                  "digest": self.push_blob(repo, blob), "size": len(blob)} for blob in layers]
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": cd, "size": len(config)}, "layers": descs,
               **(extra or {})}
        body = json.dumps(doc, indent=1).encode()
        ref = tag or sha(body)
        r = self.req("PUT", f"/v2/{repo}/manifests/{ref}", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        return sha(body), body


def error_code(r: requests.Response) -> str:
    return str(r.json()["errors"][0]["code"])
