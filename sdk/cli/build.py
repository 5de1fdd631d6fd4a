"""``berth build`` and ``berth commit``."""

from __future__ import annotations

import os
import sys

from sdk.cli.common import engine
from sdk.cli.flags import Flag, Spec, UsageError, parse

BUILD = Spec("build", "build [OPTIONS] PATH | URL | -",
             [Flag("tag", "t", "list", help="Name and optionally a tag in the name:tag format"),
              Flag("file", "f", "str", help="Name of the Dockerfile (default: PATH/Dockerfile)"),
              Flag("build-arg", kind="list", help="Set build-time variables"),
              Flag("no-cache", help="Do not use cache when building the image"),
              Flag("pull", help="Always attempt to pull a newer version of the image"),
              Flag("target", kind="str", help="Set the target build stage to build"),
              Flag("label", kind="list", help="Set metadata for an image"),
              Flag("quiet", "q", help="Suppress the build output and print image ID on "
                   "success"),
              Flag("rm", default=True, help="Remove intermediate containers after a "
                   "successful build"),
              Flag("force-rm", help="Always remove intermediate containers"),
              Flag("network", kind="str", help="Set the networking mode for the RUN "
                   "instructions during build")],
             min_args=1, max_args=1, summary="Build an image from a Dockerfile")


def _kv(items: list[str], flag: str, from_env: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f'invalid argument "{item}" for "--{flag}" flag')
        if not eq and from_env:
            if key not in os.environ:
                continue            # docker: --build-arg NAME without a value in the env
            value = os.environ[key]
        out[key] = value
    return out


def cmd_build(argv: list[str]) -> int:
    opts, args = parse(BUILD, argv)
    from sdk.build.api import open_context, run_build
    from sdk.build.builder import BuildOptions

    src = args[0]
    dockerfile = opts["file"]
    dockerfile_text = None
    if dockerfile == "-":
        if src == "-":
            raise UsageError("invalid argument: can't use stdin for both build context and "
                             "dockerfile")
        dockerfile_text = sys.stdin.buffer.read().decode("utf-8", "replace")
        dockerfile = None
    bopts = BuildOptions(tags=list(opts["tag"]),
                         buildargs=_kv(opts["build_arg"], "build-arg", True),
                         nocache=bool(opts["no_cache"]), target=opts["target"] or "",
                         labels=_kv(opts["label"], "label", False), quiet=bool(opts["quiet"]),
                         rm=bool(opts["rm"]), force_rm=bool(opts["force_rm"]),
                         pull=bool(opts["pull"]), network_mode=opts["network"] or None)
    eng = engine()
    quiet_log: list[str] = []
    run_fd = None if bopts.quiet else 1

    def emit(text: str) -> None:
        if bopts.quiet:
            quiet_log.append(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()

    if src == "-":
        with os.fdopen(os.dup(0), "rb") as stdin:
            ctx = open_context(fileobj=stdin, dockerfile=dockerfile,
                               dockerfile_text=dockerfile_text)
    else:
        ctx = open_context(path=src, dockerfile=dockerfile, dockerfile_text=dockerfile_text)
    from sdk.errors import SdkError

    with ctx:
        try:
            image_id = run_build(eng, ctx, bopts, emit, run_fd)
        except SdkError:
            sys.stderr.write("".join(quiet_log))    # -q: the log only when a step fails
            raise
    if bopts.quiet:
        print(image_id)
    return 0


COMMIT = Spec("commit", "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
              [Flag("author", "a", "str", default="",
                    help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
               Flag("change", "c", "list", help="Apply Dockerfile instruction to the created "
                    "image"),
               Flag("message", "m", "str", default="", help="Commit message"),
               Flag("pause", "p", default=True, help="Pause container during commit")],
              min_args=1, max_args=2,
              summary="Create a new image from a container's changes")


def cmd_commit(argv: list[str]) -> int:
    opts, args = parse(COMMIT, argv)
    from sdk.build.commit import commit

    image_id = commit(engine(), args[0], repository=args[1] if len(args) > 1 else None,
                      author=opts["author"], message=opts["message"],
                      changes=list(opts["change"]), pause=bool(opts["pause"]))
    print(image_id)
    return 0


BUILDER_PRUNE = Spec("builder prune", "builder prune [OPTIONS]",
                     [Flag("all", "a", help="Remove all unused build cache, not just "
                           "dangling ones"),
                      Flag("filter", kind="list", help="Provide filter values (e.g. "
                           "\"until=24h\")"),
                      Flag("force", "f", help="Do not prompt for confirmation")],
                     max_args=0, summary="Remove build cache")


def cmd_builder(argv: list[str]) -> int:
    """``berth builder prune|build``."""
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  berth builder COMMAND\n\nManage builds\n\nCommands:\n"
              "  build       Build an image from a Dockerfile\n"
              "  prune       Remove build cache")
        return 0
    if argv[0] == "build":
        return cmd_build(argv[1:])
    if argv[0] != "prune":
        print(f"berth: 'builder {argv[0]}' is not a berth command.\n"
              "See 'berth builder --help'", file=sys.stderr)
        return 125
    opts, _ = parse(BUILDER_PRUNE, argv[1:])
    from sdk._internal.filters import parse_filters
    from sdk._internal.units import human_size

    filters = parse_filters(opts["filter"], {"until"})
    if not opts["force"]:
        warning = ("WARNING! This will remove all build cache." if opts["all"] else
                   "WARNING! This will remove all dangling build cache.")
        sys.stdout.write(f"{warning} Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = engine().images.prune_builds(filters=filters, all=bool(opts["all"]))
    out = ""
    if result["CachesDeleted"]:
        out = "Deleted build cache objects:\n" + "".join(
            f"{key}\n" for key in result["CachesDeleted"]) + "\n"
    print(f"{out}Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0
