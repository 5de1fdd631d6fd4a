"""``push`` gzips layers stored uncompressed, once, against a real CNCF registry.

Images made here (import, build, load of a plain archive) keep plain layer tars; the
registry gets gzip blobs whose gunzip hashes to the config's DiffIDs, under a manifest
with the same config.  Re-pushes (same or another repository) send the same digest and
skip or mount the blobs; skopeo and a fresh engine take the result; pulled manifests
still go back byte-exact.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests

from sdk import Engine
from sdk._internal.arch import goarch
from sdk.distribution import compress
from sdk.errors import InvalidArgument
from tests.root.conftest import Cli
from tests.root.test_registry_client import (
    REGISTRY_BIN,
    SKOPEO,
    Registry,
    _file,
    _sha,
    _tar,
    upload_image,
)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(REGISTRY_BIN),
                                 reason="docker-registry (Debian package) not installed")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PLAIN = ("application/vnd.oci.image.layer.v1.tar",
         "application/vnd.docker.image.rootfs.diff.tar")


@pytest.fixture(autouse=True)
def _auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch ~/.docker/config.json."""
    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "auth.json"))


@pytest.fixture
def built(engine: Engine, busybox: str, tmp_path: Path) -> str:
    """busybox (imported) plus two COPY layers: an image of three plain layers."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n"
                   for i in range(40_000)).encode()
    (ctx / "big.txt").write_bytes(text)
    (ctx / "hello").write_text("built here\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.txt /big.txt\n"
                                    "COPY hello /hello\nCMD [\"cat\", \"/hello\"]\n")
    img, _log = engine.images.build(path=str(ctx), tag="app:1")
    assert len(engine.image_store.layer_chain(img.id)) == 3
    return str(img.id)


def _manifest(reg: Registry, repo: str, ref: str) -> tuple[bytes, str]:
    r = requests.get(reg.url(f"/v2/{repo}/manifests/{ref}"), timeout=30,
                     headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    assert r.status_code == 200, r.text
    return r.content, r.headers["Docker-Content-Digest"]


def _blob(reg: Registry, repo: str, digest: str) -> bytes:
    r = requests.get(reg.url(f"/v2/{repo}/blobs/{digest}"), timeout=60)
    assert r.status_code == 200, r.text
    assert _sha(r.content) == digest
    return r.content


def _pushed_digest(out: str) -> str:
    return out.split("digest: ")[1].split()[0]


def _statuses(out: str) -> dict[str, list[str]]:
    """``{short id: [statuses]}`` from ``berth push``'s output lines ``ID: Status``."""
    seen: dict[str, list[str]] = {}
    for line in out.splitlines():
        head, _, status = line.partition(": ")
        if len(head) == 12 and all(c in "0123456789abcdef" for c in head):
            seen.setdefault(head, []).append(status.strip())
    return seen


def _check_gzip_image(reg: Registry, repo: str, ref: str, image_id: str,
                      media: str = OCI_MANIFEST, layer_type: str = OCI_GZIP) -> dict[str, Any]:
    """The registry's manifest names the image's config and gzip layers that gunzip to
    the config's DiffIDs, each a deterministic gzip (mtime 0, no file name)."""
    raw, digest = _manifest(reg, repo, ref)
    assert _sha(raw) == digest
    doc = json.loads(raw)
    assert doc["mediaType"] == media
    assert doc["config"]["digest"] == image_id
    config = json.loads(_blob(reg, repo, image_id))
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(doc["layers"]) == len(diff_ids)
    for layer, diff_id in zip(doc["layers"], diff_ids, strict=True):
        assert layer["mediaType"] == layer_type
        blob = _blob(reg, repo, layer["digest"])
        assert layer["size"] == len(blob)
        assert blob[:4] == b"\x1f\x8b\x08\x00"          # gzip, deflate, no FNAME
        assert blob[4:8] == b"\0\0\0\0"                  # mtime 0
        assert _sha(gzip.decompress(blob)) == diff_id
        assert len(blob) < len(gzip.decompress(blob))
    return doc


