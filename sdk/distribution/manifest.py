"""Manifests and indexes: media types, validation (CVE-2021-41190), platform choice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sdk.errors import InvalidArgument

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"

MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
LAYER_TYPES = frozenset({DOCKER_LAYER_GZIP, DOCKER_FOREIGN_GZIP, OCI_LAYER, OCI_LAYER_GZIP,
                         OCI_LAYER_ZSTD, OCI_NONDIST, OCI_NONDIST + "+gzip",
                         OCI_NONDIST + "+zstd"})
#: layers a registry need not hold: fetched from their ``urls``, not pushed (docker's rule)
FOREIGN_TYPES = frozenset({DOCKER_FOREIGN_GZIP, OCI_NONDIST, OCI_NONDIST + "+gzip",
                           OCI_NONDIST + "+zstd"})
#: what a pull asks for, best first (distribution answers MANIFEST_UNKNOWN without OCI)
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
#: manifests bigger than this are refused (distribution and zot use the same cap)
MAX_MANIFEST_BYTES = 4 << 20
#: Content-Types that say nothing; the document's own ``mediaType`` then decides
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, doc: Any, what: str) -> Descriptor:
        from sdk.content.digest import is_digest

        if not isinstance(doc, dict):
            raise InvalidArgument(f"invalid manifest: {what} is not an object")
        digest, size = doc.get("digest"), doc.get("size")
        if not isinstance(digest, str) or not is_digest(digest):
            raise InvalidArgument(f"invalid manifest: {what} has a bad digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"invalid manifest: {what} has a bad size {size!r}")
        media = doc.get("mediaType", "")
        if not isinstance(media, str):
            raise InvalidArgument(f"invalid manifest: {what} has a bad mediaType")
        urls = doc.get("urls") or []
        return cls(media, digest, size, dict(doc.get("platform") or {}),
                   dict(doc.get("annotations") or {}), tuple(str(u) for u in urls))

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed image manifest (``config``+``layers``) or index (``manifests``)."""

    media_type: str
    raw: bytes
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_manifest(raw: bytes, content_type: str = "", expected_digest: str = "") -> Manifest:
    """Validate and parse a manifest or index exactly as received.

    Refuses: more than 4 MiB, bytes that do not hash to ``expected_digest``, a document
    that is both an index and a manifest, a ``mediaType`` that contradicts
    ``content_type`` or the document's shape, schema 1.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"manifest too big: {len(raw)} bytes (limit 4 MiB)")
    digest = digest_of(raw)
    if expected_digest and expected_digest.startswith("sha256:") and digest != expected_digest:
        raise InvalidArgument(f"manifest digest mismatch: expected {expected_digest}, "
                              f"got {digest}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"invalid manifest: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid manifest: not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}"
                              " (only schema 2 / OCI)")
    has_index = "manifests" in doc
    has_image = "config" in doc or "layers" in doc
    if has_index and has_image:
        raise InvalidArgument("invalid manifest: document is both an index (manifests) and "
                              "an image manifest (config/layers)")
    declared = doc.get("mediaType", "")
    header = content_type.split(";")[0].strip().lower()
    if declared and header not in _GENERIC_TYPES and declared != header:
        raise InvalidArgument(f"invalid manifest: mediaType {declared!r} contradicts "
                              f"Content-Type {header!r}")
    media = declared or (header if header not in _GENERIC_TYPES else "")
    if not media:
        media = OCI_INDEX if has_index else OCI_MANIFEST
    if has_index:
        if media not in INDEX_TYPES:
            raise InvalidArgument(f"invalid manifest: an index with mediaType {media!r}")
        entries = doc["manifests"]
        if not isinstance(entries, list):
            raise InvalidArgument("invalid manifest: manifests is not a list")
        return Manifest(media, raw, digest, manifests=tuple(
            Descriptor.from_json(e, f"manifests[{i}]") for i, e in enumerate(entries)))
    if media not in MANIFEST_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {media!r}")
    config = Descriptor.from_json(doc.get("config"), "config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("invalid manifest: layers is not a list")
    parsed = tuple(Descriptor.from_json(e, f"layers[{i}]") for i, e in enumerate(layers))
    for i, d in enumerate(parsed):
        if d.media_type not in LAYER_TYPES:
            raise InvalidArgument(f"unsupported layer media type {d.media_type!r} "
                                  f"(layers[{i}])")
    return Manifest(media, raw, digest, config=config, layers=parsed)


# --------------------------------------------------------------------------- platforms

@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}


def _normalize(os_: str, arch: str, variant: str) -> Platform:
    os_, arch, variant = os_.lower(), arch.lower(), variant.lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    if arch == "arm":
        variant = "v7" if variant == "" else variant
        variant = "v" + variant if variant in ("5", "6", "7", "8") else variant
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os_, arch, variant)


_KNOWN_OS = frozenset({"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd",
                       "solaris", "illumos", "aix", "android", "ios", "plan9", "js", "wasip1"})


def parse_platform(text: str) -> Platform:
    """``linux/arm64``, ``linux/arm/v7``, ``amd64`` (os defaults to linux)."""
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'invalid platform "{text}": use os/arch[/variant], like '
                              "linux/amd64")
    if len(parts) == 1:
        if parts[0].lower() in _KNOWN_OS:
            raise InvalidArgument(f'invalid platform "{text}": an architecture is required')
        return _normalize("linux", parts[0], "")
    if len(parts) == 2 and parts[0].lower() not in _KNOWN_OS:
        return _normalize("linux", parts[0], parts[1])      # arch/variant (containerd)
    return _normalize(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def host_platform() -> Platform:
    import platform as _platform

    from sdk._internal.arch import goarch

    arch = goarch()
    variant = ""
    if arch == "arm":
        m = _platform.machine()
        variant = "v6" if m.startswith("armv6") else "v7"
    return _normalize("linux", arch, variant)


def _compatible(want: Platform) -> list[Platform]:
    """Platforms ``want`` runs, best first (containerd ``platforms.Only``)."""
    out = [want]
    if want.architecture == "arm64":
        out += [Platform(want.os, "arm", v) for v in ("v8", "v7", "v6", "v5")]
    elif want.architecture == "arm":
        order = ["v8", "v7", "v6", "v5"]
        start = order.index(want.variant) if want.variant in order else 1
        out += [Platform(want.os, "arm", v) for v in order[start + 1:]]
    elif want.architecture == "amd64":
        out.append(Platform(want.os, "386"))
    return out


def is_attestation(d: Descriptor) -> bool:
    if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    return d.platform.get("os") == "unknown" and d.platform.get("architecture") == "unknown"


def select_platform(index: Manifest, want: Platform | None = None) -> Descriptor:
    """The index entry for ``want`` (default: the host), attestations skipped."""
    want = want or host_platform()
    candidates = []
    for d in index.manifests:
        if is_attestation(d) or d.media_type not in MANIFEST_TYPES | {""}:
            continue
        p = d.platform
        candidates.append((_normalize(str(p.get("os", "")), str(p.get("architecture", "")),
                                      str(p.get("variant", ""))), d))
    for option in _compatible(want):
        for plat, d in candidates:
            if plat == option:
                return d
    have = ", ".join(str(p) for p, _ in candidates) or "none"
    raise InvalidArgument(f"no matching manifest for {want} in the manifest list entries "
                          f"(available: {have})")
