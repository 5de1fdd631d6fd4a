"""Which mounts a container's child makes before it is in its cgroups: everything but the
cgroup mounts, unless something must go on top of a cgroup mount."""

from __future__ import annotations

from sdk.runtime import defaults
from sdk.runtime.spawn import split_mounts
from sdk.runtime.spec import Mount


def test_cgroup_mounts_wait_and_everything_else_goes_first() -> None:
    mounts = tuple(defaults.default_mounts())
    early, late = split_mounts(mounts)
    assert late and all(m.kind == "cgroup" for m in late)
    assert [m for m in mounts if m.kind != "cgroup"] == list(early)


def test_a_mount_under_a_cgroup_mount_keeps_the_original_order() -> None:
    mounts = (*defaults.default_mounts(),
              Mount(target="/sys/fs/cgroup/extra", kind="bind", source="/srv"))
    assert split_mounts(mounts) == ((), mounts)


def test_no_cgroup_mount_means_everything_early() -> None:
    mounts = (Mount(target="/proc", kind="proc", source="proc"),)
    assert split_mounts(mounts) == (mounts, ())
