"""``berth registry serve|garbage-collect|scrub``: berth's own registry server.

aiohttp, bcrypt and PyYAML are imported only when a subcommand runs.
"""

from __future__ import annotations

import sys
from typing import Any

from sdk.cli.flags import Flag, Spec, UsageError, parse

COMMON = [Flag("config", "c", "str", None, "registry config.yml (distribution's shape)",
               "FILE"),
          Flag("root", "", "str", None, "storage root (storage.filesystem.rootdirectory)",
               "DIR")]
SERVE = Spec("registry serve [OPTIONS] [CONFIG]", "registry serve [OPTIONS] [CONFIG]", COMMON + [
    Flag("addr", "", "str", None, "listen address (http.addr), e.g. 127.0.0.1:5000", "ADDR"),
    Flag("readonly", "", "bool", False, "refuse every write"),
    Flag("delete", "", "bool", False, "allow DELETE (storage.delete.enabled)"),
    Flag("access-log", "", "bool", False, "log every request"),
], max_args=1, summary="Run the registry in the foreground (SIGTERM: graceful shutdown)")
GC = Spec("registry garbage-collect", "registry garbage-collect [OPTIONS] [CONFIG]", COMMON + [
    Flag("dry-run", "d", "bool", False, "only report what would be deleted"),
    Flag("delete-untagged", "m", "bool", False, "also delete manifests no tag points to"),
    Flag("grace", "", "str", None, "spare blobs touched this recently (default 1h)",
         "DURATION"),
    Flag("quiet", "q", "bool", False, "print only the summary"),
], max_args=1, summary="Delete blobs no manifest references (safe while the registry runs)")
SCRUB = Spec("registry scrub", "registry scrub [OPTIONS] [CONFIG]", COMMON, max_args=1,
             summary="Re-hash every stored blob and report corruption (exit 1 if any)")
USAGE = """Usage:  berth registry COMMAND

Run and maintain berth's registry server (OCI distribution-spec 1.1, Docker Registry v2)

Commands:
  serve             Run the registry in the foreground
  garbage-collect   Delete unreferenced blobs (safe while the registry runs)
  scrub             Re-hash stored blobs and report corruption
"""


def _config(opts: dict[str, Any], args: list[str], **extra: Any) -> Any:
    from sdk.registry.config import load_config

    path = opts["config"] or (args[0] if args else None)
    if opts["config"] and args:
        raise UsageError("give the config file either as --config or as an argument")
    return load_config(path, {"root": opts["root"], **extra})


def cmd_registry(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    sub, rest = argv[0], argv[1:]
    if sub == "serve":
        return _serve(rest)
    if sub in ("garbage-collect", "gc"):
        return _gc(rest)
    if sub == "scrub":
        return _scrub(rest)
    print(f"berth: 'registry {sub}' is not a berth command.\nSee 'berth registry --help'",
          file=sys.stderr)
    return 125


def _serve(argv: list[str]) -> int:
    import logging

    opts, args = parse(SERVE, argv)
    cfg = _config(opts, args, addr=opts["addr"], readonly=opts["readonly"] or None,
                  delete_enabled=opts["delete"] or None)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sdk.registry.server import RegistryServer

    RegistryServer(cfg, access_log=opts["access_log"]).serve_forever()
    return 0


def _existing_root(cfg: Any) -> str:
    from pathlib import Path

    from sdk.errors import NotFound

    if not Path(cfg.root).is_dir():
        raise NotFound(f"registry storage {cfg.root} does not exist")
    return str(cfg.root)


def _gc(argv: list[str]) -> int:
    opts, args = parse(GC, argv)
    cfg = _config(opts, args)
    _existing_root(cfg)
    from sdk.registry.config import parse_duration
    from sdk.registry.maintenance import garbage_collect
    from sdk.registry.storage import Storage

    grace = parse_duration(opts["grace"], "--grace") if opts["grace"] else cfg.gc_grace
    report = garbage_collect(Storage(cfg.root), dry_run=opts["dry_run"],
                             delete_untagged=opts["delete_untagged"], grace=grace)
    verb = "would delete" if opts["dry_run"] else "deleted"
    if not opts["quiet"]:
        for m in report.deleted_manifests:
            print(f"{verb} manifest {m}")
        for b in report.deleted_blobs:
            print(f"{verb} blob {b}")
    print(f"{report.marked} blobs marked, {len(report.deleted_blobs)} blobs and "
          f"{len(report.deleted_manifests)} manifests {verb}, {report.freed_bytes} bytes "
          f"{'reclaimable' if opts['dry_run'] else 'freed'}"
          + (f", {report.skipped_recent} recent blobs spared" if report.skipped_recent else ""))
    return 0


def _scrub(argv: list[str]) -> int:
    opts, args = parse(SCRUB, argv)
    cfg = _config(opts, args)
    _existing_root(cfg)
    from sdk.registry.maintenance import scrub
    from sdk.registry.storage import Storage

    report = scrub(Storage(cfg.root))
    for line in report.corrupt:
        print(f"corrupt blob {line}")
    print(f"{report.checked} blobs checked ({report.bytes} bytes), "
          f"{len(report.corrupt)} corrupt")
    return 1 if report.corrupt else 0
