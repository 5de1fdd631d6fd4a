"""``berth``: docker-compatible command line.

Only this module and the chosen command's module are imported: heavy libraries
(requests, pyroute2, ...) stay off the start path.
"""

from __future__ import annotations

import os
import sys

# command -> (module, function); "container X" and "image X" forms map onto these too
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("containers", "cmd_run"), "create": ("containers", "cmd_create"),
    "start": ("containers", "cmd_start"), "stop": ("containers", "cmd_stop"),
    "kill": ("containers", "cmd_kill"), "restart": ("containers", "cmd_restart"),
    "pause": ("containers", "cmd_pause"), "unpause": ("containers", "cmd_unpause"),
    "rm": ("containers", "cmd_rm"), "wait": ("containers", "cmd_wait"),
    "rename": ("containers", "cmd_rename"), "ps": ("ps", "cmd_ps"),
    "update": ("update", "cmd_update"),
    "logs": ("containers", "cmd_logs"), "exec": ("containers", "cmd_exec"),
    "attach": ("containers", "cmd_attach"), "top": ("containers", "cmd_top"),
    "stats": ("containers", "cmd_stats"), "diff": ("containers", "cmd_diff"),
    "export": ("containers", "cmd_export"), "inspect": ("inspect", "cmd_inspect"),
    "cp": ("cp", "cmd_cp"),
    "images": ("images", "cmd_images"), "import": ("images", "cmd_import"),
    "rmi": ("images", "cmd_rmi"), "tag": ("images", "cmd_tag"),
    "history": ("images", "cmd_history"), "volume": ("volumes", "cmd_volume"),
    "pull": ("remote", "cmd_pull"), "push": ("remote", "cmd_push"),
    "login": ("remote", "cmd_login"), "logout": ("remote", "cmd_logout"),
    "search": ("remote", "cmd_search"),
    "save": ("archive", "cmd_save"), "load": ("archive", "cmd_load"),
    "build": ("build", "cmd_build"), "commit": ("build", "cmd_commit"),
    "builder": ("build", "cmd_builder"),
    "network": ("networks", "cmd_network"), "port": ("networks", "cmd_port"),
    "info": ("system", "cmd_info"), "version": ("system", "cmd_version"),
    "system": ("system", "cmd_system"), "events": ("events", "cmd_events"),
    "registry": ("registry", "cmd_registry"), "daemon": ("daemon", "cmd_daemon"),
    "container": ("main", "cmd_container"), "image": ("main", "cmd_image"),
    "container_prune": ("containers", "cmd_container_prune"),
    "image_prune": ("images", "cmd_image_prune"),
}
CONTAINER_SUB = {"ls": "ps", "list": "ps", "ps": "ps", "prune": "container_prune",
                 "inspect": "inspect", "commit": "commit"}
IMAGE_SUB = {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi",
             "prune": "image_prune", "inspect": "inspect", "save": "save", "load": "load",
             "build": "build"}

USAGE = """Usage:  berth [OPTIONS] COMMAND

A container engine in Python, docker-compatible.

Common Commands:
  run         Create and run a new container from an image
  exec        Execute a command in a running container
  ps          List containers
  images      List images
  pull        Download an image from a registry
  push        Upload an image to a registry
  login       Log in to a registry
  logout      Log out from a registry
  search      Search a registry for images
  build       Build an image from a Dockerfile
  import      Import the contents from a tarball to create a filesystem image
  info        Display system-wide information
  version     Show the berth version information

Management Commands:
  container   Manage containers
  builder     Manage builds
  image       Manage images
  volume      Manage volumes
  network     Manage networks
  system      Manage berth
  registry    Run and maintain a registry server

Commands:
  attach  commit  cp  create  daemon  diff  events  export  history  inspect  kill  load
  logs  pause  port  rename  restart  rm  rmi  save  start  stats  stop  tag  top
  unpause  update  wait

Global Options:
  --root DIR       data root (default /var/lib/berth, or BERTH_ROOT)
  --config FILE    daemon.json (default /etc/berth/daemon.json, or BERTH_CONFIG)
"""


def _dispatch(name: str, argv: list[str]) -> int:
    module, func = COMMANDS[name]
    import importlib

    mod = importlib.import_module(f"sdk.cli.{module}") if module != "main" else \
        sys.modules[__name__]
    return int(getattr(mod, func)(argv) or 0)


def cmd_container(argv: list[str]) -> int:
    return _sub("container", CONTAINER_SUB, argv)


def cmd_image(argv: list[str]) -> int:
    return _sub("image", IMAGE_SUB, argv)


def _sub(group: str, table: dict[str, str], argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"Usage:  berth {group} COMMAND\n\nCommands: "
              + " ".join(sorted(set(table) | {k for k in COMMANDS if "_" not in k})))
        return 0
    sub = argv[0]
    target = table.get(sub, sub)
    if target not in COMMANDS or target in ("container", "image"):
        print(f"berth: '{group} {sub}' is not a berth command.\n"
              f"See 'berth {group} --help'", file=sys.stderr)
        return 125
    return _dispatch(target, argv[1:])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    while args and args[0].startswith("--") and args[0].split("=")[0] in ("--root",
                                                                          "--config"):
        key, eq, value = args.pop(0).partition("=")
        if not eq:
            if not args:
                print(f"berth: flag needs an argument: {key}", file=sys.stderr)
                return 125
            value = args.pop(0)
        os.environ["BERTH_ROOT" if key == "--root" else "BERTH_CONFIG"] = value
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] in ("-v", "--version"):
        args = ["version", "--format", "berth version {{.Version}}"]
    name = args[0]
    if name not in COMMANDS or "_" in name:
        print(f"berth: '{name}' is not a berth command.\nSee 'berth --help'",
              file=sys.stderr)
        return 125
    if argv is None and name != "daemon":   # a real command line: the warm daemon?
        from sdk.api.forward import forward

        code = forward(args)
        if code is not None:
            return code
    from sdk._internal import trace
    from sdk.cli.common import run_command

    trace.reset()
    trace.mark(f"start {name}")
    try:
        code = run_command(lambda: _dispatch(name, args[1:]), name)
    finally:
        trace.mark("done")
        trace.report()
    if argv is None:          # a real command line: nothing needs the interpreter after
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown (10-40 ms of freeing every object):
    atexit handlers run and output is flushed first; with other threads still alive
    the normal exit (which waits for them) is kept."""
    import atexit

    atexit._run_exitfuncs()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:           # `berth ... | head`: as with SIGPIPE
            code = 141
        except (OSError, ValueError):
            pass
    os._exit(code & 0xFF)


if __name__ == "__main__":
    sys.exit(main())
