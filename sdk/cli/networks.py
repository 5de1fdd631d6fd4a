"""``berth network create|ls|inspect|rm|prune|connect|disconnect`` and ``berth port``."""

from __future__ import annotations

import sys
from typing import Any

from sdk.cli.common import confirm, engine, render_format
from sdk.cli.flags import Flag, Spec, UsageError, parse
from sdk.cli.inspect import print_docs

CREATE = Spec("network create", "network create [OPTIONS] NETWORK",
              [Flag("driver", "d", "str", default="bridge", help="Driver to manage the Network"),
               Flag("subnet", kind="list", help="Subnet in CIDR format"),
               Flag("gateway", kind="list", help="IPv4 Gateway for the master subnet"),
               Flag("ip-range", kind="list", help="Allocate container ip from a sub-range"),
               Flag("internal", help="Restrict external access to the network"),
               Flag("label", kind="list", help="Set metadata on a network"),
               Flag("opt", "o", "list", help="Set driver specific options")],
              min_args=1, max_args=1, summary="Create a network")
LS = Spec("network ls", "network ls [OPTIONS]",
          [Flag("quiet", "q", help="Only display network IDs"),
           Flag("no-trunc", help="Do not truncate the output"),
           Flag("filter", "f", "list", help="Provide filter values (name=, driver=, id=)"),
           Flag("format", kind="str", help="Format output using a custom template")],
          max_args=0, summary="List networks")
INSPECT = Spec("network inspect", "network inspect [OPTIONS] NETWORK [NETWORK...]",
               [Flag("format", "f", "str", help="Format output using a custom template")],
               min_args=1)
RM = Spec("network rm", "network rm NETWORK [NETWORK...]",
          [Flag("force", "f", help="Do not error if the network does not exist")], min_args=1)
PRUNE = Spec("network prune", "network prune [OPTIONS]",
             [Flag("force", "f", help="Do not prompt for confirmation"),
              Flag("filter", kind="list", help="Provide filter values")], max_args=0)
CONNECT = Spec("network connect", "network connect [OPTIONS] NETWORK CONTAINER",
               [Flag("ip", kind="str", help="IPv4 address"),
                Flag("alias", kind="list", help="Add network-scoped alias for the container")],
               min_args=2, max_args=2)
DISCONNECT = Spec("network disconnect", "network disconnect [OPTIONS] NETWORK CONTAINER",
                  [Flag("force", "f", help="Force the container to disconnect")],
                  min_args=2, max_args=2)
PORT = Spec("port", "port CONTAINER [PRIVATE_PORT[/PROTO]]", [], min_args=1, max_args=2,
            summary="List port mappings or a specific mapping for the container")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or (what == "opt" and not sep):
            raise UsageError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value
    return out


def _one(values: list[str], flag: str) -> str | None:
    if len(values) > 1:
        raise UsageError(f"--{flag}: only one IPv4 subnet per network is supported")
    return values[0] if values else None


def cmd_network(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  berth network COMMAND\n\nCommands:\n  connect   create   disconnect   "
              "inspect   ls   prune   rm")
        return 0
    sub, rest = argv[0], argv[1:]
    handler = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm,
               "remove": _rm, "prune": _prune, "connect": _connect,
               "disconnect": _disconnect}.get(sub)
    if handler is None:
        print(f"berth: 'network {sub}' is not a berth command.\nSee 'berth network --help'",
              file=sys.stderr)
        return 125
    return handler(rest)


def _create(rest: list[str]) -> int:
    opts, args = parse(CREATE, rest)
    svc = engine().networks.service
    net = svc.create(args[0], driver=opts["driver"], subnet=_one(opts["subnet"], "subnet"),
                     gateway=_one(opts["gateway"], "gateway"),
                     ip_range=_one(opts["ip_range"], "ip-range"), internal=bool(opts["internal"]),
                     labels=_pairs(opts["label"], "label"), options=_pairs(opts["opt"], "opt"))
    print(net["id"])
    return 0


