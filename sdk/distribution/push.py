"""``push``: upload an image's blobs and manifest to a registry.

Blobs the registry has are skipped (HEAD); a blob this image was pulled from or pushed
to in another repository of the same registry is mounted (``?mount=&from=``); small
blobs go up in one PUT, big ones in ordered PATCH chunks closed by a PUT.  A manifest
whose layers are compressed (a pulled image's, as registries serve them) is pushed
byte-exact, so the image keeps its digest.  Layers stored uncompressed (``import``,
``build``, ``commit``, plain archives) are pushed gzipped, as docker and podman do, in
a manifest that names the gzip blobs (same config, so the same image ID): each gzip
blob is made once and kept (``compress.py``), in the upload threads, so layers
compress in parallel, and a re-push sends the same manifest digest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sdk._internal.reference import Reference, parse_reference
from sdk.distribution.auth import scope_for
from sdk.distribution.compress import (
    Gzipped,
    gzip_blob,
    gzip_media_type,
    plain_layers,
    rewrite_manifest,
)
from sdk.distribution.manifest import FOREIGN_TYPES, Descriptor, parse_manifest
from sdk.distribution.pull import _cfg_int, new_client, short_id
from sdk.distribution.transport import RegistryClient, RegistryError
from sdk.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from sdk.images.service import ImageService

Progress = Callable[[dict[str, Any]], None]
#: blobs up to this size are uploaded in one request; bigger ones in chunks of it
CHUNK = 32 << 20


def _noop(_event: dict[str, Any]) -> None:
    pass


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class PushResult:
    tag: str
    digest: str
    size: int


class Pusher:
    def __init__(self, svc: ImageService, client: RegistryClient, ref: Reference,
                 progress: Progress, uploads: int) -> None:
        self.svc = svc
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.progress = progress
        self.uploads = uploads
        self.scopes = (scope_for(ref.path, "pull,push"),)
        #: the upload threads share ``svc.db`` (one sqlite3 connection) for gzip records
        self._db_lock = threading.Lock()

    def _fail(self, resp: Any, what: str) -> Exception:
        return self.client.fail(resp, repository=self.repo, what=what, action="push")

    def exists(self, desc: Descriptor) -> bool:
        resp = self.client.request("HEAD", f"/v2/{self.repo}/blobs/{desc.digest}",
                                   scopes=self.scopes)
        resp.close()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"blob {desc.digest}")

    def upload(self, desc: Descriptor, sources: list[str], show: bool = True) -> None:
        sid = short_id(desc.digest)
        if show:
            self.progress({"status": "Preparing", "id": sid, "progressDetail": {}})
        if not self.svc.content.exists(desc.digest):
            raise NotFound(f"blob {desc.digest} of this image is not stored locally; pull the "
                           "image again before pushing it")
        if self.exists(desc):
            if show:
                self.progress({"status": "Layer already exists", "id": sid,
                               "progressDetail": {}})
            return
        location = None
        for src in sources:
            scopes = (*self.scopes, scope_for(src, "pull"))
            resp = self.client.request(
                "POST", f"/v2/{self.repo}/blobs/uploads/", scopes=scopes,
                params={"mount": desc.digest, "from": src})
            resp.close()
            if resp.status_code == 201:
                if show:
                    self.progress({"status": f"Mounted from {src}", "id": sid,
                                   "progressDetail": {}})
                return
            if resp.status_code == 202 and "Location" in resp.headers:
                location = resp.headers["Location"]
                break
        if location is None:
            resp = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/",
                                       scopes=self.scopes)
            resp.close()
            if resp.status_code != 202 or "Location" not in resp.headers:
                raise self._fail(resp, f"upload of {desc.digest}")
            location = resp.headers["Location"]
        location = self.client.url("") + location if location.startswith("/") else location
        if show:
            self.progress({"status": "Pushing", "id": sid,
                           "progressDetail": {"current": 0, "total": desc.size}})
        if desc.size <= CHUNK:
            data = self.svc.content.read_bytes(desc.digest)
            self._finish(location, desc, data)
        else:
            self._chunked(location, desc, sid, show)
        if show:
            self.progress({"status": "Pushed", "id": sid, "progressDetail": {}})

    def _finish(self, location: str, desc: Descriptor, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        resp = self.client.request("PUT", with_query(location, digest=desc.digest),
                                   scopes=self.scopes, headers=headers, data=data)
        resp.close()
        if resp.status_code not in (201, 204):
            raise self._fail(resp, f"upload of {desc.digest}")

    def _chunked(self, location: str, desc: Descriptor, sid: str, show: bool) -> None:
        offset = 0
        with self.svc.content.open(desc.digest) as f:
            while offset < desc.size:
                chunk = f.read(CHUNK)
                end = offset + len(chunk) - 1
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"{offset}-{end}",
                           "Content-Length": str(len(chunk))}
                resp = self.client.request("PATCH", location, scopes=self.scopes,
                                           headers=headers, data=chunk)
                resp.close()
                if resp.status_code != 202:
                    raise self._fail(resp, f"upload of {desc.digest} (bytes {offset}-{end})")
                new = resp.headers.get("Location", location)
                location = self.client.url("") + new if new.startswith("/") else new
                offset = end + 1
                if show:
                    self.progress({"status": "Pushing", "id": sid, "progressDetail":
                                   {"current": offset, "total": desc.size}})
        self._finish(location, desc, b"")

    def push(self, tag: str) -> PushResult:
        image_id = self.svc.resolve(f"{self.ref.name}:{tag}")
        raw, media = self.svc.manifest_for_push(image_id)
        plain = plain_layers(raw)
        # checked as it will go out, before anything is uploaded
        manifest = parse_manifest(rewrite_manifest(raw, dict.fromkeys(plain)), media)
        assert manifest.config is not None
        sources = sorted({r.split("/", 1)[1] for r, _ in self.svc.repo_digests(image_id)
                          if r.split("/", 1)[0] == self.ref.domain and r != self.ref.name})
        gzipped: dict[str, Gzipped] = {}
        with ThreadPoolExecutor(self.uploads, thread_name_prefix="push") as pool:
            futures = [pool.submit(self._push_layer, d, media, d.digest in plain, sources)
                       for d in manifest.layers]
            for desc, fut in zip(manifest.layers, futures, strict=True):
                made = fut.result()
                if made is not None:
                    gzipped[desc.digest] = made
        if gzipped:
            raw = rewrite_manifest(raw, gzipped)
        manifest = parse_manifest(raw, media)
        assert manifest.config is not None
        self.upload(manifest.config, sources, show=False)
        resp = self.client.request("PUT", f"/v2/{self.repo}/manifests/{tag}",
                                   scopes=self.scopes, headers={"Content-Type": media},
                                   data=raw)
        resp.close()
        if resp.status_code not in (200, 201):
            raise self._fail(resp, f"manifest {tag}")
        got = resp.headers.get("Docker-Content-Digest", "")
        if got and got.startswith("sha256:") and got != manifest.digest:
            raise RegistryError(f"registry {self.client.host} stored manifest {tag} as {got}, "
                                f"expected {manifest.digest}")
        if gzipped:     # the RepoDigest's manifest, kept as the registry has it
            self.svc.content.put_bytes(raw)
        self.svc.record_pushed(image_id, self.ref.name, manifest.digest)
        self.progress({"status": f"{tag}: digest: {manifest.digest} size: {len(raw)}"})
        return PushResult(tag, manifest.digest, len(raw))

    def _push_layer(self, desc: Descriptor, media: str, gzip: bool,
                    sources: list[str]) -> Gzipped | None:
        """Upload one layer, first gzipped (made once, or found) when ``gzip``; returns
        the gzip blob pushed in its place, if any."""
        if desc.urls and desc.media_type in FOREIGN_TYPES:
            # a foreign layer stays where its urls point, as docker leaves it
            self.progress({"status": "Skipped foreign layer", "id": short_id(desc.digest),
                           "progressDetail": {}})
            return None
        made = gzip_blob(self.svc, desc.digest, self._db_lock) if gzip else None
        if made is not None:
            desc = Descriptor(gzip_media_type(media), made.digest, made.size)
        self.upload(desc, sources)
        return made


def push_image(svc: ImageService, ref_text: str, *, all_tags: bool = False,
               progress: Progress | None = None,
               credentials: tuple[str, str] | None = None) -> list[PushResult]:
    """``docker push``: one tag (``latest`` by default) or every tag of the repository."""
    emit = progress or _noop
    ref = parse_reference(ref_text)
    if ref.digest:
        raise InvalidArgument("cannot push a digest reference; push a tag")
    if all_tags:
        if ref.tag:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        prefix = ref.name + ":"
        tags = sorted(r["name"][len(prefix):] for r in svc.db.query(
            "SELECT name FROM tags WHERE name LIKE ?", (prefix.replace("%", "") + "%",))
            if r["name"].startswith(prefix))
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: "
                           f"{ref.familiar_name}")
    else:
        tags = [ref.tag or "latest"]
        svc.resolve(f"{ref.name}:{tags[0]}")   # docker checks locally first
        if not ref.tag:
            emit({"status": "Using default tag: latest"})
    uploads = _cfg_int(svc, "max_concurrent_uploads", 5)
    client = new_client(svc, ref.domain, push=True, pool=uploads + 2,
                        credentials=credentials)
    try:
        emit({"status": f"The push refers to repository [{ref.name}]"})
        pusher = Pusher(svc, client, ref, emit, uploads)
        return [pusher.push(tag) for tag in tags]
    finally:
        client.close()
