"""``pull``: resolve a reference, verify everything, download in parallel, unpack in order.

Guarantees:

* the manifest's bytes hash to the digest asked for (or recorded, for a tag); every
  blob is hashed and size-checked while it streams into the content store, which only
  publishes it after the check (atomic rename); each layer's DiffID is checked after
  decompression, while unpacking;
* blobs already in the content store are not fetched again, and two processes pulling
  the same blob serialise on a lock, so the second finds it present;
* layers download in parallel (``max-concurrent-downloads``); with the overlay driver
  each layer is unpacked while it downloads (``BlobTee``), several layers at once,
  each into its own staging dir; the main thread publishes them in chain order once
  all are verified (vfs needs the parent's tree first: it unpacks in order after the
  downloads);
* where two or more big layers are to be unpacked, each big one unpacks in a child
  process (``sdk.diff.worker``), so they use every core instead of taking turns on the
  GIL (``_plan``);
* any mismatch aborts before the image or its tag is recorded; staged layers that
  were not published are deleted (``.tmp-<pid>-*``: a crash leaves them to
  ``cleanup_partial``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdk._internal.reference import Reference, parse_docker_ref, parse_reference
from sdk.distribution.auth import scope_for
from sdk.distribution.manifest import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    Descriptor,
    Manifest,
    Platform,
    parse_manifest,
    parse_platform,
    select_platform,
)
from sdk.distribution.tee import BlobTee, Cancelled, Restart
from sdk.distribution.transport import RegistryClient, RegistryError, Unreachable
from sdk.errors import ImageNotFound, InvalidArgument, SdkError

if TYPE_CHECKING:
    from sdk.images.service import ImageService, LayerRecord
    from sdk.snapshots.layers import StagedLayer

Progress = Callable[[dict[str, Any]], None]
MAX_CONFIG_BYTES = 16 << 20
_CHUNK = 1 << 20
#: bytes a download may run ahead of its layer's unpacker
_TEE_LIMIT = 16 << 20
#: at most this many layers unpacked at the same time
_UNPACKERS = 4


def _idle_cpus() -> int:
    try:
        return (os.cpu_count() or 1) - int(os.getloadavg()[0] + 0.5)
    except OSError:
        return 1


def _unpackers(layers: int, idle: int) -> int:
    """Unpack threads for ``layers`` layers: one per idle CPU, at least one.

    Unpacking is mostly Python work between syscalls, so threads only gain where there
    are idle cores; on a busy machine they fight over the GIL and a preempted GIL holder
    stalls them all (measured: 1 thread beat 2 and 4 at load ~8 on 2 CPUs).  Even one
    unpacker overlaps the downloads, and the downloads of layers it has not reached yet
    simply land in the content store.
    """
    return max(1, min(_UNPACKERS, idle, layers))


def _prefetch(unpackers: int, idle: int) -> bool:
    """Whether each unpacker inflates and hashes in a second thread (``Prefetch``):
    only when a core is left idle beside the unpackers (measured in docs/benchmarks.md:
    a gain at load 2-4 on 2 CPUs, a small loss at load 4-8)."""
    return idle > unpackers


@dataclass(frozen=True)
class UnpackPlan:
    """How a pull unpacks its layers: ``threads`` at once, the layers flagged in
    ``in_worker`` each in a child process, the others in-process (with ``Prefetch``
    when ``prefetch``)."""

    threads: int
    in_worker: tuple[bool, ...]
    prefetch: bool


def _plan(sizes: list[int], cpus: int, idle: int) -> UnpackPlan:
    """The plan for layers of compressed ``sizes`` (those to unpack): the big ones in
    child processes when ``worker_layers`` says so (up to ``_UNPACKERS`` at once,
    whatever the load: measured in docs/benchmarks.md, 0.62-0.74x of threads' time at
    load ~4 on 2 CPUs, 0.80-0.84x when idle), else threads by the idle-CPU rule."""
    from sdk.diff.worker import worker_layers

    in_worker = worker_layers(sizes, cpus)
    if any(in_worker):
        return UnpackPlan(max(1, min(_UNPACKERS, len(sizes))), in_worker, False)
    threads = _unpackers(len(sizes), idle)
    return UnpackPlan(threads, in_worker, _prefetch(threads, idle))


def _noop(_event: dict[str, Any]) -> None:
    pass


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def new_client(svc: ImageService, host: str, *, push: bool = False,
               pool: int = 8, credentials: tuple[str, str] | None = None) -> RegistryClient:
    """``credentials`` (the API's X-Registry-Auth) win over the stored ones."""
    from sdk.distribution.credentials import CredentialStore

    cfg = svc.registry_config
    insecure = tuple(getattr(cfg, "insecure_registries", ()) or ())
    mirrors = tuple(getattr(cfg, "registry_mirrors", ()) or ())
    creds = credentials or CredentialStore().get(host)
    return RegistryClient(host, insecure=insecure, mirrors=mirrors, credentials=creds,
                          push=push, pool=pool,
                          config_path=str(getattr(cfg, "path", "") or "daemon.json"))


def _cfg_int(svc: ImageService, name: str, default: int) -> int:
    value = getattr(svc.registry_config, name, default)
    return value if isinstance(value, int) and value > 0 else default


@dataclass
class PullResult:
    image_id: str
    digest: str
    fresh: bool


class Puller:
    """Pulls images of one repository from one registry client."""

    def __init__(self, svc: ImageService, client: RegistryClient, ref: Reference, *,
                 platform: Platform | None, progress: Progress, downloads: int,
                 attempts: int = 3) -> None:
        self.svc = svc
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.platform = platform
        self.progress = progress
        self.downloads = downloads
        self.attempts = attempts
        self.scopes = (scope_for(ref.path, "pull"),)
        self._cancel = threading.Event()
        #: inflate and hash in a thread beside each unpacker (set per pull)
        self._prefetch = False

    # ---- manifests --------------------------------------------------------------------
    def fetch_manifest(self, reference: str, what: str) -> Manifest:
        resp = self.client.request("GET", f"/v2/{self.repo}/manifests/{reference}",
                                   scopes=self.scopes, headers={"Accept": ACCEPT},
                                   stream=True)
        with resp:
            if resp.status_code != 200:
                raise self.client.fail(resp, repository=self.repo, what=what)
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                raise InvalidArgument(f"manifest for {what} on registry {self.client.host} "
                                      f"is too big: {length} bytes (limit 4 MiB)")
            raw = _read_capped(resp, MAX_MANIFEST_BYTES, f"manifest for {what}")
            ctype = resp.headers.get("Content-Type", "")
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        expected = reference if reference.startswith("sha256:") else ""
        manifest = parse_manifest(raw, ctype, expected)
        if not expected and header_digest.startswith("sha256:") and \
                header_digest != manifest.digest:
            raise InvalidArgument(f"manifest for {what} from registry {self.client.host}: "
                                  f"Docker-Content-Digest {header_digest} does not match "
                                  f"the content ({manifest.digest})")
        return manifest

    def resolve(self, reference: str, what: str) -> tuple[Manifest, str]:
        """The image manifest for ``reference`` and the digest it resolved to."""
        top = self.fetch_manifest(reference, what)
        if not top.is_index:
            return top, top.digest
        desc = select_platform(top, self.platform)
        child = self.fetch_manifest(desc.digest, f"{what} ({desc.digest})")
        if child.is_index:
            raise InvalidArgument(f"manifest list {top.digest} points to another index; "
                                  "nested indexes are not supported")
        if len(child.raw) != desc.size:
            raise InvalidArgument(f"manifest {desc.digest}: size {len(child.raw)} does not "
                                  f"match the index ({desc.size})")
        return child, top.digest

    # ---- blobs ------------------------------------------------------------------------
    def fetch_small_blob(self, desc: Descriptor, limit: int = MAX_CONFIG_BYTES) -> bytes:
        if desc.size > limit:
            raise InvalidArgument(f"blob {desc.digest} is too big ({desc.size} bytes)")
        content = self.svc.content
        if content.exists(desc.digest):
            return content.read_bytes(desc.digest)
        resp = self.client.request("GET", f"/v2/{self.repo}/blobs/{desc.digest}",
                                   scopes=self.scopes, stream=True)
        with resp:
            if resp.status_code != 200:
                raise self.client.fail(resp, repository=self.repo, what=f"blob {desc.digest}")
            data = _read_capped(resp, desc.size, f"blob {desc.digest}")
        with content.writer() as w:
            w.write(data)
            w.commit(desc.digest, desc.size)
        return data

    def download(self, desc: Descriptor, tee: BlobTee | None = None) -> None:
        """Stream one layer blob into the content store, verified; retried on I/O errors.

        With a ``tee`` the bytes also go to an unpacker as they arrive; whenever that
        copy cannot be complete (a retry, the blob was stored by another process, any
        error) the tee is failed with ``Restart`` and the unpacker reads the store.
        """
        sid = short_id(desc.digest)
        try:
            with self.svc.lock("blob", desc.digest):
                if self.svc.content.exists(desc.digest):
                    self.progress({"status": "Download complete", "id": sid,
                                   "progressDetail": {}})
                    return
                for attempt in range(1, self.attempts + 1):
                    try:
                        self._download_once(desc, sid, tee)
                        break
                    except _Transient as exc:
                        if tee is not None:
                            tee.fail(Restart("download retried"))
                            tee = None
                        if attempt == self.attempts or self._cancel.is_set():
                            raise Unreachable(f"downloading {desc.digest} from registry "
                                              f"{self.client.host} failed: {exc}") from None
                        self.progress({"status": f"Retrying in {attempt} second",
                                       "id": sid, "progressDetail": {}})
                        time.sleep(attempt)
        finally:
            if tee is not None:
                tee.fail(Restart("download ended"))     # no-op after a complete stream
        self.progress({"status": "Download complete", "id": sid, "progressDetail": {}})

    def _download_once(self, desc: Descriptor, sid: str, tee: BlobTee | None) -> None:
        import requests

        resp = self.client.request("GET", f"/v2/{self.repo}/blobs/{desc.digest}",
                                   scopes=self.scopes, stream=True)
        source = f"registry {self.client.host}"
        if resp.status_code != 200 and desc.urls:
            foreign = _open_foreign(desc)
            if foreign is not None:
                resp.close()
                resp, source = foreign
        with resp, self.svc.content.writer() as writer:
            if resp.status_code != 200:
                raise self.client.fail(resp, repository=self.repo, what=f"blob {desc.digest}")
            last = 0.0
            try:
                for chunk in resp.iter_content(_CHUNK):
                    if self._cancel.is_set():
                        raise _Cancelled()
                    writer.write(chunk)
                    if writer.size > desc.size:
                        raise InvalidArgument(
                            f"blob {desc.digest} from {source} is bigger "
                            f"than the {desc.size} bytes the manifest says")
                    if tee is not None:
                        tee.put(chunk)
                    now = time.monotonic()
                    if now - last > 0.1:
                        last = now
                        self.progress({"status": "Downloading", "id": sid, "progressDetail":
                                       {"current": writer.size, "total": desc.size}})
            except (requests.exceptions.ConnectionError,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.Timeout) as exc:
                raise _Transient(str(exc).splitlines()[0][:200]) from None
            if tee is not None:
                tee.finish()        # the unpacker still waits for this commit's verdict
            self.progress({"status": "Verifying Checksum", "id": sid, "progressDetail": {}})
            try:
                writer.commit(desc.digest, desc.size)
            except InvalidArgument as exc:
                raise InvalidArgument(f"{source}: {exc}") from None

    # ---- the pull ---------------------------------------------------------------------
    def pull(self, reference: str, tag: str | None) -> PullResult:
        shown = f"{self.ref.name}:{tag}" if tag else f"{self.ref.name}@{reference}"
        manifest, top_digest = self.resolve(reference, f"manifest for {shown}")
        assert manifest.config is not None
        config_bytes = self.fetch_small_blob(manifest.config)
        try:
            config = json.loads(config_bytes)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(f"image config {manifest.config.digest} is not a valid "
                                  "image config (rootfs.diff_ids missing)") from None
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"image {manifest.digest}: {len(manifest.layers)} layers "
                                  f"but {len(diff_ids)} DiffIDs in the config")
        if self.platform is not None and config.get("architecture") and \
                config.get("architecture") != self.platform.architecture:
            raise InvalidArgument(f"image {shown} is for {config.get('os')}/"
                                  f"{config.get('architecture')}, not {self.platform}")
        image_id = manifest.config.digest
        fresh = not (self.svc.exists(image_id)
                     and len(self.svc.layer_chain(image_id)) == len(diff_ids))
        layers = self._layers(manifest, diff_ids) if fresh else \
            self.svc.layer_chain(image_id)
        # the pulled manifest becomes the one pushed only when all its blobs are here
        adopt = all(self.svc.content.exists(d.digest) for d in manifest.layers)
        image_id = self.svc.record_pulled(config_bytes, layers, manifest=manifest.raw,
                                          repository=self.ref.name, digest=top_digest,
                                          tag=tag, adopt_manifest=adopt)
        return PullResult(image_id, top_digest, fresh)

    def _layers(self, manifest: Manifest, diff_ids: list[str]) -> list[LayerRecord]:
        from sdk.snapshots.layers import chain_id

        content = self.svc.content
        chains = [chain_id(diff_ids[:i + 1]) for i in range(len(diff_ids))]
        present, unpacked = [], []
        for desc, cid in zip(manifest.layers, chains, strict=True):
            if content.exists(desc.digest) and content.size(desc.digest) != desc.size:
                raise InvalidArgument(f"size mismatch for blob {desc.digest}: the manifest "
                                      f"says {desc.size} bytes, it has "
                                      f"{content.size(desc.digest)}")
            row = self.svc.db.one("SELECT blob_digest FROM layers WHERE chain_id=?", (cid,))
            ready = row is not None and self.svc.layers.exists(cid)
            here = ready and content.exists(desc.digest)
            present.append(here)
            unpacked.append(ready)
            self.progress({"status": "Already exists" if here else "Pulling fs layer",
                           "id": short_id(desc.digest), "progressDetail": {}})
        if self.svc.layers.stages_independently:
            return self._layers_parallel(manifest, diff_ids, present, unpacked)
        return self._layers_in_order(manifest, diff_ids, present)

    def _layers_parallel(self, manifest: Manifest, diff_ids: list[str], present: list[bool],
                         unpacked: list[bool]) -> list[LayerRecord]:
        """Download and unpack every missing layer at once; publish them in order."""
        content = self.svc.content
        downloads = ThreadPoolExecutor(max_workers=self.downloads, thread_name_prefix="pull")
        sizes = [d.size for d, ready in zip(manifest.layers, unpacked, strict=True)
                 if not ready]
        plan = _plan(sizes, os.cpu_count() or 1, _idle_cpus())
        self._prefetch = plan.prefetch
        in_worker = iter(plan.in_worker)
        unpackers = ThreadPoolExecutor(max_workers=plan.threads, thread_name_prefix="unpack")
        fetched: list[Future[None] | None] = []
        staging: list[Future[StagedLayer] | None] = []
        try:
            for desc, diff_id, here, ready in zip(manifest.layers, diff_ids, present,
                                                  unpacked, strict=True):
                need_blob = not here and not content.exists(desc.digest)
                tee = BlobTee(_TEE_LIMIT, self._cancel) if need_blob and not ready else None
                dl = downloads.submit(self.download, desc, tee) if need_blob else None
                fetched.append(dl)
                staging.append(None if ready else
                               unpackers.submit(self._stage, desc, diff_id, tee, dl,
                                                next(in_worker)))
            for fut in (*fetched, *staging):
                if fut is not None:     # the first failure cancels the rest at once
                    fut.add_done_callback(self._cancel_on_error)
            # publish only when every layer is verified and staged: a bad layer
            # anywhere leaves the layer store as it was
            for fut in (*fetched, *staging):
                if fut is not None:
                    fut.result()
            records: list[LayerRecord] = []
            parent: LayerRecord | None = None
            for desc, diff_id, st, here in zip(manifest.layers, diff_ids, staging, present,
                                               strict=True):
                staged = st.result() if st is not None else None
                parent = self.svc.add_blob_layer(desc.digest, desc.media_type, diff_id,
                                                 parent, staged=staged)
                records.append(parent)
                if not here:
                    self.progress({"status": "Pull complete", "id": short_id(desc.digest),
                                   "progressDetail": {}})
            return records
        except BaseException as exc:
            self._cancel.set()
            downloads.shutdown(wait=True, cancel_futures=True)
            unpackers.shutdown(wait=True, cancel_futures=True)
            for st in staging:          # staged but never published: drop
                if st is not None and st.done() and not st.cancelled() and \
                        st.exception() is None:
                    self.svc.layers.discard(st.result())
            raise _first_error([*fetched, *staging], exc) from None
        finally:
            downloads.shutdown(wait=True, cancel_futures=True)
            unpackers.shutdown(wait=True, cancel_futures=True)

    def _cancel_on_error(self, fut: Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._cancel.set()

    def _stage(self, desc: Descriptor, diff_id: str, tee: BlobTee | None,
               dl: Future[None] | None, in_worker: bool = False) -> StagedLayer:
        """Unpack one layer into a staging dir: from its download as it streams, else
        (or after a ``Restart``) from the verified blob in the store; in a child
        process when ``in_worker``.  Returns only once the blob is verified and stored,
        and the DiffID matches."""
        layers = self.svc.layers
        staged: StagedLayer | None = None
        sid = short_id(desc.digest)
        try:
            if tee is not None:
                tee.attach()
                try:
                    self.progress({"status": "Extracting", "id": sid, "progressDetail": {}})
                    staged = layers.stage(tee, prefetch=self._prefetch,
                                          in_worker=in_worker)
                except Restart:
                    pass
                finally:
                    tee.close()
            if dl is not None:
                dl.result()             # the blob's digest and size were verified
                self._raise_if_cancelled()
            if staged is None:
                self.progress({"status": "Extracting", "id": sid, "progressDetail": {}})
                with self.svc.content.open(desc.digest) as blob:
                    staged = layers.stage(blob, prefetch=self._prefetch,
                                          in_worker=in_worker)
        except Cancelled:
            if staged is not None:
                layers.discard(staged)
            raise _Cancelled() from None
        except BaseException:
            if staged is not None:
                layers.discard(staged)
            raise
        if staged.result.diff_id != diff_id:
            layers.discard(staged)
            raise InvalidArgument(f"layer {desc.digest}: DiffID mismatch: the image config "
                                  f"says {diff_id}, the content is {staged.result.diff_id}")
        return staged

    def _raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled()

    def _layers_in_order(self, manifest: Manifest, diff_ids: list[str],
                         present: list[bool]) -> list[LayerRecord]:
        """vfs: download in parallel, unpack in order (each layer copies its parent)."""
        content = self.svc.content
        pool = ThreadPoolExecutor(max_workers=self.downloads, thread_name_prefix="pull")
        futures: list[Future[None] | None] = []
        try:
            for desc, here in zip(manifest.layers, present, strict=True):
                futures.append(None if here or content.exists(desc.digest)
                               else pool.submit(self.download, desc))
            records: list[LayerRecord] = []
            parent: LayerRecord | None = None
            for desc, diff_id, fut, here in zip(manifest.layers, diff_ids, futures, present,
                                                strict=True):
                sid = short_id(desc.digest)
                if fut is not None:
                    fut.result()
                if not here:
                    self.progress({"status": "Extracting", "id": sid, "progressDetail": {}})
                parent = self.svc.add_blob_layer(desc.digest, desc.media_type, diff_id,
                                                 parent)
                records.append(parent)
                if not here:
                    self.progress({"status": "Pull complete", "id": sid,
                                   "progressDetail": {}})
            return records
        except BaseException:
            self._cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _open_foreign(desc: Descriptor) -> tuple[Any, str] | None:
    """A foreign layer the registry does not serve, from the first of its ``urls``
    that answers 200 (docker's order: the registry first, then the URLs).  Only http
    and https; never with the registry's credentials (a plain request, its own
    connection); the bytes are verified like any blob's."""
    import requests

    from sdk.distribution.transport import TIMEOUT, USER_AGENT

    for url in desc.urls:
        if not url.startswith(("http://", "https://")):
            continue
        try:
            resp = requests.get(url, stream=True, timeout=TIMEOUT,
                                headers={"User-Agent": USER_AGENT})
        except requests.exceptions.RequestException:
            continue
        if resp.status_code == 200:
            return resp, f"foreign URL {url.split('?')[0]}"
        resp.close()
    return None


def _first_error(futures: list[Any], fallback: BaseException) -> BaseException:
    """The error to report: the first (in layer order) that is not a consequence of the
    cancellation another failure caused."""
    if not isinstance(fallback, (_Cancelled, Cancelled)):
        return fallback
    for fut in futures:
        if fut is None or not fut.done() or fut.cancelled():
            continue
        exc = fut.exception()
        if exc is not None and not isinstance(exc, (_Cancelled, Cancelled, Restart)):
            return exc
    return fallback


class _Transient(Exception):
    pass


class _Cancelled(SdkError):
    def __init__(self) -> None:
        super().__init__("download cancelled")


def _read_capped(resp: Any, limit: int, what: str) -> bytes:
    buf = bytearray()
    for chunk in resp.iter_content(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise InvalidArgument(f"{what} is bigger than {limit} bytes: refused")
    return bytes(buf)


def list_tags(client: RegistryClient, repo: str) -> list[str]:
    """Every tag of ``repo``, following ``Link: <...>; rel="next"`` pagination."""
    scopes = (scope_for(repo, "pull"),)
    path: str | None = f"/v2/{repo}/tags/list"
    tags: list[str] = []
    for _ in range(10000):
        if path is None:
            break
        resp = client.request("GET", path, scopes=scopes)
        if resp.status_code != 200:
            raise client.fail(resp, repository=repo, what=f"tags of {repo}")
        doc = resp.json()
        tags += [str(t) for t in (doc.get("tags") or [])]
        path = next_link(resp.headers.get("Link", ""))
    return tags


def next_link(header: str) -> str | None:
    """The ``rel="next"`` target of an RFC 5988 Link header."""
    for part in header.split(","):
        url, _, params = part.partition(";")
        url = url.strip()
        if url.startswith("<") and url.endswith(">") and \
                any(p.strip().replace(" ", "") in ('rel="next"', "rel=next")
                    for p in params.split(";")):
            return url[1:-1]
    return None


def pull_image(svc: ImageService, ref_text: str, *, platform: str | None = None,
               all_tags: bool = False, progress: Progress | None = None,
               credentials: tuple[str, str] | None = None) -> list[str]:
    """Pull ``ref_text`` (or every tag of its repository); returns the image IDs.

    Progress events are docker's JSON messages: ``{"status", "id", "progressDetail"}``.
    """
    emit = progress or _noop
    if all_tags:
        ref = parse_reference(ref_text)
        if not ref.is_name_only:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
    else:
        ref = parse_docker_ref(ref_text)
    plat = parse_platform(platform) if platform else None
    client = new_client(svc, ref.domain, pool=_cfg_int(svc, "max_concurrent_downloads", 3),
                        credentials=credentials)
    try:
        while True:
            try:
                return _pull_with(svc, client, ref, plat, emit, all_tags)
            except (ImageNotFound, Unreachable, RegistryError):
                if not client.on_mirror or not client.next_endpoint():
                    raise
    finally:
        client.close()


def _pull_with(svc: ImageService, client: RegistryClient, ref: Reference,
               plat: Platform | None, emit: Progress, all_tags: bool) -> list[str]:
    downloads = _cfg_int(svc, "max_concurrent_downloads", 3)
    attempts = _cfg_int(svc, "max_download_attempts", 5)
    puller = Puller(svc, client, ref, platform=plat, progress=emit, downloads=downloads,
                    attempts=attempts)
    if all_tags:
        tags = sorted(list_tags(client, ref.path))
        if not tags:
            raise ImageNotFound(f"repository {ref.familiar_name} on registry {client.host} "
                                "has no tags")
    else:
        tags = [ref.tag] if ref.tag else []
    out: list[str] = []
    fresh_any = False
    last = None
    for tag in tags or [None]:
        reference = tag or ref.digest
        emit({"status": f"Pulling from {ref.path}", "id": tag or ref.digest})
        result = puller.pull(reference, tag)
        emit({"status": f"Digest: {result.digest}"})
        out.append(result.image_id)
        fresh_any = fresh_any or result.fresh
        last = result
    shown = ref.familiar_name if all_tags else ref.familiar_string
    if last is not None:
        word = "Downloaded newer image for" if fresh_any else "Image is up to date for"
        emit({"status": f"Status: {word} {shown}"})
    return out
