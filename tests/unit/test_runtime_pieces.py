"""Pure pieces of the container process layer: caps, mount options, cgroup layout,
env/PATH/shebang handling, error mapping and in-root path resolution (no root needed)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from sdk.errors import CommandNotExecutable, CommandNotFound, RuntimeFailure
from sdk.runtime import caps, defaults, linux
from sdk.runtime.rootfs import parse_options
from sdk.runtime.rootfs_cgroup import _own_path, own_cgroups, parse_layout
from sdk.runtime.rootfs_paths import ensure_in_root, glob_in_root, open_in_root, path_of
from sdk.runtime.spawn_errors import SetupError, encode, exec_error, to_error
from sdk.runtime.spawn_process import (
    build_env,
    env_map,
    parse_shebang,
    rlimit_number,
    search_path,
)
from sdk.runtime.spec import Mount


# ---- caps ------------------------------------------------------------------------------
def test_default_caps_are_dockers_14() -> None:
    assert len(defaults.DEFAULT_CAPABILITIES) == 14
    assert caps.to_mask(defaults.DEFAULT_CAPABILITIES) == 0xA80425FB
    assert caps.from_mask(0xA80425FB) == defaults.DEFAULT_CAPABILITIES


def test_cap_names_normalize() -> None:
    assert caps.to_mask(["chown", "CAP_KILL", "net_raw"]) == (1 << 0) | (1 << 5) | (1 << 13)
    with pytest.raises(ValueError, match="unknown capability"):
        caps.to_mask(["CAP_FLY"])


def test_parse_status() -> None:
    text = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n" \
           "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    sets = caps.parse_status(text)
    assert sets == caps.CapSets(0xA80425FB, 0xA80425FB, 0, 0xA80425FB, 0)


# ---- defaults ----------------------------------------------------------------------------
def test_default_mounts_and_paths() -> None:
    targets = [m.target for m in defaults.default_mounts()]
    assert targets == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                       "/dev/shm"]
    assert "/proc/kcore" in defaults.MASKED_PATHS and "/proc/sys" in defaults.READONLY_PATHS
    assert [d.path for d in defaults.DEFAULT_DEVICES] == [
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]
    assert defaults.default_mounts(1 << 20)[-1].options == ("mode=1777", "size=1048576")


# ---- mount options -------------------------------------------------------------------------
def test_parse_options() -> None:
    opts = parse_options(Mount("/dev", "tmpfs", "tmpfs", options=("mode=755", "size=65536k"),
                               flags=("nosuid", "strictatime")))
    assert opts.flags == linux.MS_NOSUID | linux.MS_STRICTATIME
    assert (opts.data, opts.readonly, opts.propagation) == ("mode=755,size=65536k", False, 0)
    bind = parse_options(Mount("/x", source="/y", options=("ro", "bind", "rslave", "noexec")))
    assert bind.readonly and not bind.recursive and bind.flags == linux.MS_NOEXEC
    assert bind.propagation == linux.MS_SLAVE | linux.MS_REC
    default_bind = parse_options(Mount("/x", source="/y"))
    assert default_bind.propagation == linux.MS_PRIVATE | linux.MS_REC and default_bind.recursive
    assert not parse_options(Mount("/x", source="/y", readonly=True, options=("rw",))).readonly
    with pytest.raises(SetupError, match="unknown propagation"):
        parse_options(Mount("/x", source="/y", propagation="sideways"))


def test_parse_cgroup_layout() -> None:
    hybrid = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /mnt/cgroup rw,relatime - cgroup cgroup rw,memory
"""
    layout = parse_layout(hybrid, (("cpu", "cpu,cpuacct"),))
    assert not layout.v2 and layout.unified == "unified"
    assert layout.v1 == (("cpu,cpuacct", "cpu,cpuacct"), ("systemd", "xattr,name=systemd"))
    assert layout.symlinks == (("cpu", "cpu,cpuacct"),)
    v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert parse_layout(v2).v2


def test_own_cgroups() -> None:
    own = own_cgroups("9:name=systemd:/a\n4:cpu,cpuacct:/b\n1:pids:/c\n0::/d\n")
    assert own[frozenset()] == "/d"
    assert _own_path(own, "xattr,name=systemd") == "/a"
    assert _own_path(own, "cpu,cpuacct") == "/b" and _own_path(own, "pids") == "/c"
    assert _own_path(own, "memory") == "/"


# ---- process -------------------------------------------------------------------------------
def test_build_env_adds_path_and_home_only_when_missing() -> None:
    assert build_env(["A=1"], "/home/app") == ["A=1", f"PATH={defaults.DEFAULT_PATH}",
                                               "HOME=/home/app"]
    assert build_env(["PATH=/x", "HOME=/h"], "/home/app") == ["PATH=/x", "HOME=/h"]
    assert env_map(["A=1", "B=x=y", "EMPTY", "=bad"]) == {"A": "1", "B": "x=y", "EMPTY": ""}


