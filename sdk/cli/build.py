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
    if src.startswith(("http://", "https://", "git@", "git://", "github.com/")):
        from sdk.errors import InvalidArgument

        raise InvalidArgument("building from a URL context is not available in this berth "
                              "version: download it and pass the directory or `-`")
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