def test_push_gzips_plain_layers_once(engine: Engine, berth: Cli, built: str,
                                      registry: Registry) -> None:
    target = f"{registry.host}/test/app:1"
    chain = engine.image_store.layer_chain(built)
    assert all(lr.media_type in PLAIN and lr.blob_digest == lr.diff_id for lr in chain)
    assert berth("tag", "app:1", target).returncode == 0
    first = berth("push", target)
    assert first.returncode == 0, first.stderr
    digest = _pushed_digest(first.stdout)
    doc = _check_gzip_image(registry, "test/app", "1", built)
    gz = [layer["digest"] for layer in doc["layers"]]
    # progress by the short id of the pushed (gzip) blobs, as docker shows it
    shown = _statuses(first.stdout)
    assert set(shown) == {d[7:19] for d in gz}, first.stdout
    for statuses in shown.values():
        assert statuses[0] == "Preparing" and statuses[-1] == "Pushed", statuses
        assert "Pushing" in statuses
    # made once: one record per layer, the blobs kept; the local layers stay plain
    rows = engine.db.query("SELECT * FROM compressed_blobs ORDER BY blob_digest")
    assert sorted((r["blob_digest"], r["digest"]) for r in rows) == \
        sorted(zip((lr.blob_digest for lr in chain), gz, strict=True))
    assert all(engine.content.exists(d) for d in gz)
    assert engine.image_store.layer_chain(built) == chain
    # the pushed manifest is stored, and inspect shows it as the RepoDigest
    assert engine.content.read_bytes(digest) == _manifest(registry, "test/app", "1")[0]
    assert engine.images.get(target).attrs["RepoDigests"] == [
        f"{registry.host}/test/app@{digest}"]
    blobs = sorted(engine.content.walk())
    # the same push again: same digest, every layer already there, nothing recompressed
    again = berth("push", target)
    assert again.returncode == 0, again.stderr
    assert _pushed_digest(again.stdout) == digest
    assert all(s == ["Preparing", "Layer already exists"]
               for s in _statuses(again.stdout).values()), again.stdout
    # another repository of the same registry: mounted, same digest
    other = f"{registry.host}/copy/app:2"
    berth("tag", "app:1", other)
    mounted = berth("push", other)
    assert mounted.returncode == 0, mounted.stderr
    assert _pushed_digest(mounted.stdout) == digest
    assert mounted.stdout.count("Mounted from test/app") == len(gz), mounted.stdout
    assert sorted(engine.content.walk()) == blobs
    # -q prints the reference only
    quiet = berth("push", "-q", other)
    assert quiet.returncode == 0 and quiet.stdout == f"{other}\n", quiet.stdout
    # save still writes the plain layer tars
    saved = Path(engine.root) / "saved.tar"
    assert berth("save", "-o", str(saved), "app:1").returncode == 0
    with tarfile.open(saved) as tar:
        names = set(tar.getnames())
    assert {f"blobs/sha256/{lr.diff_id[7:]}" for lr in chain} <= names
    assert not {f"blobs/sha256/{d[7:]}" for d in gz} & names
    saved.unlink()


def test_pushed_image_is_taken_by_skopeo_and_a_fresh_engine(
        engine: Engine, berth: Cli, built: str, registry: Registry, other_engine: Engine,
        tmp_path: Path) -> None:
    target = f"{registry.host}/test/app:1"
    berth("tag", "app:1", target)
    digest = _pushed_digest(berth("push", target).stdout)
    # skopeo copies it to an OCI layout without being told to accept plain layers
    if SKOPEO is not None:
        out = tmp_path / "copied"
        subprocess.run([SKOPEO, "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://{target}", f"oci:{out}:x"], check=True, timeout=120)
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == digest
        copied = json.loads((out / "blobs" / "sha256" / digest[7:]).read_bytes())
        assert {layer["mediaType"] for layer in copied["layers"]} == {OCI_GZIP}
    # a fresh engine pulls and runs it: same image ID, the gzip blobs as its layers
    events: list[dict[str, Any]] = []
    img = other_engine.images.pull(f"{registry.host}/test/app", tag="1",
                                   progress=events.append)
    assert img.id == built
    assert img.attrs["RepoDigests"] == [f"{registry.host}/test/app@{digest}"]
    assert other_engine.containers.run(target, remove=True) == b"built here\n"
    assert other_engine.containers.run(target, ["wc", "-l", "/big.txt"], remove=True) \
        .split()[0] == b"40000"
    pulled = other_engine.image_store.layer_chain(img.id)
    assert all(lr.media_type == OCI_GZIP for lr in pulled)
    # the engine that pushed finds its image up to date; a push after that pull keeps
    # the digest (the registry's manifest is the image's own now)
    events.clear()
    back = engine.images.pull(f"{registry.host}/test/app", tag="1", progress=events.append)
    assert back.id == built
    assert events[-1]["status"].startswith("Status: Image is up to date"), events
    assert not any(e.get("status") == "Downloading" for e in events)
    assert _pushed_digest(berth("push", target).stdout) == digest
    assert engine.image_store.layer_chain(built)[0].media_type in PLAIN
    # and the fresh engine pushes what it pulled byte-exact, mounting the blobs
    other_engine.images.get(target).tag(f"{registry.host}/again/app", "3")
    log = other_engine.images.push(f"{registry.host}/again/app", "3")
    assert digest in log and "Mounted from test/app" in log
    assert other_engine.db.query("SELECT * FROM compressed_blobs") == []


