"""Registry commands: pull, push, login, logout, search (and pull output for run/create)."""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, Any

from sdk.cli.common import engine
from sdk.cli.flags import Flag, Spec, UsageError, parse

PULL = Spec("pull", "pull [OPTIONS] NAME[:TAG|@DIGEST]",
            [Flag("all-tags", "a", help="Download all tagged images in the repository"),
             Flag("platform", kind="str", help="Set platform if server is multi-platform "
                  "capable"),
             Flag("quiet", "q", help="Suppress verbose output"),
             Flag("disable-content-trust", default=True, help="Skip image verification "
                  "(always: berth has no content trust)")],
            min_args=1, max_args=1, summary="Download an image from a registry")
PUSH = Spec("push", "push [OPTIONS] NAME[:TAG]",
            [Flag("all-tags", "a", help="Push all tags of an image to the repository"),
             Flag("quiet", "q", help="Suppress verbose output"),
             Flag("disable-content-trust", default=True, help="Skip image signing")],
            min_args=1, max_args=1, summary="Upload an image to a registry")
LOGIN = Spec("login", "login [OPTIONS] [SERVER]",
             [Flag("username", "u", "str", help="Username"),
              Flag("password", "p", "str", help="Password"),
              Flag("password-stdin", help="Take the password from stdin")],
             max_args=1, summary="Log in to a registry (credentials go to $BERTH_AUTH_CONFIG, "
             "else ~/.docker/config.json)")
LOGOUT = Spec("logout", "logout [SERVER]", [], max_args=1,
              summary="Log out from a registry")
SEARCH = Spec("search", "search [OPTIONS] TERM",
              [Flag("filter", "f", "list", help="Filter output based on conditions provided"),
               Flag("format", kind="str", help="Pretty-print search using a Go template"),
               Flag("limit", kind="int", default=25, help="Max number of search results"),
               Flag("no-trunc", help="Don't truncate output")],
              min_args=1, max_args=1,
              summary="Search a registry for images (HOST[:PORT]/TERM: its /v2/_catalog)")

BAR_WIDTH = 50


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n:.3g}GB"


def progress_text(event: dict[str, Any]) -> str:
    """``abc123: Downloading [====>   ]  1.2MB/3.4MB`` (docker's jsonmessage line)."""
    status = str(event.get("status", ""))
    detail = event.get("progressDetail") or {}
    text = status
    total, current = detail.get("total"), detail.get("current")
    if total and current is not None:
        filled = min(BAR_WIDTH, int(BAR_WIDTH * current / total))
        arrow = ">" if filled < BAR_WIDTH else "="
        bar = "=" * max(filled - 1, 0) + (arrow if filled else "") + " " * (BAR_WIDTH -
                                                                             filled)
        text += f" [{bar}]  {_human(current)}/{_human(total)}"
    ident = event.get("id")
    return f"{ident}: {text}" if ident else text


