"""``engine.volumes`` over the Engine API: docker-py's Volume and VolumeCollection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdk.models.resource import Collection
from sdk.models.volumes import Volume
from sdk.remote.transport import quote_ref

if TYPE_CHECKING:
    from sdk.remote.engine import RemoteEngine


class RemoteVolume(Volume):
    engine: RemoteEngine

    def remove(self, force: bool = False) -> None:
        self.engine.api.call("DELETE", f"/volumes/{quote_ref(self.name)}",
                             query={"force": force}, resource="volumes")


class RemoteVolumeCollection(Collection):
    model = RemoteVolume
    engine: RemoteEngine

    def create(self, name: str | None = None, driver: str | None = None,
               driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> RemoteVolume:
        body = {"Name": name or "", "Driver": driver or "local",
                "DriverOpts": driver_opts or {}, "Labels": labels or {}}
        attrs = self.engine.api.json("POST", "/volumes/create", body=body,
                                     resource="volumes")
        return self.prepare_model(attrs)  # type: ignore[no-any-return]

    def get(self, volume_id: str) -> RemoteVolume:
        attrs = self.engine.api.json("GET", f"/volumes/{quote_ref(volume_id)}",
                                     resource="volumes")
        return self.prepare_model(attrs)  # type: ignore[no-any-return]

    def list(self, filters: dict[str, Any] | None = None) -> list[RemoteVolume]:
        data = self.engine.api.json("GET", "/volumes", query={"filters": filters or None},
                                    resource="volumes")
        return [self.prepare_model(v) for v in (data or {}).get("Volumes") or []]

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.engine.api.json("POST", "/volumes/prune",
                                         query={"filters": filters or None},
                                         resource="volumes"))
