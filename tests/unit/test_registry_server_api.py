"""The registry server's HTTP API, mirroring the OCI conformance workflows (pull, push,
content discovery, content management) plus Docker-only endpoints."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.registry_helpers import OCI_INDEX, OCI_MANIFEST, Client, error_code, running, sha

pytest.importorskip("aiohttp")


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    root = tmp_path_factory.mktemp("registry")
    with running(root, delete_enabled=True, catalog_max_entries=50) as server:
        c = Client(server.url)
        c.root = root  # type: ignore[attr-defined]
        yield c


def _visible_blobs(root: Path) -> set[str]:
    return {f.name for f in (root / "blobs").rglob("*") if f.is_file()}


# ---- ping / errors ---------------------------------------------------------------
def test_ping_has_api_version_header(reg: Client) -> None:
    r = reg.req("GET", "/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("path", ["/v2/Upper/tags/list", "/v2/a/../b/tags/list",
                                  "/v2/a//b/tags/list", "/v2/_x/tags/list",
                                  "/v2/a/_layers/tags/list"])
def test_invalid_names_are_rejected(reg: Client, path: str) -> None:
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(reg.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path)            # raw: no client-side normalisation of ".."
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status in (400, 404)
    assert body["errors"][0]["code"] in ("NAME_INVALID", "NAME_UNKNOWN")


def test_traversal_in_name_never_touches_outside(reg: Client, tmp_path: Path) -> None:
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(reg.url)
    data = b"evil"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("POST", f"/v2/..%2f..%2f{tmp_path.name}/blobs/uploads/?digest={sha(data)}",
                 body=data)
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 400
    assert list(tmp_path.iterdir()) == []


# ---- push ------------------------------------------------------------------------
def test_monolithic_post_then_pull_with_range(reg: Client) -> None:
    data = os.urandom(10000)
    d = reg.push_blob("push/mono", data)
    r = reg.req("GET", f"/v2/push/mono/blobs/{d}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["Docker-Content-Digest"] == d
    r = reg.req("GET", f"/v2/push/mono/blobs/{d}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    r = reg.req("HEAD", f"/v2/push/mono/blobs/{d}")
    assert r.status_code == 200 and r.headers["Content-Length"] == "10000"
    assert r.headers["Docker-Content-Digest"] == d
    # blobs are linked per repository: another repo cannot read it without a mount
    assert reg.req("HEAD", f"/v2/push/other/blobs/{d}").status_code == 404


def test_wrong_digest_stores_nothing(reg: Client) -> None:
    before = _visible_blobs(reg.root)  # type: ignore[attr-defined]
    data = b"some content"
    r = reg.req("POST", f"/v2/push/bad/blobs/uploads/?digest={sha(b'other')}", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert _visible_blobs(reg.root) == before  # type: ignore[attr-defined]
    assert reg.req("HEAD", f"/v2/push/bad/blobs/{sha(b'other')}").status_code == 404
    assert list((reg.root / "uploads").iterdir()) == []  # type: ignore[attr-defined]


def test_post_put_and_sha512(reg: Client) -> None:
    data = os.urandom(3000)
    r = reg.req("POST", "/v2/push/pp/blobs/uploads/?digest-algorithm=sha512")
    assert r.status_code == 202
    loc = r.headers["Location"]
    assert r.headers["Docker-Upload-UUID"] and r.headers["Range"] == "0-0"
    d = sha(data, "sha512")
    r = reg.req("PUT", f"{loc}?digest={d}", data=data)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    assert reg.req("GET", f"/v2/push/pp/blobs/{d}").content == data


def test_chunked_upload_in_order_and_out_of_order(reg: Client) -> None:
    data = os.urandom(3 * 1024)
    r = reg.req("POST", "/v2/push/chunk/blobs/uploads/")
    loc = r.headers["Location"]
    r = reg.req("PATCH", loc, data=data[:1024],
                headers={"Content-Range": "0-1023", "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.headers["Range"] == "0-1023"
    loc = r.headers["Location"]
    r = reg.req("PATCH", loc, data=data[:1024], headers={"Content-Range": "0-1023"})
    assert r.status_code == 416
    r = reg.req("PATCH", loc, data=data[1024:2048], headers={"Content-Range": "1024-2047"})
    assert r.status_code == 202 and r.headers["Range"] == "0-2047"
    r = reg.req("GET", loc)
    assert r.status_code == 204 and r.headers["Range"] == "0-2047"
    # last chunk in the closing PUT
    r = reg.req("PUT", f"{loc}?digest={sha(data)}", data=data[2048:],
                headers={"Content-Range": "2048-3071"})
    assert r.status_code == 201, r.text
    assert reg.req("GET", f"/v2/push/chunk/blobs/{sha(data)}").content == data


def test_streamed_patch_without_content_range(reg: Client) -> None:
    data = os.urandom(200_000)
    loc = reg.req("POST", "/v2/push/stream/blobs/uploads/").headers["Location"]
    r = reg.req("PATCH", loc, data=iter([data[:70_000], data[70_000:]]))
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    r = reg.req("PUT", f"{r.headers['Location']}?digest={sha(data)}")
    assert r.status_code == 201


def test_cancel_upload(reg: Client) -> None:
    loc = reg.req("POST", "/v2/push/cancel/blobs/uploads/").headers["Location"]
    reg.req("PATCH", loc, data=b"partial")
    assert reg.req("DELETE", loc).status_code == 204
    r = reg.req("GET", loc)
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_upload_session_of_other_repo_is_unknown(reg: Client) -> None:
    loc = reg.req("POST", "/v2/push/mine/blobs/uploads/").headers["Location"]
    uid = loc.rsplit("/", 1)[1]
    r = reg.req("PATCH", f"/v2/push/theirs/blobs/uploads/{uid}", data=b"x")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    assert reg.req("GET", "/v2/push/mine/blobs/uploads/../../x").status_code in (400, 404)


def test_cross_repository_mount(reg: Client) -> None:
    d = reg.push_blob("mount/src", b"mount me")
    r = reg.req("POST", f"/v2/mount/dst/blobs/uploads/?mount={d}&from=mount/src")
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    assert r.headers["Location"] == f"/v2/mount/dst/blobs/{d}"
    assert reg.req("GET", f"/v2/mount/dst/blobs/{d}").content == b"mount me"
    missing = sha(b"not there")
    r = reg.req("POST", f"/v2/mount/dst/blobs/uploads/?mount={missing}&from=mount/src")
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]
    r = reg.req("PUT", f"{r.headers['Location']}?digest={missing}", data=b"not there")
    assert r.status_code == 201


def test_empty_blob(reg: Client) -> None:
    d = reg.push_blob("push/empty", b"")
    r = reg.req("GET", f"/v2/push/empty/blobs/{d}")
    assert r.status_code == 200 and r.content == b""


# ---- manifests ---------------------------------------------------------------------
def test_manifest_roundtrip_byte_exact_with_etag(reg: Client) -> None:
    d, body = reg.push_image("pull/img", "v1")
    for ref in ("v1", d):
        r = reg.req("GET", f"/v2/pull/img/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == body
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == d
        assert r.headers["ETag"] == f'"{d}"'
    r = reg.req("HEAD", "/v2/pull/img/manifests/v1")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(body)
    r = reg.req("GET", "/v2/pull/img/manifests/v1", headers={"If-None-Match": f'"{d}"'})
    assert r.status_code == 304 and r.content == b""
    r = reg.req("GET", "/v2/pull/img/manifests/nope")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = reg.req("GET", "/v2/pull/img/manifests/sha256:xyz")
    assert r.status_code == 400


def test_manifest_put_by_digest_with_tags_and_digest_mismatch(reg: Client) -> None:
    cd = reg.push_blob("man/tags", b"{}")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
        "layers": []}).encode()
    r = reg.req("PUT", f"/v2/man/tags/manifests/{sha(body)}?tag=a&tag=b", data=body,
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201
    assert sorted(r.headers.getall("OCI-Tag") if hasattr(r.headers, "getall")
                  else r.raw.headers.getlist("OCI-Tag")) == ["a", "b"]
    assert reg.req("GET", "/v2/man/tags/tags/list").json()["tags"] == ["a", "b"]
    r = reg.req("PUT", f"/v2/man/tags/manifests/{sha(b'x')}", data=body,
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_manifest_validation(reg: Client) -> None:
    missing = sha(b"never pushed")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": missing, "size": 12}, "layers": []}
    r = reg.req("PUT", "/v2/man/val/manifests/t", data=json.dumps(doc),
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    r = reg.req("PUT", "/v2/man/val/manifests/t", data=json.dumps(doc),
                headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    ambiguous = dict(doc, manifests=[])
    r = reg.req("PUT", "/v2/man/val/manifests/t", data=json.dumps(ambiguous),
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    r = reg.req("PUT", "/v2/man/val/manifests/t", data=b"{not json",
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    r = reg.req("PUT", "/v2/man/val/manifests/bad!tag", data=json.dumps(doc),
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "TAG_INVALID"
    assert reg.req("GET", "/v2/man/val/manifests/t").status_code == 404


def test_manifest_over_4mib_is_413_and_4mib_is_accepted(reg: Client) -> None:
    cd = reg.push_blob("man/big", b"{}")
    base = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
        "layers": [], "annotations": {"pad": ""}}
    overhead = len(json.dumps(base))
    ok = dict(base, annotations={"pad": "x" * (4 * 1024 * 1024 - overhead)})
    body = json.dumps(ok).encode()
    assert len(body) == 4 * 1024 * 1024
    r = reg.req("PUT", "/v2/man/big/manifests/ok", data=body,
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    big = json.dumps(dict(base, annotations={"pad": "x" * (4 * 1024 * 1024)})).encode()
    r = reg.req("PUT", "/v2/man/big/manifests/big", data=big,
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413


def test_docker_schema2_and_index(reg: Client) -> None:
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    cd = reg.push_blob("docker/img", cfg)
    ld = reg.push_blob("docker/img", b"gzip-layer")
    docker_mt = "application/vnd.docker.distribution.manifest.v2+json"
    body = json.dumps({"schemaVersion": 2, "mediaType": docker_mt, "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd,
        "size": len(cfg)}, "layers": [{"mediaType":
                                       "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                       "digest": ld, "size": 10}]}).encode()
    r = reg.req("PUT", "/v2/docker/img/manifests/amd64", data=body,
                headers={"Content-Type": docker_mt})
    assert r.status_code == 201
    list_mt = "application/vnd.docker.distribution.manifest.list.v2+json"
    index = json.dumps({"schemaVersion": 2, "mediaType": list_mt, "manifests": [
        {"mediaType": docker_mt, "digest": sha(body), "size": len(body),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    r = reg.req("PUT", "/v2/docker/img/manifests/latest", data=index,
                headers={"Content-Type": list_mt})
    assert r.status_code == 201
    r = reg.req("GET", "/v2/docker/img/manifests/latest")
    assert r.headers["Content-Type"] == list_mt and r.content == index


# ---- content discovery ---------------------------------------------------------------
def test_tags_list_pagination(reg: Client) -> None:
    for tag in ("c", "a", "b", "e", "d"):
        reg.push_image("disc/tags", tag)
    r = reg.req("GET", "/v2/disc/tags/tags/list")
    assert r.json() == {"name": "disc/tags", "tags": ["a", "b", "c", "d", "e"]}
    r = reg.req("GET", "/v2/disc/tags/tags/list?n=2")
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/disc/tags/tags/list?n=2&last=b>; rel="next"'
    r = reg.req("GET", "/v2/disc/tags/tags/list?n=2&last=b")
    assert r.json()["tags"] == ["c", "d"]
    r = reg.req("GET", "/v2/disc/tags/tags/list?n=2&last=d")
    assert r.json()["tags"] == ["e"] and "Link" not in r.headers
    assert reg.req("GET", "/v2/disc/tags/tags/list?n=0").json()["tags"] == []
    r = reg.req("GET", "/v2/disc/none/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_catalog_pagination_and_cap(reg: Client) -> None:
    for name in ("cat/z", "cat/y", "cat/x"):
        reg.push_blob(name, b"catalog")
    repos = reg.req("GET", "/v2/_catalog?n=50").json()["repositories"]
    assert {"cat/x", "cat/y", "cat/z"} <= set(repos) and repos == sorted(repos)
    r = reg.req("GET", "/v2/_catalog?n=1&last=cat/x")
    assert r.json()["repositories"] == ["cat/y"]
    assert r.headers["Link"].endswith('rel="next"') and "last=cat%2Fy" in r.headers["Link"]
    r = reg.req("GET", "/v2/_catalog?n=51")
    assert r.status_code == 400 and error_code(r) == "PAGINATION_NUMBER_INVALID"


def test_referrers_api(reg: Client) -> None:
    subject, body = reg.push_image("disc/ref", "v1")
    r = reg.req("GET", f"/v2/disc/ref/referrers/{subject}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    assert r.headers["Content-Type"].startswith(OCI_INDEX)
    sig_d, _ = reg.push_image("disc/ref", None, layers=[b"sig"], extra={
        "artifactType": "application/vnd.example.sig",
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)},
        "annotations": {"k": "v"}})
    sbom_d, _ = reg.push_image("disc/ref", None, layers=[b"sbom"], extra={
        "artifactType": "application/vnd.example.sbom",
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)}})
    r = reg.req("GET", f"/v2/disc/ref/referrers/{subject}")
    got = {m["digest"]: m for m in r.json()["manifests"]}
    assert set(got) == {sig_d, sbom_d}
    assert got[sig_d]["artifactType"] == "application/vnd.example.sig"
    assert got[sig_d]["annotations"] == {"k": "v"}
    r = reg.req("GET", f"/v2/disc/ref/referrers/{subject}",
                params={"artifactType": "application/vnd.example.sbom"})
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom_d]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    # subject missing is accepted, and the PUT answers OCI-Subject
    ghost = sha(b"ghost")
    cd = reg.push_blob("disc/ref", b"{}")
    doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                 "digest": cd, "size": 2}, "layers": [],
                      "subject": {"mediaType": OCI_MANIFEST, "digest": ghost, "size": 1}})
    r = reg.req("PUT", f"/v2/disc/ref/manifests/{sha(doc.encode())}", data=doc,
                headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["OCI-Subject"] == ghost
    # deleting a referrer removes it from the list
    assert reg.req("DELETE", f"/v2/disc/ref/manifests/{sig_d}").status_code == 202
    r = reg.req("GET", f"/v2/disc/ref/referrers/{subject}")
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom_d]
    assert reg.req("GET", "/v2/disc/ref/referrers/sha256:zz").status_code == 400


# ---- content management ------------------------------------------------------------------
def test_delete_manifest_tag_and_blob(reg: Client) -> None:
    d, body = reg.push_image("mgmt/img", "v1", layers=[b"del-layer"])
    reg.req("PUT", "/v2/mgmt/img/manifests/v2", data=body,
            headers={"Content-Type": OCI_MANIFEST})
    assert reg.req("DELETE", "/v2/mgmt/img/manifests/v2").status_code == 202
    assert reg.req("GET", "/v2/mgmt/img/manifests/v2").status_code == 404
    assert reg.req("GET", "/v2/mgmt/img/manifests/v1").status_code == 200
    assert reg.req("DELETE", f"/v2/mgmt/img/manifests/{d}").status_code == 202
    assert reg.req("GET", f"/v2/mgmt/img/manifests/{d}").status_code == 404
    assert reg.req("GET", "/v2/mgmt/img/manifests/v1").status_code == 404
    assert reg.req("DELETE", f"/v2/mgmt/img/manifests/{d}").status_code == 404
    ld = sha(b"del-layer")
    assert reg.req("DELETE", f"/v2/mgmt/img/blobs/{ld}").status_code == 202
    r = reg.req("GET", f"/v2/mgmt/img/blobs/{ld}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_error_shape(reg: Client) -> None:
    r = reg.req("GET", f"/v2/shape/x/blobs/{sha(b'none')}")
    err = r.json()["errors"][0]
    assert set(err) == {"code", "message", "detail"} and err["code"] == "BLOB_UNKNOWN"


def test_html_page_lists_repositories(reg: Client) -> None:
    reg.push_image("html/app", "1.0")
    r = reg.req("GET", "/")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert "html/app" in r.text and "1.0" in r.text


# ---- modes ---------------------------------------------------------------------------
def test_delete_disabled_and_readonly(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        c = Client(server.url)
        d, _ = c.push_image("ro/img", "v1")
        r = c.req("DELETE", f"/v2/ro/img/manifests/{d}")
        assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
    with running(tmp_path, readonly=True) as server:
        c = Client(server.url)
        assert c.req("GET", "/v2/ro/img/manifests/v1").status_code == 200
        r = c.req("POST", "/v2/ro/img/blobs/uploads/")
        assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
        r = c.req("PUT", "/v2/ro/img/manifests/v2", data=b"{}")
        assert r.status_code == 405


def test_max_upload_size(tmp_path: Path) -> None:
    with running(tmp_path, max_upload_size=1000) as server:
        c = Client(server.url)
        big = os.urandom(1001)
        r = c.req("POST", f"/v2/lim/x/blobs/uploads/?digest={sha(big)}", data=big)
        assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"
        loc = c.req("POST", "/v2/lim/x/blobs/uploads/").headers["Location"]
        assert c.req("PATCH", loc, data=big[:600]).status_code == 202
        r = c.req("PATCH", loc, data=iter([big[600:]]))      # streamed: no Content-Length
        assert r.status_code == 413
        assert c.req("GET", loc).headers["Range"] == "0-599"
        assert not [f for f in (tmp_path / "blobs").rglob("*") if f.is_file()]
        c.push_blob("lim/x", big[:1000])
