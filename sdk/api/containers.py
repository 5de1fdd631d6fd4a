"""``/containers/...``: the container endpoints of the Engine API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

from sdk.api import params
from sdk.api.context import ApiContext
from sdk.api.errors import error_response, json_response
from sdk.api.params import flag, unix_seconds
from sdk.api.streams import STDERR, STDOUT, RawWriter, frame, hijack
from sdk.engine import Engine
from sdk.errors import InvalidArgument

RUNNING = ("running", "paused", "restarting")


def port_list(ports: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, bindings in (ports or {}).items():
        private, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(private), "Type": proto or "tcp"})
            continue
        for b in bindings:
            out.append({"IP": b.get("HostIp", ""), "PrivatePort": int(private),
                        "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return out


def summary(engine: Engine, doc: dict[str, Any]) -> dict[str, Any]:
    """One row of ``GET /containers/json``."""
    from sdk._internal.timefmt import status_text

    net = doc.get("NetworkSettings") or {}
    return {
        "Id": doc["Id"], "Names": [doc["Name"]], "Image": doc["Config"].get("Image", ""),
        "ImageID": doc["Image"],
        "Command": " ".join([doc["Path"], *doc.get("Args", [])]).strip(),
        "Created": unix_seconds(doc["Created"]), "Ports": port_list(net.get("Ports")),
        "Labels": doc["Config"].get("Labels") or {}, "State": doc["State"]["Status"],
        "Status": status_text(doc["State"], time.time()),
        "HostConfig": {"NetworkMode": doc["HostConfig"].get("NetworkMode", "")},
        "NetworkSettings": {"Networks": net.get("Networks") or {}},
        "Mounts": doc.get("Mounts") or [],
    }


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def list_(request: web.Request) -> web.Response:
        all_ = flag(request, "all")
        limit = int(request.query.get("limit") or -1)
        filters = params.filters(request)

        def run(e: Engine) -> list[dict[str, Any]]:
            models = e.containers.list(all=all_, limit=limit, filters=filters or None)
            return [summary(e, m.attrs) for m in models]
        return json_response(await ctx.call(run))

    async def create(request: web.Request) -> web.Response:
        from sdk.api.translate import create_kwargs

        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"invalid JSON body: {exc}") from None
        image, kwargs = create_kwargs(body, request.query.get("name"))

        def run(e: Engine) -> dict[str, Any]:
            doc = e.container_store.create(image, kwargs.pop("command", None), **kwargs)
            return {"Id": doc["Id"], "Warnings": []}
        return json_response(await ctx.call(run), 201)

    async def inspect(request: web.Request) -> web.Response:
        from sdk.containers.service import public

        ref = request.match_info["id"]
        return json_response(await ctx.call(lambda e: public(e.tasks.get(ref))))

    def _state(e: Engine, ref: str) -> str:
        return str(e.tasks.get(ref)["State"]["Status"])

    async def start(request: web.Request) -> web.Response:
        ref = request.match_info["id"]

        def run(e: Engine) -> int:
            if _state(e, ref) in ("running", "restarting"):
                return 304
            ctx.start(e, ref)
            return 204
        return web.Response(status=await ctx.call(run))

    async def stop(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        t = request.query.get("t")
        sig = request.query.get("signal")

        def run(e: Engine) -> int:
            if _state(e, ref) not in RUNNING:
                return 304
            e.tasks.stop(ref, int(t) if t else None, sig)
            return 204
        return web.Response(status=await ctx.call(run))

    async def restart(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        t = request.query.get("t")

        def run(e: Engine) -> None:
            if _state(e, ref) in RUNNING:
                e.tasks.stop(ref, int(t) if t else None)
            ctx.start(e, ref)
        await ctx.call(run)
        return web.Response(status=204)

    async def kill(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        sig = request.query.get("signal") or "KILL"
        await ctx.call(lambda e: e.tasks.kill(ref, sig))
        return web.Response(status=204)

    async def simple(request: web.Request) -> web.Response:
        ref, action = request.match_info["id"], request.match_info["action"]
        if action == "rename":
            name = request.query.get("name", "")
            await ctx.call(lambda e: e.container_store.rename(ref, name))
        else:
            await ctx.call(lambda e: getattr(e.tasks, action)(ref))
        return web.Response(status=204)

    async def wait(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        condition = request.query.get("condition") or "not-running"
        cid = await ctx.call(lambda e: e.tasks.get(ref)["Id"])
        # answer the headers at once, as dockerd does: `docker run` waits for them
        # before it starts the container
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        result = await ctx.call(lambda e: e.tasks.wait(cid, condition))
        try:
            await resp.write(json.dumps(result).encode() + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass    # the client stopped waiting
        return resp

    async def remove(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        force, volumes = flag(request, "force"), flag(request, "v")
        await ctx.call(lambda e: e.tasks.remove(ref, force=force, volumes=volumes))
        return web.Response(status=204)

    async def logs(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        doc = await ctx.call(lambda e: e.tasks.get(ref))
        tty = bool(doc["Config"].get("Tty"))
        kwargs = {"stdout": flag(request, "stdout"), "stderr": flag(request, "stderr"),
                  "timestamps": flag(request, "timestamps"),
                  "tail": request.query.get("tail") or "all",
                  "since": request.query.get("since") or None,
                  "until": request.query.get("until") or None,
                  "follow": flag(request, "follow")}
        if kwargs["since"] == "0":
            kwargs["since"] = None
        if kwargs["until"] == "0":
            kwargs["until"] = None
        ctype = "application/vnd.docker.raw-stream" if tty else \
            "application/vnd.docker.multiplexed-stream"
        resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
        await resp.prepare(request)
        await _pump_logs(ctx, doc["Id"], kwargs,
                         lambda sid, data: resp.write(data if tty else frame(sid, data)))
        await resp.write_eof()
        return resp

    async def attach(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        doc = await ctx.call(lambda e: e.tasks.get(ref))
        tty = bool(doc["Config"].get("Tty"))
        if flag(request, "stdin"):
            return await _attach_interactive(ctx, request, doc)
        resp = await hijack(request, multiplexed=not tty)
        writer = RawWriter(request, resp, multiplexed=not tty)
        kwargs = {"stdout": flag(request, "stdout"), "stderr": flag(request, "stderr"),
                  "timestamps": False, "tail": "all" if flag(request, "logs") else "0",
                  "since": None, "until": None, "follow": flag(request, "stream", True)}
        if not flag(request, "logs"):
            kwargs["since"] = time.time() - 0.05 if doc["State"]["Status"] in RUNNING \
                else None
            kwargs["tail"] = "all"
        cid = doc["Id"]
        waiting = doc["State"]["Status"] == "created"
        if waiting:
            ctx.attaching[cid] = ctx.attaching.get(cid, 0) + 1
        try:
            await _pump_logs(ctx, cid, kwargs, writer.write, wait_start=waiting)
        except ConnectionResetError:
            pass
        finally:
            if waiting:
                ctx.attaching[cid] -= 1
                if not ctx.attaching[cid]:
                    del ctx.attaching[cid]
                await ctx.call(lambda e: _remove_if_deferred(e, cid))
        await writer.close()
        return resp

    async def top(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        ps_args = request.query.get("ps_args") or "-ef"
        return json_response(await ctx.call(lambda e: e.tasks.top(ref, ps_args)))

    async def changes(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        return json_response(await ctx.call(lambda e: e.containers.get(ref).diff()))

    async def stats(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        if flag(request, "stream", True):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            while True:
                data = await ctx.call(lambda e: e.tasks.stats(ref))
                try:
                    await resp.write(json.dumps(data).encode() + b"\n")
                except ConnectionResetError:
                    break
                await asyncio.sleep(1)
            return resp
        return json_response(await ctx.call(lambda e: e.tasks.stats(ref)))

    async def export(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        chunks = await ctx.call(lambda e: list(e.containers.get(ref).export()))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def update(request: web.Request) -> web.Response:
        """docker's UpdateConfig: zero means "leave as is" (the docker CLI sends every
        field), PidsLimit only when present, RestartPolicy when it names a policy."""
        from sdk.tasks.update import RESOURCE_KEYS, UNSUPPORTED

        ref = request.match_info["id"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return error_response("update: the request body must be a JSON object", 400)
        changes = {k: v for k, v in body.items()
                   if (k in RESOURCE_KEYS or k in UNSUPPORTED) and v and k != "PidsLimit"}
        if body.get("PidsLimit") is not None:
            changes["PidsLimit"] = body["PidsLimit"]
        policy = body.get("RestartPolicy") or {}
        if isinstance(policy, dict) and policy.get("Name"):
            changes["RestartPolicy"] = {"Name": policy["Name"],
                                        "MaximumRetryCount":
                                            int(policy.get("MaximumRetryCount") or 0)}
        warnings = await ctx.call(lambda e: e.tasks.update(ref, changes))
        return json_response({"Warnings": warnings})

    async def prune(request: web.Request) -> web.Response:
        filters = params.filters(request)
        return json_response(await ctx.call(lambda e: e.containers.prune(filters or None)))

    p = "/containers/{id}"
    return [("GET", "/containers/json", list_), ("POST", "/containers/create", create),
            ("POST", "/containers/prune", prune),
            ("GET", p + "/json", inspect), ("POST", p + "/start", start),
            ("POST", p + "/stop", stop), ("POST", p + "/restart", restart),
            ("POST", p + "/kill", kill), ("POST", p + "/wait", wait),
            ("POST", p + "/update", update),
            ("DELETE", p, remove), ("GET", p + "/logs", logs), ("POST", p + "/attach", attach),
            ("POST", p + "/{action:pause|unpause|rename}", simple),
            ("GET", p + "/top", top), ("GET", p + "/changes", changes),
            ("GET", p + "/stats", stats), ("GET", p + "/export", export)]


async def _attach_interactive(ctx: ApiContext, request: Any,
                              doc: dict[str, Any]) -> Any:
    """``attach`` with stdin: relay the supervisor's attach socket, which already speaks
    docker's framing (multiplexed without a tty, raw with one)."""
    import os

    cid = doc["Id"]
    tty = bool(doc["Config"].get("Tty"))

    def connect(e: Engine) -> Any:
        import socket

        if doc["State"]["Status"] == "created":
            _wait_until_started(e, cid, lambda: False)
        dfd = os.open(e.container_store.dir(cid), os.O_PATH | os.O_DIRECTORY)
        deadline = time.monotonic() + 5
        try:
            while True:   # the supervisor opens its socket just after the start
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(f"/proc/self/fd/{dfd}/attach.sock")
                    break
                except OSError:
                    sock.close()
                    cur = e.container_store.load(cid)
                    if cur is None or cur["State"]["Status"] not in RUNNING or \
                            time.monotonic() > deadline:
                        from sdk.errors import Conflict

                        raise Conflict(f"cannot attach to container {cid[:12]}: it is not "
                                       "running") from None
                    time.sleep(0.005)
        finally:
            os.close(dfd)
        sock.setblocking(False)
        return sock

    resp = await hijack(request, multiplexed=not tty)
    writer = RawWriter(request, resp, multiplexed=False)   # frames pass through as-is
    try:
        sock = await ctx.call(connect)
    except Exception as exc:   # noqa: BLE001 - the stream is already upgraded
        await writer.write(STDERR, f"Error: {exc}\n".encode())
        await writer.close()
        return resp
    reader, sock_writer = await asyncio.open_unix_connection(sock=sock)
    protocol = request.transport.get_protocol() if request.transport else None
    incoming = getattr(protocol, "incoming", None)

    async def to_container() -> None:
        while incoming is not None and (data := await incoming.get()) is not None:
            sock_writer.write(data)
            await sock_writer.drain()
        if sock_writer.can_write_eof():
            sock_writer.write_eof()

    feeder = asyncio.ensure_future(to_container())
    try:
        while data := await reader.read(65536):
            await writer.write(STDOUT, data)
    except ConnectionResetError:
        pass
    finally:
        feeder.cancel()
        sock_writer.close()
        await writer.close()
    return resp


