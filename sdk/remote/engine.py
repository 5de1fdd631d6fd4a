"""``RemoteEngine``: the embedded Engine's docker-py surface, served by ``berth daemon``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sdk.remote.containers import RemoteContainerCollection
from sdk.remote.errors import RemoteAttributeUnsupported, RemoteUnsupported
from sdk.remote.images import RemoteImageCollection
from sdk.remote.networks import RemoteNetworkCollection
from sdk.remote.transport import Transport
from sdk.remote.volumes import RemoteVolumeCollection

# what the embedded Engine has and a client of the service cannot offer: its data
# root, database and services live in the daemon's process
EMBEDDED_ONLY = frozenset({
    "root", "config", "config_path", "db", "storage_driver", "content", "layer_store",
    "image_store", "volume_store", "container_store", "tasks", "registry", "repair",
})


class RemoteEngine:
    """``RemoteEngine("unix:///run/berth.sock")`` or ``("tcp://host:2376")`` (TLS from
    ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``, as the docker CLI)."""

    remote = True

    def __init__(self, base_url: str, timeout: float | None = None) -> None:
        self.base_url = base_url
        self.api = Transport(base_url, timeout)

    def __repr__(self) -> str:
        return f"<RemoteEngine: {self.base_url}>"

    def __getattr__(self, name: str) -> Any:
        if name in EMBEDDED_ONLY:
            raise RemoteAttributeUnsupported(f"Engine.{name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def reopen(self) -> RemoteEngine:
        return RemoteEngine(self.base_url, self.api.timeout)

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every request opens and closes its own connection."""

    @cached_property
    def containers(self) -> RemoteContainerCollection:
        return RemoteContainerCollection(self)  # type: ignore[arg-type]

    @cached_property
    def images(self) -> RemoteImageCollection:
        return RemoteImageCollection(self)  # type: ignore[arg-type]

    @cached_property
    def volumes(self) -> RemoteVolumeCollection:
        return RemoteVolumeCollection(self)  # type: ignore[arg-type]

    @cached_property
    def networks(self) -> RemoteNetworkCollection:
        return RemoteNetworkCollection(self)  # type: ignore[arg-type]

    def ping(self) -> bool:
        return self.api.request("GET", "/_ping").read().strip() == b"OK"

    def version(self) -> dict[str, Any]:
        return dict(self.api.json("GET", "/version"))

    def info(self) -> dict[str, Any]:
        return dict(self.api.json("GET", "/info"))

    def login(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("Engine.login")
