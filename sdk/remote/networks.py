"""``engine.networks`` over the Engine API: docker-py's Network and collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdk.models.networks import Network
from sdk.models.resource import Collection
from sdk.remote.transport import quote_ref

if TYPE_CHECKING:
    from sdk.remote.engine import RemoteEngine


class RemoteNetwork(Network):
    engine: RemoteEngine

    @property
    def _path(self) -> str:
        return f"/networks/{quote_ref(self.id)}"

    def connect(self, container: Any, ipv4_address: str | None = None,
                aliases: list[str] | None = None, **_: Any) -> None:
        endpoint: dict[str, Any] = {"Aliases": list(aliases or [])}
        if ipv4_address:
            endpoint["IPAMConfig"] = {"IPv4Address": ipv4_address}
        body = {"Container": getattr(container, "id", container), "EndpointConfig": endpoint}
        self.engine.api.call("POST", f"{self._path}/connect", body=body, resource="networks")

    def disconnect(self, container: Any, force: bool = False) -> None:
        body = {"Container": getattr(container, "id", container), "Force": force}
        self.engine.api.call("POST", f"{self._path}/disconnect", body=body,
                             resource="networks")

    def remove(self) -> None:
        self.engine.api.call("DELETE", self._path, resource="networks")

    def reload(self) -> None:
        self.attrs = self.collection.get(self.id).attrs


class RemoteNetworkCollection(Collection):
    model = RemoteNetwork
    engine: RemoteEngine

    def create(self, name: str, driver: str | None = None, options: dict[str, str] | None
               = None, ipam: dict[str, Any] | None = None, internal: bool = False,
               labels: dict[str, str] | None = None, **_: Any) -> RemoteNetwork:
        body = {"Name": name, "Driver": driver or "bridge", "Options": options or {},
                "IPAM": ipam or None, "Internal": internal, "Labels": labels or {}}
        created = self.engine.api.json("POST", "/networks/create", body=body,
                                       resource="networks")
        return self.get(created["Id"])

    def get(self, network_id: str, **_: Any) -> RemoteNetwork:
        attrs = self.engine.api.json("GET", f"/networks/{quote_ref(network_id)}",
                                     resource="networks")
        return self.prepare_model(attrs)  # type: ignore[no-any-return]

    def list(self, names: list[str] | None = None, ids: list[str] | None = None,
             **_: Any) -> list[RemoteNetwork]:
        """Exact ``names``/``ids`` as the embedded list (the API's filters match
        substrings and prefixes)."""
        out = []
        for attrs in self.engine.api.json("GET", "/networks", resource="networks") or []:
            if names and attrs.get("Name") not in names:
                continue
            if ids and attrs.get("Id") not in ids:
                continue
            out.append(self.prepare_model(attrs))
        return out

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.engine.api.json("POST", "/networks/prune", resource="networks"))
