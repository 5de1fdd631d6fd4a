"""Pull-through cache: misses fetched from the upstream once (single flight)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import requests

from tests.unit.registry_helpers import OCI_MANIFEST, Client, running, sha

bcrypt = pytest.importorskip("bcrypt")


def test_pull_through_single_flight_with_upstream_token_auth(tmp_path: Path) -> None:
    ht = tmp_path / "htpasswd"
    ht.write_text("bob:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode() + "\n")
    big = os.urandom(4_000_000)
    with running(tmp_path / "up", htpasswd_path=str(ht), token_enabled=True) as up:
        token = requests.get(f"{up.url}/auth/token", auth=("bob", "pw"), timeout=10,
                             params={"scope": "repository:lib/app:pull,push"}).json()["token"]
        uc = Client(up.url)
        uc.s.headers["Authorization"] = f"Bearer {token}"
        md, body = uc.push_image("lib/app", "1.0", layers=[big, b"small"])
        with running(tmp_path / "cache", proxy_remoteurl=up.url, proxy_username="bob",
                     proxy_password="pw") as cache:
            c = Client(cache.url)
            r = c.req("GET", "/v2/lib/app/manifests/1.0")
            assert r.status_code == 200 and r.content == body
            assert r.headers["Docker-Content-Digest"] == md
            assert r.headers["Content-Type"] == OCI_MANIFEST
            got: list[bytes] = []

            def pull() -> None:
                got.append(Client(cache.url).req("GET", f"/v2/lib/app/blobs/{sha(big)}").content)

            threads = [threading.Thread(target=pull) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert got == [big] * 8
            assert cache.app.proxy.upstream_blob_fetches == 1
            assert c.req("GET", f"/v2/lib/app/blobs/{sha(b'nope')}").status_code == 404
        # the cache serves what it stored even with the upstream gone
    with running(tmp_path / "cache", proxy_remoteurl="http://127.0.0.1:9") as cache:
        c = Client(cache.url)
        assert c.req("GET", "/v2/lib/app/manifests/1.0").content == body
        assert c.req("GET", f"/v2/lib/app/blobs/{sha(big)}").content == big
        assert c.req("GET", "/v2/lib/app/manifests/2.0").status_code == 404
