"""``/containers/{id}/exec`` and ``/exec/{id}/...`` (non-interactive streams)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sdk.api.context import ApiContext, ExecRecord
from sdk.api.errors import json_response
from sdk.api.streams import STDERR, STDOUT, RawWriter, hijack
from sdk.engine import Engine
from sdk.errors import InvalidArgument, NotFound


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    def record(request: web.Request) -> ExecRecord:
        rec = ctx.execs.get(request.match_info["id"])
        if rec is None:
            raise NotFound(f"No such exec instance: {request.match_info['id']}")
        return rec

    async def create(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        body = await request.json()
        cmd = body.get("Cmd")
        if not cmd or not isinstance(cmd, list):
            raise InvalidArgument("No exec command specified")
        cid = await ctx.call(lambda e: e.tasks.get(ref)["Id"])
        rec = ctx.new_exec(cid, body)
        return json_response({"Id": rec.id}, 201)

    async def start(request: web.Request) -> web.StreamResponse:
        rec = record(request)
        body = await request.json() if request.can_read_body else {}
        cfg = rec.config
        tty = bool(cfg.get("Tty") or body.get("Tty"))
        kwargs = {"user": cfg.get("User") or None, "env": cfg.get("Env") or (),
                  "workdir": cfg.get("WorkingDir") or None,
                  "privileged": bool(cfg.get("Privileged"))}
        if body.get("Detach"):
            def run_detached(e: Engine) -> None:
                e.tasks.exec(rec.container, cfg["Cmd"], detach=True, **kwargs)
            await ctx.call(run_detached)
            return web.Response(status=200)
        pipes: dict[str, tuple[int, int]] = {}
        if not tty:
            pipes = {"out": os.pipe(), "err": os.pipe()}
            if cfg.get("AttachStdin"):
                pipes["in"] = os.pipe()

        def spawn(e: Engine) -> Any:
            try:
                return e.tasks.exec_spawn(
                    rec.container, cfg["Cmd"], tty=tty,
                    stdin=pipes["in"][0] if "in" in pipes else None,
                    stdout=pipes["out"][1] if pipes else None,
                    stderr=pipes["err"][1] if pipes else None, **kwargs)
            finally:   # the exec holds its own copies now
                for key, (r, w) in pipes.items():
                    os.close(r if key == "in" else w)
        # the 101 goes out before the process exists: a client that reads the headers
        # with a buffered reader (docker-py) would lose output sent in the same read
        resp = await hijack(request, multiplexed=not tty)
        writer = RawWriter(request, resp, multiplexed=not tty)
        await asyncio.sleep(0.005)
        try:
            started = await ctx.call(spawn)
        except Exception as exc:   # noqa: BLE001 - reported on the stream, like dockerd
            for key, (r, w) in pipes.items():
                os.close(w if key == "in" else r)
            from sdk.errors import SdkError

            rec.exit_code = exc.exit_code if isinstance(exc, SdkError) else 126
            try:
                await writer.write(STDERR if not tty else STDOUT, f"{exc}\n".encode())
            except ConnectionResetError:
                pass
            await writer.close()
            return resp
        rec.running, rec.pid = True, started.pid
        protocol = request.transport.get_protocol() if request.transport else None
        incoming = getattr(protocol, "incoming", None)
        if tty:
            master = started.pty_master
            feeder = asyncio.ensure_future(_feed(incoming, master, close=False))
            await _pump(master, STDOUT, writer)
        else:
            feeder = asyncio.ensure_future(_feed(incoming, pipes["in"][1], close=True)
                                           if "in" in pipes else asyncio.sleep(0))
            await asyncio.gather(
                _pump(pipes["out"][0], STDOUT if cfg.get("AttachStdout", True) else None,
                      writer),
                _pump(pipes["err"][0], STDERR if cfg.get("AttachStderr", True) else None,
                      writer))
        feeder.cancel()
        rec.exit_code = await ctx.call(lambda e: _reap(started.pid))
        rec.running = False
        await writer.close()
        return resp

    async def inspect(request: web.Request) -> web.Response:
        rec = record(request)
        return json_response({
            "ID": rec.id, "ContainerID": rec.container, "Running": rec.running,
            "ExitCode": rec.exit_code, "Pid": rec.pid, "OpenStdin": False,
            "OpenStdout": True, "OpenStderr": True,
            "ProcessConfig": {"entrypoint": rec.config["Cmd"][0],
                              "arguments": rec.config["Cmd"][1:], "tty": False,
                              "user": rec.config.get("User", ""),
                              "privileged": bool(rec.config.get("Privileged"))}})

    async def resize(request: web.Request) -> web.Response:
        record(request)
        return web.Response(status=201)

    return [("POST", "/containers/{id}/exec", create), ("POST", "/exec/{id}/start", start),
            ("GET", "/exec/{id}/json", inspect), ("POST", "/exec/{id}/resize", resize)]


def _reap(pid: int) -> int:
    from sdk.tasks.procs import exit_code

    _, status = os.waitpid(pid, 0)
    return int(exit_code(status))


async def _feed(incoming: Any, fd: int, *, close: bool) -> None:
    """Client bytes -> the exec's stdin (a pipe) or its pty master."""
    try:
        while incoming is not None and (data := await incoming.get()) is not None:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.005)
    except OSError:
        pass
    finally:
        if close:
            os.close(fd)


async def _pump(fd: int, stream: int | None, writer: RawWriter) -> None:
    """Copy a pipe to the hijacked connection until EOF (closes ``fd``)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    try:
        while True:
            try:
                data = await reader.read(65536)
            except OSError:    # EIO: the pty's last writer is gone
                data = b""
            if not data:
                break
            if stream is not None:
                try:
                    await writer.write(stream, data)
                except ConnectionResetError:
                    stream = None
    finally:
        transport.close()