def test_pulled_gzip_manifest_is_pushed_byte_exact(registry: Registry,
                                                   other_engine: Engine) -> None:
    """A pulled image with gzip layers goes back as it is (same digest, nothing
    compressed); one pulled with plain layers is pushed gzipped, as docker does."""
    layer = _tar([_file("etc/marker", b"gzip\n" * 1000)])
    digest = upload_image(registry, "src/gz", "1", [layer])
    img = other_engine.images.pull(f"{registry.host}/src/gz:1")
    img.tag(f"{registry.host}/dst/gz", "1")
    log = other_engine.images.push(f"{registry.host}/dst/gz", "1")
    assert f"digest: {digest}" in log and "Mounted from src/gz" in log, log
    assert _manifest(registry, "dst/gz", "1")[1] == digest
    assert other_engine.db.query("SELECT * FROM compressed_blobs") == []
    # plain layers from a registry
    layer = _tar([_file("etc/marker", b"plain\n" * 1000)])
    plain_digest = upload_image(registry, "src/plain", "1", [layer], gzip_layers=False)
    img = other_engine.images.pull(f"{registry.host}/src/plain:1")
    img.tag(f"{registry.host}/dst/plain", "1")
    log = other_engine.images.push(f"{registry.host}/dst/plain", "1")
    assert plain_digest not in log
    _check_gzip_image(registry, "dst/plain", "1", img.id)
    assert len(other_engine.db.query("SELECT * FROM compressed_blobs")) == 1


def _docker_oci_archive(layer: bytes) -> bytes:
    """An OCI layout whose manifest is docker schema2 with a plain docker layer."""
    config = json.dumps({"architecture": goarch(), "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": PLAIN[1], "digest": _sha(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": DOCKER_MANIFEST, "digest": _sha(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": "docker.io/library/dockerish:1"}}]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                           ("index.json", index.encode()),
                           *((f"blobs/sha256/{_sha(b)[7:]}", b)
                             for b in (layer, config, manifest))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_loaded_docker_manifest_gets_docker_gzip_layers(engine: Engine, registry: Registry,
                                                        tmp_path: Path) -> None:
    layer = _tar([_file(f"data/{i}", b"docker schema2 " * 500) for i in range(20)])
    archive = tmp_path / "dockerish.tar"
    archive.write_bytes(_docker_oci_archive(layer))
    [img] = engine.images.load(archive.read_bytes())
    img.tag(f"{registry.host}/dockerish", "1")
    log = engine.images.push(f"{registry.host}/dockerish", "1")
    assert "digest: sha256:" in log
    _check_gzip_image(registry, "dockerish", "1", img.id, media=DOCKER_MANIFEST,
                      layer_type=DOCKER_GZIP)


