"""``berth save``: a Docker 25+ archive (OCI layout + manifest.json + repositories).

Nothing but one layer at a time is staged: the images and tags are resolved first (so a
bad name fails before anything is written), then the archive is streamed.  A layer blob
stored uncompressed is copied as it is; a compressed one is decompressed once into an
unnamed temp file, since its tar header needs its size.  Configs and manifests follow
the layers (a manifest lists the layers' sizes).  Entries come in a fixed order with
mtime 0 and uid/gid 0, so saving the same images twice gives identical bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from sdk._internal.reference import Reference, parse_reference
from sdk.archive import media, tarout
from sdk.content.digest import check_digest, sha256_digest
from sdk.errors import ImageNotFound, InvalidArgument, RuntimeFailure

if TYPE_CHECKING:
    from sdk.images.service import ImageService, LayerRecord

CHUNK = 1 << 20


def go_json(doc: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (``<>&`` escaped, UTF-8 kept)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026").encode()


@dataclass(slots=True)
class SavedImage:
    image_id: str
    config: bytes
    diff_ids: list[str]
    platform: dict[str, str]
    refs: list[Reference] = field(default_factory=list)   # tagged references
    parent: str = ""            # the image this one was committed/built on, if recorded


@dataclass(slots=True)
class SavePlan:
    images: list[SavedImage]
    #: the layers to write, by DiffID (a layer shared by several images is written once)
    layers: dict[str, LayerRecord]


# ---- which images, with which tags (docker's parseNames) --------------------------------
def select_images(service: ImageService, names: Iterable[str]) -> list[SavedImage]:
    """Images to save, in the order first named; a tag names the image with that tag, a
    repository without a tag all its tags, an ID (or prefix) the image without tags."""
    chosen: dict[str, SavedImage] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        if image_id not in chosen:
            chosen[image_id] = _describe(service, image_id)
        if ref is not None and ref not in chosen[image_id].refs:
            chosen[image_id].refs.append(ref)

    for name in names:
        if not name:
            raise InvalidArgument("image name must not be empty")
        ref = _parse(name)
        if ref is None:                                   # an ID or ID prefix
            add(service.resolve(name), None)
        elif ref.digest:
            raise ImageNotFound(f"No such image: {name} (save by tag or ID; images loaded "
                                "or imported here carry no repository digest)")
        elif ref.is_name_only:
            tagged = _tags_of_repository(service, ref.name)
            for full, image_id in tagged:
                add(image_id, parse_reference(full))
            if not tagged:
                add(service.resolve(name), None)
        else:
            add(service.resolve(name), ref)
    return list(chosen.values())


def _parse(name: str) -> Reference | None:
    from sdk._internal.reference import is_image_id_prefix

    if name.startswith("sha256:"):
        return None
    try:
        return parse_reference(name)
    except InvalidArgument:
        if is_image_id_prefix(name):
            return None
        raise


def _tags_of_repository(service: ImageService, repo: str) -> list[tuple[str, str]]:
    prefix = repo + ":"
    rows = service.db.query(
        "SELECT name, image_id FROM tags WHERE substr(name, 1, ?) = ? ORDER BY name",
        (len(prefix), prefix))
    return [(r["name"], r["image_id"]) for r in rows
            if "/" not in r["name"][len(prefix):]]


def _describe(service: ImageService, image_id: str) -> SavedImage:
    config = service.content.read_bytes(image_id)
    if sha256_digest(config) != image_id:
        raise RuntimeFailure(f"image {image_id}: stored config does not match its ID")
    cfg = json.loads(config)
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    platform = {"architecture": str(cfg.get("architecture") or ""),
                "os": str(cfg.get("os") or "linux")}
    if cfg.get("variant"):
        platform["variant"] = str(cfg["variant"])
    row = service.db.one("SELECT parent FROM images WHERE id=?", (image_id,))
    parent = str(row["parent"] or "") if row is not None else ""
    return SavedImage(image_id, config, diff_ids, platform, parent=parent)


# ---- planning -----------------------------------------------------------------------------
def plan_save(service: ImageService, names: Iterable[str]) -> SavePlan:
    """Resolve ``names`` and check the images are complete (nothing is written)."""
    images = select_images(service, names)
    layers: dict[str, LayerRecord] = {}
    for img in images:
        records = service.layer_chain(img.image_id)
        if [r.diff_id for r in records] != img.diff_ids:
            raise RuntimeFailure(f"image {img.image_id}: its layers do not match the "
                                 "config's rootfs.diff_ids")
        for rec in records:
            check_digest(rec.diff_id)
            layers.setdefault(rec.diff_id, rec)
            if not service.content.exists(rec.blob_digest):
                raise RuntimeFailure(f"layer blob {rec.blob_digest} of image "
                                     f"{img.image_id} is missing from the content store")
    return SavePlan(images, layers)


def documents(plan: SavePlan, sizes: dict[str, int]) -> tuple[dict[str, bytes],
                                                               dict[str, bytes]]:
    """Config and manifest blobs (by sha256 hex) and the top-level files, once the
    uncompressed size of every layer is known."""
    blobs: dict[str, bytes] = {}
    manifest_items: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    saved = {img.image_id for img in plan.images}
    for img in plan.images:
        blobs[img.image_id[7:]] = img.config
        manifest = go_json({
            "schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
            "config": {"mediaType": media.OCI_CONFIG, "digest": img.image_id,
                       "size": len(img.config), "platform": img.platform},
            "layers": [{"mediaType": media.OCI_LAYER, "digest": d, "size": sizes[d]}
                       for d in img.diff_ids]})
        manifest_digest = sha256_digest(manifest)
        blobs[manifest_digest[7:]] = manifest
        descriptor: dict[str, Any] = {"mediaType": media.OCI_MANIFEST,
                                      "digest": manifest_digest, "size": len(manifest)}
        for ref in img.refs:
            index.append({**descriptor, "annotations": {
                media.ANNOTATION_IMAGE_NAME: ref.string,
                media.ANNOTATION_REF_NAME: ref.tag}, "platform": img.platform})
            if img.diff_ids:
                repositories.setdefault(ref.familiar_name, {})[ref.tag] = img.diff_ids[-1][7:]
        if not img.refs:
            index.append({**descriptor, "platform": img.platform})
        item: dict[str, Any] = {
            "Config": f"blobs/sha256/{img.image_id[7:]}",
            "RepoTags": [r.familiar_string for r in img.refs] or None,
            "Layers": [f"blobs/sha256/{d[7:]}" for d in img.diff_ids]}
        # docker's validatedParentLinks: a parent is named only when it is saved too
        if img.parent and img.parent in saved and img.parent != img.image_id:
            item["Parent"] = img.parent
        manifest_items.append(item)
    files = {
        "index.json": go_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX,
                               "manifests": index}),
        "manifest.json": go_json(manifest_items) + b"\n",
        "oci-layout": media.OCI_LAYOUT,
    }
    if repositories:
        files["repositories"] = json.dumps(repositories, separators=(",", ":"),
                                           sort_keys=True).encode() + b"\n"
    return blobs, files


# ---- streaming ----------------------------------------------------------------------------
def stream_archive(service: ImageService, plan: SavePlan,
                   chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The archive's bytes, in chunks of at most about ``chunk_size``.

    Order: ``blobs/``, the layers (by digest), then configs and manifests (by digest,
    written last because they need the layers' sizes), then the top-level files.
    """
    yield tarout.header("blobs/", directory=True)
    yield tarout.header("blobs/sha256/", directory=True)
    sizes: dict[str, int] = {}
    for diff_id in sorted(plan.layers):
        rec = plan.layers[diff_id]
        if rec.blob_digest == rec.diff_id:
            sizes[diff_id] = yield from _plain_layer(service, rec, chunk_size)
        else:
            sizes[diff_id] = yield from _decompressed_layer(service, rec, chunk_size)
    blobs, files = documents(plan, sizes)
    entries = [(f"blobs/sha256/{h}", blobs[h]) for h in sorted(blobs)
               if f"sha256:{h}" not in sizes]
    for name, data in entries + sorted(files.items()):
        yield tarout.header(name, len(data))
        yield data
        yield tarout.padding(len(data))
    yield tarout.END


