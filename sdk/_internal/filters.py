"""``--filter key=value`` parsing with docker's semantics and messages.

docker/cli's ``FilterOpt`` splits at the first ``=``, lower-cases and trims the key, trims
the value and drops empty flags; the daemon then rejects unknown keys.  Values for one key
form a set (kept here in first-seen order).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sdk.errors import InvalidArgument


def parse_filters(values: Iterable[str] | None,
                  allowed: Collection[str] | None = None) -> dict[str, list[str]]:
    """``["status=running", "label=a=b"]`` -> {"status": ["running"], "label": ["a=b"]}.

    ``allowed=None`` skips the daemon-side key check.
    """
    out: dict[str, list[str]] = {}
    for item in values or ():
        if not item:
            continue
        if "=" not in item:
            raise InvalidArgument("bad format of filter (expected name=value)")
        key, _, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        bucket = out.setdefault(key, [])
        if value not in bucket:
            bucket.append(value)
    if allowed is not None:
        for key in out:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
    return out


def parse_bool_filter(filters: dict[str, list[str]], key: str) -> bool | None:
    """The daemon's ``GetBoolOrDefault``: ``true``/``1`` or ``false``/``0``; None if absent."""
    if key not in filters:
        return None
    values = filters[key]
    is_true = "true" in values or "1" in values
    is_false = "false" in values or "0" in values
    if is_true == is_false:     # neither, or both
        raise InvalidArgument(f"invalid filter '{key}={','.join(values)}'" if values
                              else f"invalid filter '{key}'")
    return is_true


__all__ = ["parse_filters", "parse_bool_filter"]
