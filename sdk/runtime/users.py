"""Resolve Docker's ``-u`` against the container's own /etc/passwd and /etc/group.

Never NSS: loading the container's libnss modules into a host process is how
CVE-2019-14271 happened.  The files are opened inside the container root
(openat2 RESOLVE_IN_ROOT), must be regular files, and are read with a size cap.

Semantics are runc's libcontainer/user ``GetExecUser`` plus moby's ``getUser``:

* ``""``: uid 0, gid 0; HOME from root's entry.
* ``name`` / ``uid``: a numeric value is always a uid; an unknown name is an error, an
  unknown uid is fine (gid 0, HOME ``/``).
* ``user:group``: the group replaces the primary gid and there are no implicit
  supplementary groups; otherwise the groups listing the user's name are added.
* the process's groups are [gid] + supplementary + ``--group-add`` (moby puts the primary
  gid first, CVE-2022-36109).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from sdk.errors import RuntimeFailure
from sdk.runtime import linux

MAX_ID = 2**31 - 1
MAX_DB_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExecUser:
    uid: int
    gid: int
    groups: tuple[int, ...]   # what setgroups() gets: primary gid first
    home: str
    name: str = ""


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_passwd(data: bytes | None) -> list[PasswdEntry]:
    out = []
    for raw in (data or b"").decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (7 - len(f))
        uid, gid = _int(f[2]), _int(f[3])
        if uid is None:
            continue
        out.append(PasswdEntry(f[0], uid, gid if gid is not None else 0, f[5]))
    return out


def parse_group(data: bytes | None) -> list[GroupEntry]:
    out = []
    for raw in (data or b"").decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (4 - len(f))
        gid = _int(f[2])
        if gid is None:
            continue
        out.append(GroupEntry(f[0], gid, tuple(m.strip() for m in f[3].split(",")
                                               if m.strip())))
    return out


def _check_range(value: int) -> int:
    if value > MAX_ID:
        raise RuntimeFailure(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve(spec: str, additional_groups: tuple[str, ...] | list[str] = (), *,
            passwd: bytes | None, group: bytes | None) -> ExecUser:
    """Resolve ``spec`` with the contents of passwd/group (None = file absent)."""
    user_arg, _, group_arg = (spec or "").partition(":")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    uid, gid, home, name = 0, 0, "/", ""

    user_num = _int(user_arg) if user_arg else None
    if not user_arg:
        entry = next((u for u in users if u.uid == 0), None)
    elif user_num is not None:
        entry = next((u for u in users if u.uid == user_num), None)
    else:
        entry = next((u for u in users if u.name == user_arg), None)
    if entry is not None:
        uid, gid, home, name = entry.uid, entry.gid, entry.home or "/", entry.name
    elif user_arg:
        if user_num is None:
            raise RuntimeFailure(f"unable to find user {user_arg}: no matching entries in "
                                 "passwd file")
        uid = _check_range(user_num)

    supplementary: list[int] = []
    if group_arg:
        group_num = _int(group_arg)
        found = next((g for g in groups if (g.gid == group_num if group_num is not None
                                            else g.name == group_arg)), None)
        if found is not None:
            gid = found.gid
        elif group_num is not None:
            gid = _check_range(group_num)
        else:
            raise RuntimeFailure(f"unable to find group {group_arg}: no matching entries in "
                                 "group file")
    elif name:
        supplementary = [g.gid for g in groups if name in g.members]

    for extra in additional_groups:
        found = next((g for g in groups if g.name == extra), None)
        if found is not None:
            supplementary.append(found.gid)
        elif _int(extra) is not None:
            supplementary.append(_check_range(int(extra)))
        else:
            raise RuntimeFailure(f"Unable to find group {extra}: no matching entries in "
                                 "group file")
    return ExecUser(uid=uid, gid=gid, groups=tuple(dict.fromkeys([gid, *supplementary])),
                    home=home or "/", name=name)


def read_in_root(root_fd: int, path: str, *, limit: int = MAX_DB_SIZE) -> bytes | None:
    """Contents of the regular file ``path`` inside the root, None when it is absent.

    Opened with RESOLVE_IN_ROOT (symlinks cannot leave the root), O_NONBLOCK (a FIFO
    cannot hang us) and a size cap (/dev/zero cannot exhaust memory)."""
    try:
        fd = linux.openat2(root_fd, path.lstrip("/"),
                           os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                           linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise RuntimeFailure(f"open {path}: {exc.strerror.lower()}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RuntimeFailure(f"{path} is not a regular file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise RuntimeFailure(f"{path} is larger than {limit} bytes")
            chunks.append(chunk)
    finally:
        os.close(fd)


def lookup(root_fd: int, spec: str, additional_groups: tuple[str, ...] = ()) -> ExecUser:
    """Resolve ``spec`` against the passwd/group files of the root ``root_fd`` names."""
    return resolve(spec, additional_groups, passwd=read_in_root(root_fd, "etc/passwd"),
                   group=read_in_root(root_fd, "etc/group"))