def _ls(rest: list[str]) -> int:
    opts, _ = parse(LS, rest)
    filters: dict[str, list[str]] = {}
    for item in opts["filter"]:
        key, sep, value = item.partition("=")
        if not sep or key not in ("name", "driver", "id", "label"):
            raise UsageError(f"invalid filter {item!r}")
        filters.setdefault(key, []).append(value)
    rows = []
    for net in engine().networks.service.list():
        doc = net["doc"]
        if "name" in filters and not any(f in net["name"] for f in filters["name"]):
            continue
        if "driver" in filters and net["driver"] not in filters["driver"]:
            continue
        if "id" in filters and not any(net["id"].startswith(f) for f in filters["id"]):
            continue
        if "label" in filters and not all(_label_match(doc, f) for f in filters["label"]):
            continue
        rows.append({"ID": net["id"] if opts["no_trunc"] else net["id"][:12],
                     "Name": net["name"], "Driver": net["driver"], "Scope": "local",
                     "Internal": str(bool(doc.get("Internal"))).lower(),
                     "IPv6": "false", "CreatedAt": doc.get("Created", ""),
                     "Labels": ",".join(f"{k}={v}" for k, v in (doc.get("Labels") or {})
                                        .items())})
    if opts["quiet"]:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    sys.stdout.write(render_format(opts["format"] or "", rows,
                                   {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
                                    "Scope": "SCOPE"},
                                   "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"))
    return 0


def _label_match(doc: dict[str, Any], f: str) -> bool:
    key, sep, value = f.partition("=")
    labels = doc.get("Labels") or {}
    return key in labels and (not sep or labels[key] == value)


def _inspect(rest: list[str]) -> int:
    from sdk.errors import NotFound

    opts, args = parse(INSPECT, rest)
    svc = engine().networks.service
    docs, failed = [], False
    for ref in args:
        try:
            docs.append(svc.inspect(ref))
        except NotFound as exc:
            print(f"Error: {exc}", file=sys.stderr)
            failed = True
    print_docs(docs, opts["format"])
    return 1 if failed else 0


def _rm(rest: list[str]) -> int:
    from sdk.errors import NotFound, SdkError

    opts, args = parse(RM, rest)
    svc = engine().networks.service
    failed = False
    for ref in args:
        try:
            svc.remove(ref)
            print(ref)
        except NotFound as exc:
            if not opts["force"]:
                print(f"Error response from daemon: {exc}", file=sys.stderr)
                failed = True
        except SdkError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _prune(rest: list[str]) -> int:
    opts, _ = parse(PRUNE, rest)
    if not opts["force"] and not confirm(
            "WARNING! This will remove all custom networks not used by at least one "
            "container."):
        return 0
    gone = engine().networks.service.prune()
    if gone:
        print("Deleted Networks:")
        for name in gone:
            print(name)
    return 0


def _connect(rest: list[str]) -> int:
    opts, args = parse(CONNECT, rest)
    engine().networks.service.connect(args[0], args[1], ip=opts["ip"],
                                      aliases=opts["alias"])
    return 0


def _disconnect(rest: list[str]) -> int:
    opts, args = parse(DISCONNECT, rest)
    engine().networks.service.disconnect(args[0], args[1], force=opts["force"])
    return 0


def cmd_port(argv: list[str]) -> int:
    from sdk.errors import NotFound
    from sdk.network.ports import port_range, split_proto

    _opts, args = parse(PORT, argv)
    doc = engine().tasks.get(args[0])
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) == 2:
        port, proto = split_proto(args[1], args[1])
        port_range(port, args[1])
        key = f"{port}/{proto}"
        bindings = ports.get(key)
        if not bindings:
            raise NotFound(f"No public port '{key}' published for {args[0]}")
        for b in bindings:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
