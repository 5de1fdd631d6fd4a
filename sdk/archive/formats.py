"""What an archive holds: ``manifest.json`` (docker save, skopeo docker-archive) or
``index.json`` (OCI layout: Docker 25+ save, skopeo oci-archive/oci) -> images to load.

Docker's rule decides between the two: ``manifest.json`` wins when present (a Docker 25+
archive has both, describing the same blobs).  From an OCI index every image manifest
is taken; a nested index (a multi-platform image) contributes the one manifest for the
wanted platform, skipping attestations.  Names come from the descriptor's
``io.containerd.image.name`` annotation, else from ``org.opencontainers.image.ref.name``
when that is a full reference (a bare tag such as ``latest`` names no repository).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sdk._internal.arch import goarch
from sdk._internal.reference import parse_reference
from sdk.archive import media
from sdk.archive.stage import Staging
from sdk.content.digest import check_digest
from sdk.errors import InvalidArgument

_BLOB_PATH = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_CONFIG_NAME = re.compile(r"([0-9a-f]{64})\.json")


@dataclass(frozen=True, slots=True)
class BlobRef:
    member: str                 # path inside the archive
    digest: str | None = None   # expected sha256 of the member, when the format says
    size: int | None = None
    media_type: str = ""


@dataclass(slots=True)
class ImageToLoad:
    config: BlobRef
    layers: list[BlobRef]
    tags: list[str] = field(default_factory=list)     # full names with tag
    source: str = ""                                  # where it was described
    #: the image manifest blob, when the archive has one (an OCI layout, Docker 25+);
    #: the loaded image keeps its bytes so a push re-creates its digest
    manifest: BlobRef | None = None
    #: ``Parent`` of a docker save entry: the image this one was committed/built on
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Platform:
        if not text:
            return cls("linux", goarch())
        parts = text.lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f'invalid platform "{text}": expected os/arch[/variant]')
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def matches(self, p: dict[str, Any]) -> bool:
        if p.get("os") != self.os or p.get("architecture") != self.architecture:
            return False
        return not self.variant or p.get("variant", "") == self.variant


def find_images(staging: Staging, platform: Platform | None = None) -> list[ImageToLoad]:
    if staging.has("manifest.json"):
        images = _docker_manifest(staging)
        if staging.has("index.json"):
            _attach_manifests(staging, images, platform or Platform.parse(None))
        return images
    if staging.has("index.json"):
        return _oci_index(staging, platform or Platform.parse(None))
    raise InvalidArgument("invalid archive: it has neither manifest.json (docker save) nor "
                          "index.json (OCI layout)")


def _tag(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid archive: {where}: tag {text!r} is not a string")
    try:
        ref = parse_reference(text)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid archive: {where}: invalid tag {text!r}: {exc}") \
            from None
    if ref.digest or not ref.tag:
        raise InvalidArgument(f'invalid archive: {where}: invalid tag "{text}"')
    return f"{ref.name}:{ref.tag}"


def _path_digest(path: str) -> str | None:
    m = _BLOB_PATH.fullmatch(path) or _CONFIG_NAME.fullmatch(path)
    return f"sha256:{m.group(1)}" if m else None


# ---- docker save / docker-archive ---------------------------------------------------------
def _docker_manifest(staging: Staging) -> list[ImageToLoad]:
    doc = staging.read_json("manifest.json")
    if doc is None:
        raise InvalidArgument("invalid archive: invalid manifest, manifest cannot be null "
                              "(but can be [])")
    if not isinstance(doc, list):
        raise InvalidArgument("invalid archive: manifest.json is not a list of images")
    out = []
    for i, item in enumerate(doc):
        where = f"manifest.json entry {i}"
        if not isinstance(item, dict):
            raise InvalidArgument(f"invalid archive: {where} is not an object")
        config, layers, tags = item.get("Config"), item.get("Layers"), item.get("RepoTags")
        if not isinstance(config, str) or not config:
            raise InvalidArgument(f"invalid archive: {where} has no Config path")
        if not isinstance(layers, list) or not all(isinstance(p, str) and p for p in layers):
            raise InvalidArgument(f"invalid archive: {where}: Layers must be a list of paths")
        if tags is not None and not isinstance(tags, list):
            raise InvalidArgument(f"invalid archive: {where}: RepoTags must be a list")
        parent = item.get("Parent")
        if parent is not None and parent != "":
            if not isinstance(parent, str):
                raise InvalidArgument(f"invalid archive: {where}: Parent must be a string")
            check_digest(parent, f"Parent of {where}")
        out.append(ImageToLoad(
            BlobRef(config, _path_digest(config)),
            [BlobRef(p, _path_digest(p)) for p in layers],
            [_tag(t, where) for t in tags or []], where, parent=parent or None))
    return out


# ---- OCI image layout -----------------------------------------------------------------------
def _descriptor(desc: Any, where: str) -> BlobRef:
    if not isinstance(desc, dict):
        raise InvalidArgument(f"invalid archive: {where}: descriptor is not an object")
    digest, size, mt = desc.get("digest"), desc.get("size"), desc.get("mediaType", "")
    if not isinstance(digest, str):
        raise InvalidArgument(f"invalid archive: {where}: descriptor without a digest")
    if digest.partition(":")[0] != "sha256":
        raise InvalidArgument(f"invalid archive: {where}: unsupported digest algorithm in "
                              f"{digest!r} (berth stores sha256 content only)")
    hexid = check_digest(digest, f"digest in {where}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"invalid archive: {where}: descriptor {digest} has no valid "
                              "size")
    if not isinstance(mt, str):
        raise InvalidArgument(f"invalid archive: {where}: mediaType must be a string")
    return BlobRef(f"blobs/sha256/{hexid}", digest, size, mt)


def _read_doc(staging: Staging, ref: BlobRef) -> dict[str, Any]:
    staged = staging.resolve(ref.member, "blob")
    if staged.digest != ref.digest or staged.size != ref.size:
        raise InvalidArgument(f"invalid archive: blob {ref.digest} does not match its "
                              f"descriptor (got {staged.digest}, {staged.size} bytes)")
    doc = staging.read_json(ref.member, staging.read_bytes(staged, ref.member))
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid archive: {ref.member} is not a JSON object")
    inner = doc.get("mediaType")
    if inner is not None and ref.media_type and inner != ref.media_type:
        raise InvalidArgument(f"invalid archive: {ref.digest}: its mediaType {inner!r} "
                              f"contradicts the descriptor's {ref.media_type!r}")
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise InvalidArgument(f"invalid archive: {ref.digest} is both an index and an "
                              "image manifest")
    return doc


def _name_of(annotations: Any) -> str | None:
    if not isinstance(annotations, dict):
        return None
    full = annotations.get(media.ANNOTATION_IMAGE_NAME)
    if isinstance(full, str) and full:
        return _tag(full, media.ANNOTATION_IMAGE_NAME)
    ref_name = annotations.get(media.ANNOTATION_REF_NAME)
    if isinstance(ref_name, str) and ("/" in ref_name or ":" in ref_name):
        try:
            ref = parse_reference(ref_name)
        except InvalidArgument:
            return None
        if ref.digest:
            return None
        return f"{ref.name}:{ref.tag or 'latest'}"
    return None


def _oci_index(staging: Staging, platform: Platform) -> list[ImageToLoad]:
    index = staging.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument("invalid archive: index.json has no manifests list")
    found: dict[str, ImageToLoad] = {}
    for i, desc in enumerate(index["manifests"]):
        ref = _descriptor(desc, f"index.json manifest {i}")
        name = _name_of(desc.get("annotations"))
        image = _from_descriptor(staging, ref, platform, f"index.json manifest {i}", 0)
        if image is None:
            continue
        key = image.config.digest or image.source
        image = found.setdefault(key, image)
        if name and name not in image.tags:
            image.tags.append(name)
    return list(found.values())


def _is_attestation(desc: dict[str, Any]) -> bool:
    ann = desc.get("annotations") or {}
    plat = desc.get("platform") or {}
    return (isinstance(ann, dict) and "vnd.docker.reference.type" in ann) or \
        (plat.get("os") == "unknown" and plat.get("architecture") == "unknown")


def _from_descriptor(staging: Staging, ref: BlobRef, platform: Platform, where: str,
                     depth: int) -> ImageToLoad | None:
    if depth > 4:
        raise InvalidArgument(f"invalid archive: {where}: indexes nested too deep")
    if ref.media_type in media.INDEX_TYPES:
        doc = _read_doc(staging, ref)
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise InvalidArgument(f"invalid archive: index {ref.digest} has no manifests")
        candidates = [c for c in children if isinstance(c, dict) and not _is_attestation(c)]
        if len(candidates) > 1 or any("platform" in c for c in candidates):
            candidates = [c for c in candidates if platform.matches(c.get("platform") or {})]
        if not candidates:
            raise InvalidArgument(f"invalid archive: index {ref.digest} has no image for "
                                  f"{platform.os}/{platform.architecture}")
        child = _descriptor(candidates[0], f"index {ref.digest}")
        return _from_descriptor(staging, child, platform, f"index {ref.digest}", depth + 1)
    if ref.media_type and ref.media_type not in media.MANIFEST_TYPES:
        return None                     # an artifact, not an image
    doc = _read_doc(staging, ref)
    if "manifests" in doc:
        return _from_descriptor(staging, BlobRef(ref.member, ref.digest, ref.size,
                                                 media.OCI_INDEX), platform, where, depth)
    config = _descriptor(doc.get("config"), f"manifest {ref.digest} config")
    if config.media_type not in media.CONFIG_TYPES:
        return None                     # an artifact (signature, SBOM, ...)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"invalid archive: manifest {ref.digest} has no layers list")
    out = []
    for n, layer in enumerate(layers):
        desc = _descriptor(layer, f"manifest {ref.digest} layer {n}")
        if desc.media_type not in media.LAYER_TYPES:
            raise InvalidArgument(f"invalid archive: manifest {ref.digest} layer {n} has "
                                  f"unsupported media type {desc.media_type!r}")
        out.append(desc)
    return ImageToLoad(config, out, [], f"manifest {ref.digest}", ref)


def _attach_manifests(staging: Staging, images: list[ImageToLoad],
                      platform: Platform) -> None:
    """Give each ``manifest.json`` image the OCI manifest of a Docker 25+ archive's
    ``index.json`` that describes the very same blobs (config and layers, in order).

    ``manifest.json`` decides what is loaded, as in Docker; an ``index.json`` that does
    not parse or describes other blobs only means no manifest is kept.
    """
    try:
        described = _oci_index(staging, platform)
    except InvalidArgument:
        return
    by_blobs = {(oci.config.digest, tuple(d.digest for d in oci.layers)): oci.manifest
                for oci in described if oci.manifest is not None}
    for image in images:
        try:
            key = (staging.resolve(image.config.member).digest,
                   tuple(staging.resolve(ref.member).digest for ref in image.layers))
        except InvalidArgument:
            continue            # reported by the load's own checks
        image.manifest = by_blobs.get(key)
