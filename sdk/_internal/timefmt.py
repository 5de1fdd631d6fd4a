"""Times as docker prints and parses them.

* ``human_duration``: go-units ``HumanDuration`` ("About a minute", "3 weeks", ...).
* ``status_text``: the daemon's ``State.String()``, i.e. the STATUS column of ``docker ps``.
* ``rfc3339nano*``: Go's ``time.RFC3339Nano`` in UTC (trailing zeros trimmed) and docker's
  fixed 9-digit variant used by ``logs -t``.
* ``parse_timestamp``: docker's ``GetTimestamp`` for ``--since``/``--until`` and time
  filters: Go durations relative to now, RFC 3339 (with or without zone), dates, or Unix
  seconds, with Go's ``time.Parse`` error messages.

No ``datetime``/``calendar`` import: dates are converted with integer arithmetic so this
module stays cheap on the CLI's start path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sdk._internal.units import go_parse_int, go_quote, go_time_quote, parse_duration_ns
from sdk.errors import InvalidArgument

ZERO_TIME = "0001-01-01T00:00:00Z"
_ZERO_EPOCH = -62135596800      # 0001-01-01T00:00:00Z, Go's zero time.Time
_NS = 1_000_000_000

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_RFC3339_LOCAL = "2006-01-02T15:04:05"
_RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"
_DATE_LOCAL = "2006-01-02"
_DATE_WITH_ZONE = "2006-01-02Z07:00"


# --------------------------------------------------------------------------- durations

def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration`` of a span given in seconds (Go's integer/float rounding)."""
    d = round(seconds * 1e9)
    if d < _NS:
        return "Less than a second"
    secs = int(d // _NS + (d % _NS) / 1e9)
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(d // (60 * _NS) + (d % (60 * _NS)) / (60 * 1e9))
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    exact_hours = d // (3600 * _NS) + (d % (3600 * _NS)) / (3600 * 1e9)
    hours = int(exact_hours + 0.5)
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
    return f"{int(exact_hours) // 24 // 365} years"


def human_ago(seconds: float) -> str:
    """The CREATED column: ``"3 minutes ago"``."""
    return human_duration(seconds) + " ago"


# --------------------------------------------------------------------------- Go time.Parse

class _ParseError(Exception):
    """Go's ``time.ParseError``, rendered exactly like ``Error()``."""

    def __init__(self, layout: str, value: str, layout_elem: str, value_elem: str,
                 message: str = "") -> None:
        if message:
            text = f"parsing time {go_time_quote(value)}{message}"
        else:
            text = (f"parsing time {go_time_quote(value)} as {go_time_quote(layout)}: cannot "
                    f"parse {go_time_quote(value_elem)} as {go_time_quote(layout_elem)}")
        super().__init__(text)


_STD = (".999999999", "Z07:00", "2006", "01", "02", "15", "04", "05")
_CHUNKS: dict[str, tuple[tuple[str, bool], ...]] = {}


def _chunks(layout: str) -> tuple[tuple[str, bool], ...]:
    """Split a layout into (text, is_std) pieces; literal runs are merged like Go's prefix."""
    cached = _CHUNKS.get(layout)
    if cached is not None:
        return cached
    out: list[tuple[str, bool]] = []
    i, literal = 0, ""
    while i < len(layout):
        std = next((s for s in _STD if layout.startswith(s, i)), None)
        if std is None:
            literal += layout[i]
            i += 1
            continue
        if literal:
            out.append((literal, False))
            literal = ""
        out.append((std, True))
        i += len(std)
    if literal:
        out.append((literal, False))
    _CHUNKS[layout] = result = tuple(out)
    return result


def _getnum(value: str, fixed: bool) -> tuple[int, str] | None:
    if not value or not "0" <= value[0] <= "9":
        return None
    if len(value) < 2 or not "0" <= value[1] <= "9":
        return None if fixed else (ord(value[0]) - 48, value[1:])
    return int(value[:2]), value[2:]


def _go_atoi(text: str) -> int | None:
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= c <= "9" for c in body):
        return None
    return int(text)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _go_parse(layout: str, value: str, default_offset: int = 0) -> tuple[int, int]:
    """``time.Parse``/``ParseInLocation`` for RFC 3339-style layouts -> (unix sec, nsec)."""
    chunks = _chunks(layout)
    rest = value
    year, month, day, hour, minute, sec, nsec = 0, 1, 1, 0, 0, 0, 0
    offset: int | None = None
    for index, (chunk, is_std) in enumerate(chunks):
        if not is_std:
            for ch in chunk:
                if not rest or rest[0] != ch:
                    raise _ParseError(layout, value, chunk, rest)
                rest = rest[1:]
            continue
        hold, bad, range_err = rest, False, ""
        if chunk == "2006":
            parsed = _go_atoi(rest[:4]) if len(rest) >= 4 else None
            if parsed is None:
                bad = True
            else:
                year, rest = parsed, rest[4:]
        elif chunk in ("01", "02", "15", "04", "05"):
            got = _getnum(rest, fixed=chunk != "15")
            if got is None:
                bad = True
            else:
                num, rest = got
                if chunk == "01":
                    month = num
                    range_err = "month" if not 1 <= num <= 12 else ""
                elif chunk == "02":
                    day = num
                elif chunk == "15":
                    hour = num
                    range_err = "hour" if num >= 24 else ""
                elif chunk == "04":
                    minute = num
                    range_err = "minute" if num >= 60 else ""
                else:
                    sec = num
                    range_err = "second" if num >= 60 else ""
                    following = chunks[index + 1][0] if index + 1 < len(chunks) else ""
                    if not range_err and following != ".999999999" and len(rest) >= 2 and \
                            rest[0] in ".," and "0" <= rest[1] <= "9":
                        n = 2
                        while n < len(rest) and "0" <= rest[n] <= "9":
                            n += 1
                        nsec, rest = _nanoseconds(rest, n), rest[n:]
        elif chunk == ".999999999":
            if len(rest) >= 2 and rest[0] in ".," and "0" <= rest[1] <= "9":
                n = 1
                while n < len(rest) and "0" <= rest[n] <= "9":
                    n += 1
                nsec, rest = _nanoseconds(rest, n), rest[n:]
        else:   # Z07:00
            if rest[:1] == "Z":
                rest, offset = rest[1:], 0
            elif len(rest) < 6 or rest[3] != ":":
                bad = True
            else:
                hh, mm = _getnum(rest[1:3], True), _getnum(rest[4:6], True)
                if hh is None or mm is None or rest[0] not in "+-":
                    bad = True
                else:
                    range_err = ("time zone offset hour" if hh[0] > 24 else
                                 "time zone offset minute" if mm[0] > 60 else "")
                    offset = (hh[0] * 60 + mm[0]) * 60 * (1 if rest[0] == "+" else -1)
                    rest = rest[6:]
        if range_err:
            raise _ParseError(layout, value, chunk, rest, f": {range_err} out of range")
        if bad:
            raise _ParseError(layout, value, chunk, hold)
    if rest:
        raise _ParseError(layout, value, "", rest, f": extra text: {go_time_quote(rest)}")
    if day < 1 or day > _days_in(month, year):
        raise _ParseError(layout, value, "", rest, ": day out of range")
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec
    return secs - (default_offset if offset is None else offset), nsec


def _nanoseconds(text: str, nbytes: int) -> int:
    """Go's ``parseNanoseconds``: at most 9 fraction digits count."""
    nbytes = min(nbytes, 10)
    return int(text[1:nbytes]) * 10 ** (10 - nbytes)


# --------------------------------------------------------------------------- RFC 3339

def parse_rfc3339(text: str) -> float:
    """``2026-11-24T09:41:02.123456789Z`` (or ``+01:00``) -> Unix seconds."""
    try:
        sec, nsec = _go_parse(RFC3339, text)
    except _ParseError as exc:
        raise InvalidArgument(str(exc)) from None
    return sec + nsec / 1e9


def _epoch_or_none(value: Any) -> float | None:
    """A state timestamp as Unix seconds; None for unset/zero/unparsable ones."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    if not value or not isinstance(value, str) or value.startswith("0001-01-01T00:00:00"):
        return None
    try:
        sec, nsec = _go_parse(RFC3339, value)
    except _ParseError:
        return None
    return None if sec == _ZERO_EPOCH and not nsec else sec + nsec / 1e9


def rfc3339nano_ns(ns: int, *, fixed: bool = False) -> str:
    """Unix nanoseconds -> RFC3339Nano UTC; ``fixed`` keeps all 9 fraction digits."""
    sec, frac = divmod(int(ns), _NS)
    t = time.gmtime(sec)
    base = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
    if fixed:
        return f"{base}.{frac:09d}Z"
    if frac:
        return f"{base}.{f'{frac:09d}'.rstrip('0')}Z"
    return base + "Z"


def rfc3339nano(ts: float) -> str:
    """Go's ``RFC3339Nano`` of Unix seconds: ``2026-11-24T09:41:02.123456Z``.

    A float only carries ~0.2 µs at today's epoch, so it is rounded to microseconds
    (pass integer nanoseconds to :func:`rfc3339nano_ns` for full precision).
    """
    return rfc3339nano_ns(round(ts * 1_000_000) * 1000)


def rfc3339nano_fixed(ts: float) -> str:
    """docker's ``RFC3339NanoFixed`` (``logs -t``): always nine fraction digits."""
    return rfc3339nano_ns(round(ts * 1_000_000) * 1000, fixed=True)


def now_rfc3339() -> str:
    """Now with microseconds, as docker's records store it: ``2026-12-02T05:04:03.123456Z``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns // 1000 % 1_000_000:06d}Z"


def now_rfc3339nano() -> str:
    return rfc3339nano_ns(time.time_ns())


# --------------------------------------------------------------------------- docker ps

def status_text(state: Mapping[str, Any], now: float | None = None) -> str:
    """The daemon's ``State.String()``: "Up 3 minutes (healthy)", "Exited (0) 5 seconds ago".

    Reads docker's inspect ``State`` (``Status`` plus the Running/Paused/... flags;
    timestamps as RFC 3339 strings or Unix seconds).
    """
    now = time.time() if now is None else now
    status = state.get("Status") or ""
    if status:
        running = status in ("running", "paused", "restarting")
        paused, restarting = status == "paused", status == "restarting"
    else:
        running = bool(state.get("Running"))
        paused, restarting = bool(state.get("Paused")), bool(state.get("Restarting"))
    code = state.get("ExitCode") or 0
    if running:
        if paused:
            return f"Up {human_duration(now - (_epoch_or_none(state.get('StartedAt')) or now))}" \
                " (Paused)"
        if restarting:
            finished = _epoch_or_none(state.get("FinishedAt")) or now
            return f"Restarting ({code}) {human_duration(now - finished)} ago"
        up = f"Up {human_duration(now - (_epoch_or_none(state.get('StartedAt')) or now))}"
        health = (state.get("Health") or {}).get("Status")
        if health == "starting":
            return f"{up} (health: starting)"
        if health and health != "none":
            return f"{up} ({health})"
        return up
    if status == "removing" or state.get("RemovalInProgress"):
        return "Removal In Progress"
    if status == "dead" or state.get("Dead"):
        return "Dead"
    if status == "created" or _epoch_or_none(state.get("StartedAt")) is None:
        return "Created"
    finished = _epoch_or_none(state.get("FinishedAt"))
    if finished is None:
        return ""
    return f"Exited ({code}) {human_duration(now - finished)} ago"


# --------------------------------------------------------------------------- --since/--until

def _get_timestamp(value: str, now: float) -> float:
    if value != "0":
        try:
            d = parse_duration_ns(value)
        except InvalidArgument:
            pass
        else:
            return float((now - d / 1e9) // 1)     # Go: reference.Add(-d).Unix()
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    if "." in value:
        layout = _RFC3339_NANO_LOCAL if in_location else RFC3339_NANO
    elif "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1     # the one in the numeric zone offset
        if in_location:
            layout = ("2006-01-02T15", "2006-01-02T15:04")[colons] if colons < 2 \
                else _RFC3339_LOCAL
        else:
            layout = ("2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00")[colons] \
                if colons < 2 else RFC3339
    else:
        layout = _DATE_LOCAL if in_location else _DATE_WITH_ZONE
    offset = time.localtime(now).tm_gmtoff if in_location else 0
    try:
        sec, nsec = _go_parse(layout, value, offset)
    except _ParseError as exc:
        if "-" in value:
            raise InvalidArgument(str(exc)) from None
        whole, dot, frac = value.partition(".")
        try:
            sec = go_parse_int(whole)
            nsec = go_parse_int(frac) if dot else 0
        except ValueError:
            raise InvalidArgument("failed to parse value as time or duration: "
                                  f"{go_quote(value)}") from None
        if dot:
            nsec = int(float(nsec) * 10.0 ** (9 - len(frac)))
    return sec + nsec / 1e9


def parse_timestamp(value: str, now: float, *, flag: str | None = None) -> float:
    """docker's ``GetTimestamp`` as Unix seconds (``logs --since/--until``, filters).

    ``10m`` -> now - 600 (whole seconds, like Go's ``Unix()``); ``2006-01-02``,
    ``2006-01-02T15:04:05`` (local time), ``...Z``/``+07:00``; ``1700000000.123``.
    ``flag`` prefixes errors the way the docker client does:
    ``invalid value for "since": ...``.
    """
    try:
        return _get_timestamp(str(value), now)
    except InvalidArgument as exc:
        if flag:
            raise InvalidArgument(f'invalid value for "{flag}": {exc}') from None
        raise


__all__ = ["human_duration", "human_ago", "status_text", "rfc3339nano", "rfc3339nano_fixed",
           "rfc3339nano_ns", "now_rfc3339nano", "parse_rfc3339", "parse_timestamp",
           "ZERO_TIME", "RFC3339", "RFC3339_NANO"]
