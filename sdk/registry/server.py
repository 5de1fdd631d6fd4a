"""``RegistryServer``: run the registry in the foreground or in a background thread.

Foreground (``serve_forever``) is what ``berth registry serve`` and systemd use:
SIGTERM/SIGINT stop accepting connections and let in-flight requests finish (up to
``shutdown_timeout``).  Background (``start``/``stop``) is for tests and scripts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from typing import Any

from sdk.registry.config import RegistryConfig

log = logging.getLogger("berth.registry")


class RegistryServer:
    def __init__(self, config: RegistryConfig, shutdown_timeout: float = 30.0,
                 access_log: bool = False) -> None:
        self.config = config
        self.shutdown_timeout = shutdown_timeout
        self.access_log = access_log
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self.app: Any = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ---- common -----------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.config.tls_enabled else "http"

    @property
    def host(self) -> str:
        host, _ = self.config.host_port()
        return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)

    @property
    def address(self) -> str:
        """``host:port`` as clients write it (e.g. ``127.0.0.1:5000``)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_enabled:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_certificate, self.config.tls_key)
        return ctx

    async def _start_site(self) -> None:
        from sdk._internal.aiohttp_compat import listening_sockets, make_runner, make_tcp_site
        from sdk.registry.app import RegistryApp

        if self.config.auth_enabled and not self.config.tls_enabled:
            log.warning("authentication is enabled without TLS: passwords and tokens "
                        "travel in clear text (set http.tls.certificate and key)")
        self.app = RegistryApp(self.config)
        app = self.app.build()
        self._runner = make_runner(app, self.shutdown_timeout, handle_signals=False,
                                   access_log=log if self.access_log else None)
        await self._runner.setup()
        host, port = self.config.host_port()
        site = make_tcp_site(self._runner, host, port, self.shutdown_timeout,
                             ssl_context=self._ssl_context(), backlog=1024,
                             reuse_address=True)
        await site.start()
        sockets = listening_sockets(site)
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("berth registry listening on %s (storage %s)", self.url, self.config.root)

    async def _main(self, install_signals: bool) -> None:
        self._stop = asyncio.Event()
        try:
            await self._start_site()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            raise
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        self._started.set()
        await self._stop.wait()
        log.info("shutting down: finishing in-flight requests")
        from sdk._internal.aiohttp_compat import stop_listening

        for site in list(self._runner.sites):
            stop_listening(site)              # stop accepting; in-flight requests go on
        await self.app.drain(self.shutdown_timeout)
        await self._runner.cleanup()

    # ---- foreground -------------------------------------------------------------
    def serve_forever(self) -> None:
        asyncio.run(self._main(install_signals=True))

    # ---- background -------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> RegistryServer:
        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._main(install_signals=False))
            except BaseException:  # noqa: BLE001 - reported through _error
                pass
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="berth-registry", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("registry server did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
