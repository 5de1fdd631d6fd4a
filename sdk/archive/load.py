"""``berth load``: verify everything, unpack the layers, then record all images at once.

1. the archive is spooled (``stage``) and its images found (``formats``);
2. every image is checked before any layer is unpacked: descriptors' digests and sizes,
   config JSON, ``os``, the number of layers against ``rootfs.diff_ids``, and the DiffID
   of every uncompressed layer (its sha256 was computed while spooling);
3. layers are unpacked (the existing applier confines hostile tars); a compressed
   layer's DiffID is known only now, and a mismatch removes what this load unpacked.
   With overlay and two or more big layers, those unpack first, at once, each in a
   child process (``sdk.diff.worker``) into a staging dir, and are published in chain
   order as the layers are walked; what was staged but not published is dropped;
4. blobs move into the content store, and one database transaction records layers,
   images (with their exact config bytes, so the ID is the config's digest) and tags.

A failure anywhere before step 4's transaction leaves no image, no tag and no layer
record behind.  Loading the same archive twice changes nothing the second time.

Step 4 writes the rows through ``sdk.images.records`` (shared with ``ImageService``) but
stores the config bytes as they came, not re-serialised (which could change the digest,
i.e. the image ID).  An image whose archive carries its manifest (an OCI layout, Docker
25+ ``index.json``) keeps that manifest byte-exact when its layers are stored as the
very blobs it names, as a pulled image does, so ``push`` re-creates its digest;
otherwise (classic ``docker save``, layers re-encoded here, or layers already unpacked
from other blobs) the image gets berth's own OCI manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from sdk.archive import media
from sdk.archive.formats import BlobRef, ImageToLoad, Platform, find_images
from sdk.archive.stage import StagedFile, Staging
from sdk.content.digest import check_digest, sha256_digest
from sdk.errors import InvalidArgument
from sdk.images import records

if TYPE_CHECKING:
    from sdk.images.service import ImageService, LayerRecord
    from sdk.snapshots.layers import StagedLayer

Progress = Callable[[str], None]


@dataclass(slots=True)
class LoadedImage:
    id: str
    tags: list[str] = field(default_factory=list)          # full names with tag
    #: tags that pointed at another image before this load: (tag, previous image ID)
    replaced: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Verified:
    image_id: str
    config_bytes: bytes
    config: dict[str, Any]
    diff_ids: list[str]
    layers: list[tuple[StagedFile, str]]      # staged blob, its compression
    tags: list[str]
    manifest: bytes | None = None             # the archive's image manifest, verified
    parent: str | None = None                 # docker save's Parent, once validated


def load(service: ImageService, stream: BinaryIO, *, platform: str | None = None,
         progress: Progress | None = None) -> list[LoadedImage]:
    """Load every image of a docker/OCI archive read from ``stream``."""
    want = Platform.parse(platform)
    staging = Staging(service.content.root / "ingest")
    try:
        staging.read(stream)
        found = find_images(staging, want)
        if not found:
            raise InvalidArgument("invalid archive: it describes no image")
        verified = [_verify(staging, image) for image in found]
        _link_parents(verified, [image.parent for image in found])
        return _commit(service, staging, verified, progress)
    finally:
        staging.close()


# ---- step 2: checks that need no unpacking ------------------------------------------------
def _check_blob(staging: Staging, ref: BlobRef, what: str) -> StagedFile:
    staged = staging.resolve(ref.member, what)
    if ref.digest is not None and staged.digest != ref.digest:
        raise InvalidArgument(f"invalid archive: {what} {ref.member}: digest mismatch: "
                              f"expected {ref.digest}, got {staged.digest}")
    if ref.size is not None and staged.size != ref.size:
        raise InvalidArgument(f"invalid archive: {what} {ref.member}: size mismatch: "
                              f"expected {ref.size} bytes, got {staged.size}")
    return staged


def _verify(staging: Staging, image: ImageToLoad) -> _Verified:
    staged = _check_blob(staging, image.config, "config")
    config_bytes = staging.read_bytes(staged, image.config.member)
    config = staging.read_json(image.config.member, config_bytes)
    if not isinstance(config, dict):
        raise InvalidArgument(f"invalid archive: config {image.config.member} is not a "
                              "JSON object")
    os_name = config.get("os") or "linux"
    if os_name != "linux":
        raise InvalidArgument(f"cannot load {os_name} image on linux "
                              f"({image.source})")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or (rootfs or {}).get("type", "layers") != "layers":
        raise InvalidArgument(f"invalid archive: config {image.config.member} has no "
                              "rootfs.diff_ids")
    for d in diff_ids:
        check_digest(d, f"diff_id in config {image.config.member}")
    if len(diff_ids) != len(image.layers):
        raise InvalidArgument(f"invalid manifest, layers length mismatch: expected "
                              f"{len(image.layers)}, got {len(diff_ids)} ({image.source})")
    layers = []
    for i, (ref, diff_id) in enumerate(zip(image.layers, diff_ids, strict=True)):
        blob = _check_blob(staging, ref, "layer")
        kind = blob.compression()
        if kind == "" and blob.digest != diff_id:
            raise InvalidArgument(f'invalid diffID for layer {i}: expected "{diff_id}", got '
                                  f'"{blob.digest}" ({ref.member})')
        layers.append((blob, kind))
    manifest = None
    if image.manifest is not None:      # its digest and size were checked by formats
        manifest = staging.read_bytes(_check_blob(staging, image.manifest, "manifest"),
                                      image.manifest.member)
    return _Verified(sha256_digest(config_bytes), config_bytes, config, diff_ids, layers,
                     image.tags, manifest)


_HISTORY_KEYS = ("created", "author", "created_by", "comment", "empty_layer")


def _history(config: dict[str, Any]) -> list[tuple[Any, ...]]:
    entries = config.get("history")
    if not isinstance(entries, list):
        return []
    return [tuple(e.get(k) or None for k in _HISTORY_KEYS) if isinstance(e, dict) else (e,)
            for e in entries]


def _link_parents(verified: list[_Verified], parents: list[str | None]) -> None:
    """docker load's parent links: ``Parent`` counts only when that image is in the
    archive too (validatedParentLinks), and then it must be a valid parent, i.e. its
    history one entry shorter and a prefix of the child's (checkValidParent) -- docker
    fails the load otherwise, and so does this, before anything is unpacked."""
    by_id = {img.image_id: img for img in verified}
    for img, parent_id in zip(verified, parents, strict=True):
        parent = by_id.get(parent_id or "")
        if parent is None or parent is img:
            continue
        mine, theirs = _history(img.config), _history(parent.config)
        if (mine or theirs) and (len(mine) - len(theirs) != 1 or mine[:len(theirs)] != theirs):
            raise InvalidArgument(f"image {parent.image_id} is not a valid parent for "
                                  f"{img.image_id}")
        img.parent = parent.image_id


# ---- step 3: unpack ------------------------------------------------------------------------
def _chain(parent: str, diff_id: str) -> str:
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def _existing(service: ImageService, chain_id: str) -> LayerRecord | None:
    from sdk.images.service import LayerRecord

    row = service.db.one("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
    if row is None or not service.layers.exists(chain_id):
        return None
    return LayerRecord(row["chain_id"], row["diff_id"], row["blob_digest"],
                       row["media_type"], row["blob_size"], row["size"])


def _prestage(service: ImageService, verified: list[_Verified]) -> dict[str, StagedLayer]:
    """overlay: unpack the layers to be created at once, the big ones each in a child
    process, when ``worker_layers`` says it pays; ``{chain id: staged layer}``, or
    ``{}`` (everything unpacks in order in ``_unpack``).  On any failure nothing staged
    is left and the first failure, in layer order, is raised."""
    from concurrent.futures import ThreadPoolExecutor

    from sdk.diff.worker import MAX_AT_ONCE, worker_layers

    if not service.layers.stages_independently:
        return {}
    todo: dict[str, StagedFile] = {}
    for img in verified:
        chain_id = ""
        for diff_id, (blob, kind) in zip(img.diff_ids, img.layers, strict=True):
            chain_id = diff_id if not chain_id else _chain(chain_id, diff_id)
            if chain_id not in todo and kind not in ("bzip2", "xz") and \
                    _existing(service, chain_id) is None:
                todo[chain_id] = blob
    in_worker = worker_layers([blob.size for blob in todo.values()], os.cpu_count() or 1)
    if not any(in_worker):
        return {}

    def stage(blob: StagedFile, child: bool) -> StagedLayer:
        with open(blob.path, "rb") as f:
            return service.layers.stage(f, in_worker=child)

    with ThreadPoolExecutor(min(MAX_AT_ONCE, len(todo)), thread_name_prefix="load") as pool:
        futures = {cid: pool.submit(stage, blob, child)
                   for (cid, blob), child in zip(todo.items(), in_worker, strict=True)}
    staged = {cid: fut.result() for cid, fut in futures.items() if fut.exception() is None}
    failed = [fut.exception() for fut in futures.values() if fut.exception() is not None]
    if failed:
        _discard(service, staged)
        raise failed[0]  # type: ignore[misc]
    return staged


def _discard(service: ImageService, staged: dict[str, StagedLayer]) -> None:
    for layer in staged.values():
        service.layers.discard(layer)
    staged.clear()


def _unpack(service: ImageService, staging: Staging, chain_id: str,
            parent: LayerRecord | None, blob: StagedFile, kind: str, diff_id: str,
            index: int, created: list[str], staged: StagedLayer | None = None
            ) -> tuple[LayerRecord, StagedFile]:
    from sdk.images.service import LayerRecord

    if kind in ("bzip2", "xz"):        # no layer media type names these: store plain
        blob = staging.decompressed_copy(blob)
        kind = ""
        if blob.digest != diff_id:
            raise InvalidArgument(f'invalid diffID for layer {index}: expected "{diff_id}", '
                                  f'got "{blob.digest}"')
    existed = service.layers.exists(chain_id)
    parent_id = parent.chain_id if parent else None
    if staged is not None and staged.result.diff_id != diff_id:
        service.layers.discard(staged)
        raise InvalidArgument(f'invalid diffID for layer {index}: expected "{diff_id}", got '
                              f'"{staged.result.diff_id}"')
    if staged is not None:
        result = service.layers.commit_staged(staged, chain_id, parent_id)
    else:
        with open(blob.path, "rb") as f:
            result = service.layers.create(chain_id, parent_id, f)
    if not existed:
        created.append(chain_id)
    if result.diff_id != diff_id:
        raise InvalidArgument(f'invalid diffID for layer {index}: expected "{diff_id}", got '
                              f'"{result.diff_id}"')
    record = LayerRecord(chain_id, diff_id, blob.digest, media.STORED_LAYER_TYPE[kind],
                         blob.size, service.layers.size(chain_id))
    return record, blob


def _rollback(service: ImageService, created: list[str]) -> None:
    """Remove layers this load unpacked that no layer record claims."""
    for chain_id in reversed(created):
        with service.db.write() as conn:
            if conn.execute("SELECT 1 FROM layers WHERE chain_id=?", (chain_id,)).fetchone():
                continue
            service.layers.remove(chain_id)


# ---- step 4: record ------------------------------------------------------------------------
def _commit(service: ImageService, staging: Staging, verified: list[_Verified],
            progress: Progress | None) -> list[LoadedImage]:
    created: list[str] = []
    new_layers: dict[str, LayerRecord] = {}
    to_publish: dict[str, StagedFile] = {}
    chains: list[list[LayerRecord]] = []
    prestaged = _prestage(service, verified)
    try:
        for img in verified:
            chain: list[LayerRecord] = []
            for i, (diff_id, (blob, kind)) in enumerate(
                    zip(img.diff_ids, img.layers, strict=True)):
                parent = chain[-1] if chain else None
                chain_id = diff_id if parent is None else _chain(parent.chain_id, diff_id)
                record = new_layers.get(chain_id) or _existing(service, chain_id)
                if record is None:
                    if progress:
                        progress(f"Loading layer {diff_id[7:19]} ({blob.size} bytes)")
                    record, stored = _unpack(service, staging, chain_id, parent, blob, kind,
                                             diff_id, i, created, prestaged.pop(chain_id, None))
                    new_layers[chain_id] = record
                    to_publish[record.blob_digest] = stored
                chain.append(record)
            chains.append(chain)
        for stored in to_publish.values():
            staging.publish(stored, service.content.root)
        return _record(service, verified, chains, list(new_layers.values()))
    except BaseException:
        _rollback(service, created)
        raise
    finally:        # staged for a layer another process published meanwhile
        _discard(service, prestaged)


def _manifest_of(service: ImageService, img: _Verified,
                 chain: list[LayerRecord]) -> tuple[str, bool]:
    """The manifest digest to record and whether it replaces the image's current one:
    the archive's own manifest when the layer records hold exactly the blobs it names
    (so removing another image can never take one of them away), else berth's."""
    if img.manifest is not None:
        doc = json.loads(img.manifest)
        if [d["digest"] for d in doc["layers"]] == [lr.blob_digest for lr in chain] and \
                all(service.content.exists(lr.blob_digest) for lr in chain):
            return service.content.put_bytes(img.manifest), True
    own = records.oci_manifest(img.image_id, len(img.config_bytes), chain)
    return service.content.put_bytes(own), False


