"""Go's formatting of values, as Docker's classic builder writes them into history
(``fmt.Sprintf("%q", []string)``, ``time.Duration.String()``, ``%v`` of a slice)."""

from __future__ import annotations

from typing import Any


def quote(s: str) -> str:
    """Go's ``strconv.Quote`` for printable text."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def quote_list(items: list[str] | None) -> str:
    """``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(quote(i) for i in (items or [])) + "]"


def plain_list(items: list[str] | None) -> str:
    """``%v`` of a []string: ``[a b]``."""
    return "[" + " ".join(items or []) + "]"


def duration(ns: int) -> str:
    """``time.Duration(ns).String()``."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                text = _frac(u, size) + unit
                break
    else:
        h, rem = divmod(u, 3_600_000_000_000)
        m, rem = divmod(rem, 60_000_000_000)
        text = _frac(rem, 1_000_000_000) + "s"
        if h:
            text = f"{h}h{m}m" + text
        elif m:
            text = f"{m}m" + text
    return "-" + text if neg else text


def _frac(value: int, size: int) -> str:
    whole, part = divmod(value, size)
    if not part:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")


def char(n: int) -> str:
    """``%q`` of an int: a Go rune literal."""
    if n == ord("'"):
        return "'\\''"
    if n == ord("\\"):
        return "'\\\\'"
    if 0x20 <= n < 0x7F:
        return f"'{chr(n)}'"
    return f"'\\x{n:02x}'" if n < 0x100 else f"'\\u{n:04x}'"


def healthcheck(hc: dict[str, Any]) -> str:
    """``%q`` of a *container.HealthConfig``: ``&{["CMD-SHELL" "x"] "5m0s" ... '\\x03'}``."""
    parts = [quote_list(hc.get("Test"))]
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        parts.append(quote(duration(int(hc.get(key) or 0))))
    parts.append(char(int(hc.get("Retries") or 0)))
    return "&{" + " ".join(parts) + "}"
