"""Raw image rows: what recording an image writes to the database, in the caller's
transaction.

``ImageService.create_image`` serialises a config it was given; ``berth load`` must keep
the config's bytes (its digest is the image ID) and, when the archive carried one, the
image manifest's bytes (so ``push`` re-creates the archive's manifest digest).  Both end
in the same rows: ``layers`` for newly unpacked layers, one ``images`` row, its
``image_layers`` and ``tags``.  These helpers write exactly those rows and nothing else;
blobs must already be in the content store and layers unpacked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdk.images.service import LayerRecord

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def oci_manifest(config_digest: str, config_size: int, layers: Sequence[LayerRecord]) -> bytes:
    """berth's own OCI image manifest for an image without one (compact JSON)."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": lr.media_type, "digest": lr.blob_digest,
                    "size": lr.blob_size} for lr in layers],
    }, separators=(",", ":")).encode()


def insert_layers(conn: sqlite3.Connection, chain: Sequence[LayerRecord],
                  only: Iterable[str] | None = None) -> None:
    """Record the layers of ``chain`` (each with its parent), or only the chain IDs in
    ``only`` (the layers this caller unpacked)."""
    wanted = None if only is None else set(only)
    for pos, lr in enumerate(chain):
        if wanted is not None and lr.chain_id not in wanted:
            continue
        conn.execute("INSERT OR REPLACE INTO layers VALUES (?,?,?,?,?,?,?)",
                     (lr.chain_id, lr.diff_id, chain[pos - 1].chain_id if pos else None,
                      lr.blob_digest, lr.media_type, lr.blob_size, lr.size))


def create_image_raw(conn: sqlite3.Connection, image_id: str, *, created: str,
                     layers: Sequence[LayerRecord], manifest_digest: str,
                     parent: str | None = None, adopt_manifest: bool = False) -> None:
    """Record image ``image_id`` (its config already stored under that digest).

    An image recorded before keeps its row; ``adopt_manifest`` makes it use
    ``manifest_digest`` from now on (the manifest a push will send byte-exact), and a
    ``parent`` given replaces the one it had (as docker load's SetParent does).
    """
    conn.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?)",
                 (image_id, created, sum(lr.size for lr in layers),
                  layers[-1].chain_id if layers else None, parent or None, manifest_digest,
                  time.time()))
    if adopt_manifest:
        conn.execute("UPDATE images SET manifest_digest=? WHERE id=?",
                     (manifest_digest, image_id))
    if parent:
        conn.execute("UPDATE images SET parent=? WHERE id=?", (parent, image_id))
    conn.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
    conn.executemany("INSERT INTO image_layers VALUES (?,?,?)",
                     [(image_id, i, lr.chain_id) for i, lr in enumerate(layers)])


def set_tag(conn: sqlite3.Connection, full_tag: str, image_id: str) -> str | None:
    """Point ``full_tag`` (``docker.io/library/x:latest``) at ``image_id``; returns the
    image it pointed at before when that was another one."""
    row = conn.execute("SELECT image_id FROM tags WHERE name=?", (full_tag,)).fetchone()
    conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (full_tag, image_id))
    if row is not None and row[0] != image_id:
        return str(row[0])
    return None
