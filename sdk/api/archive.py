"""``/containers/{id}/archive``: ``docker cp``'s GET (tar out), HEAD (stat) and PUT
(tar in).  The work, and the confinement to the container's root, is in
:mod:`sdk.containers.archive`."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from sdk.api.context import ApiContext
from sdk.api.errors import error_response
from sdk.api.params import flag
from sdk.errors import InvalidArgument, PermissionDenied, SdkError

STAT_HEADER = "X-Docker-Container-Path-Stat"
SPOOL_MAX = 16 << 20


def _path(request: Any) -> str:
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("the container path must be given (?path=)")
    return str(path)


def _stat_header(stat: Any) -> str:
    return base64.b64encode(json.dumps(stat.as_dict()).encode()).decode()


def routes(ctx: ApiContext) -> list[tuple[str, str, Any]]:
    from aiohttp import web

    from sdk.containers import archive

    async def head(request: web.Request) -> web.Response:
        ref, path = request.match_info["id"], _path(request)
        st = await ctx.call(lambda e: archive.stat_path(e, ref, path))
        return web.Response(status=200, headers={STAT_HEADER: _stat_header(st),
                                                 "Content-Type": "application/json"})

    async def get(request: web.Request) -> web.StreamResponse:
        ref, path = request.match_info["id"], _path(request)
        chunks, st = await ctx.call(lambda e: archive.get_archive(e, ref, path))
        try:
            resp = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                               STAT_HEADER: _stat_header(st)})
            await resp.prepare(request)
            while (chunk := await ctx.call(lambda _e: next(chunks, None))) is not None:
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionResetError:
            pass        # the client left: closing the iterator stops the walk
        except SdkError as exc:     # mid-stream: the headers are gone, cut the stream
            print(f"berth daemon: archive of {path} in {ref}: {exc}", file=sys.stderr)
            if request.transport is not None:
                request.transport.close()
        finally:
            await ctx.call(lambda _e: chunks.close())
        return resp

    async def put(request: web.Request) -> web.Response:
        import tempfile

        ref, path = request.match_info["id"], _path(request)
        no_overwrite = flag(request, "noOverwriteDirNonDir")
        copy_owner = flag(request, "copyUIDGID")
        with tempfile.SpooledTemporaryFile(SPOOL_MAX) as spool:
            async for chunk in request.content.iter_chunked(1 << 18):
                spool.write(chunk)
            spool.seek(0)
            try:
                await ctx.call(lambda e: archive.put_archive(
                    e, ref, path, spool, no_overwrite_dir_non_dir=no_overwrite,
                    copy_uid_gid=copy_owner))
            except PermissionDenied as exc:
                return error_response(str(exc), 403)
        return web.Response(status=200)

    p = "/containers/{id}/archive"
    return [("HEAD", p, head), ("GET", p, get), ("PUT", p, put)]
