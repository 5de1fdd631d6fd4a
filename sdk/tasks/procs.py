"""Small helpers about host processes: identity that survives pid reuse, exit codes."""

from __future__ import annotations

import os


def start_time(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (0 when it does not exist)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # the comm field may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    """True when ``pid`` still names the process that started at ``started``."""
    if pid <= 0:
        return False
    st = start_time(pid)
    if st == 0 or (started and st != started):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rfind(b")") + 2:][:1] != b"Z"
    except OSError:
        return False


def exit_code(status: int) -> int:
    """Docker's exit code: the process's code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
