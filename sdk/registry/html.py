"""A read-only HTML page listing repositories, tags, sizes and layers (GET /)."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape

from sdk.registry.storage import Storage


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{n} B"


def describe(storage: Storage, name: str) -> list[dict[str, object]]:
    rows = []
    for tag, d in storage.tags_with_targets(name):
        found = storage.get_manifest(name, d)
        if found is None:
            continue
        body, media = found
        layers: list[str] = []
        size = len(body)
        try:
            doc = json.loads(body)
            for desc in [doc.get("config")] + list(doc.get("layers") or []):
                if isinstance(desc, dict):
                    size += int(desc.get("size") or 0)
            layers = [str(x.get("digest")) for x in doc.get("layers") or []
                      if isinstance(x, dict)]
            if "manifests" in doc:
                layers = [f"{(x.get('platform') or {}).get('os', '?')}/"
                          f"{(x.get('platform') or {}).get('architecture', '?')} "
                          f"{x.get('digest')}" for x in doc["manifests"] if isinstance(x, dict)]
        except (ValueError, TypeError, AttributeError):
            pass
        rows.append({"tag": tag, "digest": str(d), "media": media, "size": size,
                     "layers": layers})
    return rows


def index_page(storage: Storage,
               visible: Callable[[list[str]], list[str]] | None = None) -> str:
    """``visible`` narrows the repositories to those the viewer may pull."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>berth registry</title>"
             "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
             "code{font-size:85%}</style></head><body><h1>berth registry</h1>"]
    repos = storage.catalog()
    if visible is not None:
        repos = visible(repos)
    parts.append(f"<p id='count'>{len(repos)} repositories</p>")
    for name in repos:
        parts.append(f"<h2 class='repo'>{escape(name)}</h2><table><tr><th>tag</th>"
                     "<th>digest</th><th>size</th><th>layers</th></tr>")
        for row in describe(storage, name):
            layers = "<br>".join(f"<code>{escape(x)}</code>" for x in row["layers"])  # type: ignore[attr-defined]
            parts.append(f"<tr class='tag'><td>{escape(str(row['tag']))}</td>"
                         f"<td><code>{escape(str(row['digest']))}</code></td>"
                         f"<td>{_human(int(row['size']))}</td>"  # type: ignore[call-overload]
                         f"<td>{layers}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
