"""``berth daemon``: serve the Engine API on unix sockets (and TCP with TLS) until SIGTERM."""

from __future__ import annotations

import asyncio
import grp
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.errors import InvalidArgument

DEFAULT_SOCKET = "/run/berth.sock"


@dataclass(frozen=True)
class Listen:
    """A unix socket to serve the API on."""

    path: str
    group: str | None = "berth"
    mode: int = 0o660


@dataclass(frozen=True)
class TcpListen:
    """A TCP address to serve the API on, always with TLS (see :mod:`sdk.api.tls`)."""

    host: str
    port: int
    ssl: Any = None           # ssl.SSLContext; set by the caller before serving

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{shown}:{self.port}"


def parse_host(host: str) -> Listen | TcpListen:
    """``unix:///run/berth.sock`` -> Listen; ``tcp://HOST[:PORT]`` -> TcpListen (the
    caller adds its TLS context: plain TCP is never served)."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {host!r}: the socket path must be absolute")
        return Listen(path)
    if host.startswith("tcp://"):
        from sdk.api.tls import parse_tcp_host

        return TcpListen(*parse_tcp_host(host))
    if host.startswith("http://"):
        raise InvalidArgument(f"refusing to listen on {host}: plain HTTP is never served; "
                              "use tcp://HOST:PORT with --tlscert and --tlskey")
    raise InvalidArgument(f"invalid host {host!r}: expected unix:///path/to.sock or "
                          "tcp://HOST:PORT")


def bind_tcp(listen: TcpListen) -> socket.socket:
    """A listening TCP socket; InvalidArgument names the address when it cannot bind."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidArgument(f"cannot listen on {listen.url}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot listen on {listen.url}: "
                              f"{exc.strerror or exc}") from None
    return sock


def bind_socket(listen: Listen) -> socket.socket:
    """A listening unix socket owned by root:GROUP with ``mode``; refuses a live one."""
    path = Path(listen.path)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()   # stale: left by a crash
        else:
            raise InvalidArgument(f"{path} is in use by another daemon")
        finally:
            probe.close()
    gid = -1
    if listen.group:
        try:
            gid = grp.getgrnam(listen.group).gr_gid
        except KeyError:
            print(f"berth daemon: group {listen.group!r} does not exist; the socket is "
                  "root-only (create the group to give its members access)", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
    os.chmod(path, listen.mode if gid != -1 else 0o600)
    sock.listen(256)
    return sock


def stop_all(engine: object) -> None:
    """Stop every running container in parallel, each with its own stop timeout."""
    from concurrent.futures import ThreadPoolExecutor

    from sdk.engine import Engine

    assert isinstance(engine, Engine)
    running = [d["Id"] for d in engine.tasks.all()
               if d["State"]["Status"] in ("running", "paused", "restarting")]
    root, config = str(engine.root), str(engine.config_path)

    def stop_one(cid: str) -> None:
        eng = Engine(root=root, config=config)
        try:
            eng.tasks.stop(cid)

            def not_by_user(d: dict[str, Any]) -> None:   # unless-stopped comes back on
                d["_berth"]["stopped_by_user"] = False    # the next daemon start
            if eng.container_store.load(cid) is not None:
                eng.container_store.modify(cid, not_by_user)
        except Exception as exc:   # noqa: BLE001 - report and go on with the others
            print(f"berth daemon: stopping {cid[:12]}: {exc}", file=sys.stderr)
        finally:
            eng.close()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stop_one, running))


