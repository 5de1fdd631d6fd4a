"""Shared CLI plumbing: error reporting with docker's exit codes, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from sdk.cli.flags import HelpRequested, UsageError

# commands whose engine errors exit 125 like `docker run` (others exit 1 like docker)
RUN_LIKE = frozenset({"run", "create"})
# set in a command the engine service's warm helper runs (`berth version` says so)
SERVED_BY_DAEMON = False


def run_command(func: Callable[[], int], name: str) -> int:
    from sdk.errors import SdkError

    try:
        return func()
    except HelpRequested as req:
        print(req.spec.help_text())
        return 0
    except UsageError as exc:
        print(f"berth: {exc}" if name in RUN_LIKE else str(exc), file=sys.stderr)
        return exc.exit_code
    except SdkError as exc:
        prefix = "berth: " if name in RUN_LIKE else "Error: "
        print(prefix + str(exc), file=sys.stderr)
        if name in RUN_LIKE or name == "exec":
            return exc.exit_code
        from sdk.errors import InvalidArgument

        if name in ("build", "commit"):   # docker build fails with 1, whatever the cause
            return 1
        return 125 if isinstance(exc, InvalidArgument) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # `berth ... | head`: the reader left, as with SIGPIPE
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # the final flush must not fail again
        os.close(devnull)
        return 141


def confirm(question: str) -> bool:
    """docker's prune prompt: "... Are you sure you want to continue? [y/N] "."""
    sys.stdout.write(question + "\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def engine() -> Any:
    """Always the embedded engine (BERTH_ROOT/BERTH_CONFIG or the defaults): the CLI
    runs in the daemon's helper too and must never call the service it is part of."""
    import os

    from sdk.engine import Engine

    return Engine(root=os.environ.get("BERTH_ROOT") or None,
                  config=os.environ.get("BERTH_CONFIG") or None)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=4) + "\n")


def render_format(fmt: str, items: list[Any], headers: dict[str, str],
                  default_columns: str) -> str:
    """docker's --format: "table ...", "json", or a Go template per item."""
    from sdk.cli import template
    from sdk.cli.table import render_table

    if fmt == "json":
        return "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items)
    if not fmt or fmt == "table":
        fmt = "table " + default_columns
    if template.is_table(fmt):
        body = template.strip_table(fmt)
        columns = body.split("\\t") if "\\t" in body else body.split("\t")
        tmpls = [template.compile_template(c.strip()) for c in columns]
        head = []
        for col in columns:
            key = col.strip().strip("{}").strip().lstrip(".")
            head.append(headers.get(key, key.upper()))
        rows = [[template.render(t, i) for t in tmpls] for i in items]
        return render_table(head, rows)
    tmpl = template.compile_template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
    return "".join(template.render(tmpl, i) + "\n" for i in items)
