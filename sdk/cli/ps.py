"""``berth ps``: docker's columns, filters and formats."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sdk.cli.common import engine, render_format
from sdk.cli.flags import Flag, Spec, parse

PS = Spec("ps", "ps [OPTIONS]",
          [Flag("all", "a", help="Show all containers (default shows just running)"),
           Flag("quiet", "q", help="Only display container IDs"),
           Flag("latest", "l", help="Show the latest created container (includes all states)"),
           Flag("last", "n", "int", default=-1, help="Show n last created containers"),
           Flag("size", "s", help="Display total file sizes"),
           Flag("no-trunc", help="Don't truncate output"),
           Flag("filter", "f", "list", help="Filter output based on conditions provided"),
           Flag("format", kind="str", help="Format output using a custom template")],
          max_args=0, summary="List containers")

HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
           "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
           "LocalVolumes": "LOCAL VOLUMES"}
DEFAULT = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _created(doc: dict[str, Any]) -> float:
    text = doc["Created"]
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class _Row:
    """What every field of a listing shares: the listing's clock, truncation and the
    ``--size`` column of the container at hand."""

    now: float
    trunc: bool
    size: Any


def _command(doc: dict[str, Any], ctx: _Row) -> str:
    text = " ".join([doc["Path"], *doc.get("Args", [])]).strip()
    return f'"{_ellipsis(text, 20)}"' if ctx.trunc else '"' + text + '"'


def _mount_names(doc: dict[str, Any], ctx: _Row) -> str:
    names = (m.get("Name") or m.get("Source", "") for m in doc.get("Mounts") or [])
    return ",".join(_ellipsis(n, 15) if ctx.trunc else n for n in names)


def _running_for(doc: dict[str, Any], ctx: _Row) -> str:
    from sdk._internal.timefmt import human_duration

    return human_duration(ctx.now - _created(doc)) + " ago"


def _status(doc: dict[str, Any], ctx: _Row) -> str:
    from sdk._internal.timefmt import status_text

    return status_text(doc["State"], ctx.now)


# One plain function per template field, so a row costs one call per shown column (a
# dict of fresh closures per row was most of a 1000-row listing's time).
FIELDS: dict[str, Callable[[dict[str, Any], _Row], Any]] = {
    "ID": lambda doc, ctx: doc["Id"][:12] if ctx.trunc else doc["Id"],
    "Image": lambda doc, ctx: doc["Config"].get("Image", ""),
    "Command": _command,
    "CreatedAt": lambda doc, ctx: time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                                time.gmtime(_created(doc))),
    "RunningFor": _running_for,
    "Ports": lambda doc, ctx: _ports(doc),
    "State": lambda doc, ctx: doc["State"]["Status"],
    "Status": _status,
    "Size": lambda doc, ctx: ctx.size if ctx.size is not None else "",
    "Names": lambda doc, ctx: doc["Name"].lstrip("/"),
    "Labels": lambda doc, ctx: ",".join(f"{k}={v}" for k, v in
                                        (doc["Config"].get("Labels") or {}).items()),
    "Mounts": _mount_names,
    "Networks": lambda doc, ctx: doc["HostConfig"].get("NetworkMode", ""),
    "LocalVolumes": lambda doc, ctx: str(sum(1 for m in doc.get("Mounts") or []
                                             if m.get("Type") == "volume")),
}


def row(doc: dict[str, Any], now: float, *, trunc: bool, size: Any = None,
        keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The template fields of one container; with ``keys``, only those (the default table
    needs 7 of 14, and computing the others is most of the per-row cost)."""
    ctx = _Row(now, trunc, size)
    return {k: FIELDS[k](doc, ctx) for k in (FIELDS if keys is None else keys)}


def cmd_ps(argv: list[str]) -> int:
    opts, _ = parse(PS, argv)
    from sdk._internal.filters import parse_filters
    from sdk.models.filters import CONTAINER_FILTERS, container_matches

    filters = parse_filters(opts["filter"], CONTAINER_FILTERS)
    eng = engine()
    docs = eng.tasks.briefs()
    image_ids: dict[str, set[str]] = {}
    for ref in filters.get("ancestor", []):
        try:
            image_ids[ref] = {eng.image_store.resolve(ref)}
        except Exception:   # noqa: BLE001 - unknown image matches nothing
            image_ids[ref] = set()
    show_all = opts["all"] or opts["latest"] or opts["last"] > 0 or "status" in filters \
        or "exited" in filters
    selected = [d for d in docs if (show_all or d["State"]["Status"] == "running")
                and container_matches(d, filters, image_ids)]
    if opts["latest"]:
        selected = selected[:1]
    elif opts["last"] > 0:
        selected = selected[:opts["last"]]
    trunc = not opts["no_trunc"]
    if opts["quiet"] and not opts["format"]:
        sys.stdout.write("".join((d["Id"][:12] if trunc else d["Id"]) + "\n"
                                 for d in selected))
        return 0
    now = time.time()
    sizes: dict[str, str] = {}
    if opts["size"]:
        from sdk._internal.units import human_size

        for d in selected:
            rw = eng.layer_store.container_size(d["Id"])
            virtual = rw + (eng.image_store.inspect(d["Image"])["Size"]
                            if eng.image_store.exists(d["Image"]) else 0)
            sizes[d["Id"]] = (f"{human_size(rw, precision=3)} "
                              f"(virtual {human_size(virtual, precision=3)})")
    default = DEFAULT + ("\t{{.Size}}" if opts["size"] else "")
    fmt = opts["format"] or ""
    if opts["quiet"]:
        fmt = "{{.ID}}"
    if not fmt:   # the default table, without going through templates
        from sdk.cli.table import render_table

        keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"] + \
            (["Size"] if opts["size"] else [])
        rows = [row(d, now, trunc=trunc, size=sizes.get(d["Id"]), keys=keys)
                for d in selected]
        sys.stdout.write(render_table([HEADERS[k] for k in keys],
                                      [[str(r[k]) for k in keys] for r in rows]))
        return 0
    rows = [row(d, now, trunc=trunc, size=sizes.get(d["Id"])) for d in selected]
    sys.stdout.write(render_format(fmt, rows, HEADERS, default))
    return 0


def _ports(doc: dict[str, Any]) -> str:
    from sdk.network.ports import format_ports

    return format_ports((doc.get("NetworkSettings") or {}).get("Ports"))
