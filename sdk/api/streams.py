"""Docker's stream framing and connection hijacking on top of aiohttp."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

STDIN, STDOUT, STDERR = 0, 1, 2
STREAM_IDS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR}


def frame(stream: int, data: bytes) -> bytes:
    """The 8-byte header of a multiplexed stream: id, three zeros, big-endian size."""
    return struct.pack(">BxxxL", stream, len(data)) + data


async def hijack(request: Any, *, multiplexed: bool) -> Any:
    """Answer ``101 UPGRADED`` (or 200 for clients that did not ask to upgrade) and
    return the response whose transport now carries the raw stream."""
    from aiohttp import web

    content_type = ("application/vnd.docker.multiplexed-stream" if multiplexed
                    else "application/vnd.docker.raw-stream")
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    headers = {"Content-Type": content_type}
    if upgrade:
        headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        resp = web.StreamResponse(status=101, reason="UPGRADED", headers=headers)
    else:
        resp = web.StreamResponse(status=200, headers=headers)
        resp.force_close()
    await resp.prepare(request)
    if upgrade and request.transport is not None:
        # the client half-closes when it has no stdin to send; aiohttp's protocol would
        # close the whole connection on that EOF and lose the output still to come
        request.transport.set_protocol(HijackedProtocol())
    return resp


class HijackedProtocol(asyncio.Protocol):
    """Owns a hijacked connection: keeps it open after the client's EOF."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(None)
        return True


class RawWriter:
    """Writes to a hijacked connection without aiohttp's body encoding."""

    def __init__(self, request: Any, response: Any, *, multiplexed: bool) -> None:
        self.transport = request.transport
        self.response = response
        self.multiplexed = multiplexed
        self.upgraded = response.status == 101

    async def write(self, stream: int, data: bytes) -> None:
        if not data:
            return
        payload = frame(stream, data) if self.multiplexed else data
        if self.upgraded:
            if self.transport is None or self.transport.is_closing():
                raise ConnectionResetError("client went away")
            self.transport.write(payload)
        else:
            await self.response.write(payload)

    async def close(self) -> None:
        if self.upgraded:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()
        else:
            await self.response.write_eof()
