"""Docker's unit parsing and printing, byte-for-byte compatible with docker/go-units.

* sizes: ``parse_bytes`` is go-units ``RAMInBytes`` (binary multiples; ``--memory``,
  ``--memory-swap``, ``--shm-size``, ``--device-*-bps``); ``parse_size_decimal`` is
  ``FromHumanSize`` (decimal multiples; the json-file log driver's ``max-size``, so
  ``10m`` is 10,000,000 bytes there).  Both follow go-units v0.5 (docker 23+), whose
  messages are ``invalid size: '<input>'`` for a bad number and
  ``invalid suffix: '<suffix>'`` for a bad unit (``12q`` -> ``invalid suffix: 'q'``).
* ``human_size`` / ``bytes_size``: ``HumanSizeWithPrecision`` (decimal, ``1.049MB``) and
  ``BytesSize`` (binary, ``1MiB``).
* ``parse_duration``: Go's ``time.ParseDuration``.
* ``parse_cpus``, ``parse_ulimit``, ``parse_device_*``: docker/cli's flag validators.

Every helper raises :class:`InvalidArgument` carrying the upstream message, so the CLI
can print it after docker's ``invalid argument "..." for "--flag" flag: `` prefix.
"""

from __future__ import annotations

import os

from sdk.errors import InvalidArgument

KB, MB, GB, TB, PB = 1000, 1000**2, 1000**3, 1000**4, 1000**5
KIB, MIB, GIB, TIB, PIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50

_BINARY = {"k": KIB, "m": MIB, "g": GIB, "t": TIB, "p": PIB}
_DECIMAL = {"k": KB, "m": MB, "g": GB, "t": TB, "p": PB}
_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_INT64_MAX = (1 << 63) - 1

ULIMITS = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                     "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})


# --------------------------------------------------------------------------- Go strconv

def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (used in strconv/fmt error messages)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v"}


def _is_digits(text: str, alphabet: str = _DIGITS) -> bool:
    return bool(text) and all(c in alphabet for c in text)


def go_parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)`` for the forms docker inputs use.

    Decimal (``1``, ``1.``, ``.5``, ``1e3``) and hexadecimal (``0x1p4``) floats with an
    optional sign; unlike Python's ``float`` no spaces, underscores, ``inf`` or ``nan``.
    """
    body = text[1:] if text[:1] in ("+", "-") else text
    ok = False
    if body[:2] in ("0x", "0X"):
        mant, sep, exp = body[2:].lower().partition("p")
        whole, _, frac = mant.partition(".")
        ok = bool(sep) and bool(whole or frac) and \
            all(c in _HEX_DIGITS for c in whole + frac) and mant.count(".") <= 1 and \
            _is_digits(exp[1:] if exp[:1] in ("+", "-") else exp)
        if ok:
            try:
                value = float.fromhex(text)
            except (ValueError, OverflowError):
                raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: "
                                 "value out of range") from None
    else:
        mant, sep, exp = body.replace("E", "e").partition("e")
        whole, dot, frac = mant.partition(".")
        ok = bool(whole or frac) and all(c in _DIGITS for c in whole + frac) and \
            (not sep or _is_digits(exp[1:] if exp[:1] in ("+", "-") else exp))
        if ok:
            value = float(text)
    if not ok:
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: value out of range")
    return value


def go_parse_int(text: str, *, bits: int = 64, signed: bool = True,
                 func: str = "ParseInt") -> int:
    """``strconv.ParseInt(text, 10, bits)`` / ``ParseUint``: no spaces or underscores."""
    body = text[1:] if signed and text[:1] in ("+", "-") else text
    if not _is_digits(body):
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ValueError(f"strconv.{func}: parsing {go_quote(text)}: value out of range")
    return value


# --------------------------------------------------------------------------- sizes

def _parse_size(text: str, multipliers: dict[str, int]) -> int:
    """go-units ``parseSize``: the number ends at the last digit, dot or space."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise InvalidArgument(f"invalid size: '{text}'")
    if text[sep] == " ":
        num, sfx = text[:sep], text[sep + 1:]
    else:
        num, sfx = text[:sep + 1], text[sep + 1:]
    try:
        size = go_parse_float(num)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if size < 0:
        raise InvalidArgument(f"invalid size: '{text}'")
    if not sfx:
        return int(size)
    if len(sfx) > 3:
        raise InvalidArgument(f"invalid suffix: '{sfx}'")
    sfx = sfx.lower()
    if sfx[0] == "b":
        if len(sfx) > 1:
            raise InvalidArgument(f"invalid suffix: '{sfx}'")
        return int(size)
    mul = multipliers.get(sfx[0])
    if mul is None or (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
        raise InvalidArgument(f"invalid suffix: '{sfx}'")
    return int(size * mul)


def parse_bytes(value: str | int, *, allow_negative_one: bool = False) -> int:
    """go-units ``RAMInBytes``: ``"64m"`` -> 67108864, ``"32kb"`` -> 32768, ``"1.5g"``.

    Suffixes b k m g t p, case-insensitive, optionally followed by ``b`` or ``ib``.
    ``allow_negative_one`` accepts ``"-1"`` (docker's ``MemSwapBytes``: unlimited swap).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value == -1 and allow_negative_one:
            return -1
        if value < 0:
            raise InvalidArgument(f"invalid size: '{value}'")
        return value
    text = str(value)
    if allow_negative_one and text == "-1":
        return -1
    return _parse_size(text, _BINARY)


def parse_size_decimal(value: str) -> int:
    """go-units ``FromHumanSize``: SI multiples, ``"10m"`` -> 10000000.

    This is what docker's json-file log driver applies to ``max-size`` (and
    ``--log-opt max-size`` / daemon.json ``log-opts``), so ``10m`` rotates at 10 MB, not
    10 MiB.
    """
    return _parse_size(str(value), _DECIMAL)


def _scaled(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    return size, abbrs[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units ``HumanSizeWithPrecision``: ``1000`` -> ``1kB``, ``1048576`` -> ``1.049MB``.

    docker uses precision 4 (``HumanSize``) for ``system df`` and prune totals, and 3 for
    ``images``/``ps --size`` SIZE and ``stats`` NET/BLOCK I/O.
    """
    scaled, unit = _scaled(float(size), 1000.0, _DECIMAL_ABBRS)
    return f"{scaled:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units, ``1048576`` -> ``1MiB`` (``stats`` memory)."""
    scaled, unit = _scaled(float(size), 1024.0, _BINARY_ABBRS)
    return f"{scaled:.4g}{unit}"


