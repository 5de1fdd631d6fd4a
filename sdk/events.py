"""The engine's event log (``docker events``): one table, written where things change.

Every process (CLI, supervisors, the daemon) appends to the same SQLite table, so
``berth events`` and the API's ``/events`` see what any of them did.  The log keeps the
newest ``KEEP`` events, as dockerd keeps a bounded in-memory ring.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

KEEP = 4096

# container state transitions -> docker's event actions
TRANSITIONS: dict[tuple[str, str], str] = {
    ("created", "running"): "start", ("exited", "running"): "start",
    ("restarting", "running"): "start", ("running", "exited"): "die",
    ("paused", "exited"): "die", ("restarting", "exited"): "die",
    ("running", "paused"): "pause", ("paused", "running"): "unpause",
    ("running", "restarting"): "die",
}


def record(conn: sqlite3.Connection, kind: str, action: str, actor: str,
           attributes: Mapping[str, Any] | None = None) -> None:
    """Append one event inside the caller's transaction."""
    attrs = {k: str(v) for k, v in (attributes or {}).items() if v is not None}
    cur = conn.execute("INSERT INTO events (time_nano, type, action, actor, attrs) "
                       "VALUES (?,?,?,?,?)",
                       (time.time_ns(), kind, action, actor, json.dumps(attrs)))
    if cur.lastrowid and cur.lastrowid % 256 == 0:
        conn.execute("DELETE FROM events WHERE id <= ?", (cur.lastrowid - KEEP,))


def container_attrs(doc: Mapping[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"image": doc.get("Config", {}).get("Image", ""),
                             "name": str(doc.get("Name", "")).lstrip("/")}
    attrs.update(doc.get("Config", {}).get("Labels") or {})
    return attrs


def container_transition(conn: sqlite3.Connection, before: Mapping[str, Any],
                         after: Mapping[str, Any]) -> None:
    """Record what a state change means (start, die, pause, unpause)."""
    old, new = before["State"]["Status"], after["State"]["Status"]
    action = TRANSITIONS.get((old, new))
    if action is None:
        return
    attrs = container_attrs(after)
    if action == "die":
        if after["State"].get("OOMKilled"):     # dockerd sends "oom" just before "die"
            record(conn, "container", "oom", after["Id"], dict(attrs))
        attrs["exitCode"] = after["State"].get("ExitCode", 0)
    record(conn, "container", action, after["Id"], attrs)


def to_docker(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as dockerd's JSON message (with the legacy status/id/from fields)."""
    attrs = json.loads(row["attrs"])
    nano = int(row["time_nano"])
    msg: dict[str, Any] = {"Type": row["type"], "Action": row["action"],
                           "Actor": {"ID": row["actor"], "Attributes": attrs},
                           "scope": "local", "time": nano // 1_000_000_000, "timeNano": nano}
    if row["type"] == "container":
        msg.update(status=row["action"], id=row["actor"], **({"from": attrs["image"]}
                                                              if "image" in attrs else {}))
    return msg


def matches(msg: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """docker's event filters: type, event/action, container, image, volume, network,
    label (key or key=value)."""
    attrs = msg["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "type" and msg["Type"] not in values:
            return False
        if key in ("event", "action") and msg["Action"] not in values:
            return False
        if key in ("container", "volume", "network") and (
                msg["Type"] != key or not any(
                    msg["Actor"]["ID"].startswith(v) or attrs.get("name") == v
                    for v in values)):
            return False
        if key == "image" and not any(attrs.get("image") == v or msg["Actor"]["ID"] == v
                                      or attrs.get("name") == v for v in values):
            return False
        if key == "label" and not all(
                (attrs.get(v.split("=", 1)[0]) == v.split("=", 1)[1]) if "=" in v
                else v in attrs for v in values):
            return False
    return True


def stream(db: Any, *, since: float | None = None, until: float | None = None,
           filters: Mapping[str, list[str]] | None = None, follow: bool = True,
           stopped: Any = lambda: False, poll: float = 0.1) -> Any:
    """Yield dockerd-shaped messages: past ones from ``since``, then new ones as they
    are written while ``follow`` (until ``until`` passes or ``stopped()``)."""
    f = dict(filters or {})
    start_ns = int(since * 1e9) if since is not None else time.time_ns()
    until_ns = int(until * 1e9) if until is not None else None
    row = db.one("SELECT COALESCE(MAX(id), 0) AS m FROM events WHERE time_nano < ?",
                 (start_ns,))
    last = int(row["m"]) if row else 0
    while True:
        rows = db.query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT 1000", (last,))
        for r in rows:
            last = int(r["id"])
            if until_ns is not None and int(r["time_nano"]) > until_ns:
                return
            msg = to_docker(r)
            if matches(msg, f):
                yield msg
        if rows:
            continue
        if not follow or stopped() or (until_ns is not None and time.time_ns() > until_ns):
            return
        time.sleep(poll)