def _remove_if_deferred(engine: Engine, cid: str) -> None:
    """Finish an AutoRemove the supervisor left to the attach stream."""
    doc = engine.container_store.load(cid)
    if doc is None or not doc["_berth"].get("remove_by_attach"):
        return
    if doc["State"]["Status"] not in RUNNING:
        engine.tasks.remove(cid, force=True, volumes=True)
        return

    def hand_back(d: dict[str, Any]) -> None:   # the client left early: the supervisor
        d["_berth"]["remove_by_attach"] = False  # removes it when it exits
    engine.container_store.modify(cid, hand_back)


def _wait_until_started(engine: Engine, cid: str, cancelled: Any) -> None:
    """Block while ``cid`` is still "created" (``docker run`` attaches before start)."""
    delay = 0.002
    while not cancelled():
        doc = engine.container_store.load(cid)
        if doc is None or doc["State"]["Status"] != "created":
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


async def _pump_logs(ctx: ApiContext, cid: str, kwargs: dict[str, Any], write: Any,
                     *, wait_start: bool = False) -> None:
    """``write(stream, data)`` for each log record as it arrives."""
    from contextlib import aclosing

    from sdk.tasks.logview import log_lines

    def records(e: Engine, stopped: Any) -> Iterator[tuple[int, bytes]]:
        if wait_start:
            _wait_until_started(e, cid, stopped)
        for stream, data in log_lines(e, cid, **kwargs):
            yield (STDOUT if stream == "stdout" else STDERR), data

    async with aclosing(ctx.iterate(records)) as items:
        async for sid, data in items:
            await write(sid, data)
