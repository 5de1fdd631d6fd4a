"""Pull-through cache: fetch what is missing from ``proxy.remoteurl``, once.

Concurrent misses of the same blob share ONE upstream fetch (single flight, keyed by
digest): the first request downloads into an upload session, verifies the digest and
commits the blob; the others wait for it and then serve the local file.  Manifests
fetched by tag are cached under that tag.  Upstream auth: Basic, or the token flow
(the 401 challenge's realm/service/scope) with proxy.username/password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from typing import Any

from sdk.registry.config import RegistryConfig
from sdk.registry.names import Digest, parse_digest, valid_tag
from sdk.registry.storage import Storage

log = logging.getLogger("berth.registry.proxy")
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class PullThrough:
    def __init__(self, config: RegistryConfig, storage: Storage) -> None:
        self.remote = config.proxy_remoteurl.rstrip("/")
        self.username = config.proxy_username
        self.password = config.proxy_password
        self.storage = storage
        self.max_manifest = config.max_manifest_size
        self._session: Any = None
        self._tokens: dict[str, str] = {}
        self._inflight: dict[Digest, asyncio.Future[bool]] = {}
        self.upstream_blob_fetches = 0

    async def _client(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, name: str, path: str, headers: dict[str, str]) -> Any:
        """GET with upstream auth; the caller must release the response."""
        session = await self._client()
        url = f"{self.remote}/v2/{name}/{path}"
        hdrs = dict(headers)
        if name in self._tokens:
            hdrs["Authorization"] = self._tokens[name]
        resp = await session.get(url, headers=hdrs)
        if resp.status != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.release()
        basic = {}
        if self.username:
            raw = f"{self.username}:{self.password}".encode()
            basic = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if challenge.lower().startswith("bearer"):
            params = dict(_PARAM.findall(challenge))
            query = {"service": params.get("service", "")}
            query["scope"] = params.get("scope") or f"repository:{name}:pull"
            async with session.get(params["realm"], params=query, headers=basic) as tr:
                if tr.status != 200:
                    return await session.get(url, headers=headers)
                doc = await tr.json(content_type=None)
            token = doc.get("token") or doc.get("access_token")
            self._tokens[name] = f"Bearer {token}"
        elif basic:
            self._tokens[name] = basic["Authorization"]
        hdrs["Authorization"] = self._tokens.get(name, "")
        return await session.get(url, headers=hdrs)

    async def fetch_manifest(self, name: str, ref: str) -> tuple[Digest, bytes, str] | None:
        try:
            resp = await self._get(name, f"manifests/{ref}", {"Accept": ACCEPT})
        except Exception as exc:  # noqa: BLE001 - upstream down: a plain miss
            log.warning("upstream %s unreachable: %s", self.remote, exc)
            return None
        async with resp:
            if resp.status != 200:
                return None
            body = await resp.content.read(self.max_manifest + 1)
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if len(body) > self.max_manifest:
            return None
        want = parse_digest(ref)
        alg = want.algorithm if want else "sha256"
        d = Digest(alg, hashlib.new(alg, body).hexdigest())
        if want is not None and want != d:
            log.warning("upstream %s sent a manifest not matching %s", self.remote, ref)
            return None
        if not media:
            from sdk.registry.manifests import parse_manifest

            media = parse_manifest(body, None).media_type
        self.storage.put_manifest(name, d, body, media)
        if want is None and valid_tag(ref):
            self.storage.set_tag(name, ref, d)
        return d, body, media

    async def fetch_blob(self, name: str, d: Digest) -> bool:
        """True once the blob is stored and linked into ``name``."""
        if self.storage.blob_exists(d):
            self.storage.link_blob(name, d)
            return True
        pending = self._inflight.get(d)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[d] = pending
            try:
                ok = await self._download(name, d)
                pending.set_result(ok)
            except BaseException as exc:  # noqa: BLE001 - shared with the waiters
                pending.set_result(False)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("upstream fetch of %s failed: %s", d, exc)
            finally:
                del self._inflight[d]
        ok = await asyncio.shield(pending)
        if ok:
            self.storage.link_blob(name, d)
        return ok

    async def _download(self, name: str, d: Digest) -> bool:
        self.upstream_blob_fetches += 1
        uid = self.storage.new_upload(name)
        path = self.storage.uploads / uid / "data"
        try:
            resp = await self._get(name, f"blobs/{d}", {})
            async with resp:
                if resp.status != 200:
                    return False
                h = hashlib.new(d.algorithm)
                with open(path, "wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        f.write(chunk)
                        h.update(chunk)
            if h.hexdigest() != d.hex:
                log.warning("upstream %s sent a blob not matching %s", self.remote, d)
                return False
            await asyncio.get_running_loop().run_in_executor(
                None, self.storage.commit_blob, path, d)
            return True
        finally:
            self.storage.remove_upload(uid)
