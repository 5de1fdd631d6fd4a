"""Resolve Docker's ``-u`` against the container's own /etc/passwd and /etc/group.

Never NSS: loading the container's libnss modules into a host process is how
CVE-2019-14271 happened.  Files are read through a path resolved inside the
container root.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdk.errors import RuntimeFailure


@dataclass(frozen=True, slots=True)
class ExecUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _read(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec: str, extra_groups: tuple[str, ...] = (), *,
                 passwd: str = "/etc/passwd", group: str = "/etc/group") -> ExecUser:
    """Called *inside* the container (after pivot_root), so paths are the container's."""
    user_part, _, group_part = (spec or "").partition(":")
    users = _read(passwd)
    groups = _read(group)
    uid, gid, home, name = 0, 0, "/", "root"
    if user_part:
        entry = next((u for u in users if len(u) >= 7 and u[0] == user_part), None)
        if entry is None and user_part.isdigit():
            entry = next((u for u in users if len(u) >= 7 and u[2] == user_part), None)
            if entry is None:    # a numeric uid needs no passwd entry (gid 0, home /)
                uid, gid, home, name = int(user_part), 0, "/", ""
        if entry is None and not user_part.isdigit():
            raise RuntimeFailure(f"unable to find user {user_part}: no matching entries in "
                                 "passwd file")
        if entry is not None:
            name, uid, gid, home = entry[0], int(entry[2]), int(entry[3]), entry[5] or "/"
    else:
        entry = next((u for u in users if len(u) >= 7 and u[2] == "0"), None)
        if entry is not None:
            name, home = entry[0], entry[5] or "/"

    def group_id(g: str) -> int:
        if g.isdigit():
            return int(g)
        found = next((x for x in groups if len(x) >= 3 and x[0] == g), None)
        if found is None:
            raise RuntimeFailure(f"unable to find group {g}: no matching entries in group "
                                 "file")
        return int(found[2])

    if group_part:
        gid = group_id(group_part)
    supplementary = []
    if name and not group_part:
        supplementary = [int(g[2]) for g in groups if len(g) >= 4 and
                         name in g[3].split(",") and g[2].isdigit()]
    supplementary += [group_id(g) for g in extra_groups]
    return ExecUser(uid, gid, tuple(dict.fromkeys([gid, *supplementary])), home)
