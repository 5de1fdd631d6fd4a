"""The aiohttp application: routes from each resource module plus two middlewares."""

from __future__ import annotations

import re
from typing import Any

from sdk.api import archive, containers, images, networks, system, volumes
from sdk.api import exec as exec_routes
from sdk.api.context import ApiContext
from sdk.api.errors import error_response, status_for

VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def build_app(ctx: ApiContext) -> Any:
    from aiohttp import web

    @web.middleware
    async def strip_version(request: web.Request, handler: Any) -> Any:
        match = VERSION_PREFIX.match(request.path)
        if not match:
            return await handler(request)
        query = "?" + request.query_string if request.query_string else ""
        return await _route(app, request.clone(rel_url=match.group(2) + query))

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> Any:
        from sdk.errors import SdkError

        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404:
                return error_response(f"page not found: {request.method} {request.path}",
                                      404)
            if exc.status == 405:
                return error_response(f"{request.method} {request.path} is not supported",
                                      405)
            raise
        except SdkError as exc:
            return error_response(str(exc), status_for(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return error_response(f"bad request: {exc}", 400)

    app = web.Application(middlewares=[errors, strip_version], client_max_size=0)
    for module in (system, containers, archive, exec_routes, images, volumes, networks):
        for method, path, handler in module.routes(ctx):
            app.router.add_route(method, path, handler)
    app["ctx"] = ctx
    return app


async def _route(app: Any, request: Any) -> Any:
    """Resolve ``request`` (possibly rewritten without its /vX.Y prefix) and call it."""
    match_info = await app.router.resolve(request)
    match_info.add_app(app)
    match_info.freeze()
    request._match_info = match_info
    return await match_info.handler(request)
