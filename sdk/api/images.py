"""``/images/...``: listing, inspecting, tagging, removing, pulling, pushing."""

from __future__ import annotations

import json
from typing import Any

from sdk.api.containers import _filters, _flag
from sdk.api.context import ApiContext
from sdk.api.errors import json_response
from sdk.engine import Engine
from sdk.errors import InvalidArgument


def _created(text: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")[:26] + "+00:00"
                                          if "." in text else
                                          text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def image_summary(engine: Engine, attrs: dict[str, Any]) -> dict[str, Any]:
    """One row of ``GET /images/json`` from inspect data."""
    return {"Id": attrs["Id"], "ParentId": attrs.get("Parent", ""),
            "RepoTags": attrs.get("RepoTags") or [],
            "RepoDigests": attrs.get("RepoDigests") or [],
            "Created": _created(str(attrs.get("Created", ""))), "Size": attrs.get("Size", 0),
            "SharedSize": -1, "VirtualSize": attrs.get("Size", 0),
            "Labels": (attrs.get("Config") or {}).get("Labels") or {},
            "Containers": attrs.get("Containers", -1)}


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def list_(request: web.Request) -> web.Response:
        filters = _filters(request)
        all_ = _flag(request, "all")

        def run(e: Engine) -> list[dict[str, Any]]:
            return [image_summary(e, m.attrs)
                    for m in e.images.list(all=all_, filters=filters or None)]
        return json_response(await ctx.call(run))

    async def inspect(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return json_response(await ctx.call(lambda e: e.images.get(name).attrs))

    async def history(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return json_response(await ctx.call(lambda e: e.images.get(name).history()))

    async def tag(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        repo = request.query.get("repo") or ""
        tag_ = request.query.get("tag") or ""
        if not repo:
            raise InvalidArgument("repository name must be given (?repo=)")
        target = f"{repo}:{tag_}" if tag_ else repo
        await ctx.call(lambda e: e.image_store.tag(name, target))
        return web.Response(status=201)

    async def remove(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        force, noprune = _flag(request, "force"), _flag(request, "noprune")
        return json_response(await ctx.call(
            lambda e: e.images.remove(name, force=force, noprune=noprune)))

    async def prune(request: web.Request) -> web.Response:
        filters = _filters(request)
        return json_response(await ctx.call(lambda e: e.images.prune(filters or None)))

    async def create(request: web.Request) -> web.StreamResponse:
        """``docker pull`` (fromImage) and ``docker import`` (fromSrc)."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        image = request.query.get("fromImage")
        source = request.query.get("fromSrc")
        tag_ = request.query.get("tag") or ""
        if source:
            repo = request.query.get("repo") or ""
            changes = request.query.getall("changes", [])
            message = request.query.get("message") or ""
            data = await request.read() if source == "-" else None

            def do_import(e: Engine) -> str:
                target = (f"{repo}:{tag_}" if tag_ else repo) or None
                src = data if data is not None else source
                return str(e.images.import_image(src, repository=target, changes=changes,
                                                 message=message).id)
            image_id = await ctx.call(do_import)
            await resp.prepare(request)
            await resp.write(json.dumps({"status": image_id}).encode() + b"\n")
            await resp.write_eof()
            return resp
        if not image:
            raise InvalidArgument("fromImage or fromSrc must be given")
        ref = image if not tag_ or "@" in image else \
            (f"{image}@{tag_}" if tag_.startswith("sha256:") else f"{image}:{tag_}")
        platform = request.query.get("platform") or None
        auth = _auth_header(request)

        def pull(e: Engine) -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            pull_fn = getattr(e.images, "pull", None)
            if pull_fn is None:
                raise InvalidArgument("this berth build cannot pull images yet")
            kwargs: dict[str, Any] = {"platform": platform}
            if auth:
                kwargs["auth_config"] = auth
            pull_fn(ref, **kwargs)
            events.append({"status": f"Status: Image is up to date for {ref}"})
            return events
        try:
            events = await ctx.call(pull)
        except Exception as exc:   # noqa: BLE001 - docker reports pull errors in the stream
            from sdk.errors import SdkError

            if not isinstance(exc, SdkError):
                raise
            await resp.prepare(request)
            await resp.write(json.dumps({"errorDetail": {"message": str(exc)},
                                         "error": str(exc)}).encode() + b"\n")
            await resp.write_eof()
            return resp
        await resp.prepare(request)
        for event in events:
            await resp.write(json.dumps(event).encode() + b"\n")
        await resp.write_eof()
        return resp

    return [("GET", "/images/json", list_), ("POST", "/images/create", create),
            ("POST", "/images/prune", prune),
            ("GET", "/images/{name:.+?}/json", inspect),
            ("GET", "/images/{name:.+?}/history", history),
            ("POST", "/images/{name:.+?}/tag", tag),
            ("DELETE", "/images/{name:.+}", remove)]


def _auth_header(request: Any) -> dict[str, Any] | None:
    import base64

    raw = request.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, json.JSONDecodeError):
        raise InvalidArgument("X-Registry-Auth is not base64url-encoded JSON") from None
    return data if isinstance(data, dict) and data else None
