"""``berth load``: docker save (old and new layouts), OCI layouts, whole-archive
compression, verification, hostile archives and layers — nothing half-committed."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sdk._internal.arch import goarch
from sdk.archive.load import load
from sdk.content.store import ContentStore
from sdk.errors import InvalidArgument
from sdk.images.service import ImageService
from sdk.snapshots.layers import LayerStore
from sdk.store.db import Database
from tests.unit.test_diff_apply import E, d, f, make_tar, sym, wh

L1 = make_tar([d("bin"), f("bin/hello", b"hello", mode=0o755), d("etc"),
               f("etc/os-release", b"one")])
L2 = make_tar([d("etc"), f("etc/os-release", b"two"), wh("bin/hello"), f("added", b"2")])
L3 = make_tar([f("third", b"3")])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hexof(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config(layers: list[bytes], *, os_name: str = "linux", cmd: str = "sh",
           diff_ids: list[str] | None = None) -> bytes:
    """A config in the key order Go's OCI struct marshals (as skopeo writes it)."""
    return json.dumps({
        "created": "2024-01-02T03:04:05Z", "architecture": goarch(), "os": os_name,
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(x) for x in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z"} for _ in layers]},
        separators=(",", ":")).encode()


def tar_of(files: dict[str, bytes], extra: list[E] | None = None) -> bytes:
    return make_tar([f(name, data) for name, data in files.items()] + list(extra or []))


@dataclass
class Img:
    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    cfg: bytes = b""

    def __post_init__(self) -> None:
        self.cfg = self.cfg or config(self.layers)


def docker_old(images: list[Img]) -> bytes:
    """``docker save`` before 25: ``<id>/layer.tar``, ``<id>.json``; a repeated layer is a
    symlink to its first copy, as Docker writes it."""
    files: dict[str, bytes] = {}
    links: list[E] = []
    seen: dict[str, str] = {}
    manifest = []
    for n, img in enumerate(images):
        paths = []
        for i, layer in enumerate(img.layers):
            v1 = hashlib.sha256(f"{n}-{i}".encode()).hexdigest()
            path = f"{v1}/layer.tar"
            if sha(layer) in seen:
                links.append(sym(path, f"../{seen[sha(layer)]}"))
            else:
                files[path] = layer
                files[f"{v1}/VERSION"] = b"1.0"
                seen[sha(layer)] = path
            paths.append(path)
        files[f"{hexof(img.cfg)}.json"] = img.cfg
        manifest.append({"Config": f"{hexof(img.cfg)}.json", "RepoTags": img.tags or None,
                         "Layers": paths})
    files["manifest.json"] = json.dumps(manifest).encode()
    return tar_of(files, links)


def oci(images: list[Img], *, compress: Callable[[bytes], bytes] = gzip.compress,
        layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
        annotation: str = "org.opencontainers.image.ref.name",
        extra_files: dict[str, bytes] | None = None) -> bytes:
    """An OCI image layout as ``skopeo copy ... oci-archive:`` writes it."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    index = []
    for img in images:
        descs = []
        for layer in img.layers:
            blob = compress(layer)
            files[f"blobs/sha256/{hexof(blob)}"] = blob
            descs.append({"mediaType": layer_type, "digest": sha(blob), "size": len(blob)})
        files[f"blobs/sha256/{hexof(img.cfg)}"] = img.cfg
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(img.cfg), "size": len(img.cfg)},
            "layers": descs}).encode()
        files[f"blobs/sha256/{hexof(manifest)}"] = manifest
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest), "size": len(manifest)}
        for tag in img.tags or [None]:
            index.append({**desc, "annotations": {annotation: tag}} if tag else desc)
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": index}).encode()
    files.update(extra_files or {})
    return tar_of(files)


def make_service(root: Path, driver: str = "vfs") -> ImageService:
    """An image service on a fresh ``root`` (no engine around it)."""
    root.mkdir()
    return ImageService(Database(root / "berth.db"), ContentStore(root / "content"),
                        LayerStore(root / "storage", driver), driver)  # type: ignore


@pytest.fixture
def service(tmp_path: Path) -> ImageService:
    return make_service(tmp_path / "engine")


def state(service: ImageService) -> dict[str, Any]:
    """Everything a load may change: rows, blobs, unpacked layers, leftovers."""
    db = service.db
    out: dict[str, Any] = {t: sorted(tuple(r) for r in db.query(f"SELECT * FROM {t}"))
                           for t in ("images", "tags", "layers", "image_layers")}
    for sub in ("content/sha256", "content/ingest", "storage/vfs"):
        p = service.content.root.parent / sub
        out[sub] = sorted(os.listdir(p)) if p.is_dir() else []
    return out


def load_bytes(service: ImageService, data: bytes, **kw: Any) -> list[Any]:
    return load(service, io.BytesIO(data), **kw)


def files_of(service: ImageService, image_id: str) -> dict[str, bytes]:
    top = service.layer_chain(image_id)[-1].chain_id
    base = service.layers.base / top[7:] / "fs"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


# ---- the formats ---------------------------------------------------------------------------
def test_old_docker_save_with_shared_symlinked_layers(service: ImageService) -> None:
    a = Img([L1, L2], ["busybox:latest", "example.com:5000/team/app:1.0"])
    b = Img([L1, L2, L1], [], config([L1, L2, L1], cmd="other"))
    loaded = load_bytes(service, docker_old([a, b]))
    assert [x.id for x in loaded] == [sha(a.cfg), sha(b.cfg)]
    assert loaded[0].tags == ["docker.io/library/busybox:latest",
                              "example.com:5000/team/app:1.0"]
    assert loaded[1].tags == []
    assert service.resolve("busybox") == sha(a.cfg)
    assert service.resolve("example.com:5000/team/app:1.0") == sha(a.cfg)
    # the exact config bytes are kept, so the ID is their digest
    assert service.content.read_bytes(sha(a.cfg)) == a.cfg
    assert [lr.diff_id for lr in service.layer_chain(sha(b.cfg))] == [sha(L1), sha(L2),
                                                                      sha(L1)]
    assert files_of(service, sha(a.cfg)) == {"etc/os-release": b"two", "added": b"2"}
    assert files_of(service, sha(b.cfg))["bin/hello"] == b"hello"
    assert service.inspect(sha(a.cfg))["Config"] == {"Cmd": ["sh"]}
    assert os.listdir(service.content.root / "ingest") == []


def test_oci_archive_with_gzip_layers_keeps_the_blobs(service: ImageService) -> None:
    img = Img([L1, L2], ["localhost:5000/x/y:v1"])
    data = oci([img])
    [loaded] = load_bytes(service, data)
    assert loaded.id == sha(img.cfg) and loaded.tags == ["localhost:5000/x/y:v1"]
    chain = service.layer_chain(loaded.id)
    assert [lr.media_type for lr in chain] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 2
    assert [lr.diff_id for lr in chain] == [sha(L1), sha(L2)]
    for lr in chain:      # the compressed blob itself is stored, under its own digest
        assert sha(service.content.read_bytes(lr.blob_digest)) == lr.blob_digest
        assert gzip.decompress(service.content.read_bytes(lr.blob_digest)) in (L1, L2)


@pytest.mark.parametrize("annotation, name, expected", [
    ("org.opencontainers.image.ref.name", "busybox:1.36", "docker.io/library/busybox:1.36"),
    ("org.opencontainers.image.ref.name", "latest", None),     # a bare tag names nothing
    ("io.containerd.image.name", "docker.io/library/alpine:3", "docker.io/library/alpine:3"),
])
def test_oci_names_from_annotations(service: ImageService, annotation: str, name: str,
                                    expected: str | None) -> None:
    [loaded] = load_bytes(service, oci([Img([L1], [name])], annotation=annotation))
    assert loaded.tags == ([expected] if expected else [])


def test_docker_media_types_and_uncompressed_oci_layers(service: ImageService) -> None:
    img = Img([L1], ["a:b"])
    load_bytes(service, oci([img], layer_type="application/vnd.docker.image.rootfs.diff.tar"
                            ".gzip"))
    other = Img([L3], ["c:d"])
    [loaded] = load_bytes(service, oci([other], compress=lambda b: b,
                                       layer_type="application/vnd.oci.image.layer.v1.tar"))
    [lr] = service.layer_chain(loaded.id)
    assert lr.blob_digest == lr.diff_id == sha(L3)
    assert lr.media_type == "application/vnd.oci.image.layer.v1.tar"


def nested(images: dict[str, Img], attestation: bool = True) -> bytes:
    """A multi-platform image: index.json -> nested index -> one manifest per arch."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    children = []
    for arch, img in images.items():
        blob = gzip.compress(img.layers[0], mtime=0)
        files[f"blobs/sha256/{hexof(blob)}"] = blob
        files[f"blobs/sha256/{hexof(img.cfg)}"] = img.cfg
        m = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": sha(img.cfg), "size": len(img.cfg)},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                    "digest": sha(blob), "size": len(blob)}]}).encode()
        files[f"blobs/sha256/{hexof(m)}"] = m
        children.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "digest": sha(m), "size": len(m),
                         "platform": {"architecture": arch, "os": "linux"}})
    if attestation:
        children.insert(0, {**children[0], "platform": {"architecture": "unknown",
                                                        "os": "unknown"}})
    idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": children}).encode()
    files[f"blobs/sha256/{hexof(idx)}"] = idx
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(idx),
        "size": len(idx), "annotations": {"io.containerd.image.name":
                                          "docker.io/library/multi:1"}}]}).encode()
    return tar_of(files)


