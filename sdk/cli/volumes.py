"""``berth volume create|ls|inspect|rm|prune``."""

from __future__ import annotations

import sys

from sdk.cli.common import confirm, engine, render_format
from sdk.cli.flags import Flag, Spec, UsageError, parse
from sdk.cli.inspect import print_docs

CREATE = Spec("volume create", "volume create [OPTIONS] [VOLUME]",
              [Flag("driver", "d", "str", default="local", help="Specify volume driver name"),
               Flag("label", kind="list", help="Set metadata for a volume"),
               Flag("opt", "o", "list", help="Set driver specific options"),
               Flag("name", kind="str", help="Specify volume name")],
              max_args=1, summary="Create a volume")
LS = Spec("volume ls", "volume ls [OPTIONS]",
          [Flag("quiet", "q", help="Only display volume names"),
           Flag("filter", "f", "list", help="Provide filter values"),
           Flag("format", kind="str", help="Format output using a custom template")],
          max_args=0, summary="List volumes")
INSPECT = Spec("volume inspect", "volume inspect [OPTIONS] VOLUME [VOLUME...]",
               [Flag("format", "f", "str", help="Format output using a custom template")],
               min_args=1)
RM = Spec("volume rm", "volume rm [OPTIONS] VOLUME [VOLUME...]",
          [Flag("force", "f", help="Force the removal of one or more volumes")], min_args=1)
PRUNE = Spec("volume prune", "volume prune [OPTIONS]",
             [Flag("all", "a", help="Remove all unused volumes, not just anonymous ones"),
              Flag("force", "f", help="Do not prompt for confirmation"),
              Flag("filter", kind="list", help="Provide filter values")], max_args=0)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or (what == "opt" and not sep):
            raise UsageError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value
    return out


def cmd_volume(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  berth volume COMMAND\n\nCommands:\n  create   inspect   ls   prune   rm")
        return 0
    sub, rest = argv[0], argv[1:]
    eng = engine()
    if sub == "create":
        opts, args = parse(CREATE, rest)
        if args and opts["name"] and args[0] != opts["name"]:
            raise UsageError("conflicting options: either specify --name or provide "
                             "positional arg, not both")
        name = args[0] if args else opts["name"]
        vol = eng.volumes.create(name, opts["driver"], _pairs(opts["opt"], "opt"),
                                 _pairs(opts["label"], "label"))
        print(vol.name)
        return 0
    if sub in ("ls", "list"):
        opts, _ = parse(LS, rest)
        from sdk._internal.filters import parse_filters
        from sdk.models.volumes import VOLUME_FILTERS

        vols = eng.volumes.list(parse_filters(opts["filter"], VOLUME_FILTERS))
        rows = [{"Driver": v.attrs["Driver"], "Name": v.name, "Mountpoint":
                 v.attrs["Mountpoint"], "Scope": "local", "Labels": ",".join(
                     f"{k}={val}" for k, val in (v.attrs.get("Labels") or {}).items())}
                for v in vols]
        if opts["quiet"]:
            sys.stdout.write("".join(r["Name"] + "\n" for r in rows))
            return 0
        sys.stdout.write(render_format(opts["format"] or "", rows,
                                       {"Driver": "DRIVER", "Name": "VOLUME NAME",
                                        "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE"},
                                       "{{.Driver}}\t{{.Name}}"))
        return 0
    if sub == "inspect":
        opts, args = parse(INSPECT, rest)
        from sdk.errors import NotFound

        docs, failed = [], False
        for name in args:
            try:
                docs.append(eng.volume_store.inspect(name))
            except NotFound as exc:
                print(f"Error: {exc}", file=sys.stderr)
                failed = True
        print_docs(docs, opts["format"])
        return 1 if failed else 0
    if sub in ("rm", "remove"):
        opts, args = parse(RM, rest)
        from sdk.errors import SdkError

        failed = False
        for name in args:
            try:
                eng.volume_store.remove(name, force=opts["force"])
                print(name)
            except SdkError as exc:
                print(f"Error response from daemon: {exc}", file=sys.stderr)
                failed = True
        return 1 if failed else 0
    if sub == "prune":
        opts, _ = parse(PRUNE, rest)
        if not opts["force"] and not confirm(
                "WARNING! This will remove anonymous local volumes not used by at least one "
                "container."):
            return 0
        from sdk._internal.filters import parse_filters
        from sdk._internal.units import human_size

        filters = parse_filters(opts["filter"], {"label", "all"})
        if opts["all"]:
            filters["all"] = ["true"]
        result = eng.volumes.prune(filters)
        if result["VolumesDeleted"]:
            print("Deleted Volumes:")
            for name in result["VolumesDeleted"]:
                print(name)
            print()
        print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
        return 0
    print(f"berth: 'volume {sub}' is not a berth command.\nSee 'berth volume --help'",
          file=sys.stderr)
    return 125
