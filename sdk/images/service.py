"""Image records: import, resolve, tag, inspect, list, remove.

An image is a config blob in the content store plus a chain of unpacked layers in the
layer store; the database holds the tags and which layers each image uses, so a layer
shared by many images is unpacked and stored once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from sdk._internal.arch import goarch
from sdk._internal.reference import parse_reference
from sdk._internal.timefmt import now_rfc3339
from sdk.content.store import ContentStore
from sdk.errors import Conflict, ImageNotFound, InvalidArgument
from sdk.events import record as log_event
from sdk.images.changes import apply_changes
from sdk.snapshots.layers import LayerStore, StagedLayer
from sdk.store.db import Database

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    blob_digest: str
    media_type: str
    blob_size: int
    size: int


def normalize_tag(ref: str) -> str:
    """Full name with tag, e.g. ``docker.io/library/busybox:latest``."""
    parsed = parse_reference(ref)
    if parsed.digest and not parsed.tag:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
    return f"{parsed.full_name}:{parsed.tag or 'latest'}"


def familiar(full: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    if full.startswith("docker.io/library/") and "/" not in full[18:]:
        return full[18:]
    if full.startswith("docker.io/"):
        return full[10:]
    return full


class ImageService:
    def __init__(self, db: Database, content: ContentStore, layers: LayerStore,
                 driver: str, registry_config: Any = None) -> None:
        self.db = db
        self.content = content
        self.layers = layers
        self.driver = driver
        #: daemon.json (registry-mirrors, insecure-registries, ...) for pull/push; None
        #: pulls with the defaults
        self.registry_config = registry_config

    # ---- creating -----------------------------------------------------------------
    def add_layer(self, stream: IO[bytes], parent: LayerRecord | None) -> LayerRecord:
        """Store an uncompressed-or-compressed layer tar and unpack it once."""
        from sdk.diff.apply import open_decompressed

        plain = open_decompressed(stream)
        with self.content.writer() as writer:
            while chunk := plain.read(1 << 20):
                writer.write(chunk)
            blob_digest, blob_size = writer.commit()
        diff_id = blob_digest
        cid = diff_id if parent is None else _chain(parent.chain_id, diff_id)
        existing = self.db.one("SELECT * FROM layers WHERE chain_id=?", (cid,))
        if existing and self.layers.exists(cid):
            return _layer_from_row(existing)
        with self.content.open(blob_digest) as blob:
            result = self.layers.create(cid, parent.chain_id if parent else None, blob)
        if result.diff_id != diff_id:
            self.layers.remove(cid)
            raise InvalidArgument(f"layer content changed while unpacking: {result.diff_id}")
        record = LayerRecord(cid, diff_id, blob_digest, OCI_LAYER_TAR, blob_size,
                             self.layers.size(cid))
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO layers VALUES (?,?,?,?,?,?,?)",
                         (record.chain_id, record.diff_id,
                          parent.chain_id if parent else None, record.blob_digest,
                          record.media_type, record.blob_size, record.size))
        return record

    def add_blob_layer(self, blob_digest: str, media_type: str, diff_id: str,
                       parent: LayerRecord | None, staged: StagedLayer | None = None
                       ) -> LayerRecord:
        """Unpack a layer whose (compressed) blob is already in the content store.

        The blob stays as pulled (its digest and media type are what the manifest
        names, so a push gives the same digests); the DiffID of the decompressed tar
        must equal ``diff_id`` (from the image config) or nothing is kept.  Unpacking
        one chain id is serialised across processes with ``flock``.  ``staged``: the
        layer already unpacked by ``LayerStore.stage`` (``pull``), published here.
        """
        from sdk.content.digest import check_digest

        check_digest(diff_id, "diff id")
        cid = diff_id if parent is None else _chain(parent.chain_id, diff_id)
        with self.lock("layer", cid):
            existing = self.db.one("SELECT * FROM layers WHERE chain_id=?", (cid,))
            if existing and self.layers.exists(cid):
                if staged is not None:
                    self.layers.discard(staged)
                return _layer_from_row(existing)
            had_layer = self.layers.exists(cid)
            if staged is not None:
                if staged.result.diff_id != diff_id:
                    self.layers.discard(staged)
                    had_layer = True        # nothing was published: nothing to remove
                    result = staged.result
                else:
                    result = self.layers.commit_staged(staged, cid,
                                                       parent.chain_id if parent else None)
            else:
                with self.content.open(blob_digest) as blob:
                    result = self.layers.create(cid, parent.chain_id if parent else None,
                                                blob)
            if result.diff_id != diff_id:
                if not had_layer:
                    self.layers.remove(cid)
                raise InvalidArgument(f"layer {blob_digest}: DiffID mismatch: the image "
                                      f"config says {diff_id}, the content is "
                                      f"{result.diff_id}")
            record = LayerRecord(cid, diff_id, blob_digest, media_type,
                                 self.content.size(blob_digest), self.layers.size(cid))
            with self.db.write() as conn:
                conn.execute("INSERT OR IGNORE INTO layers VALUES (?,?,?,?,?,?,?)",
                             (record.chain_id, record.diff_id,
                              parent.chain_id if parent else None, record.blob_digest,
                              record.media_type, record.blob_size, record.size))
            return record

    def lock(self, kind: str, digest: str) -> Any:
        """An exclusive cross-process lock for one blob or chain id (striped files)."""
        from sdk.content.digest import check_digest

        return _FileLock(self.content.root / "locks" / f"{kind}-{check_digest(digest)[:2]}")

    def record_pulled(self, config_bytes: bytes, layers: list[LayerRecord], *,
                      manifest: bytes, repository: str, digest: str,
                      tag: str | None = None, adopt_manifest: bool = True) -> str:
        """Record a pulled image with its config and manifest byte-exact; returns its ID.

        ``manifest`` is the image manifest (kept so a push re-creates the same digest);
        ``digest`` is what was resolved from the registry (the index's digest for a
        multi-platform image): the RepoDigest, ``repository@digest``.
        """
        config = json.loads(config_bytes)
        image_id = self.content.put_bytes(config_bytes)
        manifest_digest = self.content.put_bytes(manifest)
        full_tag = normalize_tag(f"{repository}:{tag}") if tag else None
        size = sum(lr.size for lr in layers)
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?)",
                (image_id, config.get("created") or now_rfc3339(), size,
                 layers[-1].chain_id if layers else None, None, manifest_digest,
                 time.time()))
            if adopt_manifest:
                conn.execute("UPDATE images SET manifest_digest=? WHERE id=?",
                             (manifest_digest, image_id))
            conn.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
            conn.executemany("INSERT INTO image_layers VALUES (?,?,?)",
                             [(image_id, i, lr.chain_id) for i, lr in enumerate(layers)])
            conn.execute("DELETE FROM image_repo_digests WHERE image_id=? AND repository=?",
                         (image_id, repository))
            conn.execute("INSERT OR REPLACE INTO image_repo_digests VALUES (?,?,?,?)",
                         (image_id, repository, digest, manifest_digest))
            if full_tag:
                conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (full_tag, image_id))
            log_event(conn, "image", "pull", image_id,
                      {"name": familiar(full_tag) if full_tag else f"{repository}@{digest}"})
        return image_id

    def record_pushed(self, image_id: str, repository: str, digest: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO image_repo_digests VALUES (?,?,?,?)",
                         (image_id, repository, digest, digest))
            log_event(conn, "image", "push", image_id, {"name": familiar(repository)})

    def repo_digests(self, image_id: str) -> list[tuple[str, str]]:
        """``[(repository, digest)]`` this image was pulled from or pushed to."""
        rows = self.db.query("SELECT repository, digest FROM image_repo_digests WHERE "
                             "image_id=? ORDER BY repository", (image_id,))
        return [(r["repository"], r["digest"]) for r in rows]

    def manifest_for_push(self, image_id: str) -> tuple[bytes, str]:
        """The image manifest to push (as pulled, or berth's own) and its media type."""
        row = self.db.one("SELECT manifest_digest FROM images WHERE id=?", (image_id,))
        if row is None:
            raise ImageNotFound(f"No such image: {image_id}")
        raw: bytes | None = None
        if row["manifest_digest"] and self.content.exists(row["manifest_digest"]):
            raw = self.content.read_bytes(row["manifest_digest"])
        if raw is None:
            raise ImageNotFound(f"image {image_id[7:19]} has no manifest to push")
        media = json.loads(raw).get("mediaType") or OCI_MANIFEST
        return raw, media

    def create_image(self, config: dict[str, Any], layers: list[LayerRecord],
                     tags: Iterable[str] = (), parent: str = "") -> str:
        """Write the config (and an OCI manifest) and record the image; returns its ID."""
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_digest = self.content.put_bytes(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                       "size": len(config_bytes)},
            "layers": [{"mediaType": lr.media_type, "digest": lr.blob_digest,
                        "size": lr.blob_size} for lr in layers],
        }
        manifest_digest = self.content.put_bytes(
            json.dumps(manifest, separators=(",", ":")).encode())
        size = sum(lr.size for lr in layers)
        full_tags = [normalize_tag(t) for t in tags]
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?)",
                (config_digest, config.get("created", now_rfc3339()), size,
                 layers[-1].chain_id if layers else None, parent or None, manifest_digest,
                 time.time()))
            conn.execute("DELETE FROM image_layers WHERE image_id=?", (config_digest,))
            conn.executemany("INSERT INTO image_layers VALUES (?,?,?)",
                             [(config_digest, i, lr.chain_id) for i, lr in enumerate(layers)])
            for tag in full_tags:
                conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (tag, config_digest))
        return config_digest

    def import_tar(self, stream: IO[bytes], *, tag: str | None = None,
                   changes: list[str] | None = None, message: str = "",
                   source: str = "-") -> str:
        """``docker import``: one layer from a (compressed) tarball plus a fresh config."""
        if tag:
            normalize_tag(tag)   # validate before doing any work
        base_cfg = apply_changes({}, changes or [])
        layer = self.add_layer(stream, None)
        created = now_rfc3339()
        history: dict[str, Any] = {"created": created, "created_by": "", "comment":
                                   message or f"Imported from {source}"}
        config = {
            "architecture": goarch(), "os": "linux", "created": created,
            "config": base_cfg,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [history],
        }
        if message:
            config["comment"] = message
        return self.create_image(config, [layer], [tag] if tag else [])

    # ---- reading ------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """Image ID for a name, tag, full ID or unique ID prefix."""
        if not ref:
            raise InvalidArgument("image name must not be empty")
        candidate = ref[7:] if ref.startswith("sha256:") else ref
        if 1 <= len(candidate) <= 64 and set(candidate) <= HEX:
            rows = self.db.query("SELECT id FROM images WHERE id LIKE ?",
                                 (f"sha256:{candidate}%",))
            if len(rows) == 1:
                return str(rows[0]["id"])
            if len(rows) > 1 and len(candidate) < 64:
                raise Conflict(f"image ID prefix {ref!r} is ambiguous: use more characters")
        try:
            full = normalize_tag(ref)
        except InvalidArgument:
            if ref.startswith("sha256:"):
                raise ImageNotFound(f"No such image: {ref}") from None
            raise
        row = self.db.one("SELECT image_id FROM tags WHERE name=?", (full,))
        if row is None:
            raise ImageNotFound(f"No such image: {ref}")
        return str(row["image_id"])

    def ensure_local(self, ref: str, pull: str = "missing", *, progress: Any = None,
                     platform: str | None = None, on_missing: Any = None) -> str:
        """The image ID for ``ref``; ``pull`` is docker's missing|always|never."""
        if pull not in ("always", "missing", "never"):
            raise InvalidArgument(f'invalid pull option: "{pull}": must be one of "always", '
                                  '"missing" or "never"')
        if pull != "always":
            try:
                return self.resolve(ref)
            except ImageNotFound:
                if pull == "never":
                    raise
            if on_missing is not None:
                on_missing(ref)
        from sdk.distribution.pull import pull_image

        ids = pull_image(self, ref, platform=platform, progress=progress)
        return ids[0]

    def config(self, image_id: str) -> dict[str, Any]:
        return json.loads(self.content.read_bytes(image_id))

    def layer_chain(self, image_id: str) -> list[LayerRecord]:
        rows = self.db.query(
            "SELECT l.* FROM image_layers il JOIN layers l ON l.chain_id=il.chain_id "
            "WHERE il.image_id=? ORDER BY il.position", (image_id,))
        return [_layer_from_row(r) for r in rows]

    def top_layer(self, image_id: str) -> str | None:
        row = self.db.one("SELECT top_layer FROM images WHERE id=?", (image_id,))
        if row is None:
            raise ImageNotFound(f"No such image: {image_id}")
        return row["top_layer"]

    def tags_of(self, image_id: str) -> list[str]:
        rows = self.db.query("SELECT name FROM tags WHERE image_id=? ORDER BY name",
                             (image_id,))
        return [familiar(r["name"]) for r in rows]

    def exists(self, image_id: str) -> bool:
        return self.db.one("SELECT 1 FROM images WHERE id=?", (image_id,)) is not None

    def inspect(self, image_id: str) -> dict[str, Any]:
        row = self.db.one("SELECT * FROM images WHERE id=?", (image_id,))
        if row is None:
            raise ImageNotFound(f"No such image: {image_id}")
        cfg = self.config(image_id)
        layers = self.layer_chain(image_id)
        graph: dict[str, Any] = {"Name": self.driver, "Data": {}}
        if layers and self.driver == "overlay":
            dirs = [str(d) for d in self.layers.lower_dirs(layers[-1].chain_id)]
            graph["Data"] = {"UpperDir": dirs[0], "LowerDir": ":".join(dirs[1:])} \
                if len(dirs) > 1 else {"UpperDir": dirs[0]}
        return {
            "Id": image_id,
            "RepoTags": self.tags_of(image_id),
            "RepoDigests": [f"{familiar(r)}@{d}" for r, d in self.repo_digests(image_id)],
            "Parent": row["parent"] or "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created", row["created"]),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config", {}),
            "Architecture": cfg.get("architecture", goarch()),
            "Os": cfg.get("os", "linux"),
            "Size": row["size"],
            "GraphDriver": graph,
            "RootFS": {"Type": "layers", "Layers": [lr.diff_id for lr in layers]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def list_ids(self) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM images ORDER BY added DESC")]

    def summaries(self) -> list[dict[str, Any]]:
        """Rows for ``images``: one per image with its tags, newest first."""
        tags: dict[str, list[str]] = {}
        for r in self.db.query("SELECT name, image_id FROM tags ORDER BY name"):
            tags.setdefault(r["image_id"], []).append(familiar(r["name"]))
        used = {r["image_id"]: r["n"] for r in self.db.query(
            "SELECT image_id, count(*) AS n FROM containers GROUP BY image_id")}
        out = []
        for r in self.db.query("SELECT * FROM images ORDER BY added DESC"):
            out.append({"Id": r["id"], "RepoTags": tags.get(r["id"], []), "Created":
                        r["created"], "Size": r["size"], "ParentId": r["parent"] or "",
                        "Containers": used.get(r["id"], 0), "Added": r["added"]})
        return out

    # ---- changing -----------------------------------------------------------------
    def tag(self, ref: str, target: str) -> None:
        image_id = self.resolve(ref)
        full = normalize_tag(target)
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (full, image_id))
            log_event(conn, "image", "tag", image_id, {"name": familiar(full)})

    def remove(self, ref: str, *, force: bool = False, prune: bool = True,
               containers_using: Any = None) -> list[dict[str, str]]:
        """``docker rmi``: untag a name; delete the image when no name is left.

        ``containers_using(image_id)`` returns names of containers that use the image.
        """
        image_id = self.resolve(ref)
        events: list[dict[str, str]] = []
        by_name = not (ref.startswith("sha256:") or image_id[7:].startswith(ref))
        tags = [r["name"] for r in self.db.query("SELECT name FROM tags WHERE image_id=?",
                                                 (image_id,))]
        users = containers_using(image_id) if containers_using else []
        if by_name and len(tags) > 1:
            full = normalize_tag(ref)
            with self.db.write() as conn:
                conn.execute("DELETE FROM tags WHERE name=?", (full,))
                log_event(conn, "image", "untag", image_id, {"name": familiar(full)})
            return [{"Untagged": familiar(full)}]
        if users and not force:
            raise Conflict(
                f"conflict: unable to remove repository reference \"{ref}\" (must force) - "
                f"container {users[0]} is using its referenced image {image_id[7:19]}"
                if by_name else
                f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                f"being used by stopped container {users[0]}")
        if not by_name and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
                           "image is referenced in multiple repositories")
        with self.db.write() as conn:
            for t in tags:
                conn.execute("DELETE FROM tags WHERE name=?", (t,))
                events.append({"Untagged": familiar(t)})
                log_event(conn, "image", "untag", image_id, {"name": familiar(t)})
            if users:
                return events     # forced: untag only, keep what containers need
            layers = self.layer_chain(image_id)
            conn.execute("DELETE FROM images WHERE id=?", (image_id,))
            events.append({"Deleted": image_id})
            log_event(conn, "image", "delete", image_id, {"name": image_id})
        if prune:
            self._delete_unused(layers)
        return events

    def _delete_unused(self, layers: list[LayerRecord]) -> None:
        for lr in reversed(layers):
            in_use = self.db.one("SELECT 1 FROM image_layers WHERE chain_id=? LIMIT 1",
                                 (lr.chain_id,))
            if in_use:
                continue
            with self.db.write() as conn:
                conn.execute("DELETE FROM layers WHERE chain_id=?", (lr.chain_id,))
            self.layers.remove(lr.chain_id)
            if not self.db.one("SELECT 1 FROM layers WHERE blob_digest=?", (lr.blob_digest,)):
                self.content.delete(lr.blob_digest)
                self._delete_compressed(lr.blob_digest)

    def _delete_compressed(self, blob_digest: str) -> None:
        """Drop the gzip blob ``push`` made of a deleted plain blob, unless a layer still
        names that gzip blob as its own (an image pulled with it)."""
        rows = self.db.query("SELECT digest FROM compressed_blobs WHERE blob_digest=?",
                             (blob_digest,))
        if not rows:
            return
        with self.db.write() as conn:
            conn.execute("DELETE FROM compressed_blobs WHERE blob_digest=?", (blob_digest,))
        for row in rows:
            if not self.db.one("SELECT 1 FROM layers WHERE blob_digest=?", (row["digest"],)):
                self.content.delete(row["digest"])


class _FileLock:
    """``flock`` on a file, as a context manager."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _FileLock:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        os.close(self._fd)      # closing releases the lock
        self._fd = -1


def _chain(parent_chain: str, diff_id: str) -> str:
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def _layer_from_row(row: Any) -> LayerRecord:
    return LayerRecord(row["chain_id"], row["diff_id"], row["blob_digest"], row["media_type"],
                       row["blob_size"], row["size"])

