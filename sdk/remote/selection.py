"""Which engine ``Engine.from_env()`` opens: the embedded one or the engine service.

The rules (issue 9), first match wins:

1. ``BERTH_ROOT`` or ``BERTH_CONFIG`` set: embedded on that data root / config;
2. ``BERTH_HOST`` (``unix://PATH`` or ``tcp://HOST:PORT``): that service;
3. a ``tcp://`` ``DOCKER_HOST`` (a unix one is docker's own socket: ignored, as by
   the CLI);
4. the default socket ``/run/berth.sock`` when a connect succeeds (a socket file
   left by a dead daemon does not count);
5. embedded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from sdk.errors import InvalidArgument

DEFAULT_SOCKET = "/run/berth.sock"     # sdk.api.server.DEFAULT_SOCKET (aiohttp-free here)


@dataclass(frozen=True)
class Choice:
    """``host`` is None for the embedded engine, else ``unix://...`` or ``tcp://...``."""

    host: str | None
    why: str


def reachable(path: str, timeout: float = 1.0) -> bool:
    """A unix socket some process accepts connections on (not just a file)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def choose(env: Mapping[str, str] | None = None,
           default_socket: str | None = None) -> Choice:
    env = os.environ if env is None else env
    default_socket = default_socket or DEFAULT_SOCKET
    if env.get("BERTH_ROOT") or env.get("BERTH_CONFIG"):
        return Choice(None, "BERTH_ROOT/BERTH_CONFIG name a data root")
    host = env.get("BERTH_HOST")
    if host:
        if host.startswith("unix://") and len(host) > 7:
            return Choice(host, "BERTH_HOST")
        if host.startswith("tcp://") and len(host) > 6:
            return Choice(host, "BERTH_HOST")
        raise InvalidArgument(f"BERTH_HOST={host!r}: expected unix:///path/to/socket or "
                              "tcp://HOST:PORT")
    docker_host = env.get("DOCKER_HOST", "")
    if docker_host.startswith("tcp://"):
        return Choice(docker_host, "DOCKER_HOST")
    if reachable(default_socket):
        return Choice(f"unix://{default_socket}", f"{default_socket} answers")
    return Choice(None, f"no engine service at {default_socket}")
