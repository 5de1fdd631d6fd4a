"""``builder prune``: remove the build cache (docker's ``POST /build/prune``).

The classic builder's cache is the step records under ``build-cache/steps`` and the
intermediate (untagged) images they point to.  An entry is

- *stale* when its image is gone (``rmi``, ``image prune -a``): always removed;
- *in use* when its image is tagged or a container uses it: its image always stays,
  the record is removed only with ``all``;
- *an ancestor* when its image is untagged but a tagged image or a container's image
  builds on it: kept, removed with ``all`` (the layers stay with the image on top);
- *dangling* otherwise (a failed build's steps, an untagged or since retagged build):
  removed.

``until`` keeps entries created after the given time.  The content-hash memo of
context files (``files.json``) loses the paths that no longer exist (all of it, and
the kept bodies of COPY heredocs, with ``all``).  Nothing that a container or a
tagged image needs is ever removed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdk.build.cache import StepCache
from sdk.errors import InvalidArgument

if TYPE_CHECKING:
    from sdk.engine import Engine


@dataclass
class PruneReport:
    caches_deleted: list[str] = field(default_factory=list)
    space_reclaimed: int = 0

    def as_api(self) -> dict[str, Any]:
        return {"CachesDeleted": self.caches_deleted or None,
                "SpaceReclaimed": self.space_reclaimed}


def parse_prune_filters(filters: dict[str, Any] | None) -> float | None:
    """The ``until`` filter as a Unix time (None: no filter); other filters fail."""
    from sdk._internal.timefmt import parse_timestamp
    from sdk.models.filters import normalize

    f = normalize(filters, frozenset({"until"}))
    if "until" not in f:
        return None
    if len(f["until"]) > 1:
        raise InvalidArgument("filters expect only one value for until")
    return parse_timestamp(f["until"][0], time.time())


def prune_build_cache(engine: Engine, *, all_cache: bool = False,
                      until: float | None = None) -> PruneReport:
    from sdk._internal.timefmt import parse_rfc3339

    store = engine.image_store
    cache = StepCache(engine.root)
    rows = {r["Id"]: r for r in store.summaries()}
    needed: set[str] = set()           # ancestors of tagged images and containers' images
    for row in rows.values():
        if row["RepoTags"] or row["Containers"]:
            parent = row["ParentId"]
            while parent and parent not in needed:
                needed.add(parent)
                parent = rows[parent]["ParentId"] if parent in rows else ""
    report = PruneReport()
    doomed_images: list[str] = []
    for key, image_id, mtime in cache.records():
        row = rows.get(image_id)
        if row is None:                                   # stale: the image is gone
            if until is None or mtime < until:
                cache.drop(key)
                report.caches_deleted.append(key)
            continue
        if until is not None and parse_rfc3339(row["Created"]) >= until:
            continue
        if row["RepoTags"] or row["Containers"]:
            if all_cache:
                cache.drop(key)
                report.caches_deleted.append(key)
            continue
        if image_id in needed and not all_cache:
            continue
        cache.drop(key)
        report.caches_deleted.append(key)
        if image_id not in doomed_images:
            doomed_images.append(image_id)
    report.space_reclaimed = _remove_images(engine, doomed_images)
    _prune_file_hashes(cache, everything=all_cache and until is None)
    return report


def _remove_images(engine: Engine, image_ids: list[str]) -> int:
    """Remove the images; returns the bytes of the layers that went."""
    from sdk.errors import SdkError

    store = engine.image_store
    layers: dict[str, int] = {}
    for image_id in image_ids:
        for lr in store.layer_chain(image_id):
            layers[lr.chain_id] = lr.size
    for image_id in image_ids:
        if engine.container_store.names_using_image(image_id):
            continue                       # a container was created meanwhile
        try:
            store.remove(image_id, force=False)
        except SdkError:
            continue
    return sum(size for chain_id, size in layers.items()
               if not _layer_exists(engine, chain_id))


def _layer_exists(engine: Engine, chain_id: str) -> bool:
    return engine.image_store.db.one("SELECT 1 FROM layers WHERE chain_id=?",
                                     (chain_id,)) is not None


def _prune_file_hashes(cache: StepCache, *, everything: bool) -> None:
    path = cache.files_path
    if everything:      # and the bodies of COPY heredocs kept for rebuilds
        import shutil

        path.unlink(missing_ok=True)
        shutil.rmtree(path.parent / "heredoc", ignore_errors=True)
        return
    try:
        files = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    kept = {p: v for p, v in files.items() if os.path.exists(p)}
    if len(kept) != len(files):
        tmp = path.with_name(f".files-{os.getpid()}.json")
        tmp.write_text(json.dumps(kept, separators=(",", ":")))
        os.replace(tmp, path)
