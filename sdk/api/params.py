"""Query parameters and timestamps as the Engine API spells them."""

from __future__ import annotations

import json
from typing import Any

from sdk.errors import InvalidArgument


def flag(request: Any, key: str, default: bool = False) -> bool:
    value = request.query.get(key)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes")


def filters(request: Any) -> dict[str, Any]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"invalid filters: {exc}") from None
    # old clients send {"key": {"value": true}}
    return {k: list(v) if isinstance(v, dict) else v for k, v in data.items()}


def unix_seconds(text: str) -> int:
    from sdk._internal.timefmt import parse_rfc3339

    try:
        return int(parse_rfc3339(text))
    except InvalidArgument:
        return 0


def registry_auth(request: Any) -> tuple[str, str] | None:
    """``X-Registry-Auth``: base64url JSON of {username, password} or {identitytoken}
    (the docker CLI and docker-py send it on pull and push; ``{}`` means anonymous)."""
    import base64
    import binascii

    raw = (request.headers.get("X-Registry-Auth") or "").strip()
    if not raw:
        return None
    padded = raw + "=" * (-len(raw) % 4)
    try:
        try:
            data = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, binascii.Error):
            data = json.loads(base64.b64decode(padded))   # some clients use standard base64
    except (ValueError, binascii.Error):
        raise InvalidArgument("invalid X-Registry-Auth header: not base64-encoded "
                              "JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
    if data.get("identitytoken"):
        from sdk.distribution.credentials import IDENTITY_TOKEN_USER

        return IDENTITY_TOKEN_USER, str(data["identitytoken"])
    if data.get("username"):
        return str(data["username"]), str(data.get("password") or "")
    if data.get("auth"):
        try:
            user, _, secret = base64.b64decode(str(data["auth"])).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("invalid X-Registry-Auth header: bad \"auth\"") from None
        return user, secret
    return None