def test_search_path() -> None:
    assert search_path(["PATH=/a::/b"]) == ["/a", ".", "/b"]
    assert search_path([]) == defaults.DEFAULT_PATH.split(":")


@pytest.mark.parametrize("head, expected", [
    (b"#!/bin/sh\necho", ("/bin/sh", None)),
    (b"#! /usr/bin/env  python3 -u \n", ("/usr/bin/env", "python3 -u")),
    (b"#!/bin/bash\t-e\n", ("/bin/bash", "-e")),
    (b"#!\n", None),
    (b"\x7fELF...", None),
])
def test_parse_shebang(head: bytes, expected: tuple[str, str | None] | None) -> None:
    assert parse_shebang(head) == expected


def test_rlimit_names() -> None:
    assert rlimit_number("nofile") == 7 and rlimit_number("RLIMIT_NPROC") == 6
    with pytest.raises(SetupError, match="unknown resource"):
        rlimit_number("bananas")


# ---- errors --------------------------------------------------------------------------------
def test_error_round_trip() -> None:
    err = to_error(encode(exec_error("foo", OSError(errno.EACCES, "x")), "exec"))
    assert isinstance(err, CommandNotExecutable) and err.exit_code == 126
    assert str(err) == 'exec: "foo": permission denied'
    err = to_error(encode(exec_error("foo", OSError(errno.ENOENT, "x")), "exec"))
    assert isinstance(err, CommandNotFound) and str(err) == 'exec: "foo": no such file or ' \
                                                             'directory'
    err = to_error(encode(OSError(errno.EPERM, "x", "/proc/sys/x"), "sysctl x"))
    assert isinstance(err, RuntimeFailure)
    assert str(err) == "sysctl x: /proc/sys/x: operation not permitted"
    assert json.loads(encode(SetupError("m", err=5), "s")) == {
        "stage": "s", "kind": "runtime", "errno": 5, "message": "m"}
    assert isinstance(to_error(b"garbage"), RuntimeFailure)


# ---- in-root paths -------------------------------------------------------------------------
@pytest.fixture
def root(tmp_path: Path) -> tuple[Path, int]:
    base = tmp_path / "root"
    (base / "etc").mkdir(parents=True)
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY)
    yield base, fd
    os.close(fd)


def test_ensure_creates_inside_the_root(root: tuple[Path, int], tmp_path: Path) -> None:
    base, fd = root
    (base / "up").symlink_to("../../../../..")           # '..' cannot climb out
    (base / "abs").symlink_to(str(tmp_path / "host"))    # absolute: re-rooted
    (base / "dangling").symlink_to("/made/here")
    for path, expect in (("/a/b/c", base / "a/b/c"), ("/up/x", base / "x"),
                         ("/abs/y", base / str(tmp_path / "host/y").lstrip("/")),
                         ("/dangling", base / "made/here")):
        made = ensure_in_root(fd, path)
        try:
            assert path_of(made) == str(expect)
        finally:
            os.close(made)
    assert not (tmp_path / "host").exists()
    f = ensure_in_root(fd, "/etc/conf/file.txt", directory=False)
    os.close(f)
    assert (base / "etc/conf/file.txt").is_file()


def test_ensure_reports_loops_and_files(root: tuple[Path, int]) -> None:
    base, fd = root
    (base / "loop").symlink_to("loop")
    with pytest.raises(OSError) as info:
        ensure_in_root(fd, "/loop/x")
    assert info.value.errno == errno.ELOOP
    (base / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        ensure_in_root(fd, "/file/x")


def test_open_in_root_refuses_magic_links(root: tuple[Path, int]) -> None:
    base, fd = root
    (base / "exe").symlink_to("/proc/self/exe")
    with pytest.raises(FileNotFoundError):      # /proc/self/exe inside this root: absent
        open_in_root(fd, "/exe")
    proc = os.open("/", os.O_PATH)
    try:
        with pytest.raises(OSError) as info:
            open_in_root(proc, "/proc/self/exe")
        assert info.value.errno in (errno.ELOOP, errno.EXDEV)
    finally:
        os.close(proc)


def test_glob_in_root(root: tuple[Path, int]) -> None:
    base, fd = root
    for cpu in ("cpu0", "cpu1", "cpufreq"):
        (base / "sys" / cpu / "thermal").mkdir(parents=True)
    assert glob_in_root(fd, "/sys/cpu[0-9]*/thermal") == ["/sys/cpu0/thermal",
                                                          "/sys/cpu1/thermal"]
    assert glob_in_root(fd, "/plain/path") == ["/plain/path"]
    assert glob_in_root(fd, "/missing/*/x") == []
