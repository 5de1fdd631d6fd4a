"""``docker commit``: a container's writable layer and config become a new image."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from sdk.build.rootview import RootView

if TYPE_CHECKING:
    from sdk.engine import Engine

COMMIT_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
                  "WORKDIR", "STOPSIGNAL")


def commit(engine: Engine, ref: str, *, repository: str | None = None,
           author: str = "", message: str = "", changes: list[str] | None = None,
           pause: bool = True) -> str:
    from sdk._internal.arch import goarch
    from sdk._internal.timefmt import now_rfc3339
    from sdk.build.layer import write_tree_layer, write_upper_layer
    from sdk.errors import InvalidArgument
    from sdk.images.changes import apply_changes
    from sdk.images.service import normalize_tag

    if repository:
        normalize_tag(repository)
    for change in changes or []:
        word = change.strip().split(None, 1)[0].upper() if change.strip() else ""
        if word and word not in COMMIT_CHANGES:
            raise InvalidArgument(f"{word} is not a valid change command")
    doc = engine.tasks.get(ref)
    cid = doc["Id"]
    store = engine.image_store
    image_id = doc["Image"]
    base_full = store.config(image_id) if store.exists(image_id) else {}
    layers = store.layer_chain(image_id) if store.exists(image_id) else []
    container_cfg = dict(doc["Config"])
    new_cfg = apply_changes(container_cfg, changes or [])
    paused_here = False
    if pause and doc["State"]["Status"] == "running":
        engine.tasks.pause(cid)
        paused_here = True
    try:
        upper = engine.layer_store.container_upper(cid)
        lowers = engine.layer_store.lower_dirs(layers[-1].chain_id) if layers else []
        tmpdir = engine.root / "build-cache" / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=tmpdir) as f:
            if engine.storage_driver == "overlay":
                count = write_upper_layer(upper, RootView(lowers), f)
            else:
                count = write_tree_layer(upper, lowers[0] if lowers else None, f)
            layer = None
            if count:
                f.seek(0)
                layer = store.add_layer(f, layers[-1] if layers else None)
    finally:
        if paused_here:
            engine.tasks.unpause(cid)
    created = now_rfc3339()
    entry: dict[str, Any] = {"created": created}
    if author:
        entry["author"] = author
    entry["created_by"] = " ".join(container_cfg.get("Cmd") or [])
    if message:
        entry["comment"] = message
    if layer is None:
        entry["empty_layer"] = True
    all_layers = [*layers, layer] if layer is not None else layers
    full: dict[str, Any] = {"architecture": base_full.get("architecture") or goarch()}
    if author:
        full["author"] = author
    if message:
        full["comment"] = message
    full["config"] = new_cfg
    full["container"] = cid
    full["created"] = created
    full["history"] = [*(base_full.get("history") or []), entry]
    full["os"] = base_full.get("os") or "linux"
    full["rootfs"] = {"type": "layers", "diff_ids": [lr.diff_id for lr in all_layers]}
    return store.create_image(full, all_layers, [repository] if repository else [],
                              parent=image_id)
