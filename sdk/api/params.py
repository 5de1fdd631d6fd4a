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
