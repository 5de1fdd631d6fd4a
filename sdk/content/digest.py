"""Digest strings: the one format every blob, layer and chain id in the engine uses."""

from __future__ import annotations

import hashlib

from sdk.errors import InvalidArgument

ALGORITHM = "sha256"
_HEX = frozenset("0123456789abcdef")


def check_digest(digest: str, what: str = "digest") -> str:
    """Validate ``sha256:<64 lowercase hex>`` and return the hex part.

    Everything that arrives from outside (a manifest, a CLI argument, a file name)
    goes through here before it becomes a path, so a digest can never be ``../x``.
    """
    if not isinstance(digest, str):
        raise InvalidArgument(f"invalid {what} {digest!r}: expected sha256:<64 hex digits>")
    algo, sep, hexpart = digest.partition(":")
    if algo != ALGORITHM or not sep or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise InvalidArgument(f"invalid {what} {digest!r}: expected sha256:<64 hex digits>")
    return hexpart


def is_digest(digest: str) -> bool:
    try:
        check_digest(digest)
    except InvalidArgument:
        return False
    return True


def sha256_digest(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"
