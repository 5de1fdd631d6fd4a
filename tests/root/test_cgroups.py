"""Cgroup against the real kernel: limits, joining, freezing, killing, OOM, pids, stats.

The host is hybrid, so the v1 path is the one containers take.  The v2 path runs on the
real cgroup2 mount at /sys/fs/cgroup/unified (no controllers there, but directories,
cgroup.freeze, cgroup.kill and eBPF device programs all work).  Every test works under
a parent unique to this process and leaves no directory behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk.errors import InvalidArgument
from sdk.runtime.cgroups import Cgroup, CgroupMode, cleanup_stale, detect_mode
from sdk.runtime.spec import DeviceRule, Resources

pytestmark = pytest.mark.root

ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
MiB = 1024 * 1024


def hierarchies(root: str = ROOT) -> list[Path]:
    if root == UNIFIED:
        return [Path(UNIFIED)]
    return [p for p in Path(root).iterdir() if p.is_dir() and not p.is_symlink()]


def leftovers(rel: str, root: str = ROOT) -> list[str]:
    return [str(h / rel) for h in hierarchies(root) if (h / rel).exists()]


@pytest.fixture
def parent() -> Iterator[str]:
    name = f"berth-test-{os.getpid()}"
    yield name
    for root in (ROOT, UNIFIED):
        cleanup_stale(name, (), root=root)
        for h in hierarchies(root):
            if (h / name).is_dir():
                os.rmdir(h / name)
    assert leftovers(name) == [] and leftovers(name, UNIFIED) == []


class Held:
    """A child that waits on stdin until it has been put in the cgroup."""

    def __init__(self, cg: Cgroup, code: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.readline()\n" + code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cg.add(self.proc.pid)
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=10)


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_host_is_hybrid() -> None:
    assert detect_mode() == CgroupMode.HYBRID
    assert detect_mode(UNIFIED) == CgroupMode.V2


def test_limits_are_written_to_the_v1_files(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/limits", Resources(
        memory=64 * MiB, pids_limit=20, nano_cpus=500_000_000, cpuset_cpus="0"))
    rel = f"{parent}/limits"
    assert sorted(p.split("/")[4] for p in leftovers(rel)) == sorted(
        h.name for h in hierarchies())                     # every hierarchy, systemd + unified
    read = lambda f: Path(ROOT, f).read_text().strip()      # noqa: E731
    assert read(f"memory/{rel}/memory.limit_in_bytes") == str(64 * MiB)
    if Path(ROOT, f"memory/{rel}/memory.memsw.limit_in_bytes").exists():
        assert read(f"memory/{rel}/memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert read(f"pids/{rel}/pids.max") == "20"
    assert read(f"cpu/{rel}/cpu.cfs_period_us") == "100000"
    assert read(f"cpu/{rel}/cpu.cfs_quota_us") == "50000"
    assert read(f"cpuset/{rel}/cpuset.cpus") == "0"
    assert read(f"cpuset/{rel}/cpuset.mems") == read("cpuset/cpuset.mems")
    assert read(f"cpuset/{parent}/cpuset.cpus") == read("cpuset/cpuset.cpus")   # seeded
    cg.update(Resources(memory=128 * MiB, memory_swap=256 * MiB, pids_limit=-1))
    assert read(f"memory/{rel}/memory.limit_in_bytes") == str(128 * MiB)
    assert read(f"pids/{rel}/pids.max") == "max"
    cg.remove()
    assert leftovers(rel) == [] and len(leftovers(parent)) == len(hierarchies())
    cg.remove()


def test_bad_cpuset_is_reported_and_leaves_nothing(parent: str) -> None:
    with pytest.raises(InvalidArgument, match="--cpuset-cpus.*available: "):
        Cgroup.create(f"{parent}/bad", Resources(cpuset_cpus="1000"))
    assert leftovers(parent) == []                     # the parent it made went too


def test_add_procs_freeze_thaw_kill(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/life", Resources())
    child = Held(cg, "import time; time.sleep(30)")
    pid = child.proc.pid
    assert cg.procs() == [pid] and cg.populated()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert f"0::/{parent}/life" in lines
    assert any(line.endswith(f":memory:/{parent}/life") for line in lines)
    cg.freeze()
    assert cg.frozen()
    assert Path(ROOT, f"freezer/{parent}/life/freezer.state").read_text().strip() == "FROZEN"
    assert state(pid) in ("D", "T")
    cg.thaw()
    assert not cg.frozen() and state(pid) in ("S", "R")
    cg.kill_all()
    assert not cg.populated() and cg.procs() == []
    assert child.finish()[0] == -signal.SIGKILL
    cg.remove()
    assert leftovers(f"{parent}/life") == []


def test_kill_all_catches_forked_children_and_a_paused_cgroup(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/forks", Resources())
    child = Held(cg, "import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n"
                     "        time.sleep(60); os._exit(0)\nprint('ok', flush=True)\n"
                     "time.sleep(60)")
    assert child.proc.stdout is not None and child.proc.stdout.readline() == "ok\n"
    assert len(cg.procs()) == 6
    cg.freeze()                                        # docker kill of a paused container
    cg.kill_all(timeout=5)
    assert not cg.populated() and not cg.frozen()
    child.kill()
    cg.remove()


def test_remove_kills_what_is_left(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/busy", Resources())
    child = Held(cg, "import time; time.sleep(30)")
    cg.remove()
    assert child.finish()[0] == -signal.SIGKILL
    assert leftovers(f"{parent}/busy") == []


def test_pids_limit_blocks_forks(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/pids", Resources(pids_limit=5))
    child = Held(cg, """
