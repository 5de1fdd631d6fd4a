"""The SDK entry points: engine.registry, RegistryServer, the CLI's argument handling."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests

pytest.importorskip("aiohttp")


def test_engine_registry_serve_defaults_under_engine_root(tmp_path: Path) -> None:
    from sdk import Engine

    eng = Engine(root=tmp_path / "berth", config=tmp_path / "daemon.json")
    server = eng.registry.serve(addr="127.0.0.1:0")
    try:
        assert server.url.startswith("http://127.0.0.1:")
        r = requests.post(f"{server.url}/v2/sdk/x/blobs/uploads/?digest=sha256:"
                          "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                          data=b"hello", timeout=10)
        assert r.status_code == 201
    finally:
        server.stop()
    assert (tmp_path / "berth" / "registry" / "repositories" / "sdk" / "x").is_dir()
    assert eng.registry.scrub().checked == 1
    assert eng.registry.garbage_collect(dry_run=True, grace=0).deleted_blobs


def test_server_context_manager_and_port_in_use(tmp_path: Path) -> None:
    from sdk.registry import RegistryServer, load_config

    cfg = load_config(overrides={"root": str(tmp_path), "addr": "127.0.0.1:0"})
    with RegistryServer(cfg) as s:
        assert requests.get(s.url + "/v2/", timeout=5).status_code == 200
        taken = load_config(overrides={"root": str(tmp_path), "addr": s.address})
        with pytest.raises(OSError):
            RegistryServer(taken).start()


def test_warns_when_auth_without_tls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import bcrypt

    from tests.unit.registry_helpers import running

    ht = tmp_path / "h"
    ht.write_text("a:" + bcrypt.hashpw(b"p", bcrypt.gensalt(4)).decode() + "\n")
    with caplog.at_level(logging.WARNING, logger="berth.registry"), \
            running(tmp_path / "r", htpasswd_path=str(ht)):
        pass
    assert any("without TLS" in rec.message for rec in caplog.records)


def test_cli_usage_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sdk.cli.main import main

    assert main(["registry", "--help"]) == 0
    assert "garbage-collect" in capsys.readouterr().out
    assert main(["registry", "nope"]) == 125
    assert main(["registry", "serve", "--addr", "bogus", "--root", str(tmp_path)]) == 125
    assert "http.addr" in capsys.readouterr().err
    assert main(["registry", "scrub", "--root", str(tmp_path)]) == 0
    assert "0 blobs checked" in capsys.readouterr().out


def test_aiohttp_compat_puts_shutdown_timeout_where_this_aiohttp_takes_it() -> None:
    """3.8 takes it on the site (on the runner it broke every connection), >= 3.9 on the
    runner (on the site it is deprecated): either way no warning and no stray kwarg."""
    import asyncio
    import warnings

    import aiohttp
    from aiohttp import web

    from sdk._internal.aiohttp_compat import (
        listening_sockets,
        make_runner,
        make_tcp_site,
        runner_takes_shutdown_timeout,
        stop_listening,
    )

    major_minor = tuple(int(x) for x in aiohttp.__version__.split(".")[:2])
    assert runner_takes_shutdown_timeout() == (major_minor >= (3, 9))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return await reader.readexactly(2)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = make_runner(app, 3.0, handle_signals=False, access_log=None)
        await runner.setup()
        site = make_tcp_site(runner, "127.0.0.1", 0, 3.0)
        await site.start()
        port = listening_sockets(site)[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await get(reader, writer) == b"ok"
        stop_listening(site)
        try:
            await asyncio.open_connection("127.0.0.1", port)
            raise AssertionError("still accepting after stop_listening")
        except ConnectionRefusedError:
            pass
        assert await get(reader, writer) == b"ok"        # the open connection still works
        writer.close()
        await runner.cleanup()

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        asyncio.run(main())
