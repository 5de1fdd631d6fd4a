"""``berth events``: the engine's event log, past and live, like ``docker events``."""

from __future__ import annotations

import json
import sys
from typing import Any

from sdk.cli.flags import Flag, Spec, parse

EVENTS = Spec("events", "events [OPTIONS]",
              [Flag("filter", "f", "list", help="Filter output based on conditions provided"),
               Flag("format", kind="str", help="Format output using a custom template"),
               Flag("since", kind="str", help="Show all events created since timestamp"),
               Flag("until", kind="str", help="Stream events until this timestamp")],
              max_args=0, summary="Get real time events from the server")


def line(msg: dict[str, Any]) -> str:
    """dockerd's default rendering: time, type, action, actor, (attributes)."""
    from sdk._internal.timefmt import rfc3339nano_ns

    attrs = msg["Actor"]["Attributes"]
    inner = ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
    return (f"{rfc3339nano_ns(msg['timeNano'])} {msg['Type']} {msg['Action']} "
            f"{msg['Actor']['ID']}" + (f" ({inner})" if inner else ""))


def cmd_events(argv: list[str]) -> int:
    opts, _ = parse(EVENTS, argv)
    import time

    from sdk import events
    from sdk._internal.filters import parse_filters
    from sdk._internal.timefmt import parse_timestamp
    from sdk.cli.common import engine

    filters = parse_filters(opts["filter"], frozenset({
        "type", "event", "action", "container", "image", "volume", "network", "label"}))
    now = time.time()
    since = parse_timestamp(opts["since"], now, flag="since") if opts["since"] else None
    until = parse_timestamp(opts["until"], now, flag="until") if opts["until"] else None
    fmt = opts["format"] or ""
    tmpl = None
    if fmt and fmt != "json":
        from sdk.cli import template

        tmpl = template.compile_template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
    eng = engine()
    try:
        for msg in events.stream(eng.db, since=since, until=until, filters=filters,
                                 follow=True):
            if fmt == "json":
                out = json.dumps(msg, separators=(",", ":"))
            elif tmpl is not None:
                from sdk.cli import template

                out = template.render(tmpl, msg)
            else:
                out = line(msg)
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0