def _plain_layer(service: ImageService, rec: LayerRecord,
                 chunk_size: int) -> Generator[bytes, None, int]:
    with service.content.open(rec.blob_digest) as raw:
        size = os.fstat(raw.fileno()).st_size
        yield tarout.header(f"blobs/sha256/{rec.diff_id[7:]}", size)
        yield from _copy(raw, size, chunk_size, rec.blob_digest)
    yield tarout.padding(size)
    return size


def _decompressed_layer(service: ImageService, rec: LayerRecord,
                        chunk_size: int) -> Generator[bytes, None, int]:
    """Decompress into an unnamed temp file (O_TMPFILE: gone even after a crash) to learn
    the tar's size for its header and check its DiffID, then stream it."""
    import tempfile

    from sdk.diff.compression import HashingReader, open_decompressed

    ingest = service.content.root / "ingest"
    ingest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=ingest) as tmp, \
            service.content.open(rec.blob_digest) as raw:
        reader = HashingReader(open_decompressed(raw))
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := reader.readinto(view):
            tmp.write(view[:n])
        if reader.digest != rec.diff_id:
            raise RuntimeFailure(f"layer blob {rec.blob_digest} decompresses to "
                                 f"{reader.digest}, expected {rec.diff_id}")
        size = tmp.tell()
        tmp.seek(0)
        yield tarout.header(f"blobs/sha256/{rec.diff_id[7:]}", size)
        yield from _copy(tmp, size, chunk_size, rec.blob_digest)
    yield tarout.padding(size)
    return size


def _copy(f: BinaryIO, size: int, chunk_size: int, what: str) -> Iterator[bytes]:
    left = size
    while left:
        data = f.read(min(chunk_size, left))
        if not data:
            raise RuntimeFailure(f"layer blob {what} is truncated")
        left -= len(data)
        yield data


def save(service: ImageService, names: Iterable[str],
         chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Plan now (so bad names fail before anything is written), stream lazily."""
    return stream_archive(service, plan_save(service, names), chunk_size)
