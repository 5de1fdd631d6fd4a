"""Reading a container's log the way ``docker logs`` shows it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sdk.errors import InvalidArgument

if TYPE_CHECKING:
    from sdk.engine import Engine


def _when(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    from sdk._internal.timefmt import parse_timestamp

    return parse_timestamp(str(value), time.time())


def _tail(tail: Any) -> int | None:
    if tail in (None, "all", ""):
        return None
    try:
        n = int(tail)
    except (TypeError, ValueError):
        return None    # docker: invalid values mean all
    return None if n < 0 else n


def log_lines(engine: Engine, ref: str, *, stdout: bool = True, stderr: bool = True,
              timestamps: bool = False, tail: Any = "all", since: Any = None,
              until: Any = None, follow: bool = False) -> Iterator[tuple[str, bytes]]:
    from sdk.tasks.logs import read_logs

    doc = engine.tasks.get(ref)
    log_type = (doc["HostConfig"].get("LogConfig") or {}).get("Type", "json-file")
    if log_type == "none" or not doc.get("LogPath"):
        raise InvalidArgument(f"configured logging driver does not support reading "
                              f"(container {doc['Id'][:12]} uses {log_type})")
    cid = doc["Id"]

    def running() -> bool:
        cur = engine.container_store.load(cid)
        if cur is None:
            return False
        cur = engine.tasks.reconcile(cur)
        return cur["State"]["Status"] in ("running", "paused", "restarting")

    from pathlib import Path

    path = Path(doc["LogPath"])
    if not path.exists() and not follow:
        return
    for rec in read_logs(path, since=_when(since), until=_when(until), tail=_tail(tail),
                         follow=follow, is_running=running):
        if rec.stream == "stdout" and not stdout or rec.stream == "stderr" and not stderr:
            continue
        data = rec.data
        if timestamps:
            data = rec.time.encode() + b" " + data
        yield rec.stream, data