def test_nested_index_picks_the_platform(service: ImageService) -> None:
    other = "arm64" if goarch() != "arm64" else "amd64"
    host_img = Img([L1])
    other_img = Img([L3], cfg=config([L3], cmd="other-arch"))
    data = nested({other: other_img, goarch(): host_img})
    [loaded] = load_bytes(service, data)
    assert loaded.id == sha(host_img.cfg) and loaded.tags == ["docker.io/library/multi:1"]
    [picked] = load_bytes(service, data, platform=f"linux/{other}")
    assert picked.id == sha(other_img.cfg)
    with pytest.raises(InvalidArgument, match="no image for linux/s390x"):
        load_bytes(service, data, platform="linux/s390x")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress],
                         ids=["gzip", "bzip2", "xz"])
def test_whole_archive_compressed(service: ImageService,
                                  compress: Callable[[bytes], bytes]) -> None:
    img = Img([L1], ["busybox:latest"])
    [loaded] = load_bytes(service, compress(docker_old([img])))
    assert loaded.id == sha(img.cfg)


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_bzip2_and_xz_layers_are_stored_plain(service: ImageService,
                                              compress: Callable[[bytes], bytes]) -> None:
    img = Img([L1], ["a:b"])
    files = {f"{hexof(img.cfg)}.json": img.cfg, "l/layer.tar": compress(L1),
             "manifest.json": json.dumps([{"Config": f"{hexof(img.cfg)}.json",
                                           "RepoTags": ["a:b"],
                                           "Layers": ["l/layer.tar"]}]).encode()}
    [loaded] = load_bytes(service, tar_of(files))
    [lr] = service.layer_chain(loaded.id)
    assert lr.blob_digest == sha(L1) and service.content.read_bytes(lr.blob_digest) == L1


