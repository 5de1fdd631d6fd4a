"""The container's terminal: a pty from the container's *own* devpts instance.

The master is opened from ``/dev/pts/ptmx`` inside the root and verified to be the
ptmx node (5:2) of a devpts filesystem, so an image cannot hand us some other file;
the slave comes from TIOCGPTPEER (no path lookup, no race).  The master goes to the
caller with SCM_RIGHTS; the slave becomes the process's controlling tty and stdio and
is bind-mounted onto /dev/console (runc's console handling).
"""

from __future__ import annotations

import array  # noqa: F401 - socket.send_fds imports it lazily; the child cannot after pivot
import fcntl
import os
import socket
import stat
import struct

from sdk.runtime import linux
from sdk.runtime.rootfs_paths import ensure_in_root, open_in_root
from sdk.runtime.spawn_errors import SetupError, os_text

TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E


def open_pty(root_fd: int) -> tuple[int, int]:
    """(master, slave) of a new pty in the devpts mounted at the root's /dev/pts."""
    try:
        master = open_in_root(root_fd, "/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY,
                              no_symlinks=True)
    except OSError as exc:
        raise SetupError(f"terminal: open /dev/pts/ptmx: {os_text(exc)} (a terminal needs "
                         "a devpts mount at /dev/pts)") from None
    try:
        st = os.fstat(master)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(5, 2) or \
                linux.fstatfs_type(master) != linux.DEVPTS_SUPER_MAGIC:
            raise SetupError("terminal: /dev/pts/ptmx is not a devpts ptmx device")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def bind_console(root_fd: int, slave: int) -> None:
    """Bind the pty slave onto /dev/console (created as an empty file when missing)."""
    target = ensure_in_root(root_fd, "/dev/console", directory=False)
    try:
        linux.mount(linux.fd_path(slave), linux.fd_path(target), None, linux.MS_BIND)
    finally:
        os.close(target)


def make_controlling(slave: int) -> None:
    """Make ``slave`` the controlling terminal of the (new) session we lead."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)


def send_master(sock: socket.socket, master: int) -> None:
    socket.send_fds(sock, [b"m"], [master])


def receive_master(sock: socket.socket) -> int | None:
    """The master fd the child sent, or None when it sent nothing (it failed)."""
    sock.setblocking(False)
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 4, socket.MSG_CMSG_CLOEXEC)
    except (BlockingIOError, OSError):
        return None
    for extra in fds[1:]:
        os.close(extra)
    return fds[0] if fds else None
