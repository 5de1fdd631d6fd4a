"""The registry's web page (sdk/registry/html.py, inventory.py): what it shows, escaping,
pagination, bad queries, and auth through the real server (headless Chromium renders it
in tests/root/test_registry_web_chromium.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sdk.registry.html import (
    PageError,
    PageQuery,
    human,
    parse_query,
    render,
)
from sdk.registry.names import digest_of
from sdk.registry.storage import Storage
from tests.unit.registry_helpers import OCI_INDEX, OCI_MANIFEST, Client, running

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def put_image(st: Storage, repo: str, tag: str | None, layers: list[bytes],
              arch: str = "amd64", labels: dict[str, str] | None = None,
              layer_type: str = LAYER_TYPE) -> tuple[str, int, bytes]:
    """Store an image as a push would; returns (digest, total size, manifest body)."""
    config = json.dumps({"architecture": arch, "os": "linux",
                         "config": {"Labels": labels or {}}}).encode()
    descs = []
    for blob in [config, *layers]:
        d = digest_of(blob)
        st.put_blob_bytes(blob, d)
        st.link_blob(repo, d)
        descs.append({"mediaType": layer_type, "digest": str(d), "size": len(blob)})
    descs[0]["mediaType"] = CONFIG_TYPE
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descs[0],
                       "layers": descs[1:]}).encode()
    md = digest_of(body)
    st.put_manifest(repo, md, body, OCI_MANIFEST)
    if tag:
        st.set_tag(repo, tag, md)
    return str(md), len(body) + sum(x["size"] for x in descs), body  # type: ignore[misc]


class Tree(HTMLParser):
    """Collects the page's text and checks no element or attribute came from data."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs |= {k for k, _ in attrs}

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tree:
    t = Tree()
    t.feed(page)
    return t


@pytest.fixture
def st(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "reg")


def test_image_tag_shows_digest_total_size_platform_and_layers(st: Storage) -> None:
    md, total, body = put_image(st, "lib/app", "1.0", [b"a" * 1500, b"b" * 20],
                                labels={"org.example.team": "infra"})
    page = render(st, st.catalog(), PageQuery())
    assert "<p id='count'>1 repositories</p>" in page
    assert md in page and f"data-bytes='{total}'" in page
    assert "linux/amd64" in page and "org.example.team" in page and "infra" in page
    doc = json.loads(body)
    for layer in doc["layers"]:
        assert f"{layer['digest']}</code> <span class='size' title='{layer['size']} bytes'" \
            in page
    assert LAYER_TYPE in page


def test_index_shows_each_platform_and_counts_shared_blobs_once(st: Storage) -> None:
    shared = b"shared" * 100
    amd, amd_size, amd_body = put_image(st, "multi", None, [shared, b"amd64-only"])
    arm, arm_size, arm_body = put_image(st, "multi", None, [shared, b"arm64-only"],
                                        arch="arm64")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(amd_body),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": len(arm_body),
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 7,
         "platform": {"os": "windows", "architecture": "amd64"}}]}).encode()
    idx = digest_of(index)
    st.put_manifest("multi", idx, index, OCI_INDEX)
    st.set_tag("multi", "latest", idx)
    page = render(st, st.catalog(), PageQuery())
    assert "linux/amd64" in page and "linux/arm/v7" in page and "windows/amd64" in page
    assert "manifest not stored in this repository" in page
    total = len(index) + amd_size + arm_size - len(shared) + 7
    assert f"class='total'><span class='size' title='{total} bytes'" in page
    assert page.count("amd64-only") == 0          # layer data is never shown or read
    assert page.count(str(digest_of(b"amd64-only"))) == 1


def test_hostile_strings_are_escaped(st: Storage) -> None:
    put_image(st, "evil", "v1", [b"x"], labels={HOSTILE: HOSTILE},
              layer_type=HOSTILE, arch=HOSTILE)
    page = render(st, st.catalog(), PageQuery())
    tree = parse(page)
    assert not {"script", "img"} & tree.tags and "onerror" not in tree.attrs
    assert HOSTILE in "".join(tree.text)            # shown as text, verbatim
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_overview_paginates_repositories_and_caps_tags(st: Storage) -> None:
    names = [f"r{i:02d}" for i in range(25)]
    for name in names:
        put_image(st, name, "t", [name.encode()])
    for i in range(12):
        st.set_tag("r00", f"extra{i:02d}", st.resolve_tag("r00", "t"))  # type: ignore[arg-type]
    first = render(st, st.catalog(), PageQuery())
    shown = re.findall(r"<h2 class='repo'><a href='[^']*'>([^<]+)</a>", first)
    assert shown == names[:20]
    assert "<p id='count'>25 repositories</p>" in first
    assert "href='?n=20&amp;last=r19'" in first and "3 more tags" in first
    second = render(st, st.catalog(), parse_query({"n": "20", "last": "r19"}, 1000))
    assert re.findall(r"<h2 class='repo'><a href='[^']*'>([^<]+)</a>", second) == names[20:]
    assert "rel='next'" not in second
    one = render(st, st.catalog(), parse_query({"repo": "r00", "n": "5"}, 1000))
    assert re.findall(r"class='tagname'>([^<]+)<", one) == \
        ["extra00", "extra01", "extra02", "extra03", "extra04"]
    assert "href='?repo=r00&amp;n=5&amp;last=extra04'" in one and "8 more tags" in one