class ProgressPrinter:
    """Renders progress events: one updating line per layer on a TTY (cursor moves, like
    docker), plain status-change lines otherwise."""

    def __init__(self, stream: IO[str], tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._ids: list[str] = []
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._write(event)

    def _write(self, event: dict[str, Any]) -> None:
        ident = event.get("id")
        status = str(event.get("status", ""))
        line = progress_text(event)
        header = status.startswith("Pulling from") or ident is None
        if header:
            self._ids.clear()
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        key = str(ident)
        if not self.tty:
            if status in ("Downloading", "Pushing", "Extracting") and \
                    self._last.get(key) == status:
                return
            self._last[key] = status
            self.stream.write(f"{key}: {status}\n")
            self.stream.flush()
            return
        if key not in self._ids:
            self._ids.append(key)
            self.stream.write(line + "\n")
        else:
            up = len(self._ids) - self._ids.index(key)
            self.stream.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        self.stream.flush()


def _quiet(_event: dict[str, Any]) -> None:
    pass


def cmd_pull(argv: list[str]) -> int:
    opts, args = parse(PULL, argv)
    from sdk._internal.reference import parse_docker_ref, parse_reference
    from sdk.distribution.pull import pull_image

    name = args[0]
    ref = parse_reference(name)
    eng = engine()
    out = _quiet if opts["quiet"] else ProgressPrinter(sys.stdout)
    if ref.is_name_only and not opts["all_tags"] and not opts["quiet"]:
        print("Using default tag: latest")
    pull_image(eng.image_store, name, platform=opts["platform"] or None,
               all_tags=opts["all_tags"], progress=out)
    print(ref.name if opts["all_tags"] else parse_docker_ref(name).string)
    return 0


def cmd_push(argv: list[str]) -> int:
    opts, args = parse(PUSH, argv)
    from sdk.distribution.push import push_image

    eng = engine()
    out = _quiet if opts["quiet"] else ProgressPrinter(sys.stdout)
    results = push_image(eng.image_store, args[0], all_tags=opts["all_tags"], progress=out)
    if opts["quiet"]:
        from sdk._internal.reference import parse_reference

        ref = parse_reference(args[0])
        for r in results:
            print(f"{ref.name}:{r.tag}")
    return 0


def cmd_login(argv: list[str]) -> int:
    opts, args = parse(LOGIN, argv)
    from sdk.distribution.credentials import CredentialStore, normalize_server
    from sdk.distribution.login import login

    server = args[0] if args else "docker.io"
    user, password = opts["username"] or "", opts["password"] or ""
    if opts["password_stdin"]:
        if opts["password"]:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not user:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    if not user:
        if not sys.stdin.isatty():
            raise UsageError("Error: Cannot perform an interactive login from a non TTY "
                             "device")
        user = input(f"Username ({normalize_server(server)}): ").strip()
    if not password:
        if not sys.stdin.isatty():
            raise UsageError("Error: Cannot perform an interactive login from a non TTY "
                             "device")
        import getpass

        password = getpass.getpass("Password: ")
    store = CredentialStore()
    where = login(engine().image_store, server, user, password, store)
    if where == str(store.path):
        print(f"WARNING! Your password will be stored unencrypted in {where}.",
              file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(argv: list[str]) -> int:
    _, args = parse(LOGOUT, argv)
    from sdk.distribution.credentials import CredentialStore, normalize_server

    server = args[0] if args else "docker.io"
    host = normalize_server(server)
    if CredentialStore().erase(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0


def cmd_search(argv: list[str]) -> int:
    opts, args = parse(SEARCH, argv)
    from sdk._internal.filters import parse_filters
    from sdk.cli.common import render_format
    from sdk.distribution.search import FILTERS, search

    filters = parse_filters(opts["filter"], FILTERS)
    results = search(engine().image_store, args[0], limit=opts["limit"], filters=filters)
    trunc = not opts["no_trunc"]
    items = []
    for r in results:
        desc = str(r.get("description") or "").replace("\n", " ")
        if trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        items.append({"Name": r.get("name", ""), "Description": desc,
                      "StarCount": str(r.get("star_count") or 0),
                      "IsOfficial": "[OK]" if r.get("is_official") else "",
                      "IsAutomated": "[OK]" if r.get("is_automated") else ""})
    headers = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
               "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}
    sys.stdout.write(render_format(opts["format"] or "", items, headers,
                                   "{{.Name}}\t{{.Description}}\t{{.StarCount}}\t"
                                   "{{.IsOfficial}}"))
    return 0


def run_pull_hooks(quiet: bool, platform: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``ensure_local`` from run/create: docker's stderr output."""
    def missing(ref: str) -> None:
        print(f"Unable to find image '{ref}' locally", file=sys.stderr)

    return {"on_missing": missing, "platform": platform or None,
            "progress": _quiet if quiet else ProgressPrinter(sys.stderr,
                                                             tty=os.isatty(2))}
