"""docker-py style ``engine.networks``: create, get, list, prune; Network.connect/..."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from sdk.models.resource import Collection, Model

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.network.service import NetworkService


class Network(Model):
    @property
    def name(self) -> str:
        return str(self.attrs.get("Name", ""))

    @property
    def containers(self) -> list[Any]:
        return [self.engine.containers.get(cid) for cid in self.attrs.get("Containers") or {}]

    def connect(self, container: Any, ipv4_address: str | None = None,
                aliases: list[str] | None = None, **_: Any) -> None:
        cid = getattr(container, "id", container)
        self.engine.networks.service.connect(self.id, cid, ip=ipv4_address,
                                             aliases=aliases or [])

    def disconnect(self, container: Any, force: bool = False) -> None:
        cid = getattr(container, "id", container)
        self.engine.networks.service.disconnect(self.id, cid, force=force)

    def remove(self) -> None:
        self.engine.networks.service.remove(self.id)

    def reload(self) -> None:
        self.attrs = self.engine.networks.service.inspect(self.id)


class NetworkCollection(Collection):
    model = Network

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)

    @cached_property
    def service(self) -> NetworkService:
        from sdk.network.service import NetworkService

        return NetworkService(self.engine)

    def create(self, name: str, driver: str | None = None, options: dict[str, str] | None
               = None, ipam: dict[str, Any] | None = None, internal: bool = False,
               labels: dict[str, str] | None = None, **_: Any) -> Network:
        pool = ((ipam or {}).get("Config") or ipam and ipam.get("pool_configs") or [{}])[0]
        pool = {str(k).lower(): v for k, v in (pool or {}).items()}
        net = self.service.create(name, driver=driver or "bridge", subnet=pool.get("subnet"),
                                  gateway=pool.get("gateway"),
                                  ip_range=pool.get("iprange") or pool.get("ip_range"),
                                  internal=internal, labels=labels, options=options)
        return self.get(net["id"])

    def get(self, network_id: str, **_: Any) -> Network:
        return self.prepare_model(self.service.inspect(network_id))

    def list(self, names: list[str] | None = None, ids: list[str] | None = None,
             **_: Any) -> list[Network]:
        out = []
        for net in self.service.list():
            if names and net["name"] not in names:
                continue
            if ids and net["id"] not in ids:
                continue
            out.append(self.prepare_model(self.service.inspect(net["id"])))
        return out

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"NetworksDeleted": self.service.prune()}
