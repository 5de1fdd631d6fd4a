"""``berth daemon``: serve the Engine API on a unix socket until SIGTERM."""

from __future__ import annotations

import asyncio
import grp
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.errors import InvalidArgument

DEFAULT_SOCKET = "/run/berth.sock"


@dataclass(frozen=True)
class Listen:
    path: str
    group: str | None = "berth"
    mode: int = 0o660


def parse_host(host: str) -> str:
    """``unix:///run/berth.sock`` -> ``/run/berth.sock``; TCP is refused without TLS."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {host!r}: the socket path must be absolute")
        return path
    if host.startswith(("tcp://", "http://")):
        raise InvalidArgument(f"refusing to listen on {host}: TCP needs TLS, which berth "
                              "daemon does not offer yet; use a unix socket")
    raise InvalidArgument(f"invalid host {host!r}: expected unix:///path/to.sock")


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


def serve(listen: Listen, root: str | None = None, config: str | None = None,
          ready: object = None) -> None:
    """Run until SIGTERM/SIGINT.  Containers keep running (they have supervisors)."""
    from sdk._internal.aiohttp_compat import make_runner, make_sock_site, stop_listening
    from sdk.api.app import build_app
    from sdk.api.context import ApiContext
    from sdk.api.forward import cli_socket_for
    from sdk.api.starter import Starter

    # a SIGTERM that arrives once a socket is visible must still shut down cleanly:
    # hold it until the event loop's handler is in place
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    cli_listen = Listen(cli_socket_for(listen.path), listen.group, listen.mode)
    cli_sock = bind_socket(cli_listen)
    cli_inode = os.stat(cli_listen.path).st_ino
    # before any thread exists; the helper repairs what a crash left behind, then
    # answers (queued CLI clients wait for that) and the API socket appears
    starter = Starter.spawn(root, config, cli_sock)
    ctx = ApiContext(root, config, starter)
    # one idle connection for the daemon's lifetime (opened after the helper's fork, in
    # a process that never forks again): SQLite's WAL index then stays valid, so each
    # forwarded command opens the database without a WAL recovery (~5-10 ms) and
    # leaves the checkpoint to the automatic one instead of paying for it at exit
    keep_open = ctx.engine().db
    keep_open.conn   # noqa: B018 - open it now
    sock = bind_socket(listen)
    inode = os.stat(listen.path).st_ino

    async def main() -> None:
        # aiohttp 3.8 (Debian 12's) and >= 3.9 differ in where shutdown_timeout goes
        runner = make_runner(build_app(ctx), 10, handle_signals=False, access_log=None)
        await runner.setup()
        site = make_sock_site(runner, sock, 10)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        if callable(ready):
            ready()
        await stop.wait()
        stop_listening(site)     # stop accepting; requests in flight finish below
        if not ctx.engine().config.live_restore:
            # dockerd stops its containers unless live-restore keeps them running
            await ctx.call(stop_all)
        await runner.shutdown()
        await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        for path, ino in ((listen.path, inode), (cli_listen.path, cli_inode)):
            try:   # only our own sockets: a successor may already listen on that path
                if os.stat(path).st_ino == ino:
                    os.unlink(path)
            except OSError:
                pass
        ctx.pool.shutdown(wait=False, cancel_futures=True)
        starter.close()
