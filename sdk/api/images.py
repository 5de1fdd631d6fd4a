"""``/images/...``: listing, inspecting, tagging, removing, pulling, pushing."""

from __future__ import annotations

import json
from typing import Any

from sdk.api import params
from sdk.api.context import ApiContext
from sdk.api.errors import json_response
from sdk.api.params import flag, unix_seconds
from sdk.engine import Engine
from sdk.errors import InvalidArgument


def image_summary(engine: Engine, attrs: dict[str, Any]) -> dict[str, Any]:
    """One row of ``GET /images/json`` from inspect data."""
    return {"Id": attrs["Id"], "ParentId": attrs.get("Parent", ""),
            "RepoTags": attrs.get("RepoTags") or [],
            "RepoDigests": attrs.get("RepoDigests") or [],
            "Created": unix_seconds(str(attrs.get("Created", ""))), "Size": attrs.get("Size", 0),
            "SharedSize": -1, "VirtualSize": attrs.get("Size", 0),
            "Labels": (attrs.get("Config") or {}).get("Labels") or {},
            "Containers": attrs.get("Containers", -1)}


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    async def list_(request: web.Request) -> web.Response:
        filters = params.filters(request)
        all_ = flag(request, "all")

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
        force, noprune = flag(request, "force"), flag(request, "noprune")
        return json_response(await ctx.call(
            lambda e: e.images.remove(name, force=force, noprune=noprune)))

    async def prune(request: web.Request) -> web.Response:
        filters = params.filters(request)
        return json_response(await ctx.call(lambda e: e.images.prune(filters or None)))

    async def build_prune(request: web.Request) -> web.Response:
        """``docker builder prune``: the build cache (``all`` also drops the untagged
        step images no container uses); ``keep-storage`` is refused as by the SDK."""
        filters = params.filters(request)
        all_ = flag(request, "all")
        keep = int(request.query.get("keep-storage") or 0)
        return json_response(await ctx.call(lambda e: e.images.prune_builds(
            filters or None, keep_storage=keep or None, all=all_)))

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
        creds = params.registry_auth(request)

        def pull(e: Engine, emit: Any) -> None:
            from sdk.distribution.pull import pull_image

            pull_image(e.image_store, ref, platform=platform, progress=emit,
                       credentials=creds)
        return await _progress_stream(ctx, request, pull)

    async def push(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        tag_ = request.query.get("tag") or ""
        creds = params.registry_auth(request)

        def run(e: Engine, emit: Any) -> None:
            from sdk.distribution.push import push_image

            push_image(e.image_store, f"{name}:{tag_}" if tag_ else name, progress=emit,
                       credentials=creds)
        return await _progress_stream(ctx, request, run)

    async def get(request: web.Request) -> web.StreamResponse:
        names = request.query.getall("names", []) if "name" not in request.match_info \
            else [request.match_info["name"]]
        if not names:
            raise InvalidArgument("no image given (?names=)")

        def plan(e: Engine) -> Any:
            from sdk.archive.save import save

            return save(e.image_store, names)
        return await _iter_stream(ctx, request, plan, "application/x-tar")

    async def load(request: web.Request) -> web.StreamResponse:
        import io

        data = await request.read()

        def run(e: Engine) -> list[str]:
            from sdk.archive.load import load as load_archive
            from sdk.images.service import familiar

            lines = []
            # the archive's own tags, as dockerd reports them (not every tag the image
            # already had here: community.docker's docker_image checks this list)
            for img in load_archive(e.image_store, io.BytesIO(data),
                                    platform=request.query.get("platform") or None):
                for tag, old in img.replaced:
                    lines.append(f"The image {familiar(tag)} already exists, renaming the "
                                 f"old one with ID {old} to empty string\n")
                lines += [f"Loaded image: {familiar(t)}\n" for t in img.tags] if img.tags \
                    else [f"Loaded image ID: {img.id}\n"]
            return lines
        lines = await ctx.call(run)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for line in lines:   # quiet only silences progress, as in dockerd
            await resp.write(json.dumps({"stream": line}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def build(request: web.Request) -> web.StreamResponse:
        import io

        context = await request.read()
        q = request.query
        buildargs = json.loads(q.get("buildargs") or "{}")
        labels = json.loads(q.get("labels") or "{}")
        tags = q.getall("t", [])

        def run(e: Engine, emit: Any) -> None:
            from sdk.build.api import open_context, run_build
            from sdk.build.builder import BuildOptions

            opts = BuildOptions(tags=tags, buildargs=buildargs,
                                nocache=flag(request, "nocache"),
                                target=q.get("target") or "", labels=labels,
                                quiet=flag(request, "q"), rm=flag(request, "rm", True),
                                force_rm=flag(request, "forcerm"), pull=flag(request, "pull"),
                                network_mode=q.get("networkmode") or None)
            with open_context(fileobj=io.BytesIO(context),
                              dockerfile=q.get("dockerfile") or None) as bctx:
                image_id = run_build(e, bctx, opts, lambda t: emit({"stream": t}))
            emit({"aux": {"ID": image_id}})
        return await _progress_stream(ctx, request, run)

    return [("GET", "/images/json", list_), ("POST", "/images/create", create),
            ("POST", "/images/prune", prune), ("GET", "/images/get", get),
            ("POST", "/images/load", load), ("POST", "/build", build),
            ("POST", "/build/prune", build_prune),
            ("POST", "/images/{name:.+?}/push", push), ("GET", "/images/{name:.+?}/get", get),
            ("GET", "/images/{name:.+?}/json", inspect),
            ("GET", "/images/{name:.+?}/history", history),
            ("POST", "/images/{name:.+?}/tag", tag),
            ("DELETE", "/images/{name:.+}", remove)]


async def _progress_stream(ctx: ApiContext, request: Any, work: Any) -> Any:
    """Run ``work(engine, emit)`` in a worker thread, streaming each emitted event as a
    JSON line as it happens; an SDK error becomes docker's in-stream error message."""
    import asyncio

    from aiohttp import web

    from sdk.errors import SdkError

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def run(e: Engine) -> None:
        try:
            work(e, emit)
        except SdkError as exc:
            emit({"errorDetail": {"message": str(exc)}, "error": str(exc)})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    task = asyncio.ensure_future(ctx.call(run))
    while (event := await queue.get()) is not None:
        try:
            await resp.write(json.dumps(event).encode() + b"\n")
        except ConnectionResetError:
            break
    await task
    try:
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp


async def _iter_stream(ctx: ApiContext, request: Any, plan: Any, content_type: str) -> Any:
    """Stream the chunks of an iterator made (and advanced) in worker threads: errors
    in ``plan`` (bad names) answer as JSON errors before anything is sent."""
    from aiohttp import web

    chunks = await ctx.call(plan)
    it = iter(chunks)
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    while (chunk := await ctx.call(lambda _e: next(it, None))) is not None:
        await resp.write(chunk)
    await resp.write_eof()
    return resp
