"""What the registry holds under one tag, read from storage for the web page.

Only manifests and image configs are read (configs up to ``CONFIG_MAX`` bytes, for the
platform and labels); layer sizes come from the descriptors, so describing a tag never
touches layer data.  Anything malformed is shown as far as it parses, never raised:
storage may hold artifacts with media types this module does not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sdk.registry import manifests as mf
from sdk.registry.names import Digest, parse_digest
from sdk.registry.storage import Storage

CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json",
                          "application/vnd.docker.container.image.v1+json"})
CONFIG_MAX = 1 << 20          # bytes: a bigger "config" is an artifact, not read
MAX_ENTRIES = 64              # index entries described per tag (the rest are counted)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str


@dataclass
class ImageView:
    """One image manifest: a tag's target, or one entry of an index."""

    digest: str
    media_type: str
    manifest_size: int
    platform: str = ""
    config: Blob | None = None
    layers: list[Blob] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stored: bool = True       # False: an index entry whose manifest is not in this repo

    def blobs(self) -> dict[str, int]:
        """digest -> size of everything a copy of this image stores."""
        out = {self.digest: self.manifest_size}
        for b in ([self.config] if self.config else []) + self.layers:
            out[b.digest] = b.size
        return out


@dataclass
class TagView:
    tag: str
    digest: str
    media_type: str
    index: bool
    images: list[ImageView]
    size: int                 # compressed bytes, every blob counted once
    more_entries: int = 0     # index entries beyond MAX_ENTRIES (not described)

    @property
    def platforms(self) -> list[str]:
        return [i.platform for i in self.images if i.platform]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _size(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else 0


def _blob(desc: object) -> Blob | None:
    if not isinstance(desc, dict):
        return None
    return Blob(_text(desc.get("digest")), _size(desc.get("size")),
                _text(desc.get("mediaType")))


def platform_text(p: object) -> str:
    """``os/architecture[/variant]`` from an index entry's platform or an image config."""
    if not isinstance(p, dict):
        return ""
    parts = [_text(p.get("os")), _text(p.get("architecture")), _text(p.get("variant"))]
    if not parts[0] and not parts[1]:
        return ""
    return "/".join(x or "?" for x in parts[:2]) + (f"/{parts[2]}" if parts[2] else "")


def _load(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _read_config(storage: Storage, blob: Blob) -> dict[str, Any]:
    d = parse_digest(blob.digest)
    if d is None or blob.media_type not in CONFIG_TYPES:
        return {}
    size = storage.blob_size(d)
    if size is None or size > CONFIG_MAX:
        return {}
    try:
        return _load(storage.read_blob(d))
    except OSError:
        return {}


def describe_image(storage: Storage, name: str, d: Digest, body: bytes, media: str,
                   platform: str = "") -> ImageView:
    doc = _load(body)
    view = ImageView(str(d), _text(doc.get("mediaType")) or media, len(body), platform)
    config = _blob(doc.get("config"))
    if config is not None:
        view.config = config
        cfg = _read_config(storage, config)
        if not view.platform:
            view.platform = platform_text(cfg)
        labels = (cfg.get("config") or {}).get("Labels") if isinstance(
            cfg.get("config"), dict) else None
        if isinstance(labels, dict):
            view.labels = {str(k): str(v) for k, v in sorted(labels.items())}
    layers = doc.get("layers")
    if isinstance(layers, list):
        view.layers = [b for b in map(_blob, layers) if b is not None]
    return view


def describe_tag(storage: Storage, name: str, tag: str, d: Digest) -> TagView | None:
    """None when the tag's manifest is gone (a tag racing a delete)."""
    found = storage.get_manifest(name, d)
    if found is None:
        return None
    body, media = found
    doc = _load(body)
    media = _text(doc.get("mediaType")) or media
    if media not in mf.INDEX_TYPES and not isinstance(doc.get("manifests"), list):
        image = describe_image(storage, name, d, body, media)
        return TagView(tag, str(d), media, False, [image], sum(image.blobs().values()))
    entries = [e for e in doc.get("manifests") or [] if isinstance(e, dict)]
    images = []
    sizes = {str(d): len(body)}
    for entry in entries[:MAX_ENTRIES]:
        platform = platform_text(entry.get("platform"))
        child = parse_digest(_text(entry.get("digest")))
        got = storage.get_manifest(name, child) if child is not None else None
        if child is None or got is None:
            img = ImageView(_text(entry.get("digest")), _text(entry.get("mediaType")),
                            _size(entry.get("size")), platform, stored=False)
        else:
            img = describe_image(storage, name, child, got[0], got[1], platform)
        images.append(img)
        sizes.update(img.blobs())
    return TagView(tag, str(d), media, True, images, sum(sizes.values()),
                   max(len(entries) - MAX_ENTRIES, 0))
