"""``engine.volumes``: docker-py's Volume and VolumeCollection."""

from __future__ import annotations

from typing import Any

from sdk.models.filters import labels_match, normalize
from sdk.models.resource import Collection, Model

VOLUME_FILTERS = frozenset({"name", "label", "dangling", "driver"})


class Volume(Model):
    id_attribute = "Name"

    @property
    def name(self) -> str:
        return str(self.attrs["Name"])

    @property
    def short_id(self) -> str:
        return self.name

    def remove(self, force: bool = False) -> None:
        self.engine.volume_store.remove(self.name, force=force)


class VolumeCollection(Collection):
    model = Volume

    def create(self, name: str | None = None, driver: str | None = None,
               driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> Volume:
        attrs = self.engine.volume_store.create(name, driver or "local", driver_opts, labels)
        return self.prepare_model(attrs)

    def get(self, volume_id: str) -> Volume:
        return self.prepare_model(self.engine.volume_store.inspect(volume_id))

    def list(self, filters: dict[str, Any] | None = None) -> list[Volume]:
        f = normalize(filters, VOLUME_FILTERS)
        store = self.engine.volume_store
        out = []
        for attrs in store.list():
            if "name" in f and not any(v in attrs["Name"] for v in f["name"]):
                continue
            if "label" in f and not labels_match(attrs.get("Labels"), f["label"]):
                continue
            if "driver" in f and attrs["Driver"] not in f["driver"]:
                continue
            if "dangling" in f:
                dangling = not store.users(attrs["Name"])
                if (f["dangling"][0].lower() in ("true", "1")) != dangling:
                    continue
            out.append(self.prepare_model(attrs))
        return out

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        f = normalize(filters, frozenset({"label", "all"}))
        removed, space = self.engine.volume_store.prune(
            all_volumes=f.get("all", ["false"])[0].lower() in ("true", "1"),
            labels=f.get("label"))
        return {"VolumesDeleted": removed or None, "SpaceReclaimed": space}
