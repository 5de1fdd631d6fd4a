"""Names, tags and digests as the distribution spec defines them.

Everything that becomes a path on disk passes through these checks first: a repository
name matching ``NAME_RE`` has no ``..``, no leading ``/`` and no component starting with
``_`` (so it can never reach the storage's own ``_layers``/``_manifests`` directories).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

NAME_RE = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_HEX = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
MAX_NAME = 255


class RegistryError(Exception):
    """An error answered in the spec's JSON shape: status, code, message, detail."""

    def __init__(self, status: int, code: str, message: str, detail: object = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_digest(value: str) -> Digest | None:
    """``sha256:<64 hex>`` or ``sha512:<128 hex>``; None for anything else."""
    alg, sep, hexpart = value.partition(":")
    pattern = DIGEST_HEX.get(alg)
    if not sep or pattern is None or pattern.fullmatch(hexpart) is None:
        return None
    return Digest(alg, hexpart)


def require_name(name: str) -> str:
    if not valid_name(name):
        raise RegistryError(400, "NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def require_digest(value: str) -> Digest:
    d = parse_digest(value)
    if d is None:
        raise RegistryError(400, "DIGEST_INVALID", "invalid digest", {"digest": value[:200]})
    return d


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
