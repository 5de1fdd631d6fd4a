"""``docker update`` twins: limits change in the running container's real cgroup, a refused
update changes nothing, and a new restart policy governs the next exit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument
from sdk.runtime.cgroups import CgroupMode, detect_mode

from .conftest import Cli

pytestmark = pytest.mark.root

V2 = detect_mode() == CgroupMode.V2


def knob(cid: str, v1: str, v2: str) -> str:
    """A container's cgroup file, read on the host (v1 controller/file or v2 file)."""
    if V2:
        return (Path("/sys/fs/cgroup/berth") / cid / v2).read_text().strip()
    controller, name = v1.split("/")
    return (Path("/sys/fs/cgroup") / controller / "berth" / cid / name).read_text().strip()


def memory(cid: str) -> int:
    text = knob(cid, "memory/memory.limit_in_bytes", "memory.max")
    return -1 if text == "max" else int(text)


def pids(cid: str) -> str:
    return knob(cid, "pids/pids.max", "pids.max")


def cpu_quota(cid: str) -> int:
    if V2:
        return int(knob(cid, "", "cpu.max").split()[0].replace("max", "-1"))
    return int(knob(cid, "cpu/cpu.cfs_quota_us", ""))


def test_update_a_running_container_in_place(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sleep", "300"], detach=True, mem_limit="64m",
                              memswap_limit="128m", network_mode="none")
    pid = c.attrs["State"]["Pid"]
    assert memory(c.id) == 64 << 20
    result = c.update(mem_limit="96m", memswap_limit="256m", pids_limit=50,
                      nano_cpus=500_000_000, restart_policy={"Name": "on-failure",
                                                             "MaximumRetryCount": 3})
    assert result == {"Warnings": []}
    assert memory(c.id) == 96 << 20
    assert pids(c.id) == "50"
    assert cpu_quota(c.id) == 50_000          # half of the default 100 ms period
    host = c.attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"], host["NanoCpus"]) == \
        (96 << 20, 256 << 20, 50, 500_000_000)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    c.reload()
    assert c.status == "running" and c.attrs["State"]["Pid"] == pid    # not restarted
    c.update(pids_limit=-1)                   # "unlimited" is a write too
    assert pids(c.id) == "max"


@pytest.mark.parametrize("kwargs, message", [
    ({"mem_limit": "2m"}, "Minimum memory limit allowed is 6MB"),
    ({"mem_limit": "512m"}, "update the memoryswap at the same time"),
    ({"cpu_quota": 20_000}, "Nano CPUs and CPU Quota cannot both be set"),
    ({"blkio_weight": 5}, "blkio weight"),
    ({"kernel_memory": "1g"}, "unknown option"),
])
def test_a_refused_update_changes_nothing(engine: Engine, busybox: str, kwargs: dict,
                                          message: str) -> None:
    c = engine.containers.run("busybox", ["sleep", "300"], detach=True, mem_limit="64m",
                              memswap_limit="128m", nano_cpus=1_000_000_000,
                              network_mode="none")
    before = dict(c.attrs["HostConfig"])
    with pytest.raises(InvalidArgument, match=message):
        c.update(**kwargs)
    c.reload()
    assert c.attrs["HostConfig"] == before
    assert memory(c.id) == 64 << 20
    assert cpu_quota(c.id) == 100_000


def test_update_of_a_stopped_container_applies_at_start(engine: Engine, busybox: str) -> None:
    c = engine.containers.create("busybox", ["sleep", "300"], network_mode="none")
    c.update(mem_limit="80m", pids_limit=20)
    c.start()
    assert memory(c.id) == 80 << 20
    assert pids(c.id) == "20"


def test_new_restart_policy_governs_the_next_exit(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 1"], detach=True,
                              network_mode="none")
    c.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        c.reload()
        if c.attrs["RestartCount"] == 2 and c.status == "exited":
            break
        time.sleep(0.1)
    assert (c.attrs["RestartCount"], c.status) == (2, "exited")


def test_cli_update(berth: Cli, engine: Engine) -> None:
    assert berth("run", "-d", "--name", "u1", "--network", "none", "-m", "64m",
                 "busybox", "sleep", "300").returncode == 0
    cid = engine.containers.get("u1").id
    p = berth("update", "-m", "100m", "--memory-swap", "200m", "--pids-limit", "30", "u1")
    assert (p.returncode, p.stdout) == (0, "u1\n"), p.stderr
    assert memory(cid) == 100 << 20 and pids(cid) == "30"
    p = berth("update", "-m", "1g", "u1")
    assert p.returncode == 1
    assert "Cannot update container u1: Memory limit should be smaller" in p.stderr
    assert memory(cid) == 100 << 20
    p = berth("update", "u1")
    assert p.returncode == 125 and "one or more flags" in p.stderr
    p = berth("update", "--pids-limit", "40", "u1", "nosuch")
    assert p.returncode == 1 and "No such container: nosuch" in p.stderr
    assert pids(cid) == "40"


def test_default_swap_follows_a_memory_update(engine: Engine, busybox: str) -> None:
    """Without --memory-swap the swap limit is docker's default (as much swap as memory):
    raising the memory limit raises it too, where an explicit one must be raised by hand."""
    c = engine.containers.run("busybox", ["sleep", "300"], detach=True, mem_limit="32m",
                              network_mode="none")
    c.update(mem_limit="128m")
    assert memory(c.id) == 128 << 20
    c.reload()
    assert (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["MemorySwap"]) == \
        (128 << 20, 0)
    if not V2:
        swap = Path("/sys/fs/cgroup/memory/berth") / c.id / "memory.memsw.limit_in_bytes"
        if swap.exists():
            assert int(swap.read_text()) == 256 << 20
