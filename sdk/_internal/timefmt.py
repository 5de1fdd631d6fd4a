"""Times as docker prints and parses them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sdk.errors import InvalidArgument


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _ts(text: str) -> float:
    if not text or text.startswith("0001-"):
        return 0.0
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def status_text(state: dict[str, Any], now: float | None = None) -> str:
    """The STATUS column of ``docker ps``."""
    now = time.time() if now is None else now
    status = state.get("Status", "")
    if status in ("running", "paused"):
        text = "Up " + human_duration(now - _ts(state.get("StartedAt", "")))
        if status == "paused":
            return text + " (Paused)"
        health = (state.get("Health") or {}).get("Status")
        if health == "starting":
            return text + " (health: starting)"
        if health in ("healthy", "unhealthy"):
            return f"{text} ({health})"
        return text
    if status == "restarting":
        return (f"Restarting ({state.get('ExitCode', 0)}) "
                f"{human_duration(now - _ts(state.get('FinishedAt', '')))} ago")
    if status == "exited":
        finished = _ts(state.get("FinishedAt", ""))
        if not finished:
            return f"Exited ({state.get('ExitCode', 0)})"
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration(now - finished)} ago"
    if status == "created":
        return "Created"
    if status == "dead":
        return "Dead"
    if status == "removing":
        return "Removal In Progress"
    return status


def rfc3339nano(ts: float) -> str:
    """Go's RFC3339Nano in UTC: fractional zeros trimmed."""
    whole = int(ts)
    frac = f"{ts - whole:.9f}"[2:].rstrip("0")
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{base}.{frac}Z" if frac else base + "Z"


def rfc3339nano_fixed(ts: float) -> str:
    whole = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        f".{int(round((ts - whole) * 1e9)) % 1_000_000_000:09d}Z"


def parse_timestamp(value: str, now: float) -> float:
    """``--since``/``--until``: RFC3339(Nano), dates, Unix seconds, or Go durations."""
    text = value.strip()
    if not text:
        raise InvalidArgument("empty timestamp")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is not None:
        if dt.tzinfo is None:
            dt = dt.astimezone()    # docker reads zone-less times as local
        return dt.timestamp()
    from sdk._internal.units import parse_duration

    try:
        return now - parse_duration(text)
    except InvalidArgument:
        raise InvalidArgument(f"invalid value for \"since\"/\"until\": {value!r} is not a "
                              "timestamp, a date or a duration like 10m") from None


__all__ = ["human_duration", "status_text", "rfc3339nano", "rfc3339nano_fixed",
           "parse_timestamp", "UTC"]
