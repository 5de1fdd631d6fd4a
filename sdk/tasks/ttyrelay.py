"""Relay between the user's terminal and a container pty (run -it, exec -it, attach)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty
from typing import Any

DETACH_KEYS = b"\x10\x11"   # ctrl-p ctrl-q


def copy_winsize(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def relay(master: int, pid: int | None = None, *, interactive: bool = True,
          detach_keys: bytes | None = None, stdin: int = 0, stdout: int = 1) -> str:
    """Copy stdin -> master and master -> stdout until the pty closes.

    Returns "exited" or "detached" (when ``detach_keys`` were typed).
    """
    is_tty = os.isatty(stdin)
    saved: Any = None
    if is_tty and interactive:
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    if is_tty:
        copy_winsize(stdin, master)
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(stdin, master)) \
        if is_tty else None
    watched = [master] + ([stdin] if interactive else [])
    pending = b""
    result = "exited"
    try:
        while True:
            try:
                ready = select.select(watched, [], [])[0]
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    break
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    watched.remove(stdin)
                    os.write(master, b"\x04")
                    continue
                if detach_keys:
                    pending = (pending + data)[-len(detach_keys):]
                    if pending == detach_keys:
                        result = "detached"
                        break
                os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
    return result
