"""``berth save``: Docker 25+ layout, names -> images/tags, determinism, streaming of
compressed blobs, and the round trip through ``load``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from sdk.archive.load import load
from sdk.archive.save import plan_save, save
from sdk.content.store import ContentStore
from sdk.errors import ImageNotFound
from sdk.images.service import ImageService
from sdk.snapshots.layers import LayerStore
from sdk.store.db import Database
from tests.unit.test_archive_load import L1, L2, L3, Img, oci, sha, state

TAR_HEX = 64


def new_service(root: Path) -> ImageService:
    root.mkdir()
    return ImageService(Database(root / "berth.db"), ContentStore(root / "content"),
                        LayerStore(root / "storage", "vfs"), "vfs")


@pytest.fixture
def service(tmp_path: Path) -> ImageService:
    return new_service(tmp_path / "a")


def saved(service: ImageService, *names: str) -> bytes:
    return b"".join(save(service, list(names), chunk_size=4096))


def members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            f = t.extractfile(m)
            out[m.name] = (m, f.read() if f else b"")
    return out


def test_layout_is_docker_25_and_oci(service: ImageService) -> None:
    image_id = service.import_tar(io.BytesIO(L1), tag="busybox:latest")
    service.tag("busybox:latest", "busybox:v2")
    data = saved(service, "busybox")
    m = members(data)
    names = list(m)
    config_and_manifest = names[3:-4]
    assert config_and_manifest == sorted(config_and_manifest) and len(config_and_manifest) == 2
    # the layer first, then config and manifest (they need its size), then the files
    assert names == ["blobs", "blobs/sha256", f"blobs/sha256/{sha(L1)[7:]}",
                     *config_and_manifest,
                     "index.json", "manifest.json", "oci-layout", "repositories"]
    assert f"blobs/sha256/{image_id[7:]}" in config_and_manifest
    for info, _ in m.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    for name, (_, body) in m.items():           # every blob is named by its digest
        if name.startswith("blobs/sha256/"):
            assert sha(body)[7:] == name[13:]
    assert m[f"blobs/sha256/{sha(L1)[7:]}"][1] == L1
    assert m[f"blobs/sha256/{image_id[7:]}"][1] == service.content.read_bytes(image_id)
    assert m["oci-layout"][1] == b'{"imageLayoutVersion": "1.0.0"}'
    assert json.loads(m["manifest.json"][1]) == [{
        "Config": f"blobs/sha256/{image_id[7:]}",
        "RepoTags": ["busybox:latest", "busybox:v2"],
        "Layers": [f"blobs/sha256/{sha(L1)[7:]}"]}]
    assert json.loads(m["repositories"][1]) == {"busybox": {"latest": sha(L1)[7:],
                                                            "v2": sha(L1)[7:]}}
    index = json.loads(m["index.json"][1])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [d["annotations"] for d in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/busybox:latest",
         "org.opencontainers.image.ref.name": "latest"},
        {"io.containerd.image.name": "docker.io/library/busybox:v2",
         "org.opencontainers.image.ref.name": "v2"}]
    manifest = json.loads(m[f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"][1])
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": sha(L1), "size": len(L1)}]
    # deterministic: the same images give the same bytes
    assert saved(service, "busybox") == data


def test_name_selection_like_docker(service: ImageService) -> None:
    a = service.import_tar(io.BytesIO(L1), tag="app:1")
    service.tag("app:1", "app:2")
    service.tag("app:1", "other:x")
    b = service.import_tar(io.BytesIO(L3), tag="tool:1")
    m = members(saved(service, "app:2", "tool", b[7:19]))
    assert json.loads(m["manifest.json"][1]) == [
        {"Config": f"blobs/sha256/{a[7:]}", "RepoTags": ["app:2"],
         "Layers": [f"blobs/sha256/{sha(L1)[7:]}"]},
        {"Config": f"blobs/sha256/{b[7:]}", "RepoTags": ["tool:1"],
         "Layers": [f"blobs/sha256/{sha(L3)[7:]}"]}]
    by_id = members(saved(service, a))
    assert json.loads(by_id["manifest.json"][1])[0]["RepoTags"] is None
    assert "repositories" not in by_id
    assert "annotations" not in json.loads(by_id["index.json"][1])["manifests"][0]
    with pytest.raises(ImageNotFound):
        plan_save(service, ["app:1", "missing:tag"])


def test_compressed_stored_layers_are_saved_uncompressed(service: ImageService,
                                                         tmp_path: Path) -> None:
    img = Img([L1, L2], ["gz:1"])
    [loaded] = load(service, io.BytesIO(oci([img])))
    assert all(lr.blob_digest != lr.diff_id for lr in service.layer_chain(loaded.id))
    m = members(saved(service, "gz:1"))
    assert m[f"blobs/sha256/{sha(L1)[7:]}"][1] == L1
    assert m[f"blobs/sha256/{sha(L2)[7:]}"][1] == L2
    assert m[f"blobs/sha256/{loaded.id[7:]}"][1] == img.cfg


def test_round_trip_keeps_id_config_tags_and_files(service: ImageService,
                                                   tmp_path: Path) -> None:
    [first] = load(service, io.BytesIO(oci([Img([L1, L2], ["rt:1"])])))
    other_id = service.import_tar(io.BytesIO(L3), tag="imported:latest")
    data = saved(service, "rt:1", "imported")
    fresh = new_service(tmp_path / "b")
    loaded = load(fresh, io.BytesIO(data))
    assert [(x.id, x.tags) for x in loaded] == [
        (first.id, ["docker.io/library/rt:1"]), (other_id, ["docker.io/library/imported:latest"])]
    for image_id in (first.id, other_id):
        assert fresh.content.read_bytes(image_id) == service.content.read_bytes(image_id)
        assert fresh.inspect(image_id)["RootFS"] == service.inspect(image_id)["RootFS"]
    # and back again: the same archive bytes
    assert saved(fresh, "rt:1", "imported") == data
    before = state(fresh)
    load(fresh, io.BytesIO(data))
    assert state(fresh) == before


def test_model_save_and_load(service: ImageService, tmp_path: Path) -> None:
    from sdk.models.images import Image, ImageCollection

    class FakeEngine:
        image_store = service

    image_id = service.import_tar(io.BytesIO(L1), tag="m:1")
    images = ImageCollection(FakeEngine())  # type: ignore[arg-type]
    img = images.get("m:1")
    assert isinstance(img, Image)
    chunks = list(img.save(chunk_size=1000, named=True))
    assert all(len(c) <= 1000 + 512 for c in chunks)
    assert "RepoTags" in b"".join(chunks).decode("latin-1")
    with pytest.raises(Exception, match="not a valid tag"):
        img.save(named="nope:1")
    fresh = new_service(tmp_path / "b")

    class FreshEngine:
        image_store = fresh

    [got] = ImageCollection(FreshEngine()).load(b"".join(chunks))  # type: ignore[arg-type]
    assert got.id == image_id and got.tags == ["m:1"]