# --------------------------------------------------------------------------- cpus

def _cpu_range_error(ncpu: int) -> InvalidArgument:
    return InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                           f"{ncpu} CPUs available")


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _rational(text: str) -> tuple[int, int] | None:
    """``big.Rat.SetString`` for decimal input: ``1.5``, ``.5``, ``2e-1``, ``3/2``."""
    num, slash, den = text.partition("/")
    if slash:
        sign = num[:1] if num[:1] in ("+", "-") else ""
        if not _is_digits(num[len(sign):]) or not _is_digits(den) or int(den) == 0:
            return None
        return int(num), int(den)
    body = text[1:] if text[:1] in ("+", "-") else text
    mant, sep, exp = body.replace("E", "e").partition("e")
    whole, _, frac = mant.partition(".")
    if not (whole or frac) or not all(c in _DIGITS for c in whole + frac) or \
            mant.count(".") > 1:
        return None
    if sep and not _is_digits(exp[1:] if exp[:1] in ("+", "-") else exp):
        return None
    power = (int(exp) if sep else 0) - len(frac)
    if abs(power) > 400:        # far outside anything meaningful; keep ints small
        return None if power < 0 else (1 << 80, 1)
    numerator = int(whole + frac or "0") * (-1 if text[:1] == "-" else 1)
    return (numerator * 10**power, 1) if power >= 0 else (numerator, 10**-power)


def parse_cpus(value: str) -> int:
    """``--cpus 1.5`` -> 1500000000 nano CPUs (docker/cli ``opts.ParseCPUs``).

    Syntax errors carry pflag's wording; a negative count gets the daemon's range error.
    """
    text = str(value)
    rat = _rational(text)
    if rat is None:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to '
                              f"parse {text} as a rational number")
    num, den = rat
    nano, rem = divmod(num * 1_000_000_000, den)
    if rem:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: value is too '
                              "precise")
    if nano < 0 or nano > _INT64_MAX:
        raise _cpu_range_error(_available_cpus())
    return nano


def validate_nano_cpus(nano: int, ncpu: int | None = None) -> None:
    """The daemon's check on ``NanoCpus``: 0 (unset) or within the host's CPU count."""
    ncpu = _available_cpus() if ncpu is None else ncpu
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise _cpu_range_error(ncpu)


# --------------------------------------------------------------------------- durations

_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000,
                   "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                   "h": 3_600_000_000_000}


