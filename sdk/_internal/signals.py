"""Signal names as docker accepts them: "SIGTERM", "TERM", "term", "15"."""

from __future__ import annotations

import signal

from sdk.errors import InvalidArgument


def parse_signal(value: str | int) -> int:
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if not 0 < number < signal.NSIG:
            raise InvalidArgument(f"invalid signal: {value}")
        return number
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        if name.startswith("SIGRTMIN+") and name[9:].isdigit():
            return int(signal.SIGRTMIN) + int(name[9:])
        raise InvalidArgument(f"invalid signal: {value}") from None
