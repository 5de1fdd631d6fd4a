"""``/_ping``, ``/version``, ``/info``, ``/system/df``."""

from __future__ import annotations

from typing import Any

from sdk.api import params
from sdk.api.context import ApiContext
from sdk.api.errors import json_response
from sdk.engine import API_VERSION, MIN_API_VERSION


def ping_headers() -> dict[str, str]:
    return {"Api-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false",
            "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def ping(request: web.Request) -> web.StreamResponse:
        body = b"" if request.method == "HEAD" else b"OK"
        return web.Response(body=body, content_type="text/plain", headers=ping_headers())

    async def version(request: web.Request) -> web.Response:
        data = await ctx.call(lambda e: e.version())
        data = dict(data, ApiVersion=API_VERSION, MinAPIVersion=MIN_API_VERSION)
        details = {k: str(data.get(k, "")) for k in ("GitCommit", "GoVersion",
                                                       "KernelVersion", "Os", "Arch")}
        details.update(ApiVersion=API_VERSION, MinAPIVersion=MIN_API_VERSION,
                       Experimental="false", BuildTime="")
        for component in data.get("Components") or []:
            if component.get("Name") == "Engine":
                component["Details"] = dict(component.get("Details") or {}, **details)
        return json_response(data)

    async def info(request: web.Request) -> web.Response:
        return json_response(await ctx.call(lambda e: e.info()))

    async def system_df(request: web.Request) -> web.Response:
        def df(e: Any) -> dict[str, Any]:
            from sdk.api.containers import summary
            from sdk.api.images import image_summary

            layers = sum(r["Size"] for r in e.image_store.summaries())
            return {"LayersSize": layers,
                    "Images": [image_summary(e, r) for r in e.image_store.summaries()],
                    "Containers": [summary(e, d) for d in e.tasks.all()],
                    "Volumes": [dict(v, UsageData={"Size": e.volume_store.size(v["Name"]),
                                                   "RefCount": len(e.volume_store.users(
                                                       v["Name"]))})
                                for v in e.volume_store.list()],
                    "BuildCache": []}
        return json_response(await ctx.call(df))

    async def auth(request: web.Request) -> web.Response:
        """``docker login``: verify only; the client keeps the credentials (as dockerd)."""
        from sdk.errors import PermissionDenied

        body = await request.json()
        server = body.get("serveraddress") or "docker.io"

        def verify(e: Any) -> None:
            from sdk.distribution.login import verify_login

            verify_login(e.image_store, server, body.get("username") or "",
                         body.get("password") or "")
        try:
            await ctx.call(verify)
        except PermissionDenied as exc:
            return json_response({"message": str(exc)}, 401)
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

    async def events_(request: web.Request) -> web.StreamResponse:
        """``docker events``: past events from ``since``, then live ones."""
        import json
        from contextlib import aclosing

        from sdk import events
        from sdk.tasks.logview import _when

        since = _when(request.query.get("since") or None)
        until = _when(request.query.get("until") or None)
        filters = params.filters(request)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)

        def messages(e: Any, stopped: Any) -> Any:
            return events.stream(e.db, since=since, until=until, filters=filters,
                                 follow=True, stopped=stopped)
        try:
            async with aclosing(ctx.iterate(messages, depth=1024)) as stream:
                async for msg in stream:
                    await resp.write(json.dumps(msg).encode() + b"\n")
        except ConnectionResetError:
            pass
        return resp

    return [("GET", "/events", events_), ("POST", "/auth", auth), ("GET", "/_ping", ping),
            ("HEAD", "/_ping", ping), ("GET", "/version", version),
            ("GET", "/info", info), ("GET", "/system/df", system_df)]
