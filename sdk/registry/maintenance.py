"""Garbage collection, scrub and upload purge for a registry's storage.

GC is mark-and-sweep over the filesystem and is safe while the server keeps accepting
pushes: nothing modified after ``start - grace`` is deleted (every upload, mount,
manifest PUT and link touches the blobs it uses), so a layer pushed just before its
manifest survives.  Marking follows tags (and, unless ``delete_untagged``, every
revision), index children and referrers (manifests whose ``subject`` is kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

from sdk.registry.names import Digest, parse_digest
from sdk.registry.storage import Storage


@dataclass
class GcReport:
    marked: int = 0
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)    # "repo@digest"
    freed_bytes: int = 0
    skipped_recent: int = 0


def _refs(storage: Storage, d: Digest) -> tuple[list[Digest], list[Digest], Digest | None]:
    """(blobs, child manifests, subject) referenced by manifest ``d``."""
    try:
        doc = json.loads(storage.read_blob(d))
    except (OSError, ValueError):
        return [], [], None
    if not isinstance(doc, dict):
        return [], [], None
    blobs, children = [], []
    descs = [doc.get("config")] + list(doc.get("layers") or [])
    for desc in descs:
        if isinstance(desc, dict) and (x := parse_digest(str(desc.get("digest", "")))):
            blobs.append(x)
    for desc in doc.get("manifests") or []:
        if isinstance(desc, dict) and (x := parse_digest(str(desc.get("digest", "")))):
            children.append(x)
    subject = None
    if isinstance(doc.get("subject"), dict):
        subject = parse_digest(str(doc["subject"].get("digest", "")))
    return blobs, children, subject


def garbage_collect(storage: Storage, dry_run: bool = False, delete_untagged: bool = False,
                    grace: float = 3600.0) -> GcReport:
    start = time.time()
    cutoff = start - grace
    report = GcReport()
    marked: set[Digest] = set()
    for name in storage.catalog():
        revisions = dict(storage.iter_revisions(name))
        keep: set[Digest] = {d for _, d in storage.tags_with_targets(name) if d in revisions}
        if not delete_untagged:
            keep |= set(revisions)
        else:
            # untagged but recent revisions may belong to a push in progress
            keep |= {d for d, p in revisions.items() if _mtime(p) >= cutoff}
        subjects: dict[Digest, Digest] = {}
        info = {d: _refs(storage, d) for d in revisions}
        for d, (_, _, subj) in info.items():
            if subj is not None:
                subjects[d] = subj
        changed = True
        while changed:                      # children and referrers of kept manifests
            changed = False
            for d in list(keep):
                for child in info.get(d, ([], [], None))[1]:
                    if child in revisions and child not in keep:
                        keep.add(child)
                        changed = True
            for d, subj in subjects.items():
                if subj in keep and d not in keep:
                    keep.add(d)
                    changed = True
        for d in revisions:
            if d in keep:
                marked.add(d)
                blobs, children, _ = info[d]
                marked.update(blobs)
                marked.update(children)
            else:
                report.deleted_manifests.append(f"{name}@{d}")
                if not dry_run:
                    subj = subjects.get(d)
                    if subj is not None:
                        storage.remove_referrer(name, subj, d)
                    storage.delete_manifest(name, d)
    report.marked = len(marked)
    swept: set[Digest] = set()
    for d, path in storage.iter_blobs():
        if d in marked:
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_mtime >= cutoff:
            report.skipped_recent += 1
            continue
        report.deleted_blobs.append(str(d))
        report.freed_bytes += st.st_size
        swept.add(d)
        # re-check right before unlinking: a push may have touched it meanwhile
        if not dry_run and _mtime(path) < cutoff:
            storage.delete_blob(d)
    if not dry_run and swept:
        for name in storage.catalog():
            for d in list(storage.iter_layer_links(name)):
                if d in swept and not storage.blob_exists(d):
                    storage.unlink_blob(name, d)
    return report


def _mtime(path: os.PathLike[str] | str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@dataclass
class ScrubReport:
    checked: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)     # "digest: actual sha"


def scrub(storage: Storage) -> ScrubReport:
    report = ScrubReport()
    for d, path in storage.iter_blobs():
        h = hashlib.new(d.algorithm)
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    report.bytes += len(chunk)
        except OSError as exc:
            report.corrupt.append(f"{d}: unreadable ({exc.strerror})")
            continue
        report.checked += 1
        if h.hexdigest() != d.hex:
            report.corrupt.append(f"{d}: content hashes to {d.algorithm}:{h.hexdigest()}")
    return report
