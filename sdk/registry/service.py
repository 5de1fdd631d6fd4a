"""``engine.registry``: serve and maintain a registry from the SDK."""

from __future__ import annotations

import os
from typing import Any

from sdk.registry.config import RegistryConfig, load_config
from sdk.registry.maintenance import GcReport, ScrubReport, garbage_collect, scrub
from sdk.registry.server import RegistryServer
from sdk.registry.storage import Storage


class RegistryService:
    """Defaults the storage root to ``<engine root>/registry``."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def config(self, config: str | os.PathLike[str] | RegistryConfig | None = None,
               **overrides: Any) -> RegistryConfig:
        if isinstance(config, RegistryConfig):
            cfg = config
            for k, v in overrides.items():
                if v is not None:
                    setattr(cfg, k, v)
            return cfg
        cfg = load_config(config, overrides)
        if config is None and "root" not in overrides:
            cfg.root = str(self.engine.root / "registry")
        return cfg

    def serve(self, config: str | os.PathLike[str] | RegistryConfig | None = None,
              background: bool = True, **overrides: Any) -> RegistryServer:
        """Start a server: in a background thread (returned, call ``.stop()``) or, with
        ``background=False``, in the foreground until SIGTERM."""
        server = RegistryServer(self.config(config, **overrides))
        if background:
            return server.start()
        server.serve_forever()
        return server

    def garbage_collect(self, config: str | os.PathLike[str] | RegistryConfig | None = None,
                        dry_run: bool = False, delete_untagged: bool = False,
                        grace: float | None = None, **overrides: Any) -> GcReport:
        cfg = self.config(config, **overrides)
        return garbage_collect(Storage(cfg.root), dry_run, delete_untagged,
                               cfg.gc_grace if grace is None else grace)

    def scrub(self, config: str | os.PathLike[str] | RegistryConfig | None = None,
              **overrides: Any) -> ScrubReport:
        return scrub(Storage(self.config(config, **overrides).root))