@pytest.mark.parametrize("query, message", [
    ({"n": "x"}, "invalid n 'x': expected a number from 1 to 50"),
    ({"n": "0"}, "invalid n '0'"),
    ({"n": "51"}, "invalid n '51'"),
    ({"repo": "Bad/Name"}, "invalid repository name 'Bad/Name'"),
    ({"repo": "ok", "last": "a/b"}, "invalid last 'a/b': expected a tag"),
    ({"last": "../x"}, "invalid last '../x': expected a repository name"),
])
def test_bad_queries_are_one_clear_error(query: dict[str, str], message: str) -> None:
    with pytest.raises(PageError, match=re.escape(message)) as exc:
        parse_query(query, 50)
    assert exc.value.status == 400


def test_page_size_is_capped_below_catalog_max_entries() -> None:
    assert parse_query({"n": "100"}, 1000).n == 100
    assert parse_query({"n": "500", "repo": "a"}, 1000).n == 500
    with pytest.raises(PageError, match="from 1 to 100"):
        parse_query({"n": "101"}, 1000)
    with pytest.raises(PageError, match="from 1 to 500"):
        parse_query({"n": "501", "repo": "a"}, 1000)
    assert parse_query({}, 5).n == 5 and parse_query({"repo": "a"}, 1000).n == 100


def test_repository_outside_the_visible_set_is_not_found(st: Storage) -> None:
    put_image(st, "secret", "v1", [b"s"])
    with pytest.raises(PageError) as exc:
        render(st, [], PageQuery(repo="secret"))
    assert exc.value.status == 404


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"),
                                     (1_234_567, "1.2 MB"), (5 * 10**12, "5.0 TB")])
def test_human_sizes(n: int, text: str) -> None:
    assert human(n) == text


# ---- through the server ----------------------------------------------------------
bcrypt = pytest.importorskip("bcrypt")
ACCESS = {"alice": {"**": ["*"]}, "bob": {"bob/**": ["pull", "push"]}}


@pytest.fixture
def authed(tmp_path: Path) -> Iterator[str]:
    pw = tmp_path / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n"
                          for u in ("alice", "bob")))
    with running(tmp_path / "root", htpasswd_path=str(pw), access=ACCESS,
                 token_enabled=True) as s:
        yield s.url


def test_page_needs_credentials_and_shows_only_pullable_repositories(authed: str) -> None:
    alice, bob = Client(authed, auth=("alice", "pw")), Client(authed, auth=("bob", "pw"))
    alice.push_image("team/app", "v1")
    bob.push_image("bob/tool", "v2")
    anon = Client(authed).req("GET", "/")
    assert anon.status_code == 401 and anon.headers["WWW-Authenticate"].startswith("Basic ")
    assert "text/html" in anon.headers["Content-Type"] and "team/app" not in anon.text
    assert Client(authed, auth=("bob", "wrong")).req("GET", "/").status_code == 401
    a = alice.req("GET", "/")
    assert a.status_code == 200 and "team/app" in a.text and "bob/tool" in a.text
    b = bob.req("GET", "/")
    assert "bob/tool" in b.text and "team/app" not in b.text
    assert "<p id='count'>1 repositories</p>" in b.text
    assert bob.req("GET", "/?repo=team/app").status_code == 404
    assert alice.req("GET", "/?repo=team/app").status_code == 200
    csp = a.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script" not in csp


def test_bad_query_answers_400_page(tmp_path: Path) -> None:
    with running(tmp_path / "root") as s:
        r = Client(s.url).req("GET", "/?n=abc")
        assert r.status_code == 400 and "invalid n" in r.text
        assert "text/html" in r.headers["Content-Type"]


def test_page_can_be_turned_off(tmp_path: Path) -> None:
    with running(tmp_path / "root", html=False) as s:
        assert Client(s.url).req("GET", "/").status_code == 404
