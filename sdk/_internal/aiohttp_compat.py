"""Run an aiohttp app the same way on aiohttp 3.8 (Debian 12's python3-aiohttp) and >= 3.9.

Two things changed between 3.8 and 3.9 that matter for a server with a graceful stop:

* ``shutdown_timeout`` moved from the *site* (``TCPSite(..., shutdown_timeout=)``) to the
  *runner* (``AppRunner(..., shutdown_timeout=)``).  3.8's ``AppRunner`` forwards unknown
  keyword arguments to every connection's ``RequestHandler``, so passing it there does not
  fail at start-up: each accepted connection raises ``TypeError`` in ``connection_made``
  and is closed without an answer (curl: "connection reset by peer").
* 3.8's ``site.stop()`` shuts the connections down (cancelling requests in flight);
  3.9's only stops listening.  ``stop_listening`` closes the listening sockets alone on both.
"""

from __future__ import annotations

import inspect
import ssl
from functools import cache
from typing import Any


@cache
def runner_takes_shutdown_timeout() -> bool:
    """True on aiohttp >= 3.9 (``BaseRunner.__init__`` names ``shutdown_timeout``)."""
    from aiohttp import web

    return "shutdown_timeout" in inspect.signature(web.BaseRunner.__init__).parameters


def make_runner(app: Any, shutdown_timeout: float, **kwargs: Any) -> Any:
    """``web.AppRunner`` with ``shutdown_timeout`` only where this aiohttp accepts it."""
    from aiohttp import web

    if runner_takes_shutdown_timeout():
        kwargs["shutdown_timeout"] = shutdown_timeout
    return web.AppRunner(app, **kwargs)


def make_tcp_site(runner: Any, host: str | None, port: int, shutdown_timeout: float,
                  ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> Any:
    """``web.TCPSite``; on 3.8 the site carries ``shutdown_timeout`` (deprecated on 3.9+)."""
    from aiohttp import web

    if not runner_takes_shutdown_timeout():
        kwargs["shutdown_timeout"] = shutdown_timeout
    return web.TCPSite(runner, host, port, ssl_context=ssl_context, **kwargs)


def make_sock_site(runner: Any, sock: Any, shutdown_timeout: float, **kwargs: Any) -> Any:
    """``web.SockSite`` (the engine service's unix socket), as ``make_tcp_site``."""
    from aiohttp import web

    if not runner_takes_shutdown_timeout():
        kwargs["shutdown_timeout"] = shutdown_timeout
    return web.SockSite(runner, sock, **kwargs)


def listening_sockets(site: Any) -> list[Any]:
    server = getattr(site, "_server", None)
    return list(server.sockets or []) if server is not None else []


def stop_listening(site: Any) -> None:
    """Stop accepting new connections, leave open ones (and requests in flight) alone."""
    server = getattr(site, "_server", None)
    if server is not None:
        server.close()
