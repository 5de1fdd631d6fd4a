"""Docker's unit parsing and printing (docker/go-units semantics)."""

from __future__ import annotations

from sdk.errors import InvalidArgument

_BINARY = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
           "p": 1 << 50}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _split_number(text: str) -> tuple[str, str]:
    i = 0
    while i < len(text) and (text[i].isdigit() or text[i] == "."):
        i += 1
    return text[:i], text[i:].strip()


def parse_bytes(value: str, *, allow_negative_one: bool = False) -> int:
    """RAMInBytes: "64m" -> 67108864; suffixes b k m g t p (optionally followed by b)."""
    text = str(value).strip()
    if allow_negative_one and text == "-1":
        return -1
    number, suffix = _split_number(text)
    suffix = suffix.lower()
    if suffix.endswith("ib"):
        suffix = suffix[:-2]
    elif len(suffix) == 2 and suffix.endswith("b"):
        suffix = suffix[:-1]
    if not number or number.count(".") > 1 or suffix not in _BINARY:
        raise InvalidArgument(f"invalid size: '{value}'")
    return int(float(number) * _BINARY[suffix])


def human_size(size: float) -> str:
    """HumanSize: decimal units with 4 significant digits ("1.049MB", "1kB")."""
    size = float(size)
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{_DECIMAL_UNITS[i]}"


def bytes_size(size: float) -> str:
    """BytesSize: binary units ("1.5MiB"), as `docker stats` prints memory."""
    size = float(size)
    i = 0
    while size >= 1024 and i < len(_BINARY_UNITS) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_BINARY_UNITS[i]}"


def parse_cpus(value: str) -> int:
    """``--cpus 1.5`` -> 1500000000 nano CPUs."""
    try:
        cpus = float(value)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{value}" for "--cpus" flag: failed to '
                              "parse as a number") from None
    if cpus < 0 or cpus != cpus:
        raise InvalidArgument(f'invalid argument "{value}" for "--cpus" flag: value must '
                              "be a positive number")
    return int(round(cpus * 1e9))


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    text = str(value).strip()
    orig = text
    if not text:
        raise InvalidArgument(f'time: invalid duration "{orig}"')
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    total = 0.0
    while text:
        number, rest = _split_number(text)
        if not number:
            raise InvalidArgument(f'time: invalid duration "{orig}"')
        unit = ""
        while rest and not (rest[0].isdigit() or rest[0] == "."):
            unit += rest[0]
            rest = rest[1:]
        if not unit:
            raise InvalidArgument(f'time: missing unit in duration "{orig}"')
        if unit not in _DURATION_UNITS:
            raise InvalidArgument(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += float(number) * _DURATION_UNITS[unit]
        text = rest
    return sign * total


ULIMITS = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                     "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """``nofile=1024:2048`` -> ("nofile", 1024, 2048); -1 means unlimited."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {value}") from None
    if soft > hard and hard != -1:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                              f"{soft} > {hard}")
    return name, soft, hard


def parse_device_rate(value: str) -> tuple[str, int]:
    path, sep, rate = value.rpartition(":")
    if not sep or not path.startswith("/"):
        raise InvalidArgument(f"bad format: {value}")
    try:
        return path, parse_bytes(rate)
    except InvalidArgument:
        raise InvalidArgument(f"invalid rate for device: {value}. The correct format is "
                              "<device-path>:<number>[<unit>]. Number must be a positive "
                              "integer. Unit is optional and can be kb, mb, or gb") from None


def parse_device_iops(value: str) -> tuple[str, int]:
    path, sep, rate = value.rpartition(":")
    if not sep or not path.startswith("/") or not rate.isdigit():
        raise InvalidArgument(f"invalid rate for device: {value}. The correct format is "
                              "<device-path>:<number>. Number must be a positive integer")
    return path, int(rate)
