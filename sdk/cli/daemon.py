"""``berth daemon``: the Engine API on a unix socket (see sdk/api)."""

from __future__ import annotations

import os
import sys

from sdk.cli.flags import Flag, Spec, parse

DAEMON = Spec("daemon", "daemon [OPTIONS]",
              [Flag("host", "H", "str", default="",
                    help="Socket to listen on (default unix:///run/berth.sock, or "
                         "\"hosts\" in daemon.json)"),
               Flag("group", "G", "str", default="berth",
                    help="Group that may use the socket"),
               Flag("data-root", kind="str", default="", help="Data root"),
               Flag("config-file", kind="str", default="", help="daemon.json")],
              max_args=0, summary="Serve the Docker Engine API on a unix socket")


def cmd_daemon(argv: list[str]) -> int:
    opts, _ = parse(DAEMON, argv)
    from sdk.api.server import DEFAULT_SOCKET, Listen, parse_host, serve
    from sdk.engine import Engine

    root = opts["data_root"] or os.environ.get("BERTH_ROOT") or None
    config = opts["config_file"] or os.environ.get("BERTH_CONFIG") or None
    host = opts["host"]
    if not host:
        hosts = getattr(Engine(root=root, config=config).config, "hosts", None) or []
        host = hosts[0] if hosts else f"unix://{DEFAULT_SOCKET}"
    listen = Listen(parse_host(host), opts["group"] or None)
    print(f"berth daemon: API listening on unix://{listen.path}", file=sys.stderr)
    serve(listen, root, config)
    # worker threads may still block in long waits (`wait`, `logs -f`) whose clients
    # are gone; the socket is closed and the containers live on under their supervisors
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
