"""SELinux host probe and container labels (fake /proc and /etc trees)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from sdk._internal import selinux
from sdk.errors import FailedPrecondition

MOUNTINFO_WITH = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / {mnt} rw,nosuid,noexec,relatime shared:8 - selinuxfs selinuxfs rw
26 22 0:24 / /proc rw,nosuid shared:9 - proc proc rw
"""
MOUNTINFO_WITHOUT = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"


def _mountinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


def test_enabled_when_selinuxfs_is_mounted_with_enforce(tmp_path: Path) -> None:
    fs = tmp_path / "selinux"
    fs.mkdir()
    (fs / "enforce").write_text("1")
    info = _mountinfo(tmp_path, MOUNTINFO_WITH.format(mnt=fs))
    assert selinux.selinuxfs_mount(info) == fs
    assert selinux.selinux_enabled(info) is True
    assert selinux.enforcing(info) is True
    (fs / "enforce").write_text("0")
    assert selinux.selinux_enabled(info) is True          # permissive is still enabled
    assert selinux.enforcing(info) is False


def test_disabled_without_the_mount_or_the_enforce_file(tmp_path: Path) -> None:
    assert selinux.selinux_enabled(_mountinfo(tmp_path, MOUNTINFO_WITHOUT)) is False
    empty = tmp_path / "empty-selinuxfs"
    empty.mkdir()
    info = _mountinfo(tmp_path, MOUNTINFO_WITH.format(mnt=empty))
    assert selinux.selinux_enabled(info) is False


def test_falls_back_to_sys_fs_selinux_without_mountinfo(tmp_path: Path) -> None:
    fs = tmp_path / "selinux"
    fs.mkdir()
    (fs / "enforce").write_text("1")
    assert selinux.selinux_enabled(tmp_path / "missing", default_fs=fs) is True
    assert selinux.selinux_enabled(tmp_path / "missing", default_fs=tmp_path) is False


def test_this_host_probe_does_not_crash() -> None:
    assert selinux.selinux_enabled() in (True, False)


def test_labels() -> None:
    assert selinux.process_label("s0:c1,c2") == "system_u:system_r:container_t:s0:c1,c2"
    assert selinux.mount_label("s0:c1,c2") == "system_u:object_r:container_file_t:s0:c1,c2"
    assert selinux.level_of("system_u:system_r:container_t:s0:c1,c2") == "s0:c1,c2"
    assert selinux.level_of("unconfined_u:unconfined_r:unconfined_t") == ""
    assert selinux.with_level("u:r:t", "s0") == "u:r:t:s0"
    with pytest.raises(ValueError):
        selinux.with_level("nonsense", "s0")


def test_new_level_is_an_ordered_pair_of_distinct_categories() -> None:
    for _ in range(200):
        m = re.fullmatch(r"s0:c(\d+),c(\d+)", selinux.new_level())
        assert m is not None
        a, b = int(m.group(1)), int(m.group(2))
        assert 0 <= a < b < 1024


def test_new_level_avoids_levels_in_use() -> None:
    rolls = itertools.chain([5, 5], [2, 1], [1, 2], [7, 3])   # same, in use, in use, free
    level = selinux.new_level(
        ["system_u:system_r:container_t:s0:c1,c2", "s0:c9,c10"],
        randbelow=lambda n: next(rolls))
    assert level == "s0:c3,c7"


def test_new_level_when_everything_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selinux, "CATEGORIES", 4)
    taken = [f"s0:c{a},c{b}" for a in range(4) for b in range(a + 1, 4)]
    assert selinux.new_level(taken[1:]) == "s0:c0,c1"
    with pytest.raises(FailedPrecondition, match="no free SELinux MCS category pair"):
        selinux.new_level(taken)


def test_new_labels_share_the_level() -> None:
    process, mount = selinux.new_labels(["s0:c1,c2"])
    assert selinux.level_of(process) == selinux.level_of(mount) != "s0:c1,c2"
    assert ":container_t:" in process or process.startswith("system_u:system_r:")


def test_default_contexts_from_lxc_contexts(tmp_path: Path) -> None:
    assert selinux.default_contexts(tmp_path) == (selinux.DEFAULT_PROCESS,
                                                  selinux.DEFAULT_FILE)
    (tmp_path / "config").write_text("SELINUX=enforcing\nSELINUXTYPE=mls\n")
    ctx = tmp_path / "mls" / "contexts"
    ctx.mkdir(parents=True)
    (ctx / "lxc_contexts").write_text(
        'process = "system_u:system_r:spc_t:s0"\n'
        'file = "system_u:object_r:svirt_sandbox_file_t:s0"\n'
        'content = "system_u:object_r:virt_var_lib_t:s0"\n')
    assert selinux.default_contexts(tmp_path) == ("system_u:system_r:spc_t:s0",
                                                  "system_u:object_r:svirt_sandbox_file_t:s0")