def test_failed_compression_leaves_nothing(engine: Engine, busybox: str, registry: Registry,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"{registry.host}/fail/busybox:1"
    engine.images.get(busybox).tag(target)
    before = sorted(engine.content.walk())
    original = compress.deflater
    real = original()

    class Broken:
        DEFLATED = real.DEFLATED

        @staticmethod
        def compressobj(*args: Any) -> Any:
            inner = real.compressobj(*args)

            class Half:
                calls = 0

                def compress(self, data: bytes) -> bytes:
                    self.calls += 1
                    if self.calls > 1:       # after the first MiB
                        raise OSError("disk on fire")
                    return inner.compress(data)

                def flush(self) -> bytes:
                    return inner.flush()
            return Half()

    monkeypatch.setattr(compress, "deflater", lambda: Broken)
    with pytest.raises(OSError, match="disk on fire"):
        engine.images.push(target)
    ingest = Path(engine.content.root) / "ingest"
    assert not list(ingest.glob("*"))
    assert sorted(engine.content.walk()) == before
    assert engine.db.query("SELECT * FROM compressed_blobs") == []
    assert engine.images.get(busybox).attrs["RepoDigests"] == []
    # a damaged plain blob is refused, not pushed
    monkeypatch.setattr(compress, "deflater", original)
    [lr] = engine.image_store.layer_chain(busybox)
    path = engine.content.path(lr.blob_digest)
    good = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    try:
        with pytest.raises(InvalidArgument, match="damaged"):
            engine.images.push(target)
        assert not list(ingest.glob("*"))
        assert engine.db.query("SELECT * FROM compressed_blobs") == []
    finally:
        path.write_bytes(good)
        os.chmod(path, 0o444)
    log = engine.images.push(target)
    assert '"Pushed"' in log
    [row] = engine.db.query("SELECT * FROM compressed_blobs")
    assert row["blob_digest"] == lr.blob_digest


def test_rmi_drops_the_gzip_blob(engine: Engine, busybox: str, registry: Registry) -> None:
    target = f"{registry.host}/gone/busybox:1"
    engine.images.get(busybox).tag(target)
    engine.images.push(target)
    [row] = engine.db.query("SELECT * FROM compressed_blobs")
    assert engine.content.exists(row["digest"])
    engine.images.remove(busybox, force=True)
    assert not engine.content.exists(row["digest"])
    assert not engine.content.exists(row["blob_digest"])
    assert engine.db.query("SELECT * FROM compressed_blobs") == []


def test_rewrite_manifest_keeps_everything_else() -> None:
    gz = compress.Gzipped("sha256:" + "b" * 64, 7)
    plain, other = "sha256:" + "a" * 64, "sha256:" + "c" * 64
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": "x", "digest": other, "size": 1},
                      "layers": [{"mediaType": PLAIN[0], "digest": plain, "size": 99,
                                  "annotations": {"k": "v"}},
                                 {"mediaType": OCI_GZIP, "digest": other, "size": 5}],
                      "annotations": {"a": "b"}}).encode()
    doc = json.loads(compress.rewrite_manifest(raw, {plain: gz}))
    assert doc["layers"] == [{"mediaType": OCI_GZIP, "digest": gz.digest, "size": 7,
                              "annotations": {"k": "v"}},
                             {"mediaType": OCI_GZIP, "digest": other, "size": 5}]
    assert doc["annotations"] == {"a": "b"} and doc["config"]["digest"] == other
    assert compress.plain_layers(raw) == {plain}
    shape = json.loads(compress.rewrite_manifest(raw, {plain: None}))   # type only
    assert shape["layers"][0] == {"mediaType": OCI_GZIP, "digest": plain, "size": 99,
                                  "annotations": {"k": "v"}}
    assert compress.gzip_media_type(DOCKER_MANIFEST) == DOCKER_GZIP


def test_gzip_is_deterministic(engine: Engine, busybox: str, other_engine: Engine,
                               busybox_tar: Path) -> None:
    """Two engines (same library) make the same gzip blob of the same layer."""
    import threading

    other = other_engine.images.import_image(str(busybox_tar), repository="bb", tag="1")
    made = []
    for eng, image_id in ((engine, busybox), (other_engine, other.id)):
        [lr] = eng.image_store.layer_chain(image_id)
        made.append(compress.gzip_blob(eng.image_store, lr.blob_digest, threading.Lock()))
        blob = eng.content.read_bytes(made[-1].digest)
        assert _sha(gzip.decompress(blob)) == lr.diff_id
    assert made[0] == made[1]
