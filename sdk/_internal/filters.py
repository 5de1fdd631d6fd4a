"""``--filter key=value`` parsing with docker's messages."""

from __future__ import annotations

from collections.abc import Collection

from sdk.errors import InvalidArgument


def parse_filters(values: list[str], allowed: Collection[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument("bad format of filter (expected name=value)")
        key = key.strip().lower()
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out
