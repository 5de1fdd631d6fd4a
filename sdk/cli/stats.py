"""``berth stats``: CPU, memory, block I/O and pids from each container's cgroup."""

from __future__ import annotations

import sys
import time
from typing import Any

from sdk.cli.common import render_format

HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
           "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
           "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
DEFAULT = ("{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
           "{{.BlockIO}}\t{{.PIDs}}")


def _row(doc: dict[str, Any], prev: dict[str, Any], cur: dict[str, Any],
         trunc: bool) -> dict[str, Any]:
    from sdk._internal.units import bytes_size, human_size

    cpu = 0.0
    try:
        d_cpu = cur["cpu_stats"]["cpu_usage"]["total_usage"] - \
            prev["cpu_stats"]["cpu_usage"]["total_usage"]
        d_sys = cur["cpu_stats"]["system_cpu_usage"] - prev["cpu_stats"]["system_cpu_usage"]
        if d_sys > 0:
            cpu = d_cpu / d_sys * cur["cpu_stats"]["online_cpus"] * 100
    except KeyError:
        pass
    mem = cur.get("memory_stats", {})
    usage, limit = mem.get("usage", 0), mem.get("limit", 0)
    blk = {e["op"]: e["value"] for e in
           cur.get("blkio_stats", {}).get("io_service_bytes_recursive") or []}
    return {"ID": doc["Id"][:12] if trunc else doc["Id"], "Container": doc["Id"][:12],
            "Name": doc["Name"].lstrip("/"), "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
            "MemPerc": f"{usage * 100 / limit:.2f}%" if limit else "0.00%",
            "NetIO": "0B / 0B",
            "BlockIO": f"{human_size(blk.get('read', 0), precision=3)} / "
                       f"{human_size(blk.get('write', 0), precision=3)}",
            "PIDs": str(cur.get("pids_stats", {}).get("current", 0))}


def show_stats(eng: Any, refs: list[str], *, all_containers: bool, stream: bool, fmt: str,
               no_trunc: bool) -> int:
    def docs() -> list[dict[str, Any]]:
        if refs:
            return [eng.tasks.get(r) for r in refs]
        return [d for d in eng.tasks.all()
                if all_containers or d["State"]["Status"] == "running"]

    prev = {d["Id"]: eng.tasks.stats(d["Id"]) for d in docs()}
    while True:
        time.sleep(0.5)
        rows = []
        for d in docs():
            cur = eng.tasks.stats(d["Id"])
            rows.append(_row(d, prev.get(d["Id"], cur), cur, not no_trunc))
            prev[d["Id"]] = cur
        out = render_format(fmt, rows, HEADERS, DEFAULT)
        if not stream:
            sys.stdout.write(out)
            return 0
        sys.stdout.write("\x1b[2J\x1b[H" + out)
        sys.stdout.flush()
