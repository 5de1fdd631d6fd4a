"""``docker history``: one row per history entry, newest first, with layer sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.engine import Engine


def history(engine: Engine, image_id: str) -> list[dict[str, Any]]:
    from datetime import datetime

    store = engine.image_store
    cfg = store.config(image_id)
    layers = store.layer_chain(image_id)
    entries = cfg.get("history") or [{"created": cfg.get("created", ""), "created_by": ""}]
    rows = []
    layer_index = 0
    for entry in entries:
        empty = bool(entry.get("empty_layer"))
        size = 0
        if not empty and layer_index < len(layers):
            size = layers[layer_index].size
            layer_index += 1
        created = entry.get("created", "")
        try:
            ts = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
        except ValueError:
            ts = 0
        rows.append({"Id": "<missing>", "Created": ts, "CreatedBy": entry.get("created_by", ""),
                     "Tags": None, "Size": size, "Comment": entry.get("comment", "")})
    rows.reverse()
    # as docker: the newest rows get the IDs of the image, its parent, the parent's
    # parent ... while those are stored here (commit, build, docker load's Parent)
    current: str | None = image_id
    for row in rows:
        if current is None or not store.exists(current):
            break
        row["Id"] = current
        row["Tags"] = store.tags_of(current) or None
        found = store.db.one("SELECT parent FROM images WHERE id=?", (current,))
        current = found["parent"] if found is not None and found["parent"] else None
    return rows
