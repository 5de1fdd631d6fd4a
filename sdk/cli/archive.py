"""Archive commands: save, load (also ``image save`` / ``image load``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from sdk.cli.common import engine
from sdk.cli.flags import Flag, Spec, UsageError, parse

SAVE = Spec("save", "save [OPTIONS] IMAGE [IMAGE...]",
            [Flag("output", "o", "str", help="Write to a file, instead of STDOUT")],
            min_args=1,
            summary="Save one or more images to a tar archive (streamed to STDOUT by default)")
LOAD = Spec("load", "load [OPTIONS]",
            [Flag("input", "i", "str", help="Read from tar archive file, instead of STDIN"),
             Flag("quiet", "q", help="Suppress the load output"),
             Flag("platform", kind="str",
                  help="Load only the given platform of a multi-platform image")],
            max_args=0, summary="Load an image from a tar archive or STDIN")


class ClientError(UsageError):
    """An error docker's CLI finds itself, before asking the daemon: printed as it is,
    exit status 1 (as ``docker save``/``docker load`` do)."""

    exit_code = 1


def check_output_path(output: str) -> None:
    """docker's ValidateOutputPath: the directory must exist (named as given, not made
    absolute) and the path must not be a directory."""
    directory = os.path.dirname(os.path.normpath(output))
    if directory and directory != ".":
        try:
            os.stat(directory)
        except OSError as exc:
            raise ClientError(f"failed to save image: invalid output path: stat {directory}: "
                              f"{(exc.strerror or str(exc)).lower()}") from None
    if os.path.isdir(output):
        raise ClientError("failed to save image: cannot write to a directory")


def cmd_save(argv: list[str]) -> int:
    opts, args = parse(SAVE, argv)
    output = opts["output"]
    if not output and os.isatty(1):
        raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or "
                          "redirect")
    if output:
        check_output_path(output)
    from sdk.archive.save import plan_save, stream_archive
    from sdk.errors import FailedPrecondition

    eng = engine()
    plan = plan_save(eng.image_store, args)
    chunks = stream_archive(eng.image_store, plan)
    if output:
        try:
            _write_file(output, chunks)
        except OSError as exc:
            raise FailedPrecondition(f"failed to save image: write {output}: "
                                     f"{(exc.strerror or str(exc)).lower()}") from None
        return 0
    try:
        with os.fdopen(os.dup(1), "wb") as out:
            for chunk in chunks:
                out.write(chunk)
    except BrokenPipeError:
        print("Error: write /dev/stdout: broken pipe", file=sys.stderr)
        return 1
    return 0


def _write_file(output: str, chunks: Iterator[bytes]) -> None:
    """A regular file (or a new one) is written beside the target and renamed when
    complete, like docker's CopyToFile; a device, FIFO or /dev/stdout is written in place."""
    import stat

    try:
        regular = stat.S_ISREG(os.stat(output).st_mode)
    except FileNotFoundError:
        regular = True
    if not regular:
        with open(output, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)),
                       f".{os.path.basename(output)}.berth-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_load(argv: list[str]) -> int:
    opts, _ = parse(LOAD, argv)
    from sdk.archive.load import load
    from sdk.errors import InvalidArgument
    from sdk.images.service import familiar

    source = opts["input"]
    if not source and os.isatty(0):
        raise ClientError("requested load from stdin, but stdin is empty")
    show_progress = not opts["quiet"] and os.isatty(1)

    def progress(line: str) -> None:
        print(line, flush=True)

    eng = engine()
    if source:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InvalidArgument(f"open {source}: {exc.strerror.lower()}") from None
    else:
        stream = os.fdopen(os.dup(0), "rb")
    with stream:
        loaded = load(eng.image_store, stream, platform=opts["platform"],
                      progress=progress if show_progress else None)
    for image in loaded:
        for tag, old in image.replaced:
            print(f"The image {familiar(tag)} already exists, renaming the old one with ID "
                  f"{old} to empty string")
        for tag in image.tags:
            print(f"Loaded image: {familiar(tag)}")
        if not image.tags:
            print(f"Loaded image ID: {image.id}")
    return 0
