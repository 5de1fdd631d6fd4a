"""``berth inspect``: containers, images and volumes, with ``-f`` templates."""

from __future__ import annotations

import json
import sys
from typing import Any

from sdk.cli.common import engine
from sdk.cli.flags import Flag, Spec, parse

INSPECT = Spec("inspect", "inspect [OPTIONS] NAME|ID [NAME|ID...]",
               [Flag("format", "f", "str", help="Format output using a custom template"),
                Flag("size", "s", help="Display total file sizes if the type is container"),
                Flag("type", kind="str", help="Only inspect objects of the given type")],
               min_args=1, summary="Return low-level information on berth objects")


def _find(eng: Any, ref: str, kind: str | None) -> dict[str, Any]:
    from sdk.containers.service import public
    from sdk.errors import NotFound

    if kind in (None, "container"):
        try:
            return public(eng.tasks.get(ref))
        except NotFound:
            if kind == "container":
                raise
    if kind in (None, "image"):
        try:
            return eng.image_store.inspect(eng.image_store.resolve(ref))
        except NotFound:
            if kind == "image":
                raise
        except Exception:   # noqa: BLE001 - not an image reference: try volumes
            if kind == "image":
                raise
    if kind in (None, "volume"):
        try:
            return eng.volume_store.inspect(ref)
        except NotFound:
            pass
    raise NotFound(f"No such object: {ref}")


def cmd_inspect(argv: list[str]) -> int:
    opts, args = parse(INSPECT, argv)
    if opts["type"] not in (None, "container", "image", "volume"):
        from sdk.cli.flags import UsageError

        raise UsageError(f'"{opts["type"]}" is not a valid value for --type')
    eng = engine()
    from sdk.errors import NotFound

    docs, failed = [], False
    for ref in args:
        try:
            docs.append(_find(eng, ref, opts["type"]))
        except NotFound as exc:
            print(f"Error: {exc}", file=sys.stderr)
            failed = True
    print_docs(docs, opts["format"])
    return 1 if failed else 0


def print_docs(docs: list[dict[str, Any]], fmt: str | None) -> None:
    if fmt:
        from sdk.cli import template

        tmpl = template.compile_template(fmt, missing_key="error")
        for doc in docs:
            sys.stdout.write(template.render(tmpl, doc) + "\n")
        return
    sys.stdout.write(json.dumps(docs, indent=4) + "\n")