def _record(service: ImageService, verified: list[_Verified], chains: list[list[LayerRecord]],
            new_layers: list[LayerRecord]) -> list[LoadedImage]:
    from sdk._internal.timefmt import now_rfc3339

    rows = []
    for img, chain in zip(verified, chains, strict=True):
        if service.content.put_bytes(img.config_bytes) != img.image_id:
            raise InvalidArgument(f"config of {img.image_id} changed while loading")
        rows.append((img, chain, *_manifest_of(service, img, chain)))
    loaded: dict[str, LoadedImage] = {}
    new = {lr.chain_id for lr in new_layers}
    with service.db.write() as conn:
        for chain in chains:
            records.insert_layers(conn, chain, new)
        for img, chain, manifest_digest, adopt in rows:
            created_at = img.config.get("created")
            records.create_image_raw(
                conn, img.image_id, layers=chain, manifest_digest=manifest_digest,
                created=created_at if isinstance(created_at, str) and created_at
                else now_rfc3339(), adopt_manifest=adopt, parent=img.parent)
            result = loaded.setdefault(img.image_id, LoadedImage(img.image_id))
            for tag in img.tags:
                old = records.set_tag(conn, tag, img.image_id)
                if old is not None:
                    result.replaced.append((tag, old))
                if tag not in result.tags:
                    result.tags.append(tag)
    return list(loaded.values())
