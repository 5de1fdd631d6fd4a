"""apply_layer as root: ownership, devices, privileged xattrs, overlay whiteouts."""

from __future__ import annotations

import os
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from sdk.diff.whiteouts import OPAQUE_XATTR
from tests.unit.test_diff_apply import (
    E,
    apply_bytes,
    d,
    f,
    fuzz_apply,
    hard,
    make_tar,
    opq,
    sym,
    wh,
)

pytestmark = pytest.mark.root

#: security.capability v2: cap_net_bind_service permitted + effective
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)

SPECIAL = [
    d("srv", uid=1000, gid=1000, mode=0o750),
    f("srv/suid", b"x", mode=0o4755, uid=1000, gid=1000),
    f("srv/sgid", b"y", mode=0o2711, uid=0, gid=50),
    d("srv/sticky", mode=0o1777),
    E("srv/null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666),
    E("srv/loop", tarfile.BLKTYPE, dev=(7, 200), mode=0o660, gid=6),
    E("srv/fifo", tarfile.FIFOTYPE, mode=0o620, uid=5),
    f("srv/ping", b"ping", mode=0o755,
      xattrs={"security.capability": CAP, "user.a": b"1", "trusted.b": b"\xff\x00bin"}),
    hard("srv/ping-link", "srv/ping"),
    sym("srv/sym", "ping"),
]


def xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def check_special(root: Path) -> None:
    """The metadata of SPECIAL survived (used for diff dirs and merged views)."""
    st = os.lstat(root / "srv")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o750)
    st = os.lstat(root / "srv/suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    st = os.lstat(root / "srv/sgid")
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (50, 0o2711)
    assert stat.S_IMODE(os.lstat(root / "srv/sticky").st_mode) == 0o1777
    st = os.lstat(root / "srv/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "srv/loop")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 200) and st.st_gid == 6
    st = os.lstat(root / "srv/fifo")
    assert stat.S_ISFIFO(st.st_mode) and st.st_uid == 5 and stat.S_IMODE(st.st_mode) == 0o620
    assert xattr(root / "srv/ping", "security.capability") == CAP
    assert xattr(root / "srv/ping", "user.a") == b"1"
    assert xattr(root / "srv/ping", "trusted.b") == b"\xff\x00bin"
    assert os.lstat(root / "srv/ping").st_ino == os.lstat(root / "srv/ping-link").st_ino
    assert os.readlink(root / "srv/sym") == "ping"
    for name in ("suid", "null", "fifo", "ping", "sym"):
        assert os.lstat(root / "srv" / name).st_mtime == 1_600_000_000, name


def test_ownership_modes_devices_xattrs(tmp_path: Path) -> None:
    apply_bytes(make_tar(SPECIAL), tmp_path / "t")
    check_special(tmp_path / "t")


def test_setuid_survives_chown_order(tmp_path: Path) -> None:
    """chown clears setuid and file capabilities: they must be applied after it."""
    apply_bytes(make_tar([f("a", b"x", mode=0o6755, uid=7, gid=7,
                            xattrs={"security.capability": CAP})]), tmp_path / "t")
    st = os.stat(tmp_path / "t/a")
    assert stat.S_IMODE(st.st_mode) == 0o6755 and st.st_uid == 7
    assert xattr(tmp_path / "t/a", "security.capability") == CAP


def test_devices_can_be_refused(tmp_path: Path) -> None:
    apply_bytes(make_tar(SPECIAL), tmp_path / "t", allow_devices=False)
    assert not (tmp_path / "t/srv/null").exists() and not (tmp_path / "t/srv/loop").exists()
    assert (tmp_path / "t/srv/fifo").exists()


def test_overlay_whiteout_mode(tmp_path: Path) -> None:
    target = tmp_path / "t"
    layer = [wh("bin/vi"), d("etc"), opq("etc"), f("etc/passwd", b"p"), opq("new/deep"),
             wh("gone"), d("gone"), f("gone/x", b"x"), f(".wh..wh..opq"),
             f("kept", b"k"), wh("kept"), f(".wh..wh.plnk/123", b"aufs"),
             f("etc/x", b"x", xattrs={OPAQUE_XATTR: b"y", "trusted.overlay.redirect": b"/"})]
    apply_bytes(make_tar(layer), target, whiteouts="overlay")
    st = os.lstat(target / "bin/vi")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert xattr(target / "etc", OPAQUE_XATTR) == b"y"
    assert xattr(target / "new/deep", OPAQUE_XATTR) == b"y"
    assert xattr(target, OPAQUE_XATTR) == b"y"
    # a directory re-created over its own whiteout hides the lower one's content
    assert os.path.isdir(target / "gone") and xattr(target / "gone", OPAQUE_XATTR) == b"y"
    assert (target / "kept").read_bytes() == b"k"
    assert not (target / ".wh..wh.plnk").exists()
    # overlay's own xattrs are never taken from a tar
    assert xattr(target / "etc/x", OPAQUE_XATTR) is None
    assert xattr(target / "etc/x", "trusted.overlay.redirect") is None
    assert not any(n.startswith(".wh.") for n in os.listdir(target))


def test_root_entry_metadata(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar([d(".", mode=0o711, uid=3, gid=4), f("x", b"x")]), target)
    st = os.stat(target)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o711, 3, 4)
    assert st.st_mtime == 1_600_000_000


def test_random_tars_never_escape_in_overlay_mode(tmp_path: Path) -> None:
    assert fuzz_apply(tmp_path, "overlay", rounds=300, seed=99) > 0
