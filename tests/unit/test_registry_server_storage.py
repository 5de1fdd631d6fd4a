"""Registry config, storage safety (concurrency), garbage collection, scrub, purge."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from sdk.errors import ConfigError
from tests.unit.registry_helpers import OCI_INDEX, OCI_MANIFEST, Client, running, sha

pytest.importorskip("aiohttp")


# ---- config ----------------------------------------------------------------------------
def test_config_distribution_shape(tmp_path: Path) -> None:
    from sdk.registry.config import load_config

    p = tmp_path / "config.yml"
    p.write_text("""
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: /srv/reg}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: true, age: 2h, interval: 10m, dryrun: false}
    readonly: {enabled: false}
http:
  addr: 127.0.0.1:5001
  secret: abc
  tls: {certificate: /c.pem, key: /k.pem}
auth:
  htpasswd: {realm: r, path: /etc/htpasswd}
  token: {enabled: true, expiration: 5m}
proxy: {remoteurl: "https://registry-1.docker.io", username: u, password: p}
readonly: true
maxuploadsize: 2g
""")
    cfg = load_config(p, {"addr": "127.0.0.1:6000"})
    assert cfg.root == "/srv/reg" and cfg.delete_enabled and cfg.readonly
    assert cfg.upload_purge_age == 7200 and cfg.upload_purge_interval == 600
    assert cfg.addr == "127.0.0.1:6000" and cfg.host_port() == ("127.0.0.1", 6000)
    assert cfg.tls_enabled and cfg.auth_enabled and cfg.token_expiration == 300
    assert cfg.max_upload_size == 2 * 1024 ** 3
    assert cfg.proxy_remoteurl == "https://registry-1.docker.io"


@pytest.mark.parametrize("text,needle", [
    ("storage: {delete: {enabeld: true}}", "storage.delete.enabeld"),
    ("storage: {delete: {enabled: yes please}}", "storage.delete.enabled"),
    ("http: {addr: nowhere}", "http.addr"),
    ("storage: {maintenance: {uploadpurging: {age: 3 weeks}}}",
     "storage.maintenance.uploadpurging.age"),
    ("http: {tls: {certificate: /c.pem}}", "http.tls"),
    ("frobnicate: 1", "frobnicate"),
    ("auth: {token: {enabled: true}}", "auth.token"),
    ("- a list", "mapping"),
    ("maxuploadsize: lots", "maxuploadsize"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    from sdk.registry.config import load_config

    p = tmp_path / "c.yml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert needle in str(exc.value)


# ---- concurrency and atomicity -----------------------------------------------------------
def test_concurrent_pushes_of_same_blob_and_tag(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        data = os.urandom(300_000)
        results: list[int] = []
        manifests: list[bytes] = []

        def push(i: int) -> None:
            c = Client(server.url)
            d = sha(data)
            loc = c.req("POST", "/v2/conc/img/blobs/uploads/").headers["Location"]
            for off in range(0, len(data), 100_000):
                r = c.req("PATCH", loc, data=data[off:off + 100_000],
                          headers={"Content-Range": f"{off}-{off + 99_999}"})
                loc = r.headers["Location"]
            results.append(c.req("PUT", f"{loc}?digest={d}").status_code)
            _, body = c.push_image("conc/img", "latest", layers=[data, str(i).encode()])
            manifests.append(body)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [201] * 8
        c = Client(server.url)
        assert c.req("GET", f"/v2/conc/img/blobs/{sha(data)}").content == data
        got = c.req("GET", "/v2/conc/img/manifests/latest").content
        assert got in manifests                     # one whole manifest, never a mix
        assert not list((tmp_path / "uploads").iterdir())
        assert not list((tmp_path / "tmp").iterdir())


def test_partial_upload_is_invisible_and_purged(tmp_path: Path) -> None:
    from sdk.registry.storage import Storage

    with running(tmp_path) as server:
        c = Client(server.url)
        data = b"x" * 5000
        loc = c.req("POST", "/v2/p/img/blobs/uploads/").headers["Location"]
        c.req("PATCH", loc, data=data[:2500])
        assert c.req("HEAD", f"/v2/p/img/blobs/{sha(data)}").status_code == 404
        assert not [f for f in (tmp_path / "blobs").rglob("*") if f.is_file()]
    st = Storage(tmp_path)
    assert st.purge_uploads(3600) == []
    assert len(st.purge_uploads(3600, now=time.time() + 7200)) == 1
    assert not list((tmp_path / "uploads").iterdir())


# ---- maintenance -------------------------------------------------------------------------
def _age(root: Path, seconds: float = 7200) -> None:
    past = time.time() - seconds
    for f in (root / "blobs").rglob("*"):
        if f.is_file():
            os.utime(f, (past, past))
    for f in (root / "repositories").rglob("*"):
        if f.is_file():
            os.utime(f, (past, past))


def test_garbage_collect(tmp_path: Path) -> None:
    from sdk.registry.maintenance import garbage_collect
    from sdk.registry.names import parse_digest
    from sdk.registry.storage import Storage

    with running(tmp_path) as server:
        c = Client(server.url)
        kept_d, kept_body = c.push_image("gc/img", "v1", layers=[b"kept-layer"])
        # index -> child manifest pushed by digest only: the child must survive
        child_d, child_body = c.push_image("gc/img", None, layers=[b"child-layer"])
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child_d, "size": len(child_body)}]})
        assert c.req("PUT", "/v2/gc/img/manifests/multi", data=index,
                     headers={"Content-Type": OCI_INDEX}).status_code == 201
        # referrer of a tagged manifest: kept
        ref_d, _ = c.push_image("gc/img", None, layers=[b"sig-layer"], extra={
            "subject": {"mediaType": OCI_MANIFEST, "digest": kept_d,
                        "size": len(kept_body)}})
        # untagged manifest and an orphan blob
        orphan_m, _ = c.push_image("gc/img", None, layers=[b"untagged-layer"])
        c.push_blob("gc/img", b"orphan")
        _age(tmp_path)
        c.push_blob("gc/img", b"fresh orphan")      # recent: a push in progress
    st = Storage(tmp_path)
    dry = garbage_collect(st, dry_run=True)
    assert dry.deleted_blobs == [sha(b"orphan")] and dry.skipped_recent == 1
    st_d = parse_digest(sha(b"orphan"))
    assert st_d is not None and st.blob_exists(st_d)
    rep = garbage_collect(st, delete_untagged=True)
    assert f"gc/img@{orphan_m}" in rep.deleted_manifests
    assert f"gc/img@{child_d}" not in rep.deleted_manifests
    assert f"gc/img@{ref_d}" not in rep.deleted_manifests
    assert not st.blob_exists(st_d)
    with running(tmp_path) as server:
        c = Client(server.url)
        for ref in ("v1", "multi", child_d, ref_d):
            assert c.req("GET", f"/v2/gc/img/manifests/{ref}").status_code == 200, ref
        for layer in (b"kept-layer", b"child-layer", b"sig-layer", b"fresh orphan"):
            assert c.req("HEAD", f"/v2/gc/img/blobs/{sha(layer)}").status_code == 200
        assert c.req("HEAD", f"/v2/gc/img/blobs/{sha(b'untagged-layer')}").status_code == 404
        assert c.req("GET", f"/v2/gc/img/manifests/{orphan_m}").status_code == 404
        refs = c.req("GET", f"/v2/gc/img/referrers/{kept_d}").json()["manifests"]
        assert [r["digest"] for r in refs] == [ref_d]


def test_scrub_reports_corruption(tmp_path: Path) -> None:
    from sdk.registry.maintenance import scrub
    from sdk.registry.names import parse_digest
    from sdk.registry.storage import Storage

    with running(tmp_path) as server:
        c = Client(server.url)
        c.push_blob("s/img", b"good")
        bad = c.push_blob("s/img", b"will rot")
    st = Storage(tmp_path)
    assert scrub(st).corrupt == []
    d = parse_digest(bad)
    assert d is not None
    st.blob_path(d).write_bytes(b"rotten!!")
    rep = scrub(st)
    assert rep.checked == 2 and len(rep.corrupt) == 1 and rep.corrupt[0].startswith(bad)


def test_online_gc_while_serving(tmp_path: Path) -> None:
    # a grace period is what makes online GC safe: with 0, a blob (or manifest) written
    # between a run's mark and sweep phases would be collected before it is referenced
    with running(tmp_path, gc_interval=0.2, gc_grace=1.0) as server:
        c = Client(server.url)
        d, body = c.push_image("online/img", "v1", layers=[b"kept"])
        orphan = c.push_blob("online/img", b"orphan")
        deadline = time.time() + 10
        while time.time() < deadline and \
                c.req("HEAD", f"/v2/online/img/blobs/{orphan}").status_code == 200:
            time.sleep(0.1)
        assert c.req("HEAD", f"/v2/online/img/blobs/{orphan}").status_code == 404
        assert c.req("GET", "/v2/online/img/manifests/v1").content == body
        assert c.req("HEAD", f"/v2/online/img/blobs/{sha(b'kept')}").status_code == 200
        assert server.app.gc_runs >= 1


def test_64_concurrent_pulls_of_a_4_layer_image(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    layers = [os.urandom(200_000) for _ in range(4)]
    with running(tmp_path) as server:
        Client(server.url).push_image("many/img", "v1", layers=layers)

        def pull(_: int) -> bool:
            c = Client(server.url)
            doc = c.req("GET", "/v2/many/img/manifests/v1").json()
            blobs = [c.req("GET", f"/v2/many/img/blobs/{x['digest']}").content
                     for x in doc["layers"]]
            return blobs == layers

        with ThreadPoolExecutor(64) as pool:
            assert all(pool.map(pull, range(64)))
