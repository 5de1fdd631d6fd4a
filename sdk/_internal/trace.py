"""Opt-in phase timings: ``BERTH_TRACE=1 berth run ...`` prints, on exit, how long each
phase of the command took (parse, engine, create, cgroup, clone, exec, exit, cleanup).

For finding where a command's time goes without strace, whose stops distort exactly the
short syscalls being measured.  Costs one dict lookup per mark when off.
"""

from __future__ import annotations

import os
import sys
import time

ENABLED = bool(os.environ.get("BERTH_TRACE"))
_marks: list[tuple[str, float]] = []


def reset() -> None:
    """Forget marks a forked command inherited from its parent (the daemon's helper)."""
    _marks.clear()


def mark(label: str) -> None:
    if ENABLED:
        _marks.append((label, time.perf_counter()))


def report() -> None:
    """Print each phase's duration (ms since the previous mark) to stderr."""
    if not ENABLED or not _marks:
        return
    start = _marks[0][1]
    prev = start
    lines = []
    for label, t in _marks:
        lines.append(f"{(t - prev) * 1000:8.2f} ms  {label}")
        prev = t
    lines.append(f"{(prev - start) * 1000:8.2f} ms  total (pid {os.getpid()})")
    sys.stderr.write("berth trace:\n" + "\n".join(lines) + "\n")
    _marks.clear()