def test_loading_twice_is_idempotent_and_retag_is_reported(service: ImageService) -> None:
    a = Img([L1, L2], ["app:1"])
    data = docker_old([a])
    load_bytes(service, data)
    before = state(service)
    [again] = load_bytes(service, data)
    assert again.replaced == [] and state(service) == before
    b = Img([L3], ["app:1"])
    [moved] = load_bytes(service, docker_old([b]))
    assert moved.replaced == [("docker.io/library/app:1", sha(a.cfg))]
    assert service.resolve("app:1") == sha(b.cfg)
    assert service.exists(sha(a.cfg))      # untagged, like docker's "renaming ... to empty"


# ---- bad archives: one clear error, nothing changed -------------------------------------
GOOD = Img([L1, L2], ["good:1"])
BAD_L2 = make_tar([f("tampered", b"!")])


def _manifest(items: Any) -> bytes:
    return json.dumps(items).encode()


def _docker_files(img: Img = GOOD) -> dict[str, bytes]:
    return {f"blobs/sha256/{hexof(img.cfg)}": img.cfg,
            f"blobs/sha256/{hexof(L1)}": L1, f"blobs/sha256/{hexof(L2)}": L2,
            "manifest.json": _manifest([{
                "Config": f"blobs/sha256/{hexof(img.cfg)}", "RepoTags": img.tags,
                "Layers": [f"blobs/sha256/{hexof(L1)}", f"blobs/sha256/{hexof(L2)}"]}])}


def _with(**changes: bytes | None) -> bytes:
    files = _docker_files()
    for key, value in changes.items():
        name = {"manifest": "manifest.json", "config": f"blobs/sha256/{hexof(GOOD.cfg)}",
                "l1": f"blobs/sha256/{hexof(L1)}", "l2": f"blobs/sha256/{hexof(L2)}"}[key]
        if value is None:
            del files[name]
        else:
            files[name] = value
    return tar_of(files)


