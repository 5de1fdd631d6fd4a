"""A loaded image keeps the archive's image manifest byte-exact (OCI layouts, Docker 25+
``index.json``) when every blob it names is stored, so ``push`` re-creates its digest;
other archives get berth's own OCI manifest."""

from __future__ import annotations

import bz2
import io
import json
import tarfile
from pathlib import Path

from sdk.archive.load import load
from sdk.images import records
from sdk.images.service import ImageService
from tests.unit.test_archive_load import L1, L2, L3, Img, docker_old, nested, oci, sha, tar_of
from tests.unit.test_archive_save import new_service, saved

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isfile()}  # type: ignore[union-attr]


def index_manifests(data: bytes) -> list[bytes]:
    """The image manifests an archive's index.json points at (one level)."""
    files = members(data)
    index = json.loads(files["index.json"])
    return [files[f"blobs/sha256/{d['digest'][7:]}"] for d in index["manifests"]]


def pushed(service: ImageService, image_id: str) -> bytes:
    raw, media = service.manifest_for_push(image_id)
    assert media == OCI_MANIFEST
    return raw


def test_oci_archive_manifest_is_kept_byte_exact(tmp_path: Path) -> None:
    service = new_service(tmp_path / "a")
    img = Img([L1, L2], ["localhost:5000/x/y:v1"])
    data = oci([img])
    [manifest] = index_manifests(data)
    [loaded] = load(service, io.BytesIO(data))
    assert pushed(service, loaded.id) == manifest
    row = service.db.one("SELECT manifest_digest FROM images WHERE id=?", (loaded.id,))
    assert row is not None and row["manifest_digest"] == sha(manifest)


def test_nested_index_keeps_the_platform_manifest(tmp_path: Path) -> None:
    from sdk._internal.arch import goarch

    service = new_service(tmp_path / "a")
    img = Img([L1])
    data = nested({goarch(): img})
    [loaded] = load(service, io.BytesIO(data))
    raw = pushed(service, loaded.id)
    doc = json.loads(raw)
    assert doc["config"]["digest"] == loaded.id == sha(img.cfg)
    assert members(data)[f"blobs/sha256/{sha(raw)[7:]}"] == raw


def test_old_docker_save_gets_berths_manifest(tmp_path: Path) -> None:
    service = new_service(tmp_path / "a")
    img = Img([L1, L3], ["old:1"])
    [loaded] = load(service, io.BytesIO(docker_old([img])))
    chain = service.layer_chain(loaded.id)
    assert pushed(service, loaded.id) == records.oci_manifest(loaded.id, len(img.cfg), chain)
    assert [lr.blob_digest for lr in chain] == [sha(L1), sha(L3)]


def test_re_encoded_layers_do_not_keep_the_manifest(tmp_path: Path) -> None:
    """bzip2 layers are stored plain: the archive's manifest names blobs berth does not
    have, so keeping it would make push fail; berth's manifest is recorded instead."""
    service = new_service(tmp_path / "a")
    img = Img([L2], ["bz:1"])
    data = oci([img], compress=bz2.compress,
               layer_type="application/vnd.oci.image.layer.v1.tar")
    [manifest] = index_manifests(data)
    [loaded] = load(service, io.BytesIO(data))
    raw = pushed(service, loaded.id)
    assert raw != manifest
    assert [d["digest"] for d in json.loads(raw)["layers"]] == [sha(L2)]


def test_docker25_archive_keeps_its_manifest_through_save_and_load(tmp_path: Path) -> None:
    """berth save writes manifest.json *and* index.json; load reads manifest.json (as
    Docker does) and takes the manifest of the index entry with the same blobs."""
    a = new_service(tmp_path / "a")
    [first] = load(a, io.BytesIO(docker_old([Img([L1, L2], ["busybox:latest"])])))
    data = saved(a, "busybox:latest")
    [manifest] = index_manifests(data)
    b = new_service(tmp_path / "b")
    [loaded] = load(b, io.BytesIO(data))
    assert loaded.id == first.id
    assert pushed(b, loaded.id) == manifest
    # saving again from b gives the same archive: the round trip is stable
    assert saved(b, "busybox:latest") == data


def test_index_json_describing_other_blobs_is_ignored(tmp_path: Path) -> None:
    """A Docker archive whose index.json names a different image: manifest.json decides
    what is loaded, and no manifest of another image is attached."""
    img = Img([L1], ["one:1"])
    other = oci([Img([L3], ["two:1"])])
    files = members(docker_old([img])) | {k: v for k, v in members(other).items()
                                         if k.startswith("blobs/") or k == "index.json"}
    service = new_service(tmp_path / "a")
    [loaded] = load(service, io.BytesIO(tar_of(files)))
    assert loaded.id == sha(img.cfg) and loaded.tags == ["docker.io/library/one:1"]
    chain = service.layer_chain(loaded.id)
    assert pushed(service, loaded.id) == records.oci_manifest(loaded.id, len(img.cfg), chain)


def test_a_later_oci_load_adopts_the_manifest_of_an_existing_image(tmp_path: Path) -> None:
    service = new_service(tmp_path / "a")
    img = Img([L1], ["same:1"])
    [first] = load(service, io.BytesIO(docker_old([img])))
    own = pushed(service, first.id)
    data = oci([img])
    [manifest] = index_manifests(data)
    [again] = load(service, io.BytesIO(data))
    assert again.id == first.id
    assert own != manifest
    # the layer was already unpacked from the plain blob; the gzip blob the OCI manifest
    # names was not stored, so the image keeps the manifest it can push
    assert pushed(service, first.id) == own


# ---- docker save's Parent ------------------------------------------------------------------
def test_parent_in_the_archive_is_recorded_and_saved_again(tmp_path: Path) -> None:
    from tests.unit.test_archive_load import GOOD, _with_parent, config

    service = new_service(tmp_path / "a")
    base_cfg = config([L1])       # history: the child's first entry
    load(service, io.BytesIO(_with_parent(base_cfg)))
    parent = service.db.one("SELECT parent FROM images WHERE id=?", (sha(GOOD.cfg),))
    assert parent is not None and parent["parent"] == sha(base_cfg)
    # saved with its parent, manifest.json names it (docker's validatedParentLinks) ...
    both = json.loads(members(saved(service, "good:1", "base:1"))["manifest.json"])
    assert both[0]["Parent"] == sha(base_cfg) and "Parent" not in both[1]
    # ... and saved alone, it does not
    alone = json.loads(members(saved(service, "good:1"))["manifest.json"])
    assert "Parent" not in alone[0]
    other = new_service(tmp_path / "b")
    load(other, io.BytesIO(saved(service, "good:1")))
    row = other.db.one("SELECT parent FROM images WHERE id=?", (sha(GOOD.cfg),))
    assert row is not None and row["parent"] is None


def test_parent_not_in_the_archive_is_ignored(tmp_path: Path) -> None:
    from tests.unit.test_archive_load import GOOD, _docker_files

    files = _docker_files()
    m = json.loads(files["manifest.json"])
    m[0]["Parent"] = sha(b"an image that is not in this archive")
    files["manifest.json"] = json.dumps(m).encode()
    service = new_service(tmp_path / "a")
    [loaded] = load(service, io.BytesIO(tar_of(files)))
    row = service.db.one("SELECT parent FROM images WHERE id=?", (loaded.id,))
    assert loaded.id == sha(GOOD.cfg) and row is not None and row["parent"] is None
