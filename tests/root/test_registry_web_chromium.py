"""The registry's web page rendered by a real browser: berth pushes busybox and skopeo a
two-platform index into a berth registry server with htpasswd auth and ``auth.access``,
then headless Chromium (Debian's ``chromium``) loads the page and the test reads the DOM
Chromium built: repositories, tags, digests, sizes, platforms, layers, escaped labels.
The page has no JavaScript, so the DOM is the server's HTML as the browser parsed it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from sdk import Engine
from tests.root.conftest import Cli
from tests.unit.registry_helpers import running

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason="needs Debian's chromium package (/usr/bin/chromium)"),
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")]
bcrypt = pytest.importorskip("bcrypt")

# free text where the spec allows it (labels, platform fields); names and tags cannot
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>\"'&amp;"
ACCESS = {"alice": {"**": ["*"]}, "bob": {"bob/**": ["pull"]}}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
VOID = frozenset({"br", "meta", "img", "input", "hr", "link", "col", "wbr", "source"})


def chromium(args: list[str], url: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium in its own session and a fresh profile; on a hang kill its
    process group (the browser and the helpers it forked) and remove the profile."""
    profile = tempfile.mkdtemp(prefix="berth-chromium-")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish loading {url} in {timeout}s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)    # helpers left behind by the browser
        except ProcessLookupError:
            pass
        shutil.rmtree(profile, ignore_errors=True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Dom(HTMLParser):
    """The dumped DOM as rows: each ``tr.tag`` with its cells' text, plus what matters
    for escaping (every element name, every attribute name)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: set[str] = set()
        self.attributes: set[str] = set()
        self.repos: list[str] = []
        self.rows: list[dict[str, str]] = []
        self.bytes: list[int] = []
        self.title = ""
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.add(tag)
        self.attributes |= set(a)
        if tag == "tr" and a.get("class") == "tag":
            self.rows.append({"tag": a.get("data-tag") or ""})
        if tag == "td":
            self._cell = []
        if a.get("data-bytes"):
            self.bytes.append(int(a["data-bytes"] or 0))
        if tag not in VOID:
            self._stack.append(tag)
        if tag in ("a", "title"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop() != tag:
            pass
        if tag == "td" and self._cell is not None and self.rows:
            cols = len([k for k in self.rows[-1] if k.startswith("col")])
            self.rows[-1][f"col{cols}"] = " ".join(" ".join(self._cell).split())
            self._cell = None
        if tag == "a" and "h2" in self._stack:
            self.repos.append("".join(self._text).strip())
        if tag == "title":
            self.title = "".join(self._text)
        self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def text(self) -> str:
        return " ".join(" ".join(c for r in self.rows for c in r.values()).split())


def _layout(root: Path, busybox_tar: Path) -> Path:
    """An OCI layout whose ``v1`` is an index of linux/amd64 and linux/arm64 (busybox's
    layer shared, one small layer each), labels carrying HOSTILE."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"digest": f"sha256:{h}", "size": len(data)}

    base = gzip.compress(busybox_tar.read_bytes(), compresslevel=1, mtime=0)
    entries = []
    for arch in ("amd64", "arm64"):
        extra = gzip.compress(f"only on {arch}".encode(), mtime=0)
        config = json.dumps({"architecture": arch, "os": "linux",
                             "config": {"Labels": {"org.example.arch": arch,
                                                   "org.example.note": HOSTILE}},
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(b)}
                       for b in (base, extra)]}).encode()
        entries.append({"mediaType": OCI_MANIFEST, **put(manifest),
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": entries}).encode()
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_INDEX, **put(index),
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return root


@dataclass
class Pushed:
    address: str
    busybox: dict[str, object]       # digest, manifest, size
    multi: dict[str, object]


def _expected(address: str, repo: str, tag: str) -> dict[str, object]:
    """What the page should say, computed from the registry's API (every blob once)."""
    def get(ref: str) -> requests.Response:
        r = requests.get(f"http://{address}/v2/{repo}/manifests/{ref}", auth=("alice", "pw"),
                         headers={"Accept": f"{OCI_MANIFEST},{OCI_INDEX},application/"
                                  "vnd.docker.distribution.manifest.v2+json"}, timeout=10)
        assert r.status_code == 200, r.text
        return r

    top = get(tag)
    doc = top.json()
    blobs = {top.headers["Docker-Content-Digest"]: len(top.content)}
    images = [doc]
    if "manifests" in doc:
        images = []
        for e in doc["manifests"]:
            child = get(e["digest"])
            blobs[e["digest"]] = len(child.content)
            images.append(child.json())
    for img in images:
        for desc in [img["config"], *img["layers"]]:
            blobs[desc["digest"]] = desc["size"]
    return {"digest": top.headers["Docker-Content-Digest"], "size": sum(blobs.values()),
            "layers": [layer for img in images for layer in img["layers"]]}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Pushed]:
    """One registry for the module: berth's own push (busybox, after ``berth login``)
    and skopeo's ``copy --all`` of a two-platform index."""
    tmp = tmp_path_factory.mktemp("registry-web")
    engine = Engine(root=tmp / "berth-root", config=tmp / "daemon.json")
    pw = tmp / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n"
                          for u in ("alice", "bob")))
    try:
        engine.images.import_image(str(busybox_tar), repository="busybox", tag="latest")
        berth = Cli(engine)
        berth.env["BERTH_AUTH_CONFIG"] = str(tmp / "auth.json")   # never ~/.docker
        with running(tmp / "registry", htpasswd_path=str(pw), access=ACCESS) as s:
            host = s.address
            login = berth("login", "-u", "alice", "--password-stdin", host, input=b"pw\n")
            assert login.returncode == 0, login.stderr
            assert berth("tag", "busybox", f"{host}/lib/busybox:1.36").returncode == 0
            push = berth("push", f"{host}/lib/busybox:1.36", timeout=120)
            assert push.returncode == 0, push.stderr
            layout = _layout(tmp / "oci", busybox_tar)
            policy = tmp / "policy.json"
            policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
            subprocess.run(["skopeo", "--policy", str(policy), "copy", "--all",
                            "--dest-tls-verify=false", "--dest-creds", "alice:pw",
                            f"oci:{layout}:v1", f"docker://{host}/bob/multi:v1"],
                           check=True, capture_output=True, timeout=120)
            yield Pushed(host, _expected(host, "lib/busybox", "1.36"),
                         _expected(host, "bob/multi", "v1"))
    finally:
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_chromium_renders_repositories_tags_sizes_and_layers(pushed: Pushed) -> None:
    r = chromium(["--dump-dom"], f"http://alice:pw@{pushed.address}/")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = Dom(r.stdout)
    assert dom.repos == ["bob/multi", "lib/busybox"]
    assert dom.title == "berth registry"            # no injected script ran
    assert {"script", "img", "iframe", "object"}.isdisjoint(dom.elements)
    assert not {a for a in dom.attributes if a.startswith("on")}
    busybox = [row for row in dom.rows if row["tag"] == "1.36"]
    assert len(busybox) == 1
    assert pushed.busybox["digest"] in busybox[0]["col1"]
    assert pushed.busybox["size"] in dom.bytes
    assert busybox[0]["col3"] == "linux/amd64"
    for layer in pushed.busybox["layers"]:                       # type: ignore[attr-defined]
        assert layer["digest"] in busybox[0]["col4"] and layer["mediaType"] in busybox[0]["col4"]
    # the index: one row per platform, the tag's cells spanning them
    multi = [row for row in dom.rows if row["tag"] == "v1"]
    assert len(multi) == 2 and pushed.multi["digest"] in multi[0]["col1"]
    assert "index" in multi[0]["col2"] and pushed.multi["size"] in dom.bytes
    assert multi[0]["col3"].startswith("linux/amd64 sha256:")
    assert multi[1]["col0"].startswith("linux/arm64 sha256:")  # rowspan: fewer cells
    layers = multi[0]["col4"] + multi[1]["col1"]
    for layer in pushed.multi["layers"]:                          # type: ignore[attr-defined]
        assert layer["digest"] in layers
    # labels: the hostile one is text, exactly as pushed
    assert f"org.example.note {HOSTILE}" in multi[0]["col5"]
    assert "org.example.arch arm64" in multi[1]["col2"]


