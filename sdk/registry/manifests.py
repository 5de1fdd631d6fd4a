"""Manifest validation: what a PUT must satisfy before anything is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sdk.registry.names import Digest, RegistryError, parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
#: layer types that may live elsewhere (``urls``): not required to be in the registry
FOREIGN_LAYERS = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


@dataclass
class ParsedManifest:
    media_type: str
    doc: dict[str, Any]
    blobs: list[Digest] = field(default_factory=list)       # must exist (config, layers)
    children: list[Digest] = field(default_factory=list)    # index entries
    optional: list[Digest] = field(default_factory=list)    # foreign layers
    subject: Digest | None = None
    artifact_type: str | None = None


def _invalid(message: str) -> RegistryError:
    return RegistryError(400, "MANIFEST_INVALID", "manifest invalid", message)


def _descriptor_digest(desc: object, where: str) -> Digest:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise _invalid(f"{where}: descriptor without a digest")
    d = parse_digest(desc["digest"])
    if d is None:
        raise _invalid(f"{where}: invalid digest {desc['digest'][:150]!r}")
    if not isinstance(desc.get("size", 0), int):
        raise _invalid(f"{where}: size must be an integer")
    return d


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Check shape and media type (CVE-2021-41190: no ambiguous documents)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("not valid JSON")
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    declared = doc.get("mediaType")
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in ("", "application/octet-stream", "application/json"):
        ctype = ""
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if declared and ctype and declared != ctype:
        raise _invalid(f"mediaType {declared!r} does not match Content-Type {ctype!r}")
    media = declared or ctype
    if not media:
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise _invalid("a document cannot be both an index and an image manifest")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    pm = ParsedManifest(media_type=media, doc=doc)
    if media in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("index without a manifests list")
        pm.children = [_descriptor_digest(e, f"manifests[{i}]") for i, e in enumerate(entries)]
    elif media in IMAGE_TYPES:
        if "manifests" in doc:
            raise _invalid("image manifest with a manifests list")
        pm.blobs.append(_descriptor_digest(doc.get("config"), "config"))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            d = _descriptor_digest(layer, f"layers[{i}]")
            if layer.get("mediaType") in FOREIGN_LAYERS or layer.get("urls"):
                pm.optional.append(d)
            else:
                pm.blobs.append(d)
        cfg = doc["config"]
        pm.artifact_type = doc.get("artifactType") or cfg.get("mediaType")
    else:
        # unknown manifest types are stored as-is (artifacts with custom media types)
        pass
    if media in INDEX_TYPES and isinstance(doc.get("artifactType"), str):
        pm.artifact_type = doc["artifactType"]
    if "subject" in doc:
        pm.subject = _descriptor_digest(doc["subject"], "subject")
    return pm


def referrer_descriptor(pm: ParsedManifest, d: Digest, size: int) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": pm.media_type, "digest": str(d), "size": size}
    if pm.artifact_type:
        desc["artifactType"] = pm.artifact_type
    if isinstance(pm.doc.get("annotations"), dict):
        desc["annotations"] = pm.doc["annotations"]
    return desc
