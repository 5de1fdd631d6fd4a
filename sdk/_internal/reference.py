"""Image references as Docker parses them (distribution/reference, normalized names)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdk.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain == DEFAULT_DOMAIN:
            return self.path[8:] if self.path.startswith("library/") and \
                "/" not in self.path[8:] else self.path
        return self.full_name

    def with_default_tag(self) -> Reference:
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, "latest", "")

    def __str__(self) -> str:
        out = self.familiar_name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def parse_reference(text: str) -> Reference:
    """ParseNormalizedNamed: "busybox" -> docker.io/library/busybox (no tag added)."""
    if not text or len(text) > 512:
        raise InvalidArgument("invalid reference format")
    name, digest = text, ""
    if "@" in name:
        name, _, digest = name.partition("@")
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidArgument("invalid reference format")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and (len(hexpart) != 64 or not set(hexpart) <= _HEX):
            raise InvalidArgument("invalid checksum digest format")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG_RE.fullmatch(tag):
            raise InvalidArgument("invalid reference format")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or
                first.lower() != first and _DOMAIN_RE.fullmatch(first)):
        domain, path = first, rest
        if not _DOMAIN_RE.fullmatch(domain):
            raise InvalidArgument("invalid reference format")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise InvalidArgument(f"invalid reference format: repository name ({path}) "
                                  "must be lowercase")
        raise InvalidArgument("invalid reference format")
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument("invalid reference format: repository name must not be more "
                              "than 255 characters")
    return Reference(domain, path, tag, digest)


def is_image_id_prefix(text: str) -> bool:
    hexpart = text[7:] if text.startswith("sha256:") else text
    return 0 < len(hexpart) <= 64 and set(hexpart) <= _HEX