import os, time
kids, failed = [], 0
for _ in range(20):
    try:
        pid = os.fork()
    except BlockingIOError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print(len(kids), failed, flush=True)
time.sleep(30)
""")
    assert child.proc.stdout is not None
    forked, failed = map(int, child.proc.stdout.readline().split())
    assert forked == 4 and failed == 16                # 5 tasks in all, the parent included
    assert cg.stats().pids_current == 5 and cg.stats().pids_limit == 5
    cg.kill_all()
    child.kill()
    cg.remove()


def test_oom_kill_is_detected(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/oom", Resources(memory=16 * MiB))
    assert not cg.oom_killed()
    child = Held(cg, "chunks = [b'x' * (1 << 20) for _ in range(64)]\nprint('survived')")
    code, out, _ = child.finish()
    assert code == -signal.SIGKILL and "survived" not in out
    assert cg.oom_killed()
    cg.remove()


def test_stats_of_a_busy_child(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/stats", Resources(memory=64 * MiB, pids_limit=20))
    child = Held(cg, "import time\nheld = b'x' * (8 << 20)\nend = time.time() + 0.3\n"
                     "while time.time() < end:\n    pass\nprint('done', flush=True)\n"
                     "time.sleep(30)")
    assert child.proc.stdout is not None and child.proc.stdout.readline() == "done\n"
    s = cg.stats()
    assert s.cpu_usage_ns > 100_000_000 and s.cpu_user_ns + s.cpu_system_ns > 0
    assert s.memory_usage > 8 * MiB and s.memory_limit == 64 * MiB
    assert s.pids_current == 1 and s.pids_limit == 20 and s.online_cpus >= 1
    cg.kill_all()
    child.kill()
    cg.remove()


def test_v1_device_rules_are_enforced(parent: str) -> None:
    rules = (DeviceRule(False, "a"), DeviceRule(True, "c", 1, 3, "rwm"))
    cg = Cgroup.create(f"{parent}/dev", Resources(), rules)
    assert Path(ROOT, f"devices/{parent}/dev/devices.list").read_text().split("\n")[0] == \
        "c 1:3 rwm"
    child = Held(cg, OPEN_DEVICES)
    code, out, _ = child.finish()
    assert code == 0 and out.split() == ["ok", "EPERM", "EPERM", "EPERM"]
    cg.remove()


def test_cleanup_stale(parent: str) -> None:
    for name in ("a", "b", "c"):
        Cgroup.create(f"{parent}/{name}", Resources(pids_limit=10))
    child = Held(Cgroup.open(f"{parent}/c"), "import time; time.sleep(30)")
    assert cleanup_stale(parent, {"b"}) == ["a", "c"]
    assert child.finish()[0] == -signal.SIGKILL
    assert leftovers(f"{parent}/a") == leftovers(f"{parent}/c") == []
    assert len(leftovers(f"{parent}/b")) == len(hierarchies())


# ---- the v2 code path on the real (controller-less) cgroup2 mount ----------------------

OPEN_DEVICES = """
import errno, os
for path, flags in (("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY),
                    ("/dev/zero", os.O_WRONLY), ("/dev/full", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags))
        print("ok")
    except OSError as exc:
        print(errno.errorcode[exc.errno])
"""


def test_v2_device_filter_is_enforced_by_ebpf(parent: str) -> None:
    rules = (DeviceRule(False, "a"), DeviceRule(True, "c", 1, 3, "rwm"),
             DeviceRule(True, "c", 1, 5, "r"))
    cg = Cgroup.create(f"{parent}/dev", Resources(), rules, root=UNIFIED)
    assert cg.mode == CgroupMode.V2
    code, out, _ = Held(cg, OPEN_DEVICES).finish()
    assert code == 0 and out.split() == ["ok", "ok", "EPERM", "EPERM"]
    free = Cgroup.create(f"{parent}/free", Resources(), (DeviceRule(True),), root=UNIFIED)
    code, out, _ = Held(free, OPEN_DEVICES).finish()
    assert out.split() == ["ok", "ok", "ok", "ok"]
    cg.remove()
    free.remove()
    assert leftovers(f"{parent}/dev", UNIFIED) == []


def test_v2_freeze_kill_stats_remove(parent: str) -> None:
    cg = Cgroup.create(f"{parent}/life", Resources(), root=UNIFIED)
    child = Held(cg, "import time\nend = time.time() + 0.2\nwhile time.time() < end:\n"
                     "    pass\nprint('done', flush=True)\ntime.sleep(30)")
    assert child.proc.stdout is not None and child.proc.stdout.readline() == "done\n"
    assert cg.procs() == [child.proc.pid] and cg.populated()
    assert cg.stats().cpu_usage_ns > 50_000_000         # cpu.stat is a core file
    cg.freeze()
    assert "frozen 1" in Path(UNIFIED, f"{parent}/life/cgroup.events").read_text()
    cg.thaw()
    assert not cg.frozen()
    t0 = time.monotonic()
    cg.kill_all()
    assert time.monotonic() - t0 < 2 and not cg.populated()
    assert child.finish()[0] == -signal.SIGKILL
    cg.remove()
    assert leftovers(f"{parent}/life", UNIFIED) == []


def test_v2_limit_without_its_controller_is_a_clear_error(parent: str) -> None:
    with pytest.raises(InvalidArgument, match="--memory.*memory controller is not enabled"):
        Cgroup.create(f"{parent}/nomem", Resources(memory=64 * MiB), root=UNIFIED)
    assert leftovers(parent, UNIFIED) == []
