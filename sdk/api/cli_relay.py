"""``POST /berth/cli``: berth's own CLI for clients that cannot pass file descriptors.

The unix warm path (:mod:`sdk.api.forward`) hands the client's stdin/stdout/stderr to
the daemon's helper with SCM_RIGHTS.  Over TCP (always TLS) that is impossible, so
this endpoint stands in for the client: it makes three socket pairs, hands their far
ends to the helper through the same CLI socket, and relays them over the hijacked
connection.  The command therefore runs exactly as on the unix path, with two
differences a remote client must know: it runs in ``/`` on the daemon's host (file
arguments name that host's files) and its stdin/stdout are not terminals.

Wire format after ``101 UPGRADED`` (the request body is ``{"argv": [...], "env": {}}``):

- client -> daemon: frames ``kind (1 byte) | size (4 bytes, big-endian) | payload``;
  kind 0 carries stdin (size 0: end of stdin), kind 1 one signal number;
- daemon -> client: docker's multiplexed framing, stream 1 stdout, 2 stderr, and a
  last frame on stream 3 holding the exit status (4 bytes, big-endian, signed).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
from typing import Any

from sdk.api.errors import error_response
from sdk.api.forward import EXIT_STREAM, RELAYED_ENV, SIGNAL_FRAME, STDIN_FRAME, encode_request
from sdk.api.streams import STDERR, STDOUT, RawWriter, hijack

# how long output may still arrive after the exit status (a process the command
# started may hold the descriptors; it does not keep the client waiting)
DRAIN_SECONDS = 2.0


def parse_body(body: Any) -> tuple[list[str], dict[str, str]]:
    """The request's argv and the relayed part of its env; ValueError names the field."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object with \"argv\"")
    argv = body.get("argv")
    if not isinstance(argv, list) or not argv or \
            not all(isinstance(a, str) for a in argv):
        raise ValueError("\"argv\" must be a non-empty list of strings")
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ValueError("\"env\" must be an object whose values are strings")
    return argv, {k: env[k] for k in RELAYED_ENV if k in env}


def add_route(app: Any, cli_path: str) -> None:
    async def handler(request: Any) -> Any:
        if request.headers.get("Upgrade", "").lower() != "tcp":
            return error_response("POST /berth/cli needs \"Upgrade: tcp\" (berth's CLI "
                                  "relays its streams on the upgraded connection)", 400)
        try:
            argv, env = parse_body(await request.json())
        except ValueError as exc:
            return error_response(f"bad request: {exc}", 400)
        return await relay(request, cli_path, argv, env)

    app.router.add_route("POST", "/berth/cli", handler)


async def relay(request: Any, cli_path: str, argv: list[str], env: dict[str, str]) -> Any:
    loop = asyncio.get_running_loop()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pairs = [socket.socketpair() for _ in range(3)]   # stdin, stdout, stderr
    ours = [pairs[0][0], pairs[1][0], pairs[2][0]]
    theirs = [pairs[0][1], pairs[1][1], pairs[2][1]]
    try:
        conn.setblocking(False)
        await loop.sock_connect(conn, cli_path)
        conn.setblocking(True)
        conn.sendmsg([encode_request(argv, "/", env)],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                       struct.pack("3i", *(s.fileno() for s in theirs)))])
    except OSError as exc:
        for s in (conn, *ours, *theirs):
            s.close()
        return error_response(f"the daemon's CLI helper is not answering: {exc}", 500)
    for s in theirs:
        s.close()
    for s in (conn, *ours):
        s.setblocking(False)
    stdin, out, err = ours
    resp = await hijack(request, multiplexed=True)
    writer = RawWriter(request, resp, multiplexed=True)
    incoming = request.transport.get_protocol().incoming

    async def pump_out(sock: socket.socket, stream: int) -> None:
        while True:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                return
            await writer.write(stream, data)

    async def pump_in() -> None:
        """Client frames -> stdin / signals; returns when the client goes away."""
        buf = b""
        stdin_open = True
        while True:
            chunk = await incoming.get()
            if chunk is None:
                return
            buf += chunk
            while len(buf) >= 5:
                kind, size = buf[0], struct.unpack(">I", buf[1:5])[0]
                if len(buf) < 5 + size:
                    break
                payload, buf = buf[5:5 + size], buf[5 + size:]
                if kind == SIGNAL_FRAME and payload:
                    await loop.sock_sendall(conn, payload[:1])
                elif kind == STDIN_FRAME and stdin_open:
                    if payload:
                        try:
                            await loop.sock_sendall(stdin, payload)
                        except OSError:    # the command closed its stdin
                            stdin_open = False
                    else:
                        stdin.shutdown(socket.SHUT_WR)
                        stdin_open = False

    async def exit_status() -> int:
        data = b""
        while len(data) < 4:
            chunk = await loop.sock_recv(conn, 4 - len(data))
            if not chunk:
                return 125
            data += chunk
        return int(struct.unpack(">i", data)[0])

    outputs = asyncio.gather(pump_out(out, STDOUT), pump_out(err, STDERR))
    status = asyncio.ensure_future(exit_status())
    client = asyncio.ensure_future(pump_in())
    try:
        done, _ = await asyncio.wait({status, client}, return_when=asyncio.FIRST_COMPLETED)
        if status in done:
            try:
                await asyncio.wait_for(asyncio.shield(outputs), DRAIN_SECONDS)
            except TimeoutError:
                pass
            await writer.write(EXIT_STREAM, struct.pack(">i", status.result()))
        else:
            # the client left: hang the command up as a closed terminal would
            try:
                conn.send(bytes([signal.SIGHUP]))
            except OSError:
                pass
    except (ConnectionError, OSError):
        pass
    finally:
        for task in (status, client):
            task.cancel()
        outputs.cancel()
        for s in (conn, *ours):
            s.close()
        await writer.close()
    return resp