def _layers_renamed() -> bytes:
    """Layers under names that carry no digest: only the DiffID check can catch it."""
    files = _docker_files()
    files.pop(f"blobs/sha256/{hexof(L2)}")
    files["x/layer.tar"] = BAD_L2
    m = json.loads(files["manifest.json"])
    m[0]["Layers"][1] = "x/layer.tar"
    files["manifest.json"] = _manifest(m)
    return tar_of(files)


def _second_image_bad() -> bytes:
    files = _docker_files()
    bad_cfg = config([L3], diff_ids=[sha(b"nope")])
    files[f"{hexof(bad_cfg)}.json"] = bad_cfg
    files["l3/layer.tar"] = L3
    m = json.loads(files["manifest.json"])
    m.append({"Config": f"{hexof(bad_cfg)}.json", "RepoTags": ["second:1"],
              "Layers": ["l3/layer.tar"]})
    files["manifest.json"] = _manifest(m)
    return tar_of(files)


def _oci_gzip_diffid_mismatch() -> bytes:
    cfg = config([L1, L2], diff_ids=[sha(L1), sha(L3)])
    return oci([Img([L1, L2], ["gz:1"], cfg)])


def _oci_descriptor(mutate: Callable[[dict[str, Any]], None]) -> bytes:
    data = oci([Img([L1], ["o:1"])])
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            members[m.name] = t.extractfile(m).read()  # type: ignore[union-attr]
    index = json.loads(members["index.json"])
    mdesc = index["manifests"][0]
    manifest = json.loads(members[f"blobs/sha256/{mdesc['digest'][7:]}"])
    mutate(manifest)
    raw = json.dumps(manifest).encode()
    members[f"blobs/sha256/{hexof(raw)}"] = raw
    mdesc.update(digest=sha(raw), size=len(raw))
    members["index.json"] = json.dumps(index).encode()
    return tar_of(members)


def _with_parent(parent_cfg: bytes, parent: str | None = None) -> bytes:
    """GOOD plus a one-layer image that GOOD's manifest.json entry names as Parent."""
    files = _docker_files()
    files[f"blobs/sha256/{hexof(parent_cfg)}"] = parent_cfg
    m = json.loads(files["manifest.json"])
    m[0]["Parent"] = parent if parent is not None else sha(parent_cfg)
    m.append({"Config": f"blobs/sha256/{hexof(parent_cfg)}", "RepoTags": ["base:1"],
              "Layers": [f"blobs/sha256/{hexof(L1)}"]})
    files["manifest.json"] = _manifest(m)
    return tar_of(files)


