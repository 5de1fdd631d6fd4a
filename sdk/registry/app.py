"""The HTTP API: OCI distribution-spec 1.1 plus Docker Registry v2, on aiohttp.

One catch-all route parses ``/v2/<name>/...`` itself because repository names contain
slashes; every name, tag and digest is validated before storage sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sdk.registry import manifests as mf
from sdk.registry.access import AccessMap
from sdk.registry.auth import Authenticator, Scope, parse_scopes, token_allows
from sdk.registry.config import RegistryConfig
from sdk.registry.names import (
    Digest,
    RegistryError,
    parse_digest,
    require_digest,
    require_name,
    valid_tag,
)
from sdk.registry.storage import Storage

log = logging.getLogger("berth.registry")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_MANIFEST_RE = re.compile(r"^(.+)/manifests/([^/]+)$")
_UPLOADS_RE = re.compile(r"^(.+)/blobs/uploads/?$")
_UPLOAD_RE = re.compile(r"^(.+)/blobs/uploads/([^/]+)$")
_BLOB_RE = re.compile(r"^(.+)/blobs/([^/]+)$")
_TAGS_RE = re.compile(r"^(.+)/tags/list$")
_REFERRERS_RE = re.compile(r"^(.+)/referrers/([^/]+)$")
_RANGE_RE = re.compile(r"^(?:bytes=)?(\d+)-(\d+)$")
CHUNK = 1 << 20
CATALOG_MAX_AGE = 10.0       # seconds before the catalog is re-walked (outside changes)


@dataclass
class UploadState:
    """In-memory hash state of a session; rebuilt from the file after a restart."""

    size: int = 0
    hashers: dict[str, Any] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Identity:
    user: str | None = None                  # authenticated user (Basic or token subject)
    token: dict[str, Any] | None = None      # verified token claims, when a token was sent


def error_response(exc: RegistryError) -> web.Response:
    body = {"errors": [{"code": exc.code, "message": exc.message,
                        "detail": exc.detail if exc.detail is not None else {}}]}
    # headers meant for a success answer (e.g. an upload's Content-Length: 0) must not
    # describe this body: aiohttp 3.8 sends a caller's Content-Length as is
    headers = {API_VERSION[0]: API_VERSION[1],
               **{k: v for k, v in exc.headers.items() if k.lower() != "content-length"}}
    return web.Response(status=exc.status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


def _range(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


class RegistryApp:
    def __init__(self, config: RegistryConfig, storage: Storage | None = None) -> None:
        self.config = config
        self.storage = storage or Storage(config.root)
        self.uploads: dict[str, UploadState] = {}
        self.auth: Authenticator | None = None
        self.access: AccessMap | None = None
        if config.access is not None and not config.auth_enabled:
            from sdk.errors import ConfigError

            raise ConfigError("registry config: auth.access needs auth.htpasswd.path "
                              "(the users it names)")
        if config.auth_enabled:
            from sdk.registry.auth import load_htpasswd, secret_from

            self.auth = Authenticator(load_htpasswd(config.htpasswd_path),
                                      secret_from(config.secret), config.token_expiration)
            if config.access is not None:
                from sdk.registry.access import parse_access

                self.access = parse_access(config.access)
                for user in sorted(self.access.users() - set(self.auth.users)):
                    log.warning("auth.access names %r, who is not in %s", user,
                                config.htpasswd_path)
        self.proxy: Any = None
        if config.proxy_remoteurl:
            from sdk.registry.proxy import PullThrough

            self.proxy = PullThrough(config, self.storage)
        self._tasks: list[asyncio.Task[None]] = []
        self.in_flight = 0
        self.gc_runs = 0
        self._idle: asyncio.Event | None = None

    # ---- wiring -----------------------------------------------------------------
    def build(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_manifest_size + 1,
                              middlewares=[self._track])
        app.router.add_route("*", "/v2", self.dispatch)
        app.router.add_route("*", "/v2/{path:.*}", self.dispatch)
        app.router.add_get("/auth/token", self.token_endpoint)
        if self.config.html:
            app.router.add_get("/", self.page)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The web page (sdk.registry.html): the repositories this viewer may pull.
        With auth on it asks for Basic credentials (what a browser can send), also when
        the API itself uses tokens."""
        from sdk.registry.html import PageError, error_page, parse_query, render

        loop = asyncio.get_running_loop()
        headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        try:
            ident = Identity()
            if self.auth is not None:
                got = await loop.run_in_executor(None, self.identify, request)
                if got is None or got.user is None or \
                        not self.allowed(got, "registry", "catalog", {"*"}):
                    headers["WWW-Authenticate"] = f'Basic realm="{self.config.realm}"'
                    raise PageError(401, "authentication required")
                ident = got
            query = parse_query(request.query, self.config.catalog_max_entries)
            repos = await loop.run_in_executor(None, self.storage.cached_catalog,
                                               CATALOG_MAX_AGE)
            text = await loop.run_in_executor(None, render, self.storage,
                                              self.visible(ident, repos), query)
        except PageError as exc:
            return web.Response(status=exc.status, text=error_page(exc.status, exc.message),
                                content_type="text/html", headers=headers)
        return web.Response(text=text, content_type="text/html", headers=headers)

    @web.middleware
    async def _track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count requests in flight so a shutdown can wait for them (aiohttp's own
        graceful shutdown stops reading bodies still arriving)."""
        self.in_flight += 1
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> None:
        """Wait until no request is in flight (or ``timeout`` passes)."""
        if self.in_flight and self._idle is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.warning("%d request(s) still in flight after %.0fs", self.in_flight,
                            timeout)

    async def _on_startup(self, app: web.Application) -> None:
        if self.config.upload_purging:
            self._tasks.append(asyncio.create_task(self._purge_loop()))
        if self.config.gc_interval > 0 and not self.config.readonly:
            self._tasks.append(asyncio.create_task(self._gc_loop()))
        # walk the repositories once in the background: the first _catalog is fast too
        asyncio.get_running_loop().run_in_executor(None, self.storage.cached_catalog,
                                                   CATALOG_MAX_AGE)

    async def _on_cleanup(self, app: web.Application) -> None:
        for t in self._tasks:
            t.cancel()
        if self.proxy is not None:
            await self.proxy.close()

    async def _purge_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            gone = await loop.run_in_executor(None, self.storage.purge_uploads,
                                              self.config.upload_purge_age)
            for uid in gone:
                self.uploads.pop(uid, None)
            if gone:
                log.info("purged %d abandoned upload(s)", len(gone))
            await asyncio.sleep(max(self.config.upload_purge_interval, 1.0))

    async def _gc_loop(self) -> None:
        """Online garbage collection: safe while pushes continue (see maintenance)."""
        from sdk.registry.maintenance import garbage_collect

        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.gc_interval)
            try:
                rep = await loop.run_in_executor(
                    None, garbage_collect, self.storage, False,
                    self.config.gc_delete_untagged, self.config.gc_grace)
            except Exception:  # noqa: BLE001 - keep serving; try again next period
                log.exception("online garbage collection failed")
                continue
            self.gc_runs += 1
            if rep.deleted_blobs or rep.deleted_manifests:
                log.info("gc: deleted %d blobs (%d bytes), %d manifests",
                         len(rep.deleted_blobs), rep.freed_bytes, len(rep.deleted_manifests))

    # ---- auth -------------------------------------------------------------------
    def _challenge(self, request: web.Request, scope: Scope | None,
                   error: str | None = None) -> dict[str, str]:
        if self.config.token_enabled:
            host = request.host
            value = (f'Bearer realm="{request.scheme}://{host}/auth/token",'
                     f'service="{host}"')
            if scope is not None:
                value += f',scope="{scope}"'
            if error:
                value += f',error="{error}"'
        else:
            value = f'Basic realm="{self.config.realm}"'
        return {"WWW-Authenticate": value}

    def identify(self, request: web.Request) -> Identity | None:
        """None when credentials were sent but are invalid."""
        header = request.headers.get("Authorization", "")
        if not header or self.auth is None:
            return Identity()
        kind = header.split(" ", 1)[0].lower()
        if kind == "basic":
            user = self.auth.basic(header)
            return Identity(user=user) if user is not None else None
        if kind == "bearer":
            claims = self.auth.verify_token(header.split(" ", 1)[1].strip()
                                            if " " in header else "")
            if claims is None:
                return None
            return Identity(user=str(claims.get("sub") or "") or None, token=claims)
        return None

    def _anonymous_allows(self, typ: str, actions: set[str]) -> bool:
        allowed = set()
        if typ == "repository":
            if self.config.anonymous_pull:
                allowed.add("pull")
            if self.config.anonymous_push:
                allowed |= {"pull", "push"}
        return bool(actions) and actions <= allowed

    def allowed(self, ident: Identity, typ: str, name: str, actions: set[str]) -> bool:
        if self.auth is None:
            return True
        if ident.token is not None:
            return token_allows(ident.token, typ, name, actions)
        if ident.user is not None:
            if self.access is None or typ != "repository":
                return True          # the catalog is filtered to what the user may pull
            return self.access.allows(ident.user, name, actions)
        return self._anonymous_allows(typ, actions)

    def visible(self, ident: Identity, names: list[str]) -> list[str]:
        """The repositories of ``names`` this identity may pull (catalog, web page)."""
        if self.access is None or self.auth is None or ident.user is None:
            return names
        user = ident.user
        return [n for n in names if "pull" in self.access.actions(user, n)]

    async def authorize(self, request: web.Request, typ: str, name: str,
                        actions: set[str]) -> Identity:
        if self.auth is None:
            return Identity()
        loop = asyncio.get_running_loop()
        ident = await loop.run_in_executor(None, self.identify, request)
        scope = Scope(typ, name, frozenset(actions | ({"pull"} if "push" in actions else set())))
        if ident is None:
            raise RegistryError(401, "UNAUTHORIZED", "authentication required",
                                headers=self._challenge(request, scope))
        if not self.allowed(ident, typ, name, actions):
            if ident.token is None and ident.user is not None:
                raise RegistryError(403, "DENIED", "requested access to the resource is denied")
            err = "insufficient_scope" if ident.token is not None else None
            raise RegistryError(401, "UNAUTHORIZED", "authentication required",
                                {"Type": typ, "Name": name, "Action": ",".join(sorted(actions))},
                                headers=self._challenge(request, scope, err))
        return ident

    async def token_endpoint(self, request: web.Request) -> web.StreamResponse:
        if self.auth is None:
            return error_response(RegistryError(404, "UNSUPPORTED", "token auth not enabled"))
        loop = asyncio.get_running_loop()
        ident = await loop.run_in_executor(None, self.identify, request)
        if ident is None or ident.token is not None:
            return error_response(RegistryError(
                401, "UNAUTHORIZED", "invalid credentials",
                headers={"WWW-Authenticate": f'Basic realm="{self.config.realm}"'}))
        requested = parse_scopes(request.query.getall("scope", []))
        granted = []
        for s in requested:
            if s.type == "repository":
                try:
                    require_name(s.name)
                except RegistryError:
                    continue
                want = set(s.actions) & {"pull", "push", "delete", "*"}
                if ident.user is None:
                    want = {a for a in want if self._anonymous_allows("repository", {a})}
                elif "*" in want:
                    want = {"pull", "push", "delete"}
                if ident.user is not None and self.access is not None:
                    want &= self.access.actions(ident.user, s.name)
            elif s.type == "registry" and s.name == "catalog" and ident.user is not None:
                want = {"*"}
            else:
                continue
            if want:
                granted.append(Scope(s.type, s.name, frozenset(want)))
        service = request.query.get("service", request.host)
        doc = self.auth.issue(ident.user or "", service, granted)
        return web.json_response(doc)

    # ---- dispatch ---------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            resp = await self._route(request)
        except RegistryError as exc:
            return error_response(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - an unexpected bug answers 500, logged
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(RegistryError(500, "UNKNOWN", "internal server error"))
        resp.headers[API_VERSION[0]] = API_VERSION[1]
        return resp

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "")
        m = request.method
        if path == "":
            if m not in ("GET", "HEAD"):
                raise self._method()
            if self.auth is not None:
                loop = asyncio.get_running_loop()
                ident = await loop.run_in_executor(None, self.identify, request)
                if ident is None or (ident.user is None and ident.token is None):
                    raise RegistryError(401, "UNAUTHORIZED", "authentication required",
                                        headers=self._challenge(request, None))
            return web.json_response({})
        if path == "_catalog":
            if m != "GET":
                raise self._method()
            ident = await self.authorize(request, "registry", "catalog", {"*"})
            return await self.catalog(request, ident)
        for regex, handler in ((_MANIFEST_RE, self.manifest), (_UPLOADS_RE, self.start_upload),
                               (_UPLOAD_RE, self.upload), (_BLOB_RE, self.blob),
                               (_TAGS_RE, self.tags), (_REFERRERS_RE, self.referrers_api)):
            match = regex.match(path)
            if match:
                name = require_name(match.group(1))
                return await handler(request, name, *match.groups()[1:])
        raise RegistryError(404, "NAME_UNKNOWN", "repository name not known to registry",
                            {"path": path[:300]})

    @staticmethod
    def _method() -> RegistryError:
        return RegistryError(405, "UNSUPPORTED", "the operation is unsupported")

    def _check_write(self) -> None:
        if self.config.readonly:
            raise RegistryError(405, "UNSUPPORTED", "the registry is in read-only mode")

    def _check_delete(self) -> None:
        self._check_write()
        if not self.config.delete_enabled:
            raise RegistryError(405, "UNSUPPORTED", "deletes are disabled "
                                "(storage.delete.enabled is false)")

    # ---- catalog and tags -------------------------------------------------------
    def _page_args(self, request: web.Request, cap: int | None) -> tuple[int | None, str]:
        n_raw = request.query.get("n")
        last = request.query.get("last", "")
        n: int | None = None
        if n_raw is not None:
            if not n_raw.isdigit():
                raise RegistryError(400, "PAGINATION_NUMBER_INVALID",
                                    "invalid number of results requested", {"n": n_raw[:20]})
            n = int(n_raw)
            if cap is not None and n > cap:
                raise RegistryError(400, "PAGINATION_NUMBER_INVALID",
                                    "invalid number of results requested",
                                    {"n": n, "maxentries": cap})
        return n, last

    @staticmethod
    def _paginate(items: list[str], n: int | None, last: str, base: str,
                  ) -> tuple[list[str], dict[str, str]]:
        if last:
            import bisect

            items = items[bisect.bisect_right(items, last):]
        if n is None or n >= len(items):
            return items, {}
        page = items[:n]
        if not page:
            return page, {}
        link = f'<{base}?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
        return page, {"Link": link}

    async def catalog(self, request: web.Request,
                      ident: Identity | None = None) -> web.StreamResponse:
        cap = self.config.catalog_max_entries
        n, last = self._page_args(request, cap)
        if n is None:
            n = min(100, cap)
        loop = asyncio.get_running_loop()
        repos = await loop.run_in_executor(None, self.storage.cached_catalog,
                                           CATALOG_MAX_AGE)
        if ident is not None:
            repos = self.visible(ident, repos)
        page, headers = self._paginate(repos, n, last, "/v2/_catalog")
        return web.json_response({"repositories": page}, headers=headers)

    async def tags(self, request: web.Request, name: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise self._method()
        await self.authorize(request, "repository", name, {"pull"})
        n, last = self._page_args(request, None)
        cap = self.config.catalog_max_entries
        if n is not None:
            n = min(n, cap)
        if not self.storage.repo_exists(name):
            raise RegistryError(404, "NAME_UNKNOWN", "repository name not known to registry",
                                {"name": name})
        page, headers = self._paginate(self.storage.tags(name), n, last,
                                       f"/v2/{name}/tags/list")
        return web.json_response({"name": name, "tags": page}, headers=headers)

    # ---- blobs ------------------------------------------------------------------
    async def blob(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        d = require_digest(ref)
        if request.method in ("GET", "HEAD"):
            await self.authorize(request, "repository", name, {"pull"})
            if not self.storage.repo_has_blob(name, d):
                if self.proxy is not None and await self.proxy.fetch_blob(name, d):
                    pass
                else:
                    raise RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry",
                                        {"digest": str(d)})
            headers = {"Docker-Content-Digest": str(d), "Content-Type":
                       "application/octet-stream", "Cache-Control": "max-age=31536000"}
            return web.FileResponse(self.storage.blob_path(d), chunk_size=CHUNK,
                                    headers=headers)
        if request.method == "DELETE":
            await self.authorize(request, "repository", name, {"delete"})
            self._check_delete()
            if not self.storage.unlink_blob(name, d):
                raise RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry",
                                    {"digest": str(d)})
            return web.Response(status=202, headers={"Content-Length": "0"})
        raise self._method()

    # ---- uploads ----------------------------------------------------------------
    def _upload_headers(self, name: str, uid: str, size: int) -> dict[str, str]:
        return {"Location": f"/v2/{name}/blobs/uploads/{uid}", "Range": _range(size),
                "Docker-Upload-UUID": uid, "Content-Length": "0"}

    def _new_session(self, name: str, algorithms: set[str]) -> str:
        uid = self.storage.new_upload(name)
        self.uploads[uid] = UploadState(hashers={a: hashlib.new(a) for a in algorithms})
        return uid

    async def start_upload(self, request: web.Request, name: str) -> web.StreamResponse:
        if request.method != "POST":
            raise self._method()
        q = request.query
        await self.authorize(request, "repository", name, {"push"})
        self._check_write()
        algorithm = q.get("digest-algorithm", "sha256")
        if algorithm not in ("sha256", "sha512"):
            raise RegistryError(400, "DIGEST_INVALID", "unsupported digest algorithm",
                                {"digest-algorithm": algorithm[:50]})
        if "mount" in q:
            mounted = await self._mount(request, name, q["mount"], q.get("from"))
            if mounted is not None:
                return mounted
        if "digest" in q:
            d = require_digest(q["digest"])
            uid = self._new_session(name, {d.algorithm})
            try:
                await self._receive(request, uid, name)
                return await self._finish(name, uid, d)
            finally:
                self._drop(uid)
        uid = self._new_session(name, {algorithm, "sha256"})
        return web.Response(status=202, headers=self._upload_headers(name, uid, 0))

    async def _mount(self, request: web.Request, name: str, mount: str,
                     source: str | None) -> web.StreamResponse | None:
        d = parse_digest(mount)
        if d is None or not source:
            return None                    # anonymous/invalid mount: a plain upload
        try:
            require_name(source)
        except RegistryError:
            return None
        if self.auth is not None:
            ident = self.identify(request)
            if ident is None or not self.allowed(ident, "repository", source, {"pull"}):
                return None                # not readable: never leak across repositories
        if not self.storage.repo_has_blob(source, d):
            return None
        self.storage.link_blob(name, d)
        return web.Response(status=201, headers={
            "Location": f"/v2/{name}/blobs/{d}", "Docker-Content-Digest": str(d),
            "Content-Length": "0"})

    def _session(self, name: str, uid: str) -> tuple[str, UploadState]:
        d = self.storage.upload_dir(name, uid)
        if d is None:
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry",
                                {"uuid": uid[:64]})
        state = self.uploads.get(uid)
        size = os.path.getsize(d / "data")
        if state is None or state.size != size:
            # restarted server (or hash state lost): rehash lazily at the end
            state = UploadState(size=size)
            self.uploads[uid] = state
        return str(d / "data"), state

    def _drop(self, uid: str) -> None:
        self.uploads.pop(uid, None)
        self.storage.remove_upload(uid)

    async def _receive(self, request: web.Request, uid: str, name: str) -> int:
        """Append the request body to the session, hashing as it streams."""
        path, state = self._session(name, uid)
        limit = self.config.max_upload_size
        length = request.content_length
        if limit and length is not None and state.size + length > limit:
            raise RegistryError(413, "SIZE_INVALID", "upload exceeds the maximum size",
                                {"maxuploadsize": limit})
        written = 0
        with open(path, "ab") as f:
            async for chunk in request.content.iter_chunked(CHUNK):
                written += len(chunk)
                if limit and state.size + written > limit:
                    f.truncate(state.size)
                    raise RegistryError(413, "SIZE_INVALID", "upload exceeds the maximum size",
                                        {"maxuploadsize": limit})
                f.write(chunk)
                for h in state.hashers.values():
                    h.update(chunk)
        state.size += written
        return written

    async def upload(self, request: web.Request, name: str, uid: str) -> web.StreamResponse:
        m = request.method
        if m in ("GET", "HEAD"):
            await self.authorize(request, "repository", name, {"push"})
            _, state = self._session(name, uid)
            return web.Response(status=204, headers=self._upload_headers(name, uid, state.size))
        await self.authorize(request, "repository", name, {"push"})
        self._check_write()
        if m == "DELETE":
            self._session(name, uid)
            self._drop(uid)
            return web.Response(status=204, headers={"Content-Length": "0"})
        if m not in ("PATCH", "PUT"):
            raise self._method()
        _, state = self._session(name, uid)
        async with state.lock:
            _, state = self._session(name, uid)
            crange = request.headers.get("Content-Range")
            if crange:
                rm = _RANGE_RE.match(crange.strip())
                if rm is None or int(rm.group(1)) != state.size or \
                        int(rm.group(2)) < int(rm.group(1)):
                    raise RegistryError(416, "BLOB_UPLOAD_INVALID",
                                        "chunk out of order or invalid Content-Range",
                                        {"range": crange[:60], "size": state.size},
                                        headers=self._upload_headers(name, uid, state.size))
            await self._receive(request, uid, name)
            if m == "PATCH":
                return web.Response(status=202,
                                    headers=self._upload_headers(name, uid, state.size))
            digest = request.query.get("digest")
            if not digest:
                raise RegistryError(400, "DIGEST_INVALID", "digest parameter required")
            d = require_digest(digest)
            try:
                return await self._finish(name, uid, d)
            finally:
                self._drop(uid)

    async def _finish(self, name: str, uid: str, d: Digest) -> web.StreamResponse:
        """Verify the whole blob's digest, then make it visible (atomically)."""
        path, state = self._session(name, uid)
        h = state.hashers.get(d.algorithm)
        loop = asyncio.get_running_loop()
        if h is not None:
            got = h.hexdigest()
        else:
            got = await loop.run_in_executor(None, _hash_file, path, d.algorithm)
        if got != d.hex:
            raise RegistryError(400, "DIGEST_INVALID",
                                "provided digest did not match uploaded content",
                                {"digest": str(d), "computed": f"{d.algorithm}:{got}"})
        await loop.run_in_executor(None, self.storage.commit_blob, _as_path(path), d)
        self.storage.link_blob(name, d)
        return web.Response(status=201, headers={
            "Location": f"/v2/{name}/blobs/{d}", "Docker-Content-Digest": str(d),
            "Content-Length": "0"})

    # ---- manifests --------------------------------------------------------------
    def _resolve(self, name: str, ref: str) -> Digest:
        d = parse_digest(ref)
        if d is None and ":" in ref:
            raise RegistryError(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:200]})
        if d is None:
            if not valid_tag(ref):
                raise RegistryError(400, "TAG_INVALID", "manifest tag did not match URI",
                                    {"tag": ref[:200]})
            d = self.storage.resolve_tag(name, ref)
            if d is None:
                raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown",
                                    {"name": name, "tag": ref})
        return d

    async def manifest(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        m = request.method
        if m in ("GET", "HEAD"):
            await self.authorize(request, "repository", name, {"pull"})
            return await self._get_manifest(request, name, ref)
        if m == "PUT":
            await self.authorize(request, "repository", name, {"push"})
            self._check_write()
            return await self._put_manifest(request, name, ref)
        if m == "DELETE":
            await self.authorize(request, "repository", name, {"delete"})
            self._check_delete()
            return self._delete_manifest(name, ref)
        raise self._method()

    async def _get_manifest(self, request: web.Request, name: str,
                            ref: str) -> web.StreamResponse:
        try:
            d = self._resolve(name, ref)
            found = self.storage.get_manifest(name, d)
        except RegistryError as exc:
            if exc.status != 404 or self.proxy is None:
                raise
            found = None
            d = None  # type: ignore[assignment]
        if found is None and self.proxy is not None:
            fetched = await self.proxy.fetch_manifest(name, ref)
            if fetched is not None:
                d, found = fetched[0], (fetched[1], fetched[2])
        if found is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown",
                                {"name": name, "reference": ref})
        body, media = found
        etag = f'"{d}"'
        headers = {"Docker-Content-Digest": str(d), "ETag": etag,
                   "Content-Type": media, "Content-Length": str(len(body))}
        inm = request.headers.get("If-None-Match", "")
        if inm and (inm.strip() == "*" or etag in inm or str(d) in inm):
            headers.pop("Content-Length")
            return web.Response(status=304, headers=headers)
        if request.method == "HEAD":
            resp = web.Response(status=200, headers=headers)
            return resp
        return web.Response(status=200, body=body, headers=headers)

    async def _put_manifest(self, request: web.Request, name: str,
                            ref: str) -> web.StreamResponse:
        limit = self.config.max_manifest_size
        if request.content_length is not None and request.content_length > limit:
            raise RegistryError(413, "SIZE_INVALID", "manifest too large", {"max": limit})
        body = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            body += chunk
            if len(body) > limit:
                raise RegistryError(413, "SIZE_INVALID", "manifest too large", {"max": limit})
        data = bytes(body)
        ref_digest = parse_digest(ref)
        tags: list[str] = []
        if ref_digest is None:
            if ":" in ref:
                raise RegistryError(400, "DIGEST_INVALID", "invalid digest",
                                    {"digest": ref[:200]})
            if not valid_tag(ref):
                raise RegistryError(400, "TAG_INVALID", "invalid tag", {"tag": ref[:200]})
            tags.append(ref)
        for t in request.query.getall("tag", []):
            if not valid_tag(t):
                raise RegistryError(400, "TAG_INVALID", "invalid tag", {"tag": t[:200]})
            tags.append(t)
        algorithm = ref_digest.algorithm if ref_digest else "sha256"
        d = Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
        if ref_digest is not None and ref_digest != d:
            raise RegistryError(400, "DIGEST_INVALID",
                                "provided digest did not match uploaded content",
                                {"digest": str(ref_digest), "computed": str(d)})
        pm = mf.parse_manifest(data, request.headers.get("Content-Type"))
        missing = [str(b) for b in pm.blobs if not self.storage.repo_has_blob(name, b)]
        if missing:
            raise RegistryError(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry",
                                {"digests": missing[:20]})
        for b in pm.blobs + pm.children:
            self.storage.touch_blob(b)
        self.storage.put_manifest(name, d, data, pm.media_type)
        for t in tags:
            self.storage.set_tag(name, t, d)
        headers = {"Location": f"/v2/{name}/manifests/{d}", "Docker-Content-Digest": str(d),
                   "Content-Length": "0"}
        if pm.subject is not None:
            self.storage.add_referrer(name, pm.subject, d,
                                      mf.referrer_descriptor(pm, d, len(data)))
            headers["OCI-Subject"] = str(pm.subject)
        resp = web.Response(status=201, headers=headers)
        for t in request.query.getall("tag", []):
            resp.headers.add("OCI-Tag", t)
        return resp

    def _delete_manifest(self, name: str, ref: str) -> web.StreamResponse:
        d = parse_digest(ref)
        if d is None:
            if ":" in ref or not valid_tag(ref):
                raise RegistryError(400, "DIGEST_INVALID" if ":" in ref else "TAG_INVALID",
                                    "invalid reference", {"reference": ref[:200]})
            if not self.storage.delete_tag(name, ref):
                raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown",
                                    {"tag": ref})
            return web.Response(status=202, headers={"Content-Length": "0"})
        found = self.storage.get_manifest(name, d)
        if found is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown",
                                {"digest": str(d)})
        try:
            pm = mf.parse_manifest(found[0], found[1])
            if pm.subject is not None:
                self.storage.remove_referrer(name, pm.subject, d)
        except RegistryError:
            pass
        self.storage.delete_manifest(name, d)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # ---- referrers --------------------------------------------------------------
    async def referrers_api(self, request: web.Request, name: str,
                            ref: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise self._method()
        await self.authorize(request, "repository", name, {"pull"})
        d = require_digest(ref)
        entries = self.storage.referrers(name, d)
        headers = {}
        wanted = request.query.getall("artifactType", [])
        if wanted:
            entries = [e for e in entries if e.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        doc = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": entries}
        return web.Response(status=200, body=json.dumps(doc).encode(),
                            content_type=mf.OCI_INDEX, headers=headers)


def _hash_file(path: str, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _as_path(path: str) -> Any:
    from pathlib import Path

    return Path(path)