def test_chromium_sees_only_what_the_user_may_pull(pushed: Pushed) -> None:
    bob = Dom(chromium(["--dump-dom"], f"http://bob:pw@{pushed.address}/").stdout)
    assert bob.repos == ["bob/multi"] and "lib/busybox" not in bob.text()
    one = Dom(chromium(["--dump-dom"],
                       f"http://bob:pw@{pushed.address}/?repo=lib/busybox").stdout)
    assert one.repos == [] and one.rows == []
    alice = Dom(chromium(["--dump-dom"],
                         f"http://alice:pw@{pushed.address}/?repo=lib/busybox").stdout)
    assert alice.repos == ["lib/busybox"] and [r["tag"] for r in alice.rows] == ["1.36"]
    anonymous = chromium(["--dump-dom"], f"http://{pushed.address}/")
    assert "busybox" not in anonymous.stdout and "bob/multi" not in anonymous.stdout


def test_chromium_screenshot(pushed: Pushed, tmp_path: Path) -> None:
    png = tmp_path / "page.png"
    r = chromium([f"--screenshot={png}", "--window-size=1400,1000", "--hide-scrollbars"],
                 f"http://alice:pw@{pushed.address}/")
    assert r.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("BERTH_KEEP_SCREENSHOT")
    if keep:                                     # for a human to look at the page
        shutil.copy(png, keep)
    assert png.stat().st_size > 20_000           # a rendered table, not a blank page
