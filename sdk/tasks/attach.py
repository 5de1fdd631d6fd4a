"""``attach``: connect the terminal to a detached container through its supervisor.

The supervisor listens on ``<container dir>/attach.sock`` (mode 0600): it sends the
container's output (docker's 8-byte stream framing without a tty, raw with one) and
writes what clients send to the container's stdin.  Several clients may attach at
once; ctrl-p ctrl-q detaches (client side), leaving the container running.
"""

from __future__ import annotations

import os
import select
import socket
from typing import TYPE_CHECKING

from sdk.errors import Conflict

if TYPE_CHECKING:
    from sdk.engine import Engine

DEFAULT_DETACH = b"\x10\x11"


def parse_detach_keys(value: str | None) -> bytes:
    if not value:
        return DEFAULT_DETACH
    out = b""
    for part in value.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            out += bytes([ord(part[5].lower()) - 96 & 0x1F])
        elif len(part) == 1:
            out += part.encode()
        else:
            from sdk.errors import InvalidArgument

            raise InvalidArgument(f"invalid detach keys: {value!r}")
    return out


def attach(engine: Engine, cid: str, *, stdin: bool = True,
           detach_keys: str | None = None) -> int:
    doc = engine.tasks.get(cid)
    dfd = os.open(engine.container_store.dir(cid), os.O_PATH | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/attach.sock")
    except OSError:
        raise Conflict(f"cannot attach to container {cid[:12]}: it is not running under "
                       "a supervisor") from None
    finally:
        os.close(dfd)
    tty = bool(doc["Config"].get("Tty"))
    keys = parse_detach_keys(detach_keys)
    use_stdin = stdin and bool(doc["Config"].get("OpenStdin"))
    saved = None
    if tty and use_stdin and os.isatty(0):
        import termios
        import tty as tty_mod

        saved = termios.tcgetattr(0)
        tty_mod.setraw(0)
    buf = b""
    pending = b""
    detached = False
    watched: list[object] = [sock] + ([0] if use_stdin else [])
    try:
        while True:
            ready = select.select(watched, [], [])[0]
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                if tty:
                    os.write(1, data)
                else:
                    buf += data
                    while len(buf) >= 8:
                        size = int.from_bytes(buf[4:8], "big")
                        if len(buf) < 8 + size:
                            break
                        os.write(1 if buf[0] == 1 else 2, buf[8:8 + size])
                        buf = buf[8 + size:]
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    watched.remove(0)
                    continue
                pending = (pending + data)[-len(keys):]
                if tty and pending == keys:
                    detached = True
                    break
                sock.sendall(data)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()
    if detached:
        os.write(2, b"\r\nread escape sequence\r\n")
        return 0
    return int(engine.tasks.wait(cid)["StatusCode"])