MALFORMED: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty-input": (lambda: b"", "no files in it"),
    "not-a-tar": (lambda: b"hello world, this is not a tar archive" * 20, "invalid archive"),
    "truncated-gzip": (lambda: gzip.compress(_with())[:-200], "corrupt compressed stream"),
    "no-manifest": (lambda: tar_of({"foo": b"bar"}), "neither manifest.json"),
    "bad-json": (lambda: _with(manifest=b"[{not json"), "manifest.json is not valid JSON"),
    "null-manifest": (lambda: _with(manifest=b"null"), "manifest cannot be null"),
    "manifest-not-list": (lambda: _with(manifest=b'{"a":1}'), "is not a list"),
    "missing-config": (lambda: _with(config=None), "config 'blobs/sha256/"),
    "missing-layer": (lambda: _with(l2=None), "is missing"),
    "blob-digest-mismatch": (lambda: _with(l2=BAD_L2), "digest mismatch"),
    "diffid-mismatch": (_layers_renamed, "invalid diffID for layer 1"),
    "diffid-mismatch-gzip": (_oci_gzip_diffid_mismatch, "invalid diffID for layer 1"),
    "layer-count": (lambda: _with(manifest=_manifest([{
        "Config": f"blobs/sha256/{hexof(GOOD.cfg)}", "RepoTags": [],
        "Layers": [f"blobs/sha256/{hexof(L1)}"]}])), "layers length mismatch"),
    "bad-tag": (lambda: _with(manifest=_manifest([{
        "Config": f"blobs/sha256/{hexof(GOOD.cfg)}", "RepoTags": ["Bad:Tag!"],
        "Layers": []}])), "invalid tag"),
    "dotdot-layer-path": (lambda: _with(manifest=_manifest([{
        "Config": f"blobs/sha256/{hexof(GOOD.cfg)}", "RepoTags": [],
        "Layers": ["../../etc/passwd", "x"]}])), "points outside the archive"),
    "member-dotdot": (lambda: tar_of({**_docker_files(), "../escape": b"x"}),
                      "'../escape' points outside the archive"),
    "member-absolute": (lambda: tar_of({**_docker_files(), "/etc/evil": b"x"}),
                        "'/etc/evil' has an absolute path"),
    "symlink-escape": (lambda: _layers_via_link("../../../etc/passwd"),
                       "points outside the archive"),
    "device-member": (lambda: tar_of(_docker_files(), [E("dev", tarfile.CHRTYPE)]),
                      "not a regular file"),
    "config-digest-mismatch": (lambda: _with(config=config([L1, L2], cmd="x")),
                "digest mismatch"),
    "second-image-bad": (_second_image_bad, "invalid diffID for layer 0"),
    "oci-size-mismatch": (lambda: _oci_descriptor(
        lambda m: m["layers"][0].update(size=m["layers"][0]["size"] + 1)), "size mismatch"),
    "oci-digest-missing-blob": (lambda: _oci_descriptor(
        lambda m: m["layers"][0].update(digest=sha(b"absent"))), "is missing"),
    "oci-manifest-and-index": (lambda: _oci_descriptor(
        lambda m: m.update(manifests=[])), "both an index and an image manifest"),
    "oci-sha512": (lambda: _oci_descriptor(
        lambda m: m["layers"][0].update(digest="sha512:" + "a" * 128)),
        "unsupported digest algorithm"),
    # docker's checkValidParent: the parent's history must be the child's minus one
    "invalid-parent": (lambda: _with_parent(config([L1], cmd="p") .replace(
        b'"created":"2024-01-02T03:04:05Z"}', b'"created":"2020-01-01T00:00:00Z"}')),
        "is not a valid parent for"),
    "bad-parent-digest": (lambda: _with_parent(config([L1]), parent="sha256:xyz"),
                          "invalid Parent of manifest.json entry 0"),
    "oci-bad-media-type": (lambda: _oci_descriptor(
        lambda m: m["layers"][0].update(mediaType="text/plain")), "unsupported media type"),
}


def _layers_via_link(target: str) -> bytes:
    files = _docker_files()
    m = json.loads(files["manifest.json"])
    m[0]["Layers"][1] = "link/layer.tar"
    files["manifest.json"] = _manifest(m)
    return tar_of(files, [sym("link", target)])


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_archives_change_nothing(service: ImageService, case: str) -> None:
    load_bytes(service, oci([Img([L3], ["kept:1"])]))     # something already stored
    before = state(service)
    make, message = MALFORMED[case]
    with pytest.raises(InvalidArgument) as err:
        load_bytes(service, make())
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert state(service) == before


def test_windows_image_is_refused(service: ImageService) -> None:
    img = Img([L1], ["win:1"], config([L1], os_name="windows"))
    with pytest.raises(InvalidArgument, match="cannot load windows image on linux"):
        load_bytes(service, docker_old([img]))


# ---- hostile layer content: the applier confines it --------------------------------------
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "keep").write_text("original")
    return d


@pytest.mark.parametrize("entries", [
    [f("../escape", b"x")],
    [d("a"), f("a/../../escape", b"x")],
    [sym("esc", "OUTSIDE"), f("esc/pwned", b"x")],
    [sym("up", ".."), f("up/pwned", b"x")],
], ids=["dotdot", "inner-dotdot", "symlink-abs", "symlink-parent"])
def test_hostile_layers_are_refused(service: ImageService, outside: Path,
                                    entries: list[E]) -> None:
    for e in entries:
        e.linkname = e.linkname.replace("OUTSIDE", str(outside))
    layer = make_tar(entries)
    before = state(service)
    with pytest.raises(InvalidArgument, match="invalid layer entry"):
        load_bytes(service, docker_old([Img([L1, layer], ["evil:1"])]))
    assert state(service) == before
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "original"


def test_absolute_layer_names_are_confined(service: ImageService, outside: Path) -> None:
    layer = make_tar([f(str(outside / "keep"), b"pwned"), f("/abs", b"a")])
    [loaded] = load_bytes(service, docker_old([Img([layer], ["abs:1"])]))
    assert files_of(service, loaded.id) == {"abs": b"a",
                                            str(outside / "keep").lstrip("/"): b"pwned"}
    assert (outside / "keep").read_text() == "original"