def go_time_quote(text: str) -> str:
    """The ``time`` package's own quoting: non-ASCII and control bytes as ``\\xNN``."""
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def parse_duration_ns(value: str) -> int:
    """Go's ``time.ParseDuration`` in integer nanoseconds (same errors, same rounding)."""
    text = str(value)
    orig = text
    neg = False

    def invalid() -> InvalidArgument:
        return InvalidArgument(f"time: invalid duration {go_time_quote(orig)}")

    if text and text[0] in "+-":
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid()
    total = 0
    while text:
        if not (text[0] == "." or "0" <= text[0] <= "9"):
            raise invalid()
        i, whole = 0, 0
        while i < len(text) and "0" <= text[i] <= "9":
            if whole > (1 << 63) // 10:
                raise invalid()
            whole = whole * 10 + ord(text[i]) - 48
            if whole > 1 << 63:
                raise invalid()
            i += 1
        pre = i > 0
        text = text[i:]
        frac, scale, post = 0, 1.0, False
        if text and text[0] == ".":
            text = text[1:]
            i, overflow = 0, False
            while i < len(text) and "0" <= text[i] <= "9":
                if not overflow:
                    if frac > _INT64_MAX // 10:
                        overflow = True
                    else:
                        nxt = frac * 10 + ord(text[i]) - 48
                        if nxt > 1 << 63:
                            overflow = True
                        else:
                            frac, scale = nxt, scale * 10
                i += 1
            post = i > 0
            text = text[i:]
        if not pre and not post:
            raise invalid()
        i = 0
        while i < len(text) and not (text[i] == "." or "0" <= text[i] <= "9"):
            i += 1
        if i == 0:
            raise InvalidArgument(f"time: missing unit in duration {go_time_quote(orig)}")
        unit_name, text = text[:i], text[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise InvalidArgument(f"time: unknown unit {go_time_quote(unit_name)} in "
                                  f"duration {go_time_quote(orig)}")
        if whole > (1 << 63) // unit:
            raise invalid()
        whole *= unit
        if frac > 0:
            whole += int(float(frac) * (float(unit) / scale))
            if whole > 1 << 63:
                raise invalid()
        total += whole
        if total > 1 << 63:
            raise invalid()
    if neg:
        return -total
    if total > _INT64_MAX:
        raise invalid()
    return total


def parse_duration(value: str) -> float:
    """Go's ``time.ParseDuration`` in seconds: ``"1h2m3.5s"``, ``"300ms"``, ``"-1.5h"``.

    A bare number other than ``0`` is an error, as in Go:
    ``time: missing unit in duration "10"``.
    """
    return parse_duration_ns(value) / 1e9


# --------------------------------------------------------------------------- ulimits

def _ulimit_value(text: str) -> int:
    if text == "infinity":
        return -1
    try:
        return go_parse_int(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """go-units ``ParseUlimit``: ``nofile=1024:2048`` -> ("nofile", 1024, 2048).

    The hard limit defaults to the soft one; ``-1`` or ``infinity`` mean unlimited.
    """
    name, sep, limits = str(value).partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"too many limit value arguments - {limits}, can only have up "
                              "to two, `soft[:hard]`")
    hard = _ulimit_value(parts[1]) if len(parts) == 2 else None
    soft = _ulimit_value(parts[0])
    if hard is None:
        hard = soft
    if hard != -1:
        if soft == -1:
            raise InvalidArgument("ulimit soft limit must be less than or equal to hard "
                                  f"limit: soft: -1 (unlimited), hard: {hard}")
        if soft > hard:
            raise InvalidArgument("ulimit soft limit must be less than or equal to hard "
                                  f"limit: {soft} > {hard}")
    return name, soft, hard


# --------------------------------------------------------------------------- devices

def _device_path(value: str) -> tuple[str, str]:
    path, sep, rest = value.partition(":")
    if not sep or not path:
        raise InvalidArgument(f"bad format: {value}")
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"bad format for device path: {value}")
    return path, rest


def parse_device_rate(value: str) -> tuple[str, int]:
    """``--device-read-bps /dev/sda:1mb`` -> ("/dev/sda", 1048576)."""
    path, rate = _device_path(str(value))
    try:
        return path, parse_bytes(rate)
    except InvalidArgument:
        raise InvalidArgument(f"invalid rate for device: {value}. The correct format is "
                              "<device-path>:<number>[<unit>]. Number must be a positive "
                              "integer. Unit is optional and can be kb, mb, or gb") from None


def parse_device_iops(value: str) -> tuple[str, int]:
    """``--device-read-iops /dev/sda:1000`` -> ("/dev/sda", 1000)."""
    path, rate = _device_path(str(value))
    try:
        return path, go_parse_int(rate, signed=False, func="ParseUint")
    except ValueError:
        raise InvalidArgument(f"invalid rate for device: {value}. The correct format is "
                              "<device-path>:<number>. Number must be a positive "
                              "integer") from None


def parse_device_weight(value: str) -> tuple[str, int]:
    """``--blkio-weight-device /dev/sda:200`` -> ("/dev/sda", 200); 0 or 10..1000."""
    path, text = _device_path(str(value))
    try:
        weight = go_parse_int(text, bits=16, signed=False, func="ParseUint")
    except ValueError:
        raise InvalidArgument(f"invalid weight for device: {value}") from None
    if weight > 0 and not 10 <= weight <= 1000:
        raise InvalidArgument(f"invalid weight for device: {value}")
    return path, weight


__all__ = [
    "ULIMITS", "KB", "MB", "GB", "TB", "PB", "KIB", "MIB", "GIB", "TIB", "PIB",
    "parse_bytes", "parse_size_decimal", "human_size", "bytes_size", "parse_cpus",
    "validate_nano_cpus", "parse_duration", "parse_duration_ns", "parse_ulimit",
    "parse_device_rate", "parse_device_iops", "parse_device_weight", "go_quote",
    "go_time_quote", "go_parse_float", "go_parse_int",
]
