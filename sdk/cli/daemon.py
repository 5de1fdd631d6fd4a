"""``berth daemon``: the Engine API on unix sockets and TLS-only TCP (see sdk/api)."""

from __future__ import annotations

import os
import sys

from sdk.cli.flags import Flag, Spec, parse

DAEMON = Spec("daemon", "daemon [OPTIONS]",
              [Flag("host", "H", "list",
                    help="Daemon socket(s) to listen on: unix:///path or tcp://HOST[:PORT] "
                         "(TLS only; default unix:///run/berth.sock, or \"hosts\" in "
                         "daemon.json)"),
               Flag("group", "G", "str", default="berth",
                    help="Group that may use the unix socket"),
               Flag("tls", default=None,
                    help="Use TLS on TCP hosts (always: implied by a tcp host)"),
               Flag("tlsverify", default=None,
                    help="Require client certificates signed by --tlscacert"),
               Flag("tlscacert", kind="str", default="",
                    help="Trust client certificates signed by this CA only"),
               Flag("tlscert", kind="str", default="", help="Path to the TLS certificate"),
               Flag("tlskey", kind="str", default="", help="Path to the TLS key"),
               Flag("data-root", kind="str", default="", help="Data root"),
               Flag("config-file", kind="str", default="", help="daemon.json")],
              max_args=0, summary="Serve the Docker Engine API on a unix socket (and TCP "
                                  "with TLS)")


def cmd_daemon(argv: list[str]) -> int:
    opts, _ = parse(DAEMON, argv)
    from sdk.api.server import DEFAULT_SOCKET, Listen, TcpListen, parse_host, serve
    from sdk.engine import Engine

    root = opts["data_root"] or os.environ.get("BERTH_ROOT") or None
    config = opts["config_file"] or os.environ.get("BERTH_CONFIG") or None
    cfg = Engine(root=root, config=config).config
    hosts = list(opts["host"]) or list(getattr(cfg, "hosts", None) or []) or \
        [f"unix://{DEFAULT_SOCKET}"]
    group = opts["group"] or None
    listens: list[Listen | TcpListen] = []
    for host in dict.fromkeys(hosts):
        listen = parse_host(host)
        if isinstance(listen, Listen):
            listen = Listen(listen.path, group)
        else:
            from sdk.api.tls import TlsOptions, server_context

            tls = TlsOptions.merge(opts, cfg)
            listen = TcpListen(listen.host, listen.port, server_context(host, tls))
            if not tls.verify:
                print(f"berth daemon: {listen.url} does not check client certificates "
                      "(no --tlsverify): anyone who reaches it has root on this host",
                      file=sys.stderr)
        listens.append(listen)

    def ready() -> None:
        for x in listens:
            shown = f"unix://{x.path}" if isinstance(x, Listen) else x.url + " (TLS)"
            print(f"berth daemon: API listening on {shown}", file=sys.stderr, flush=True)

    serve(listens, root, config, ready)
    # worker threads may still block in long waits (`wait`, `logs -f`) whose clients
    # are gone; the socket is closed and the containers live on under their supervisors
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
