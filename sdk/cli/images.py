"""Image commands: images, import, rmi, tag, history, image prune."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import Any

from sdk.cli.common import confirm, engine, render_format
from sdk.cli.flags import Flag, Spec, UsageError, parse

IMAGES = Spec("images", "images [OPTIONS] [REPOSITORY[:TAG]]",
              [Flag("all", "a", help="Show all images (default hides intermediate images)"),
               Flag("digests", help="Show digests"),
               Flag("filter", "f", "list", help="Filter output based on conditions provided"),
               Flag("format", kind="str", help="Format output using a custom template"),
               Flag("no-trunc", help="Don't truncate output"),
               Flag("quiet", "q", help="Only show image IDs")],
              max_args=1, summary="List images")
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS"}
DEFAULT = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def _ts(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def cmd_images(argv: list[str]) -> int:
    opts, args = parse(IMAGES, argv)
    from sdk._internal.filters import parse_filters
    from sdk._internal.timefmt import human_duration
    from sdk._internal.units import human_size
    from sdk.models.images import IMAGE_FILTERS

    filters = parse_filters(opts["filter"], IMAGE_FILTERS)
    eng = engine()
    images = eng.images.list(name=args[0] if args else None, all=opts["all"],
                             filters=filters)
    trunc = not opts["no_trunc"]
    now = time.time()
    rows: list[dict[str, Any]] = []
    for img in images:
        attrs = img.attrs
        image_id = attrs["Id"][7:19] if trunc else attrs["Id"]
        created = _ts(attrs["Created"])
        base = {"ID": image_id, "Digest": "<none>", "CreatedSince":
                human_duration(now - created) + " ago" if created else "N/A",
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                           time.gmtime(created)),
                "Size": human_size(attrs["Size"], precision=3), "Containers": "N/A"}
        tags = attrs["RepoTags"] or ["<none>:<none>"]
        for tag in tags:
            repo, _, tagname = tag.rpartition(":")
            if args and args[0] not in (repo, tag) and not _matches(args[0], repo, tag):
                continue
            rows.append({"Repository": repo, "Tag": tagname, **base})
    if opts["quiet"]:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    default = DEFAULT if not opts["digests"] else \
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    sys.stdout.write(render_format(opts["format"] or "", rows, HEADERS, default))
    return 0


def _matches(pattern: str, repo: str, tag: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(tag if ":" in pattern else repo, pattern)


IMPORT = Spec("import", "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
              [Flag("change", "c", "list", help="Apply Dockerfile instruction to the image"),
               Flag("message", "m", "str", default="", help="Set commit message"),
               Flag("platform", kind="str", help="Set platform if server is multi-platform")],
              min_args=1, max_args=2,
              summary="Import the contents from a tarball to create a filesystem image")


def cmd_import(argv: list[str]) -> int:
    opts, args = parse(IMPORT, argv)
    eng = engine()
    src = args[0]
    repo = args[1] if len(args) > 1 else None
    if src == "-":
        with os.fdopen(os.dup(0), "rb") as stdin:
            img = eng.images.import_image(stdin, repository=repo, changes=opts["change"],
                                          message=opts["message"])
    else:
        img = eng.images.import_image(src, repository=repo, changes=opts["change"],
                                      message=opts["message"])
    print(img.id)
    return 0


RMI = Spec("rmi", "rmi [OPTIONS] IMAGE [IMAGE...]",
           [Flag("force", "f", help="Force removal of the image"),
            Flag("no-prune", help="Do not delete untagged parents")],
           min_args=1, summary="Remove one or more images")


def cmd_rmi(argv: list[str]) -> int:
    opts, args = parse(RMI, argv)
    eng = engine()
    from sdk.errors import SdkError

    failed = False
    for ref in args:
        try:
            for event in eng.images.remove(ref, force=opts["force"],
                                           noprune=opts["no_prune"]):
                for key, value in event.items():
                    print(f"{key}: {value}")
        except SdkError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


TAG = Spec("tag", "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", [], min_args=2, max_args=2,
           summary="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")


def cmd_tag(argv: list[str]) -> int:
    _, args = parse(TAG, argv)
    engine().image_store.tag(args[0], args[1])
    return 0


HISTORY = Spec("history", "history [OPTIONS] IMAGE",
               [Flag("human", "H", default=True, help="Print sizes and dates in human format"),
                Flag("no-trunc", help="Don't truncate output"),
                Flag("quiet", "q", help="Only show image IDs"),
                Flag("format", kind="str", help="Format output using a custom template")],
               min_args=1, max_args=1, summary="Show the history of an image")


def cmd_history(argv: list[str]) -> int:
    opts, args = parse(HISTORY, argv)
    from sdk._internal.timefmt import human_duration
    from sdk._internal.units import human_size

    eng = engine()
    img = eng.images.get(args[0])
    trunc = not opts["no_trunc"]
    now = time.time()
    rows = []
    for entry in img.history():
        image_id = entry["Id"]
        if image_id.startswith("sha256:") and trunc:
            image_id = image_id[7:19]
        created_by = entry["CreatedBy"]
        if trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({"ID": image_id, "CreatedSince": human_duration(now - entry["Created"])
                     + " ago" if opts["human"] else str(entry["Created"]),
                     "CreatedBy": created_by, "Size": human_size(entry["Size"], precision=3)
                     if opts["human"] else str(entry["Size"]), "Comment": entry["Comment"]})
    if opts["quiet"]:
        for r in rows:
            print(r["ID"])
        return 0
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY",
               "Size": "SIZE", "Comment": "COMMENT"}
    sys.stdout.write(render_format(
        opts["format"] or "", rows, headers,
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"))
    return 0


def cmd_image_prune(argv: list[str]) -> int:
    spec = Spec("image prune", "image prune [OPTIONS]",
                [Flag("all", "a", help="Remove all unused images, not just dangling ones"),
                 Flag("force", "f", help="Do not prompt for confirmation"),
                 Flag("filter", kind="list", help="Provide filter values")], max_args=0)
    opts, _ = parse(spec, argv)
    if not opts["force"] and not confirm("WARNING! This will remove all dangling images."):
        return 0
    from sdk._internal.filters import parse_filters
    from sdk._internal.units import human_size

    filters = parse_filters(opts["filter"], {"label", "until", "dangling"})
    if opts["all"]:
        filters["dangling"] = ["false"]
    result = engine().images.prune(filters)
    if result["ImagesDeleted"]:
        print("Deleted Images:")
        for event in result["ImagesDeleted"]:
            for key, value in event.items():
                print(f"{key.lower()}: {value}")
        print()
    print(f"Total reclaimed space: {human_size(result['SpaceReclaimed'])}")
    return 0


__all__ = ["cmd_images", "cmd_import", "cmd_rmi", "cmd_tag", "cmd_history",
           "cmd_image_prune", "UsageError"]
