"""Docker's -u semantics against passwd/group contents (runc GetExecUser + moby getUser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdk.errors import RuntimeFailure
from sdk.runtime.users import ExecUser, lookup, parse_group, parse_passwd, read_in_root, resolve

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment
broken line
app:x:1000:1000:app user:/home/app:/bin/sh
1001:x:1001:1001::/home/numeric:/bin/sh
nohome:x:1002:1002::
"""
GROUP = b"""root:x:0:
tty:x:5:
staff:x:50:app,daemon
docker:x:999: app
app:x:1000:
"""


def res(spec: str, extra: tuple[str, ...] = (), passwd: bytes | None = PASSWD,
        group: bytes | None = GROUP) -> ExecUser:
    return resolve(spec, extra, passwd=passwd, group=group)


def test_parsers_skip_comments_and_garbage() -> None:
    assert [u.name for u in parse_passwd(PASSWD)] == ["root", "daemon", "app", "1001",
                                                      "nohome"]
    assert [g.members for g in parse_group(GROUP)][2:4] == [("app", "daemon"), ("app",)]
    assert parse_passwd(None) == []


@pytest.mark.parametrize("spec, expected", [
    ("", ExecUser(0, 0, (0,), "/root", "root")),
    ("root", ExecUser(0, 0, (0,), "/root", "root")),
    ("app", ExecUser(1000, 1000, (1000, 50, 999), "/home/app", "app")),
    ("1000", ExecUser(1000, 1000, (1000, 50, 999), "/home/app", "app")),
    ("app:staff", ExecUser(1000, 50, (50,), "/home/app", "app")),
    ("app:5", ExecUser(1000, 5, (5,), "/home/app", "app")),
    ("1000:4242", ExecUser(1000, 4242, (4242,), "/home/app", "app")),
    ("4242", ExecUser(4242, 0, (0,), "/", "")),
    ("4242:4242", ExecUser(4242, 4242, (4242,), "/", "")),
    ("nohome", ExecUser(1002, 1002, (1002,), "/", "nohome")),
])
def test_resolve(spec: str, expected: ExecUser) -> None:
    assert res(spec) == expected


def test_numeric_user_is_always_a_uid() -> None:
    # "1001" is also a user *name* here, but docker treats digits as a uid
    assert res("1001").home == "/home/numeric"
    assert res("1001").uid == 1001


def test_additional_groups() -> None:
    assert res("app", ("tty", "77")).groups == (1000, 50, 999, 5, 77)
    assert res("", ("staff",)).groups == (0, 50)
    with pytest.raises(RuntimeFailure, match="Unable to find group nogroup: no matching "
                                             "entries in group file"):
        res("", ("nogroup",))


def test_errors() -> None:
    with pytest.raises(RuntimeFailure) as info:
        res("ghost")
    assert str(info.value) == "unable to find user ghost: no matching entries in passwd file"
    with pytest.raises(RuntimeFailure, match="unable to find group ghosts: no matching "
                                             "entries in group file"):
        res("app:ghosts")
    with pytest.raises(RuntimeFailure, match="range 0-2147483647"):
        res("4294967296")


def test_missing_files() -> None:
    assert res("", passwd=None, group=None) == ExecUser(0, 0, (0,), "/", "")
    assert res("123:456", passwd=None, group=None) == ExecUser(123, 456, (456,), "/", "")
    with pytest.raises(RuntimeFailure, match="unable to find user app"):
        res("app", passwd=None)


def test_lookup_reads_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    # an absolute symlink must resolve inside the root, never to the host's /etc/group
    (root / "etc" / "group").symlink_to("/etc/real-group")
    (root / "etc" / "real-group").write_bytes(GROUP)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert lookup(fd, "app").groups == (1000, 50, 999)
        os.mkfifo(root / "etc" / "fifo")
        with pytest.raises(RuntimeFailure, match="not a regular file"):
            read_in_root(fd, "/etc/fifo")
        assert read_in_root(fd, "/etc/missing") is None
    finally:
        os.close(fd)
