"""A client of ``berth daemon``'s Docker Engine API with the embedded Engine's surface.

``Engine.from_env()`` returns a :class:`RemoteEngine` when the engine service is
there (see :mod:`sdk.remote.selection`).  Nothing here is imported on the CLI's start
path: the CLI always runs embedded (in the daemon's helper, or on its own).
"""

from __future__ import annotations

from sdk.remote.engine import RemoteEngine

__all__ = ["RemoteEngine"]