def serve(listens: Listen | TcpListen | Sequence[Listen | TcpListen],
          root: str | None = None, config: str | None = None,
          ready: object = None) -> None:
    """Run until SIGTERM/SIGINT.  Containers keep running (they have supervisors)."""
    from sdk._internal.aiohttp_compat import make_runner, make_sock_site, stop_listening
    from sdk.api.app import build_app
    from sdk.api.cli_relay import add_route as add_cli_relay
    from sdk.api.context import ApiContext
    from sdk.api.forward import cli_socket_for
    from sdk.api.starter import Starter
    from sdk.api.tls_proxy import TlsTerminator

    if isinstance(listens, Listen | TcpListen):
        listens = [listens]
    unix = [x for x in listens if isinstance(x, Listen)]
    tcp = [x for x in listens if isinstance(x, TcpListen)]
    if any(x.ssl is None for x in tcp):
        raise InvalidArgument("TCP hosts are served with TLS only (no TLS context given)")
    # a SIGTERM that arrives once a socket is visible must still shut down cleanly:
    # hold it until the event loop's handler is in place
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    # TCP first: a port in use is the likeliest failure, and nothing exists yet
    tcp_socks: list[socket.socket] = []
    private_dir = ""
    try:
        for t in tcp:
            tcp_socks.append(bind_tcp(t))
        if tcp:
            # root-only sockets nobody else sees: the API behind the TLS terminators
            # and, without a unix host, the warm helper's CLI socket (cli_relay runs
            # berth's CLI for TCP clients through it; /run/berth-cli.sock would hand
            # local `berth` commands to this daemon's data root)
            import tempfile

            private_dir = tempfile.mkdtemp(prefix="berth-daemon-")
        if unix:
            cli_listen = Listen(cli_socket_for(unix[0].path), unix[0].group, unix[0].mode)
        else:
            cli_listen = Listen(f"{private_dir}/cli.sock", None, 0o600)
        cli_sock = bind_socket(cli_listen)
    except BaseException:
        for s in tcp_socks:
            s.close()
        if private_dir:
            os.rmdir(private_dir)
        raise
    cli_inode = os.stat(cli_listen.path).st_ino
    # before any thread exists; the helper repairs what a crash left behind, then
    # answers (queued CLI clients wait for that) and the API socket appears
    starter = Starter.spawn(root, config, cli_sock)
    ours: list[tuple[str, int]] = [(cli_listen.path, cli_inode)]
    ctx: ApiContext | None = None
    try:
        ctx = ApiContext(root, config, starter)
        # one idle connection for the daemon's lifetime (opened after the helper's
        # fork, in a process that never forks again): SQLite's WAL index then stays
        # valid, so each forwarded command opens the database without a WAL recovery
        # (~5-10 ms) and leaves the checkpoint to the automatic one instead of paying
        # for it at exit
        keep_open = ctx.engine().db
        keep_open.conn   # noqa: B018 - open it now
        unix_socks = []
        backend = Listen(f"{private_dir}/api.sock", None, 0o600) if tcp else None
        for u in unix + ([backend] if backend else []):
            unix_socks.append(bind_socket(u))
            ours.append((u.path, os.stat(u.path).st_ino))
        api_ctx = ctx

        async def main() -> None:
            app = build_app(api_ctx)
            add_cli_relay(app, cli_listen.path)
            # aiohttp 3.8 (Debian 12's) and >= 3.9 differ in where shutdown_timeout goes
            runner = make_runner(app, 10, handle_signals=False, access_log=None)
            await runner.setup()
            sites = [make_sock_site(runner, s, 10) for s in unix_socks]
            for site in sites:
                await site.start()
            assert backend is not None or not tcp
            terminators = [TlsTerminator(s, t.ssl, backend.path, t.url)
                           for s, t in zip(tcp_socks, tcp, strict=True) if backend]
            for term in terminators:
                term.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
            if callable(ready):
                ready()
            await stop.wait()
            for term in terminators:
                term.stop()
            for site in sites:
                stop_listening(site)  # stop accepting; requests in flight finish below
            if not api_ctx.engine().config.live_restore:
                # dockerd stops its containers unless live-restore keeps them running
                await api_ctx.call(stop_all)
            await runner.shutdown()
            await runner.cleanup()

        asyncio.run(main())
    finally:
        for s in tcp_socks:
            s.close()
        for path, ino in ours:
            try:   # only our own sockets: a successor may already listen on that path
                if os.stat(path).st_ino == ino:
                    os.unlink(path)
            except OSError:
                pass
        if private_dir:
            try:
                os.rmdir(private_dir)
            except OSError:
                pass
        if ctx is not None:
            ctx.pool.shutdown(wait=False, cancel_futures=True)
        starter.close()
