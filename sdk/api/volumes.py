"""``/volumes/...``."""

from __future__ import annotations

from typing import Any

from sdk.api import params
from sdk.api.context import ApiContext
from sdk.api.errors import json_response
from sdk.api.params import flag
from sdk.engine import Engine


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def list_(request: web.Request) -> web.Response:
        filters = params.filters(request)

        def run(e: Engine) -> dict[str, Any]:
            return {"Volumes": [v.attrs for v in e.volumes.list(filters or None)],
                    "Warnings": []}
        return json_response(await ctx.call(run))

    async def create(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        name = body.get("Name") or None

        def run(e: Engine) -> dict[str, Any]:
            return e.volumes.create(name, body.get("Driver") or "local",
                                    body.get("DriverOpts") or None,
                                    body.get("Labels") or None).attrs
        return json_response(await ctx.call(run), 201)

    async def inspect(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return json_response(await ctx.call(lambda e: e.volumes.get(name).attrs))

    async def remove(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        force = flag(request, "force")
        await ctx.call(lambda e: e.volume_store.remove(name, force=force))
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        filters = params.filters(request)
        return json_response(await ctx.call(lambda e: e.volumes.prune(filters or None)))

    return [("GET", "/volumes", list_), ("POST", "/volumes/create", create),
            ("POST", "/volumes/prune", prune), ("GET", "/volumes/{name}", inspect),
            ("DELETE", "/volumes/{name}", remove)]
