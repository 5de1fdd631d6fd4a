"""``--filter`` matching for containers, images and volumes (docker's semantics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sdk.errors import InvalidArgument

CONTAINER_FILTERS = frozenset({"id", "name", "label", "status", "ancestor", "exited",
                               "volume", "before", "since", "health", "is-task", "network"})
STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited",
                      "dead"})


def normalize(filters: Mapping[str, Any] | None, allowed: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        values = [value] if isinstance(value, str | int | bool) else list(value)
        out[key] = [str(v) for v in values]
    return out


def labels_match(labels: Mapping[str, str] | None, wanted: Sequence[str]) -> bool:
    labels = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def container_matches(doc: Mapping[str, Any], f: Mapping[str, list[str]],
                      image_ids: Mapping[str, set[str]]) -> bool:
    if "id" in f and not any(doc["Id"].startswith(v) for v in f["id"]):
        return False
    if "name" in f:
        import re

        name = doc["Name"].lstrip("/")
        if not any(re.search(v.lstrip("/"), name) for v in f["name"]):
            return False
    if "status" in f:
        for v in f["status"]:
            if v not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={v}'")
        if doc["State"]["Status"] not in f["status"]:
            return False
    if "label" in f and not labels_match(doc["Config"].get("Labels"), f["label"]):
        return False
    if "exited" in f and (doc["State"]["Status"] != "exited" or \
                str(doc["State"]["ExitCode"]) not in f["exited"]):
        return False
    if "ancestor" in f and not any(doc["Image"] in image_ids.get(v, set())
                                   for v in f["ancestor"]):
        return False
    if "volume" in f:
        mounts = doc.get("Mounts") or []
        names = {m.get("Name") for m in mounts} | {m.get("Destination") for m in mounts} | \
            {m.get("Source") for m in mounts}
        if not any(v in names for v in f["volume"]):
            return False
    if "health" in f:
        health = (doc["State"].get("Health") or {}).get("Status", "none")
        if health not in f["health"]:
            return False
    return True
