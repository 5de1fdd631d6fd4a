"""``/networks/...``."""

from __future__ import annotations

from typing import Any

from sdk.api import params
from sdk.api.context import ApiContext
from sdk.api.errors import json_response
from sdk.engine import Engine
from sdk.errors import InvalidArgument


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def list_(request: web.Request) -> web.Response:
        filters = params.filters(request)
        names = filters.get("name")
        ids = filters.get("id")

        def run(e: Engine) -> list[dict[str, Any]]:
            nets = e.networks.list()
            return [n.attrs for n in nets
                    if (not names or any(x in n.name for x in names))
                    and (not ids or any(n.id.startswith(x) for x in ids))]
        return json_response(await ctx.call(run))

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        name = body.get("Name")
        if not name:
            raise InvalidArgument("network name must be given (\"Name\")")

        def run(e: Engine) -> dict[str, Any]:
            net = e.networks.create(name, driver=body.get("Driver") or None,
                                    options=body.get("Options") or None,
                                    ipam=body.get("IPAM") or None,
                                    internal=bool(body.get("Internal")),
                                    labels=body.get("Labels") or None)
            return {"Id": net.id, "Warning": ""}
        return json_response(await ctx.call(run), 201)

    async def inspect(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        return json_response(await ctx.call(lambda e: e.networks.get(ref).attrs))

    async def remove(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        await ctx.call(lambda e: e.networks.get(ref).remove())
        return web.Response(status=204)

    async def connect(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        body = await request.json()
        endpoint = body.get("EndpointConfig") or {}
        ip = (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or None

        def run(e: Engine) -> None:
            e.networks.get(ref).connect(body.get("Container", ""), ipv4_address=ip,
                                        aliases=endpoint.get("Aliases") or None)
        await ctx.call(run)
        return web.Response(status=200)

    async def disconnect(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        body = await request.json()

        def run(e: Engine) -> None:
            e.networks.get(ref).disconnect(body.get("Container", ""),
                                           force=bool(body.get("Force")))
        await ctx.call(run)
        return web.Response(status=200)

    async def prune(request: web.Request) -> web.Response:
        return json_response(await ctx.call(lambda e: e.networks.prune()))

    return [("GET", "/networks", list_), ("POST", "/networks/create", create),
            ("POST", "/networks/prune", prune), ("GET", "/networks/{id}", inspect),
            ("DELETE", "/networks/{id}", remove),
            ("POST", "/networks/{id}/connect", connect),
            ("POST", "/networks/{id}/disconnect", disconnect)]
